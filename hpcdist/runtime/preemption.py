"""Turning a scheduler's warning signal into an orderly stop that a job script can requeue.

Slurm sends ``SIGUSR1`` (``#SBATCH --signal=B:USR1@N``, ``scancel --signal=USR1``) some
time before the limit and ``SIGTERM`` at it. :class:`StopSignals` records that one
arrived; the program polls the flag at a safe point (the end of a superstep, between
tasks), agrees with the other ranks, saves its state and exits with
:data:`EXIT_REQUEUE`, which a job script answers with ``scontrol requeue``.

A signal may reach one rank only (``kill`` of one process) or all of them (``srun``
forwards it to every task): the decision is always taken together, by a reduction.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Iterable

__all__ = ["EXIT_REQUEUE", "DEFAULT_STOP_SIGNALS", "StopSignals", "Preempted"]

#: Exit status of a run that stopped on a signal after saving its state: requeue me.
#: (75 is ``EX_TEMPFAIL`` of sysexits.h: "try again later".)
EXIT_REQUEUE = 75

DEFAULT_STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class Preempted(Exception):
    """Raised on every rank together after a signal-triggered checkpoint.

    Attributes
    ----------
    signum : int
        The signal that arrived first (on any rank).
    superstep : int
        The last completed superstep, which the checkpoint holds.
    where : str
        Where the state was saved, for the message.
    """

    exit_code = EXIT_REQUEUE

    def __init__(self, signum: int, superstep: int, where: str) -> None:
        name = signal.Signals(signum).name if signum in signal.Signals._value2member_map_ else str(signum)
        super().__init__(f"stopped on {name} after superstep {superstep}; state saved in {where}; "
                         f"rerun with --resume (exit status {EXIT_REQUEUE}: requeue)")
        self.signum = signum
        self.superstep = superstep
        self.where = where


class StopSignals:
    """Record the arrival of stop signals instead of dying on them.

    Use as a context manager: the previous handlers come back on exit. Only the main
    thread can install handlers; elsewhere (and for signals that cannot be caught)
    the object stays inert and :attr:`received` stays 0.

    Parameters
    ----------
    signals : iterable of int
        Default ``SIGTERM`` and ``SIGUSR1``.

    Attributes
    ----------
    received : int
        The first signal number that arrived, 0 while none has.
    """

    def __init__(self, signals: Iterable[int] = DEFAULT_STOP_SIGNALS) -> None:
        self.signals = tuple(signals)
        self.received = 0
        self._previous: dict[int, object] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if not self.received:
            self.received = signum

    def __enter__(self) -> "StopSignals":
        for sig in self.signals:
            try:
                self._previous[sig] = signal.signal(sig, self._handler)
            except (ValueError, OSError):  # not the main thread, or not catchable
                pass
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._previous.items():
            try:
                signal.signal(sig, old)  # type: ignore[arg-type]
            except (ValueError, OSError, TypeError):
                pass
        self._previous.clear()
