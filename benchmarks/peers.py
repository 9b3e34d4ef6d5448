"""The peers the task farm is measured against: a bare MPI loop and ``mpi4py.futures``.

Every function here is collective over ``comm`` (rank 0 coordinates, the others work)
and returns its measurement on rank 0, None elsewhere. The task functions are module
level so that workers unpickle them by name.

Idle ranks wait with a non-blocking barrier polled with short sleeps: MPICH's blocking
calls busy-poll, and a rank spinning on a shared 2-core machine would take a core away
from the ranks being measured.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Iterable

import numpy as np

from hpcdist.runtime.comm import MPI

__all__ = [
    "noop",
    "echo",
    "busy_cpu",
    "polite_barrier",
    "bare_map",
    "bare_ping_pong",
    "futures_map",
    "futures_round_trip",
    "futures_idle_cpu",
]

_WORK, _STOP, _RESULT = 1, 2, 3


# -- tasks -------------------------------------------------------------------------------


def noop(x: Any = None) -> Any:
    """The empty task: returns its argument."""
    return x


def echo(a: np.ndarray) -> np.ndarray:
    """Returns its (1 MB) array: the payload travels in and out."""
    return a


def busy_cpu(seconds: float) -> float:
    """Spin until this thread has used ``seconds`` of CPU time (not a sleep); returns that time."""
    start = time.thread_time()
    while time.thread_time() - start < seconds:
        pass
    return time.thread_time() - start


# -- helpers -----------------------------------------------------------------------------


def polite_barrier(comm: MPI.Intracomm, poll_s: float = 0.001) -> None:
    """A barrier that sleeps between polls instead of spinning. Collective over ``comm``."""
    request = comm.Ibarrier()
    while not request.Test():
        time.sleep(poll_s)


def median(samples: list[float]) -> float:
    return float(statistics.median(samples))


# -- a bare blocking MPI loop ------------------------------------------------------------


def bare_map(comm: MPI.Intracomm, fn: Callable, items: list, oob: bool = False) -> float | None:
    """Seconds for a bare blocking send/recv loop to run ``fn`` over ``items``, one item a message.

    Rank 0 hands one item to each worker, then the next item to whichever worker
    answers first, until all are done. Collective over ``comm``; rank 0 gets the time.

    Parameters
    ----------
    oob : bool
        Send with ``mpi4py.util.pkl5`` (pickle protocol 5, buffers out of band) instead
        of mpi4py's plain pickled ``send``.
    """
    if oob:
        from mpi4py.util import pkl5

        channel: Any = pkl5.Intracomm(comm)
    else:
        channel = comm
    size = comm.Get_size()
    polite_barrier(comm)
    if comm.Get_rank() == 0:
        t0 = time.perf_counter()
        pending = iter(items)
        active = 0
        for worker in range(1, size):
            item = next(pending, _END)
            if item is _END:
                channel.send(None, dest=worker, tag=_STOP)
            else:
                channel.send(item, dest=worker, tag=_WORK)
                active += 1
        status = MPI.Status()
        while active:
            channel.recv(source=MPI.ANY_SOURCE, tag=_RESULT, status=status)
            worker = status.Get_source()
            item = next(pending, _END)
            if item is _END:
                channel.send(None, dest=worker, tag=_STOP)
                active -= 1
            else:
                channel.send(item, dest=worker, tag=_WORK)
        elapsed = time.perf_counter() - t0
    else:
        status = MPI.Status()
        while True:
            item = channel.recv(source=0, tag=MPI.ANY_TAG, status=status)
            if status.Get_tag() == _STOP:
                break
            channel.send(fn(item), dest=0, tag=_RESULT)
        elapsed = None
    polite_barrier(comm)
    return elapsed


_END = object()


def bare_ping_pong(comm: MPI.Intracomm, n: int, payload: Any = 0) -> list[float] | None:
    """Round-trip times (s) of ``n`` tiny pickled messages between ranks 0 and 1.

    Collective over ``comm``; rank 0 gets the samples, ranks above 1 wait politely.
    """
    rank = comm.Get_rank()
    polite_barrier(comm)
    samples: list[float] = []
    if rank == 0:
        for _ in range(n):
            t0 = time.perf_counter()
            comm.send(payload, dest=1, tag=_WORK)
            comm.recv(source=1, tag=_RESULT)
            samples.append(time.perf_counter() - t0)
    elif rank == 1:
        for _ in range(n):
            comm.send(noop(comm.recv(source=0, tag=_WORK)), dest=0, tag=_RESULT)
    polite_barrier(comm)
    return samples if rank == 0 else None


# -- mpi4py.futures ----------------------------------------------------------------------


def _with_futures(comm: MPI.Intracomm, body: Callable[[Any], Any]) -> Any:
    """Run ``body(executor)`` on rank 0 inside an ``MPICommExecutor`` on ``comm``."""
    from mpi4py.futures import MPICommExecutor

    result = None
    polite_barrier(comm)
    with MPICommExecutor(comm, root=0) as executor:
        if executor is not None:
            # the first task pays for the workers' start-up; keep it out of the measurement
            executor.submit(noop, None).result()
            result = body(executor)
    polite_barrier(comm)
    return result


def futures_map(comm: MPI.Intracomm, fn: Callable, items: Iterable, chunksize: int = 1) -> float | None:
    """Seconds for ``MPICommExecutor.map(fn, items, chunksize=...)``. Collective over ``comm``."""
    items = list(items)

    def body(executor: Any) -> float:
        t0 = time.perf_counter()
        for _ in executor.map(fn, items, chunksize=chunksize):
            pass
        return time.perf_counter() - t0

    return _with_futures(comm, body)


def futures_round_trip(comm: MPI.Intracomm, n: int) -> list[float] | None:
    """Round-trip times (s) of ``n`` no-op ``submit(...).result()`` calls. Collective over ``comm``."""

    def body(executor: Any) -> list[float]:
        samples = []
        for i in range(n):
            t0 = time.perf_counter()
            executor.submit(noop, i).result()
            samples.append(time.perf_counter() - t0)
        return samples

    return _with_futures(comm, body)


def futures_idle_cpu(comm: MPI.Intracomm, seconds: float) -> float | None:
    """Rank 0's CPU use (fraction of a core) while an ``MPICommExecutor`` is open and idle."""

    def body(executor: Any) -> float:
        c0, t0 = time.process_time(), time.perf_counter()
        time.sleep(seconds)
        return (time.process_time() - c0) / (time.perf_counter() - t0)

    return _with_futures(comm, body)
