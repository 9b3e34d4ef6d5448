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

__all__ = ["StatusWriter", "read_status", "status_hook", "STATUS_FILE", "MIN_INTERVAL_S"]

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
               message: str | None = None, force: bool = False) -> bool:
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
                           ("done", done), ("total", total), ("message", message)):
            if value is not None:
                self.state[key] = value
        self.state["memory"] = int(memory) if memory is not None else peak_rss_bytes()
        now = self._clock()
        if not force and self._last is not None and now - self._last < self.min_interval:
            return False
        self._write(now)
        return True

    def finish(self, state: str = "finished", message: str | None = None) -> None:
        """Write the final state (``"finished"`` or ``"failed"``) now; ``hpcdist status --watch`` stops on it."""
        if not self.active:
            return
        self.state["state"] = state
        if state == "finished" and self.state.get("total"):
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
