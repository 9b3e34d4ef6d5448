"""Error types and the collective agreement on errors.

In SPMD code a rank that raises alone leaves its peers blocked in the next
collective. Input checks therefore run inside :func:`collective`: every rank
reports whether it found a problem, and the same error is raised on every rank,
so that all of them exit together with one clear message.
"""

from __future__ import annotations

import pickle
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

import numpy as np

if TYPE_CHECKING:
    from mpi4py import MPI

__all__ = [
    "HpcdistError",
    "InputError",
    "BackendError",
    "CollectiveError",
    "agree",
    "collective",
    "EXIT_USAGE",
    "EXIT_ERROR",
]

#: Exit code of a job that stopped on bad input or another agreed, expected error.
EXIT_USAGE = 2
#: Exit code of a job aborted on an unexpected exception.
EXIT_ERROR = 1


class HpcdistError(Exception):
    """Base class of the errors hpcdist reports as one clean message (no traceback).

    Attributes
    ----------
    collective : bool
        True once every rank of the communicator raised this same error (set by
        :func:`agree`); the CLI then exits cleanly on all ranks with ``exit_code``.
    origin_rank : int or None
        The lowest rank that found the problem.
    n_ranks_failed : int
        How many ranks found a problem.
    """

    exit_code = EXIT_USAGE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.collective = False
        self.origin_rank: int | None = None
        self.n_ranks_failed = 0

    def __str__(self) -> str:
        return self.message


class InputError(HpcdistError):
    """Bad input: a malformed file, an unknown id, an impossible requirement.

    Parameters
    ----------
    message : str
        What is wrong, in words a user can act on.
    path : str, optional
        The file at fault.
    line : int, optional
        The 1-based line number in ``path``.
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        self.path = path
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)

    def __reduce__(self):  # keep path and line when the error crosses ranks
        return (_rebuild_input_error, (self.message, self.path, self.line))


def _rebuild_input_error(message: str, path: str | None, line: int | None) -> InputError:
    err = InputError.__new__(InputError)
    HpcdistError.__init__(err, message)
    err.path, err.line = path, line
    return err


class BackendError(HpcdistError):
    """A requested compute backend (numba, cupy) cannot run on this rank."""


class CollectiveError(HpcdistError):
    """An error found on some rank whose own exception could not be sent to the others."""


def agree(comm: "MPI.Intracomm", error: BaseException | None) -> None:
    """Make every rank raise the same error when any rank has one.

    Collective over ``comm``. Costs one small allreduce when no rank has an error.
    When several ranks have one, the lowest rank's error wins and the message says
    how many ranks failed.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        The communicator whose ranks must agree.
    error : BaseException or None
        This rank's error, or None when it found nothing wrong.

    Raises
    ------
    HpcdistError
        On every rank, when at least one rank passed an error. Its ``collective``
        attribute is True. An ``HpcdistError`` keeps its type; any other exception
        becomes a :class:`CollectiveError` with its text.
    """
    from hpcdist.runtime.comm import MPI

    size = comm.Get_size()
    rank = comm.Get_rank()
    # a buffer allreduce, not the pickled one: this runs before every collective call,
    # often on caches that the previous call's data has just emptied
    flag = np.array([rank if error is not None else size], dtype=np.int64)
    comm.Allreduce(MPI.IN_PLACE, flag, op=MPI.MIN)
    first = int(flag[0])
    if first == size:
        return
    n_failed = comm.allreduce(int(error is not None), op=MPI.SUM)
    payload = None
    if rank == first:
        assert error is not None
        payload = _portable(error, rank)
    payload = comm.bcast(payload, root=first)
    agreed = pickle.loads(payload)
    agreed.collective = True
    agreed.origin_rank = first
    agreed.n_ranks_failed = n_failed
    raise agreed


def _portable(error: BaseException, rank: int) -> bytes:
    """Pickle ``error`` as an HpcdistError, falling back to its text."""
    if isinstance(error, HpcdistError):
        try:
            return pickle.dumps(error, protocol=5)
        except Exception:  # noqa: BLE001 - unpicklable payloads fall back to text
            pass
        return pickle.dumps(CollectiveError(str(error)), protocol=5)
    text = f"{type(error).__name__}: {error}"
    return pickle.dumps(CollectiveError(text), protocol=5)


@contextmanager
def collective(
    comm: "MPI.Intracomm",
    catch: tuple[type[BaseException], ...] = (HpcdistError,),
) -> Iterator[None]:
    """Run a block on every rank and agree afterwards on whether it failed.

    Collective over ``comm``: every rank must enter and leave the block.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        The communicator whose ranks must agree.
    catch : tuple of exception types
        Errors that are expected here (bad input). Anything else is a bug and
        propagates at once, so that the abort guard shows its traceback.

    Examples
    --------
    >>> with collective(ctx.comm):                         # doctest: +SKIP
    ...     check_my_slice(edges)   # raises InputError on the rank that sees the bad line
    """
    error: BaseException | None = None
    try:
        yield
    except catch as exc:
        error = exc
    agree(comm, error)
