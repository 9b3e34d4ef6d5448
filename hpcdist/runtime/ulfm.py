"""In-job recovery from a dead rank with ULFM (User-Level Failure Mitigation).

Under Open MPI launched with ``mpirun --with-ft ulfm`` a rank's death does not end the
job: the survivors' pending and polling calls that involve the dead rank raise
``MPI.Exception`` with a process-failure error class (about 10 ms after the death), and
the survivors can find out who died and carry on with point-to-point messages. These
helpers are the few pieces a coordinator needs; see ``docs/fault-tolerance-ulfm.md`` for
the launch line and the recipe. Nothing here is collective.

Importing this module is safe under any MPI: under MPICH the failure error classes do
not exist (mpi4py maps them to ``ERR_UNKNOWN``) and :func:`ulfm_supported` is False.
"""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn

from hpcdist.runtime.comm import MPI

__all__ = [
    "FT_ENV",
    "PROCESS_FAILURE_CLASSES",
    "ulfm_supported",
    "prepare",
    "is_process_failure",
    "failed_ranks",
    "hard_exit",
]

#: Set in every rank's environment by ``mpirun --with-ft ulfm`` (or ``--mca mpi_ft_enable 1``). It is the only
#: trace the launch leaves in a rank: the rest of the environment is identical with and without ``--with-ft``.
FT_ENV = "OMPI_MCA_mpi_ft_enable"


def _failure_classes() -> frozenset[int]:
    names = ("ERR_PROC_FAILED", "ERR_PROC_FAILED_PENDING", "ERR_REVOKED")
    classes = {getattr(MPI, name, MPI.ERR_UNKNOWN) for name in names}
    # mpi4py gives an MPI without these classes (MPICH: all three are 13) the value of ERR_UNKNOWN; counting it
    # would take any unknown error for a dead peer.
    classes.discard(MPI.ERR_UNKNOWN)
    return frozenset(classes)


#: The error classes that mean "a peer process failed": ERR_PROC_FAILED (75 in Open MPI 5), ERR_PROC_FAILED_PENDING
#: (76: a nonblocking ANY_SOURCE receive is still pending, but could be matched only by a dead rank until the failure
#: is acknowledged) and ERR_REVOKED (77: another rank revoked the communicator). Empty without ULFM.
PROCESS_FAILURE_CLASSES: frozenset[int] = _failure_classes()


def ulfm_supported(comm: Any = None) -> bool:
    """True when failures of peers in this job will be reported, not fatal.

    Requires all of: Open MPI (``MPI.get_vendor()``), the failure error classes
    (:data:`PROCESS_FAILURE_CLASSES`), a communicator exposing ``Get_failed`` and
    ``Ack_failed`` (mpi4py >= 4) and the job launched with fault tolerance on
    (:data:`FT_ENV` truthy). Local and cheap: every rank gets the same answer from the
    same environment, so no agreement is needed.

    The presence of ``Get_failed``/``Ack_failed`` proves nothing by itself: mpi4py
    provides them under MPICH too (they report no failures). And the environment
    variable alone is not enough either: ``OMPI_MCA_mpi_ft_enable=1`` without
    ``mpirun --with-ft ulfm`` raises the error in the survivors, but the launcher then
    kills the whole job. Launch with ``--with-ft ulfm``; see the docs for the transport
    options that go with it.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm, optional
        The communicator the caller will recover on (``MPI.COMM_WORLD`` when None).

    Returns
    -------
    bool
    """
    if comm is None:
        comm = MPI.COMM_WORLD
    if MPI.get_vendor()[0] != "Open MPI" or len(PROCESS_FAILURE_CLASSES) != 3:
        return False
    if not (hasattr(comm, "Get_failed") and hasattr(comm, "Ack_failed")):
        return False
    return os.environ.get(FT_ENV, "").strip().lower() in ("1", "true", "yes", "on", "enabled")


def prepare(comm: Any) -> Any:
    """Make MPI errors on ``comm`` raise ``MPI.Exception`` instead of aborting the job.

    The default handler, ``ERRORS_ARE_FATAL``, ends every rank at the first error a dead
    peer causes, before any recovery code could run. Error handlers belong to one
    communicator (a ``Dup`` copies the parent's at the time of the call), so call this on
    the communicator that carries the traffic, e.g. the farm's private duplicate.
    mpi4py already installs ``ERRORS_RETURN`` on ``COMM_WORLD`` by default
    (``mpi4py.rc.errors``); setting it here keeps recovery independent of that setting
    and of communicators created elsewhere.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm

    Returns
    -------
    mpi4py.MPI.Comm
        ``comm`` itself, for chaining.
    """
    comm.Set_errhandler(MPI.ERRORS_RETURN)
    return comm


def is_process_failure(exc: BaseException) -> bool:
    """True when ``exc`` is an ``MPI.Exception`` caused by a dead (or revoked) peer.

    Parameters
    ----------
    exc : BaseException

    Returns
    -------
    bool
        False for every other exception, and always False without ULFM.
    """
    if not isinstance(exc, MPI.Exception):
        return False
    try:
        return exc.Get_error_class() in PROCESS_FAILURE_CLASSES
    except Exception:  # noqa: BLE001 - asking for the class must not replace the original error
        return False


def failed_ranks(comm: Any) -> list[int]:
    """Acknowledge the failures known locally and return the dead ranks of ``comm``.

    Acknowledging is what lets ``ANY_SOURCE`` receives and probes on ``comm`` work again
    (until then each one raises ``ERR_PROC_FAILED`` or ``ERR_PROC_FAILED_PENDING``).
    Exactly the failures returned are acknowledged (``Get_failed`` first, then
    ``Ack_failed`` of that many, which acks the first ones of that group): a rank that
    dies in between is reported by the next exception, not acknowledged unseen.

    Not collective. Cumulative: ranks reported before are reported again, so compare with
    what you already handled.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
        A communicator with ``ERRORS_RETURN`` (see :func:`prepare`).

    Returns
    -------
    list of int
        Ranks in ``comm``, ascending; empty when nothing failed (and under MPICH).
    """
    failed = comm.Get_failed()
    group = comm.Get_group()
    try:
        n = failed.Get_size()
        if n == 0:
            return []
        ranks = MPI.Group.Translate_ranks(failed, list(range(n)), group)
        comm.Ack_failed(n)
    finally:
        failed.Free()
        group.Free()
    return sorted(r for r in ranks if r != MPI.UNDEFINED)


def hard_exit(code: int = 0) -> NoReturn:
    """Flush stdout and stderr, then end the process at once with ``os._exit(code)``.

    After a peer died, ``MPI_Finalize`` (which ``mpi4py`` calls at exit) can hang on the
    dead rank (measured: 3 hangs in 25 runs); ``os._exit`` skips it. Call it only once
    every result is durable (written, or received by whoever reports it): nothing after
    this point runs, not even ``atexit`` handlers or ``finally`` blocks.

    Parameters
    ----------
    code : int
        The exit status. ``mpirun`` may still report another rank's status (see the docs),
        so the program should also print or write its own verdict.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed pipe must not stop the exit
            pass
    os._exit(code)
