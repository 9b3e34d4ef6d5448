"""Checkpoint, stop and resume of graph algorithms: the BSP engine's superstep hook.

:class:`Checkpointer` is the ``on_superstep`` hook that every algorithm accepts. After
each superstep it

1. fires injected faults (``HPCDIST_FAULT``, :mod:`hpcdist.runtime.faults`);
2. agrees with the other ranks, in one small ``Allreduce``, whether a stop signal
   arrived anywhere and whether a checkpoint is due (:class:`CheckpointPolicy`);
3. saves the program's state by global vertex id (the input layout, so that another
   rank count can restore it) through :class:`hpcdist.checkpoint.CheckpointStore`;
4. after a signal, raises :class:`~hpcdist.runtime.preemption.Preempted` on every rank
   together, which the CLI turns into exit status 75 (requeue).

:meth:`Checkpointer.resume` finds the newest valid checkpoint of the same graph,
algorithm and parameters and turns it into a :class:`~hpcdist.graph.bsp.Resume`.

A watchdog thread ends the job (``MPI_Abort``) when no superstep completes within the
superstep timeout: a rank that hangs must not leave the others waiting in a collective
until the allocation runs out.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from hpcdist.graph.bsp import Resume
from hpcdist.runtime.errors import InputError
from hpcdist.runtime.logs import get_logger
from hpcdist.runtime.preemption import Preempted, StopSignals

if TYPE_CHECKING:
    from hpcdist.checkpoint import CheckpointStore
    from hpcdist.graph.bsp import VertexProgram
    from hpcdist.graph.distgraph import DistGraph

__all__ = ["CheckpointPolicy", "Checkpointer", "graph_fingerprint", "parse_duration", "Watchdog"]

log = get_logger(__name__)

#: Layout tag stored with every graph checkpoint.
STATE_FORMAT = "hpcdist-graph-state/1"

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str, option: str = "duration") -> float:
    """Seconds in ``"90"``, ``"90s"``, ``"5m"``, ``"1.5h"`` or ``"2d"``.

    Raises
    ------
    InputError
        When the text is not a positive duration.
    """
    raw = str(text).strip().lower()
    number = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = raw[len(number):]
    try:
        value = float(number) * _UNITS[unit]
    except (KeyError, ValueError):
        raise InputError(f"{option} expects a duration such as 90s, 5m or 1h, got {text!r}") from None
    if not value > 0 or not math.isfinite(value):
        raise InputError(f"{option} must be positive, got {text!r}")
    return value


def _mix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A 64-bit hash of pairs (splitmix64 finaliser of a combined key); wraps by design."""
    with np.errstate(over="ignore"):
        x = a.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + b.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


def graph_fingerprint(graph: "DistGraph") -> str:
    """A fingerprint of the graph's structure that does not depend on rank count or partitioner.

    The wrapping sum of a hash of every edge (source and destination input ids, and
    the weight's bits), every vertex's (input id, original id) pair, and the counts.
    Two runs on the same graph get the same string; a checkpoint of another graph is
    refused on it. Collective over ``graph.comm`` (one halo exchange and one reduction).

    Returns
    -------
    str
        ``"n=<n>,m=<m>,<directed|undirected>,<weighted|unweighted>,h=<16 hex digits>"``.
    """
    from hpcdist.graph.algorithms.pagerank import column_keys
    from hpcdist.runtime.comm import MPI

    keys = column_keys(graph)
    rows = np.repeat(np.asarray(graph.owned_input_ids, dtype=np.int64), np.diff(graph.in_indptr))
    cols = keys[graph.in_indices]
    h = _mix(cols, rows)
    if graph.in_weights is not None:
        with np.errstate(over="ignore"):
            h = h + _mix(np.asarray(graph.in_weights, dtype=np.float64).view(np.uint64), rows)
    ids = _mix(np.arange(*graph.block_range, dtype=np.int64), graph.block_original_ids())
    with np.errstate(over="ignore"):
        local = np.array([h.sum(dtype=np.uint64) + ids.sum(dtype=np.uint64)], dtype=np.uint64)
    total = np.zeros(1, dtype=np.uint64)
    graph.comm.Allreduce(local, total, op=MPI.SUM)  # unsigned sums wrap modulo 2^64 on every rank alike
    kind = ("directed" if graph.directed else "undirected") + "," + ("weighted" if graph.weighted else "unweighted")
    return f"n={graph.n_vertices},m={graph.n_edges},{kind},h={int(total[0]):016x}"


