"""Rank-aware logging and rank-0 console output.

Log records carry a ``[rank/size host]`` prefix so that interleaved output from many
ranks stays readable. Human output (tables, summaries, progress) goes through
:func:`echo`, which prints on rank 0 only.
"""

from __future__ import annotations

import logging
import socket
import sys
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from mpi4py import MPI

__all__ = ["setup_logging", "get_logger", "echo", "RankFormatter", "LEVELS"]

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_HANDLER_NAME = "hpcdist-rank"


class RankFormatter(logging.Formatter):
    """Prefix every record with ``[rank/size host]``."""

    def __init__(self, rank: int, size: int, hostname: str | None = None) -> None:
        host = hostname or socket.gethostname()
        super().__init__(f"[{rank}/{size} {host}] %(levelname)s %(name)s: %(message)s")


def get_logger(name: str) -> logging.Logger:
    """The logger for an hpcdist module (a child of ``hpcdist``)."""
    return logging.getLogger(name if name.startswith("hpcdist") else f"hpcdist.{name}")


def setup_logging(
    level: str | int | None = None,
    comm: "MPI.Intracomm | None" = None,
    stream: TextIO | None = None,
) -> logging.Logger:
    """Configure the ``hpcdist`` logger for this rank.

    Parameters
    ----------
    level : str or int, optional
        ``DEBUG`` .. ``CRITICAL``; when None, ``HPCDIST_LOG_LEVEL`` or ``WARNING``.
    comm : mpi4py.MPI.Intracomm, optional
        Gives the rank and size of the prefix; ``COMM_WORLD``'s when None.
    stream : file, optional
        Where records go (stderr by default).

    Returns
    -------
    logging.Logger
        The ``hpcdist`` logger.
    """
    from hpcdist.runtime.comm import world_rank_and_size
    from hpcdist.runtime.settings import load_settings

    if level is None:
        level = load_settings().log_level
    if isinstance(level, str):
        name = level.upper()
        if name not in LEVELS:
            from hpcdist.runtime.errors import InputError

            raise InputError(f"unknown log level {level!r}; choose one of {', '.join(LEVELS)}")
        level = getattr(logging, name)
    rank, size = (comm.Get_rank(), comm.Get_size()) if comm is not None else world_rank_and_size()
    logger = logging.getLogger("hpcdist")
    for handler in list(logger.handlers):
        if handler.get_name() == _HANDLER_NAME:
            logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(RankFormatter(rank, size))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return logger


def echo(comm: "MPI.Intracomm | None", *objects: Any, file: TextIO | None = None, **kwargs: Any) -> None:
    """``print`` on rank 0 of ``comm`` only (all ranks when ``comm`` is None and the job is serial).

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm or None
        Whose rank 0 prints; ``None`` means ``COMM_WORLD``'s rank 0.
    *objects, **kwargs
        As for :func:`print`.
    """
    from hpcdist.runtime.comm import world_rank_and_size

    rank = comm.Get_rank() if comm is not None else world_rank_and_size()[0]
    if rank == 0:
        print(*objects, file=file or sys.stdout, flush=True, **kwargs)
