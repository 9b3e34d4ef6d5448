"""A running job's status file, ``RUNDIR/status.json``, rewritten by rank 0 at most once a second.

``hpcdist status RUNDIR`` reads it (format in docs/metrics.md). The writer never blocks
the job on a collective: :meth:`StatusWriter.update` is local (a no-op on ranks other
than 0), so the caller passes whatever global values it already has (the slowest rank,
say, from a reduction it makes anyway).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from hpcdist.checkpoint.atomic import write_atomic
from hpcdist.metrics.run import peak_rss_bytes
from hpcdist.runtime.errors import InputError

if TYPE_CHECKING:
    from mpi4py import MPI

__all__ = ["StatusWriter", "SuperstepStatus", "read_status", "status_hook", "superstep_status_hook", "STATUS_FILE",
           "MIN_INTERVAL_S"]

STATUS_FILE = "status.json"
#: Rewrites closer together than this are skipped: a status file is for people, and an
#: fsync per superstep would cost more than many supersteps.
MIN_INTERVAL_S = 1.0


class StatusWriter:
    """Rank 0 keeps ``rundir/status.json`` current; other ranks hold a writer that does nothing.

    Parameters
    ----------
    rundir : path
        Created (with parents) by rank 0 if missing.
    comm : mpi4py.MPI.Intracomm, optional
        Only its rank 0 writes; None means this process writes (serial use).
    what : str
        What runs (``"pagerank"``, ``"farm"``), shown by ``hpcdist status``.
    unit : str
        Unit of ``rate`` (``"supersteps/s"``, ``"tasks/s"``).
    min_interval : float
        Least seconds between two writes (``update(force=True)`` and :meth:`finish` ignore it).
    clock : callable
        Monotonic clock for the throttle (tests pass a fake one).
    """

    def __init__(self, rundir: str | os.PathLike, comm: "MPI.Intracomm | None" = None, *, what: str = "",
                 unit: str = "supersteps/s", min_interval: float = MIN_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(rundir) / STATUS_FILE
        self.active = comm is None or comm.Get_rank() == 0
        self.ranks = 1 if comm is None else comm.Get_size()
        self.min_interval = float(min_interval)
        self._clock = clock
        self._last: float | None = None
        self.writes = 0
        self.state: dict[str, Any] = {"format": "hpcdist-status", "version": 1, "state": "running", "what": what,
                                      "unit": unit, "ranks": self.ranks, "host": socket.gethostname(),
                                      "pid": os.getpid(), "started": time.time()}
        if self.active:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def update(self, progress: float | None = None, rate: float | None = None, slowest_rank: int | None = None,
               memory: int | None = None, *, done: int | None = None, total: int | None = None,
               message: str | None = None, force: bool = False, **extra: Any) -> bool:
        """Record the job's state; write it when ``min_interval`` has passed since the last write.

        Parameters
        ----------
        progress : float, optional
            Fraction done, 0..1 (derived from ``done / total`` when not given).
        rate : float, optional
            Supersteps or tasks per second (see ``unit``).
        slowest_rank : int, optional
        memory : int, optional
            Bytes (default: rank 0's peak RSS).
        done, total : int, optional
            Supersteps or tasks done and expected.
        message : str, optional
            One line shown by ``hpcdist status``.
        force : bool
            Write now regardless of the throttle.
        **extra
            More fields for the file (the farm's ``pending``, ``running``, ``failed``,
            ``workers``, ``worker_memory_max``, ...); None values are left out.

        Returns
        -------
        bool
            Whether the file was written.
        """
        if not self.active:
            return False
        if progress is None and done is not None and total:
            progress = done / total
        for key, value in (("progress", progress), ("rate", rate), ("slowest_rank", slowest_rank),
                           ("done", done), ("total", total), ("message", message), *extra.items()):
            if value is not None:
                self.state[key] = value
        self.state["memory"] = int(memory) if memory is not None else peak_rss_bytes()
        now = self._clock()
        if not force and self._last is not None and now - self._last < self.min_interval:
            return False
        self._write(now)
        return True

    def finish(self, state: str = "finished", message: str | None = None, *, fill: bool = True) -> None:
        """Write the final state (``"finished"`` or ``"failed"``) now; ``hpcdist status --watch`` stops on it.

        ``fill``: a finished job counts as all done (``done = total``); the farm passes
        False, since its tasks may have failed.
        """
        if not self.active:
            return
        self.state["state"] = state
        if fill and state == "finished" and self.state.get("total"):
            self.state["done"], self.state["progress"] = self.state["total"], 1.0
        if message is not None:
            self.state["message"] = message
        self._write(self._clock())

    def _write(self, now: float) -> None:
        self.state["updated"] = time.time()
        write_atomic(self.path, (json.dumps(self.state, allow_nan=False, default=str) + "\n").encode())
        self._last = now
        self.writes += 1


def status_hook(writer: StatusWriter, total: int, inner: Callable[[int, Any], None] | None = None
                ) -> Callable[[int, Any], None]:
    """A BSP superstep hook that reports progress and supersteps/s through ``writer``; chains ``inner``."""
    t0 = time.perf_counter()
    first: list[int | None] = [None]

    def hook(superstep: int, program: Any) -> None:
        if first[0] is None:
            first[0] = superstep
        done = superstep + 1
        elapsed = time.perf_counter() - t0
        rate = (done - first[0]) / elapsed if elapsed > 0 else None
        writer.update(done=done, total=total, rate=rate)
        if inner is not None:
            inner(superstep, program)

    return hook


class SuperstepStatus:
    """A BSP superstep hook that keeps ``run_dir/status.json`` current for a graph run; see :func:`superstep_status_hook`."""

    #: Most supersteps between two reductions (a run of tiny supersteps still reports).
    MAX_EVERY = 100_000

    def __init__(self, comm: "MPI.Intracomm", run_dir: str | os.PathLike, name: str, *, total: int | None = None,
                 inner: Callable[[int, Any], None] | None = None, min_interval: float = MIN_INTERVAL_S) -> None:
        from hpcdist.runtime.errors import collective

        self.comm = comm
        self.rank = comm.Get_rank()
        self.total = total
        self.inner = inner
        self.min_interval = float(min_interval)
        with collective(comm):  # rank 0 makes the directory; a failure is every rank's error
            try:
                self.writer = StatusWriter(run_dir, comm, what=name, unit="supersteps/s", min_interval=min_interval)
            except OSError as exc:
                raise InputError(f"cannot create the status directory ({exc.strerror})", path=str(run_dir)) from None
        self.every = 1  # supersteps between reductions: the same on every rank (derived from reduced values)
        self.next_sync: int | None = None
        self.syncs = 0
        self._compute = 0.0  # this rank's compute seconds since the last reduction
        self._t_last = time.perf_counter()
        self._step_last: int | None = None
        self._wrapped: set[int] = set()
        self.last: dict[str, Any] = {}

    def _wrap(self, program: Any) -> None:
        """Time ``program.compute`` (an instance attribute shadows the method), once per program."""
        if id(program) in self._wrapped:
            return
        self._wrapped.add(id(program))
        compute = program.compute

        def timed_compute(step: int) -> Any:
            t0 = time.perf_counter()
            try:
                return compute(step)
            finally:
                self._compute += time.perf_counter() - t0

        try:
            program.compute = timed_compute
        except AttributeError:  # a program with __slots__: no compute times, no slowest rank
            pass

    def __call__(self, superstep: int, program: Any) -> None:
        # The inner hooks first: a slowdown (slow_hook) wraps compute inside this timer, as a slow core would be.
        if self.inner is not None:
            self.inner(superstep, program)
        self._wrap(program)
        if self._step_last is None:
            self._step_last = superstep
            self.next_sync = superstep + 1
            self._t_last = time.perf_counter()
            self._compute = 0.0
            return
        if superstep >= self.next_sync:  # type: ignore[operator]
            self._sync(superstep)

    def _sync(self, superstep: int) -> None:
        """One small MAXLOC reduction: the slowest rank's compute, the longest wall time, the largest RSS."""
        import numpy as np

        from hpcdist.metrics.run import peak_rss_bytes
        from hpcdist.runtime.comm import MPI

        now = time.perf_counter()
        pair = np.dtype([("v", np.float64), ("i", np.int32)], align=True)  # MPI_DOUBLE_INT
        send = np.zeros(3, dtype=pair)
        send["v"] = (self._compute, now - self._t_last, float(peak_rss_bytes()))
        send["i"] = self.rank
        recv = np.empty_like(send)
        self.comm.Allreduce([send, MPI.DOUBLE_INT], [recv, MPI.DOUBLE_INT], op=MPI.MAXLOC)
        self.syncs += 1
        compute_max, wall, rss_max = (float(v) for v in recv["v"])
        steps = superstep - self._step_last  # type: ignore[operator]
        rate = steps / wall if wall > 0 else None
        slowest = int(recv["i"][0]) if compute_max > 0 else None
        # Aim at one reduction per min_interval; every rank computes the same from the reduced wall time.
        if wall > 0:
            self.every = int(min(self.MAX_EVERY, max(1, round(self.every * self.min_interval / wall))))
        else:
            self.every = min(self.MAX_EVERY, 2 * self.every)
        self.next_sync = superstep + self.every
        self._step_last, self._t_last, self._compute = superstep, now, 0.0
        self.last = {"superstep": superstep, "rate": rate, "slowest_rank": slowest, "compute_max_s": compute_max,
                     "rss_max": int(rss_max), "rss_max_rank": int(recv["i"][2])}
        if self.rank == 0:
            self.writer.update(done=superstep + 1, total=self.total, rate=rate, slowest_rank=slowest,
                               superstep=superstep, worker_memory_max=int(rss_max),
                               worker_memory_max_rank=int(recv["i"][2]),
                               message=None if slowest is None else
                               f"superstep {superstep}: slowest rank {slowest} ({compute_max:.3g} s of compute "
                               f"over the last {steps} superstep(s))")

    def finish(self, state: str = "finished", message: str | None = None, *, done: int | None = None) -> None:
        """Write the final state from rank 0 (local: call it on every rank, or on rank 0 only).

        ``done``: supersteps run (``result.run.supersteps``); the last reduction's count otherwise.
        """
        if done is not None and self.writer.active:
            self.writer.state["done"] = int(done)
            if self.total:
                self.writer.state["progress"] = min(1.0, done / self.total)
        self.writer.finish(state, message, fill=False)


def superstep_status_hook(comm: "MPI.Intracomm", run_dir: str | os.PathLike, name: str, *, total: int | None = None,
                          inner: Callable[[int, Any], None] | None = None,
                          min_interval: float = MIN_INTERVAL_S) -> SuperstepStatus:
    """A superstep hook that keeps ``run_dir/status.json`` current during a graph run.

    Collective over ``comm``: create it on every rank and pass it as ``on_superstep`` on
    every rank (it chains ``inner``, e.g. the slow-rank or checkpoint hook, which runs
    first). It times each rank's ``program.compute``; every ``every`` supersteps one
    ``Allreduce`` (``MAXLOC`` on three (value, rank) pairs) finds the rank with the most
    compute since the last one, the longest wall time and the largest peak RSS. The
    interval adapts so that the reduction, and rank 0's rewrite of the file, happen about
    once per ``min_interval`` seconds; every rank derives it from the reduced wall time,
    so all agree on when the next reduction is without talking.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
    run_dir : path
        Rank 0 creates it and writes ``status.json`` there (``hpcdist status run_dir``).
    name : str
        What runs (``"pagerank"``), shown by ``hpcdist status``.
    total : int, optional
        Supersteps expected (``max_supersteps``), for the progress bar.
    inner : callable, optional
        ``inner(superstep, program)``, called first.
    min_interval : float
        Seconds between reductions and rewrites (about).

    Returns
    -------
    SuperstepStatus
        The hook; call ``finish("finished" | "failed")`` after the run.

    Raises
    ------
    InputError
        On every rank, when rank 0 cannot create ``run_dir``.
    """
    return SuperstepStatus(comm, run_dir, name, total=total, inner=inner, min_interval=min_interval)


def read_status(rundir: str | os.PathLike) -> dict[str, Any]:
    """Read ``rundir/status.json``.

    Raises
    ------
    InputError
        Missing directory or file, or a file that is not a status document.
    """
    rundir = Path(rundir)
    if not rundir.is_dir():
        raise InputError("no such run directory", path=str(rundir))
    path = rundir / STATUS_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"no {STATUS_FILE} here (has the job started, with a status writer?)",
                         path=str(rundir)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read status ({getattr(exc, 'strerror', None) or exc})", path=str(path)) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg}", path=str(path), line=exc.lineno) from None
    if not isinstance(data, dict) or data.get("format") != "hpcdist-status":
        raise InputError("not an hpcdist status file", path=str(path))
    return data