@dataclass
class CheckpointPolicy:
    """When to write a checkpoint.

    Exactly one mode applies: ``every`` supersteps, else a fixed ``interval`` in
    seconds, else adaptive: the interval is Young's ``sqrt(2 * C * mtbf)`` when a mean
    time between failures is given, and never shorter than ``C / overhead``, so that
    checkpoints cost at most ``overhead`` of the run (``C`` = the measured cost of the
    last checkpoint, slowest rank).

    Attributes
    ----------
    every : int or None
    interval : float or None
        Seconds.
    mtbf : float or None
        Seconds.
    overhead : float
        Target share of run time spent writing checkpoints (default 0.03).
    """

    every: int | None = None
    interval: float | None = None
    mtbf: float | None = None
    overhead: float = 0.03

    def __post_init__(self) -> None:
        if self.every is not None and self.every < 1:
            raise InputError(f"--checkpoint-every must be at least 1, got {self.every}")
        if not 0 < self.overhead < 1:
            raise InputError(f"the checkpoint overhead target must lie in (0, 1), got {self.overhead}")

    @property
    def mode(self) -> str:
        return "every" if self.every else "interval" if self.interval else "adaptive"

    def target_interval(self, cost: float) -> float:
        """Seconds between checkpoints in adaptive mode, for a checkpoint costing ``cost`` s."""
        floor = cost / self.overhead
        if self.mtbf:
            return max(math.sqrt(2.0 * cost * self.mtbf), floor)
        return floor

    def due(self, superstep: int, since_last: float, cost: float) -> bool:
        """Whether to checkpoint after ``superstep``, ``since_last`` s after the last one."""
        if self.every:
            return (superstep + 1) % self.every == 0
        if self.interval:
            return since_last >= self.interval
        return since_last >= self.target_interval(cost)

    def describe(self) -> str:
        if self.every:
            return f"every {self.every} supersteps"
        if self.interval:
            return f"every {self.interval:g} s"
        extra = f", MTBF {self.mtbf:g} s (Young)" if self.mtbf else ""
        return f"adaptive: at most {100 * self.overhead:g} % overhead{extra}"


