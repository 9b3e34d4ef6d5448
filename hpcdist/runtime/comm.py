"""The one place that imports MPI, and communicator normalisation.

Every other hpcdist module gets ``MPI`` from here, so that MPI initialisation
options live in one spot and a library user can embed hpcdist in a larger MPI
program by passing their own communicator.
"""

from __future__ import annotations

from mpi4py import MPI

from hpcdist.runtime.malloc import keep_freed_memory

# process-wide, like MPI's own initialisation: see hpcdist.runtime.malloc
keep_freed_memory()

__all__ = ["MPI", "as_comm", "world_rank_and_size", "THREAD_LEVEL_NAMES"]

THREAD_LEVEL_NAMES = {
    MPI.THREAD_SINGLE: "single",
    MPI.THREAD_FUNNELED: "funneled",
    MPI.THREAD_SERIALIZED: "serialized",
    MPI.THREAD_MULTIPLE: "multiple",
}


def as_comm(comm: MPI.Comm | None = None) -> MPI.Intracomm:
    """Return a private duplicate of ``comm`` (``MPI.COMM_WORLD`` when None).

    A duplicate gives hpcdist its own message space: tags used by the task farm or
    the halo exchange can never match a message of the caller's program.

    Collective over ``comm``. The caller owns the result and frees it with ``Free()``.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm, optional
        The communicator to run on. ``None`` means ``MPI.COMM_WORLD``.

    Returns
    -------
    mpi4py.MPI.Intracomm
        A new communicator congruent to ``comm``.
    """
    if comm is None:
        comm = MPI.COMM_WORLD
    if not isinstance(comm, MPI.Intracomm):
        raise TypeError(f"expected an mpi4py intracommunicator, got {type(comm).__name__}")
    if comm == MPI.COMM_NULL:
        raise ValueError("cannot run on MPI.COMM_NULL")
    return comm.Dup()


def world_rank_and_size() -> tuple[int, int]:
    """Rank and size in ``MPI.COMM_WORLD``, or ``(0, 1)`` when MPI is not usable.

    Used by the abort guard and log prefixes, which must work even while MPI is
    finalised or after an error.
    """
    try:
        if MPI.Is_initialized() and not MPI.Is_finalized():
            return MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size()
    except Exception:  # noqa: BLE001 - a guard must never raise itself
        pass
    return 0, 1