class Watchdog:
    """Abort the job when no superstep finishes within ``timeout`` seconds.

    One daemon thread per rank; :meth:`beat` after each superstep. The clock starts at
    the first beat, so set-up and compilation before the first superstep never count.
    The rank whose clock runs out prints one line and calls ``MPI_Abort``, which ends
    every rank, including one stuck in a collective or in a hung computation.

    Parameters
    ----------
    timeout : float
        Seconds; 0 or None disables the watchdog.
    what : str
        Named in the message.
    """

    def __init__(self, timeout: float | None, what: str = "superstep") -> None:
        self.timeout = float(timeout or 0)
        self.what = what
        self._last: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        self._last = time.monotonic()

    def __enter__(self) -> "Watchdog":
        if self.timeout > 0:
            self._thread = threading.Thread(target=self._watch, name="hpcdist-watchdog", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    def _watch(self) -> None:
        from hpcdist.runtime.abort import abort_job
        from hpcdist.runtime.errors import HpcdistError

        while not self._stop.wait(min(1.0, self.timeout / 4)):
            last = self._last
            if last is None:
                continue
            idle = time.monotonic() - last
            if idle > self.timeout:
                abort_job(HpcdistError(
                    f"no {self.what} finished in {idle:.0f} s (timeout {self.timeout:g} s): a rank hangs or "
                    f"died; ending the job (resume from the last checkpoint with --resume)"), code=3)


class Checkpointer:
    """The superstep hook that checkpoints, handles stop signals and injects faults.

    Collective over ``graph.comm``: every rank calls it after each superstep.

    Parameters
    ----------
    graph : DistGraph
    store : CheckpointStore or None
        Where checkpoints go; None: no checkpoints (signals then stop the run without
        saving, still with the requeue exit status).
    algorithm : str
    params : mapping
        The parameters that determine the result (a checkpoint of other parameters
        is refused).
    policy : CheckpointPolicy
    signals : StopSignals, optional
        Installed by the caller; polled here.
    watchdog : Watchdog, optional
    fingerprint : str, optional
        :func:`graph_fingerprint`, computed when omitted and a store is given.
    """

    def __init__(
        self,
        graph: "DistGraph",
        store: "CheckpointStore | None",
        algorithm: str,
        params: Mapping[str, Any],
        policy: CheckpointPolicy | None = None,
        *,
        signals: StopSignals | None = None,
        watchdog: Watchdog | None = None,
        fingerprint: str | None = None,
    ) -> None:
        from hpcdist.runtime.faults import faults

        self.graph = graph
        self.store = store
        self.algorithm = algorithm
        self.params = _jsonable(dict(params))
        self.policy = policy or CheckpointPolicy()
        self.signals = signals
        self.watchdog = watchdog
        self.faults = faults()
        # Only a store needs the identity: without one, skip the O(edges) pass and its halo exchange.
        if fingerprint is None and store is not None:
            fingerprint = graph_fingerprint(graph)
        self.fingerprint = fingerprint
        self.cost = 0.0  # seconds of the last checkpoint (slowest rank); 0 until one ran
        self.written: list[int] = []
        self.write_seconds: list[float] = []
        self._last: float | None = None
        self._flags = np.zeros(2, dtype=np.int64)
        self._agreed = np.zeros(2, dtype=np.int64)

    # -- the hook ------------------------------------------------------------------------
    def __call__(self, superstep: int, program: "VertexProgram") -> None:
        from hpcdist.runtime.comm import MPI

        comm = self.graph.comm
        rank = comm.Get_rank()
        if self.watchdog is not None:
            self.watchdog.beat()
        self.faults.at_superstep(rank, superstep)
        due = 0
        if self._last is None:  # the clock starts with the supersteps, not with the set-up
            self._last = time.monotonic()
        if self.store is not None:
            if self.cost == 0.0 and self.policy.mode == "adaptive":
                self.cost = self._estimate_cost(program)
            due = int(self.policy.due(superstep, time.monotonic() - self._last, self.cost))
        self._flags[0] = self.signals.received if self.signals is not None else 0
        self._flags[1] = due
        comm.Allreduce(self._flags, self._agreed, op=MPI.MAX)
        signum, due = int(self._agreed[0]), bool(self._agreed[1])
        if (due or signum) and self.store is not None:
            self.save(superstep, program)
        if signum:
            where = self.store.directory if self.store is not None else "nowhere (no --checkpoint-dir)"
            raise Preempted(signum, superstep, str(where))

    def _estimate_cost(self, program: "VertexProgram") -> float:
        """A first guess of a checkpoint's cost before one was measured: 50 ms plus 200 MB/s.

        Pessimistic on purpose (three fsyncs and a redistribution measured 20-250 ms for
        a few MiB on a busy VM): a guess too low would write the first checkpoint too soon
        and break the overhead bound of a short run.
        """
        nbytes = sum(np.asarray(v).nbytes for v in program.state().values())
        return 0.05 + self.graph.comm.allreduce(nbytes) / self.graph.size / 2e8

    def save(self, superstep: int, program: "VertexProgram") -> None:
        """Write the program's state after ``superstep``. Collective."""
        from hpcdist.runtime.comm import MPI

        assert self.store is not None
        g = self.graph
        t0 = time.perf_counter()
        arrays = {name: g.to_input_layout(np.asarray(values)) for name, values in program.state().items()}
        meta = self.expect() | {
            "superstep": int(superstep),
            "scalars": _jsonable(dict(program.scalars())),
            "n_vertices": int(g.n_vertices),
            "input": str(g.name),
            "partitioner": g.partition.method,
        }
        self.store.save(superstep, arrays, int(g.block_range[0]), int(g.n_vertices), meta)
        self.cost = g.comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
        self.written.append(int(superstep))
        self.write_seconds.append(self.cost)
        self._last = time.monotonic()
        log.info("checkpoint after superstep %d in %.3f s", superstep, self.cost)

    def expect(self) -> dict[str, Any]:
        """The manifest entries a checkpoint must match to be resumed by this run."""
        return {"format": STATE_FORMAT, "algorithm": self.algorithm, "graph": self.fingerprint,
                "params": self.params}

    # -- resuming ------------------------------------------------------------------------
    def resume(self) -> Resume | None:
        """The newest valid checkpoint of this graph, algorithm and parameters, or None.

        Collective. Corrupted or truncated checkpoints are reported and skipped (the
        previous one is used); one of another graph, algorithm or parameters is refused
        with :class:`~hpcdist.checkpoint.CheckpointError`.
        """
        if self.store is None:
            return None
        g = self.graph
        start, stop = g.block_range
        got = self.store.restore(self.expect(), int(start), int(stop))
        if got is None:
            return None
        info, arrays = got
        state = {name: g.from_input_layout(values) for name, values in arrays.items()}
        self._last = None
        return Resume(int(info.meta["superstep"]), state, dict(info.meta["scalars"]))


def _jsonable(value: Any) -> Any:
    """Plain JSON types (numpy scalars and tuples converted), so that a stored value compares equal."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
