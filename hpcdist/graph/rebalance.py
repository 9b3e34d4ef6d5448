"""Rebalancing a graph run between supersteps: move the part boundaries away from slow ranks.

A rank can be slow because its part is heavier than the partitioner thought, or because
its core is slower or shared (``HPCDIST_SLOW`` injects exactly that,
:mod:`hpcdist.metrics.slow`). Either way every other rank waits for it in each
superstep's reduction. :class:`RebalanceHook`, the outermost superstep hook, measures each
rank's compute seconds, and every few supersteps the ranks agree, from one small
``Allreduce``, on the compute imbalance (max / mean over the ranks of their median
compute seconds over a window of supersteps). Above
:attr:`RebalancePolicy.threshold` it plans new boundaries: each rank's measured seconds
per unit of work (an in-edge; a vertex counts :data:`VERTEX_COST` units) says how fast it is, and
the contiguous ranges of new vertex ids are cut so that every rank gets work in
proportion to its speed (:func:`cut_targets`, :func:`count_below`) -- a rank measured
slow per unit of work gets fewer vertices.

The hook then raises :class:`Rebalance` on every rank together. :func:`run_with_rebalancing`
catches it, moves the boundaries and the algorithm's state in place
(:meth:`hpcdist.graph.distgraph.DistGraph.move_bounds`: whole in-edge rows travel to
the neighbouring rank, ghosts and the halo plan are rebuilt) and calls the algorithm
again with a :class:`~hpcdist.graph.bsp.Resume` of the superstep it stopped after -- the
checkpoint-resume path, in memory. Rows keep their order and global sums are
reproducible, so the result is bit-identical to a run without rebalancing.

What the hook measures: it wraps the program's ``exchange_values``, ``compute_interior``
(if any) and ``compute`` on its first call for a program (after the inner hooks, so an
injected slowdown is inside the measured compute). The first superstep of every segment
is therefore not measured, and the bytes of the segments before a rebalance are those
of the plain exchange of every ghost value (an upper bound: only the engine sees what
its sparse exchange saved); the final segment's supersteps come from the engine itself.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from hpcdist.graph.bsp import BSPRun, Resume, SuperstepMetrics
from hpcdist.runtime.errors import InputError
from hpcdist.runtime.logs import get_logger

if TYPE_CHECKING:
    from hpcdist.graph.bsp import SuperstepHook, VertexProgram
    from hpcdist.graph.distgraph import DistGraph
    from hpcdist.graph.results import VertexResult

__all__ = [
    "VERTEX_COST",
    "RebalancePolicy",
    "RebalanceRecord",
    "RebalancedRun",
    "Rebalance",
    "RebalanceHook",
    "run_with_rebalancing",
    "imbalance",
    "cut_targets",
    "count_below",
    "bounds_from_counts",
    "balanced_bounds",
    "vertex_work",
    "rebalance_lines",
]

log = get_logger(__name__)

#: Work units of a vertex relative to one in-edge. Fitted to PageRank's compute on
#: rmat:16 at 2 ranks with six different cuts (numba kernels, least squares over the
#: ranks' median compute seconds): 10.4 ns per vertex, 0.87 ns per in-edge, 23 us per
#: call. A vertex's update touches a dozen arrays where an edge reads one value. With
#: one unit per vertex the first cut left the ranks 1.1-1.5 apart and took three
#: rebalances to settle. Only the shares matter: the measured seconds set each rank's
#: speed in these units.
VERTEX_COST = 10


# ---------------------------------------------------------------------------------------
# Pure arithmetic (no MPI)


def imbalance(seconds: np.ndarray) -> float:
    """max / mean of per-rank seconds (1.0 for all zeros or one rank)."""
    s = np.asarray(seconds, dtype=np.float64)
    mean = float(s.mean()) if s.shape[0] else 0.0
    return float(s.max() / mean) if mean > 0 else 1.0


def vertex_work(in_degree: np.ndarray) -> np.ndarray:
    """Work units of each vertex: its in-edges plus :data:`VERTEX_COST` (float64)."""
    return np.asarray(in_degree, dtype=np.float64) + float(VERTEX_COST)


def _speeds(seconds: np.ndarray, work: np.ndarray) -> np.ndarray:
    """Work units per second of each rank; ranks without a usable measurement get the mean speed."""
    seconds = np.asarray(seconds, dtype=np.float64)
    work = np.asarray(work, dtype=np.float64)
    ok = (seconds > 0) & (work > 0)
    speed = np.ones(seconds.shape[0], dtype=np.float64)
    if ok.any():
        speed[ok] = work[ok] / seconds[ok]
        # A rank with nothing to do (or too fast to time) has no speed of its own: assume average.
        speed[~ok] = speed[ok].mean()
    return speed


def cut_targets(seconds: np.ndarray, work: np.ndarray) -> np.ndarray:
    """Cumulative work at which the ``p - 1`` cuts should fall.

    Rank ``r`` did ``work[r]`` units in ``seconds[r]``; its speed is their ratio. The
    new shares are proportional to the speeds, so that at the measured speeds every
    rank would take the same time: ``W * sum(speed[:k]) / sum(speed)`` for cut ``k``.

    Parameters
    ----------
    seconds, work : numpy.ndarray, shape (p,)

    Returns
    -------
    numpy.ndarray of float64, shape (p - 1,)
    """
    speed = _speeds(seconds, work)
    total = float(np.asarray(work, dtype=np.float64).sum())
    share = np.cumsum(speed)[:-1] / speed.sum()
    return total * share


def count_below(weights: np.ndarray, offset: float, targets: np.ndarray) -> np.ndarray:
    """For each target, how many of these consecutive vertices lie before it.

    A vertex lies before target ``T`` when the midpoint of its weight interval,
    ``offset + (weights before it) + weight / 2``, is below ``T`` (the block
    partitioner's rule, :func:`hpcdist.graph.partition.block_parts`). Summed over ranks
    that hold consecutive slices (each with its own ``offset``), the counts are the
    global cut positions.

    Parameters
    ----------
    weights : numpy.ndarray
        Non-negative work units of consecutive vertices.
    offset : float
        Sum of the weights of all earlier vertices.
    targets : numpy.ndarray, shape (k,)
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.shape[0] == 0:
        return np.zeros(np.shape(targets), dtype=np.int64)
    mid = offset + np.cumsum(w) - 0.5 * w  # non-decreasing
    return np.searchsorted(mid, np.asarray(targets, dtype=np.float64), side="left").astype(np.int64)


def bounds_from_counts(counts: np.ndarray, n: int, parts: int) -> np.ndarray:
    """Bounds ``[0, c_1, ..., c_{p-1}, n]``, made non-decreasing and, when ``n >= parts``,
    with at least one vertex per part (a rank with no vertices could not be measured again)."""
    b = np.empty(parts + 1, dtype=np.int64)
    b[0], b[-1] = 0, n
    b[1:-1] = np.clip(np.asarray(counts, dtype=np.int64), 0, n)
    b = np.maximum.accumulate(b)
    if n >= parts:
        k = np.arange(parts + 1, dtype=np.int64)
        b = np.minimum(np.maximum(b, k), n - (parts - k))  # room for one vertex on each side
        for i in range(1, parts):  # after clipping, keep them strictly rising
            b[i] = max(b[i], b[i - 1] + 1)
    return b


def balanced_bounds(weights: np.ndarray, bounds: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """New bounds for the whole weight array at once (the serial form of the rebalancer's cut).

    Parameters
    ----------
    weights : numpy.ndarray, shape (n,)
        Work units of every vertex, in new-id order.
    bounds : numpy.ndarray, shape (p + 1,)
        Current bounds.
    seconds : numpy.ndarray, shape (p,)
        Each rank's measured compute seconds with the current bounds.
    """
    w = np.asarray(weights, dtype=np.float64)
    bounds = np.asarray(bounds, dtype=np.int64)
    prefix = np.concatenate([[0.0], np.cumsum(w)])
    work = prefix[bounds[1:]] - prefix[bounds[:-1]]
    counts = count_below(w, 0.0, cut_targets(seconds, work))
    return bounds_from_counts(counts, w.shape[0], bounds.shape[0] - 1)


def _predicted(seconds: np.ndarray, work: np.ndarray, new_work: np.ndarray) -> np.ndarray:
    """Each rank's seconds with ``new_work`` at its measured speed."""
    return np.asarray(new_work, dtype=np.float64) / _speeds(seconds, work)


# ---------------------------------------------------------------------------------------
# Policy and records


@dataclass
class RebalancePolicy:
    """When to rebalance.

    Attributes
    ----------
    threshold : float
        Rebalance when the compute imbalance (max / mean over the ranks of each one's
        median compute seconds per superstep over the window) exceeds this (default 1.2).
    window : int
        Measured supersteps the imbalance is taken over (default 3).
    max_rebalances : int
        At most this many rebalances in a run (default 3).
    cooldown : int
        Measured supersteps after a rebalance before its window starts (default 1), so
        that caches warm up on the new layout before it is judged.
    min_gain : float
        Rebalance only if the predicted slowest rank's time drops by at least this share
        (default 0.05): moving vertices for noise costs more than it gains.
    min_saving_s : float
        ... and by at least this many seconds per superstep (default 0.001). A migration
        costs tens of milliseconds (rows, state, a new halo plan, the program's set-up),
        so a saving below a millisecond takes too many supersteps to pay back; on small
        graphs the measured imbalance is mostly timer noise.
    """

    threshold: float = 1.2
    window: int = 3
    max_rebalances: int = 3
    cooldown: int = 1
    min_gain: float = 0.05
    min_saving_s: float = 0.001

    def __post_init__(self) -> None:
        if not (self.threshold >= 1.0 and np.isfinite(self.threshold)):
            raise InputError(f"--rebalance-threshold must be a number >= 1 (max/mean), got {self.threshold}")
        if self.window < 1:
            raise InputError(f"--rebalance-window must be at least 1, got {self.window}")
        if self.max_rebalances < 0:
            raise InputError(f"--rebalance-max must be at least 0, got {self.max_rebalances}")
        if self.cooldown < 0:
            raise InputError(f"the rebalance cool-down must be at least 0, got {self.cooldown}")
        if not 0.0 <= self.min_gain < 1.0:
            raise InputError(f"the rebalance minimum gain must lie in [0, 1), got {self.min_gain}")
        if not (self.min_saving_s >= 0.0 and np.isfinite(self.min_saving_s)):
            raise InputError(f"the rebalance minimum saving must be >= 0 seconds, got {self.min_saving_s}")

    def measured_needed(self, rebalanced_before: bool) -> int:
        """Measured supersteps a segment needs before its first decision."""
        return self.window + (self.cooldown if rebalanced_before else 0)

    def due(self, measured_imbalance: float, predicted_imbalance: float, gain: float, done: int,
            saving_s: float = float("inf")) -> bool:
        """Whether to rebalance.

        Parameters
        ----------
        measured_imbalance, predicted_imbalance : float
            Now, and with the planned bounds at the measured speeds.
        gain : float
            Predicted relative drop of the slowest rank's compute time.
        done : int
            Rebalances so far.
        saving_s : float
            Predicted seconds saved per superstep.
        """
        return (done < self.max_rebalances and measured_imbalance > self.threshold
                and predicted_imbalance < measured_imbalance and gain >= self.min_gain
                and saving_s >= self.min_saving_s)


@dataclass
class RebalanceRecord:
    """One rebalance.

    Attributes
    ----------
    superstep : int
        The superstep after which it happened.
    old_bounds, new_bounds : list of int
    imbalance_before : float or None
        Measured compute imbalance over the window that triggered it (None when forced
        before anything was measured).
    imbalance_predicted : float or None
        At the measured speeds with the new bounds.
    imbalance_after : float or None
        Measured over the first full window after it (None when the run ended sooner).
    seconds_per_rank : list of float
        Each rank's median compute seconds per superstep over the window (O(ranks) numbers).
    moved_vertices, moved_edges : int
    migration_seconds : float
        Moving the rows and state and rebuilding the halo (slowest rank).
    forced : bool
        Planned by the caller (tests, experiments), not by the policy.
    effective : bool or None
        Whether the measured imbalance after it fell by at least half the predicted
        drop (None until measured). When it did not, the imbalance does not follow the
        work (fixed costs, noise) and the policy stops rebalancing.
    """

    superstep: int
    old_bounds: list[int]
    new_bounds: list[int]
    imbalance_before: float | None = None
    imbalance_predicted: float | None = None
    imbalance_after: float | None = None
    seconds_per_rank: list[float] = field(default_factory=list)
    moved_vertices: int = 0
    moved_edges: int = 0
    migration_seconds: float = 0.0
    forced: bool = False
    effective: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        """One line for a person."""
        def f(x: float | None) -> str:
            return "?" if x is None else f"{x:.2f}"

        sizes = np.diff(np.asarray(self.new_bounds))
        share = "" if sizes.shape[0] > 8 else f"; vertices per rank {'/'.join(f'{s:,}' for s in sizes.tolist())}"
        after = f"{f(self.imbalance_after)} measured" if self.imbalance_after is not None else \
            f"{f(self.imbalance_predicted)} predicted"
        if self.effective is False:
            after += f" (predicted {f(self.imbalance_predicted)}: not following the work, stopped rebalancing)"
        what = "forced rebalance" if self.forced else "rebalance"
        return (f"{what} at superstep {self.superstep}: compute imbalance {f(self.imbalance_before)} -> {after}, "
                f"moved {self.moved_vertices:,} vertices ({self.moved_edges:,} edges) in "
                f"{1e3 * self.migration_seconds:.1f} ms{share}")


@dataclass
class RebalancedRun(BSPRun):
    """A :class:`~hpcdist.graph.bsp.BSPRun` made of several segments, with the rebalances between them.

    ``metrics`` holds every measured superstep (the first superstep of each segment
    but the last is not measured: see the module docstring); ``seconds`` is the sum of
    the segments' times (each from the algorithm's call; the later ones include the
    program's set-up on the new layout) and the migrations.
    """

    rebalances: list[RebalanceRecord] = field(default_factory=list)
    migration_seconds: float = 0.0


class Rebalance(Exception):
    """Raised by :class:`RebalanceHook` on every rank together; :func:`run_with_rebalancing` handles it."""

    def __init__(self, superstep: int, bounds: np.ndarray, state: dict[str, np.ndarray],
                 scalars: dict[str, Any], metrics: list[SuperstepMetrics], seconds: float,
                 record: RebalanceRecord) -> None:
        super().__init__(f"rebalance after superstep {superstep}")
        self.superstep = superstep
        self.bounds = bounds
        self.state = state
        self.scalars = scalars
        self.metrics = metrics
        self.seconds = seconds
        self.record = record


# ---------------------------------------------------------------------------------------
# The hook


#: ``plan(superstep, graph)`` -> new bounds to move to after that superstep, or None. The
#: same on every rank. Overrides the policy (tests and experiments).
Plan = Callable[[int, "DistGraph"], "np.ndarray | None"]


class RebalanceHook:
    """The superstep hook that measures, decides and raises :class:`Rebalance`.

    Use it through :func:`run_with_rebalancing`. It must be the outermost hook: it calls
    ``inner`` first (checkpoints, an injected slowdown), then wraps the program's
    methods so that what ``inner`` installed is measured too.

    Collective over ``graph.comm``: every rank calls it after each superstep.

    Parameters
    ----------
    graph : DistGraph
    policy : RebalancePolicy, optional
        Default: :class:`RebalancePolicy` ().
    inner : callable, optional
        ``inner(superstep, program)``, called first.
    plan : callable, optional
        See :data:`Plan`.
    """

    def __init__(self, graph: "DistGraph", policy: RebalancePolicy | None = None, *,
                 inner: "SuperstepHook | None" = None, plan: Plan | None = None) -> None:
        self.graph = graph
        self.policy = policy or RebalancePolicy()
        self.inner = inner
        self.plan = plan
        self.records: list[RebalanceRecord] = []
        self.unmeasurable = False
        self.stalled = False  # a rebalance did not deliver: moving work does not fix this imbalance
        self._program: Any = None
        self.start_segment()

    def start_segment(self) -> None:
        """Forget the previous segment's program and measurements (a new call begins)."""
        self._program = None
        # (superstep, exchange_s, compute_s, reduce_s, dense bytes, active, overlap_s), this rank's
        self._rows: list[tuple[int, float, float, float, int, int, float]] = []
        self._cur: list[float] | None = None
        self._dense = 0
        self._interior = 0.0
        self._t_segment = time.perf_counter()
        self._after_pending = bool(self.records)

    # -- measuring ---------------------------------------------------------------------
    def _attach(self, program: "VertexProgram") -> None:
        exchange_values, compute = program.exchange_values, program.compute
        interior = getattr(program, "compute_interior", None)
        graph = self.graph

        def timed_exchange(step: int) -> Any:
            t0 = time.perf_counter()
            out = exchange_values(step)
            # What the plain exchange of every ghost value sends: the engine's sparse
            # exchange may send less, and only the engine sees how much.
            self._dense = 0 if out is None else int(graph.halo.layout.n_send) * np.asarray(out).itemsize
            self._interior = 0.0
            self._cur = [t0]
            return out

        def timed_interior(step: int) -> Any:
            ti = time.perf_counter()
            out = interior(step)
            self._interior += time.perf_counter() - ti
            return out

        def timed_compute(step: int) -> Any:
            t1 = time.perf_counter()
            out = compute(step)
            t2 = time.perf_counter()
            if self._cur is not None:
                # Booked as the engine books it: the interior work run during the exchange is compute.
                self._cur += [t1 - self._interior, t2, float(self._dense), float(getattr(out, "active", 0)),
                              self._interior]
            return out

        try:
            program.exchange_values = timed_exchange  # instance attributes shadow the methods
            program.compute = timed_compute
            if interior is not None:
                program.compute_interior = timed_interior
        except AttributeError:  # __slots__: nothing to measure with; only planned moves apply
            if not self.unmeasurable:
                log.warning("rebalance: %s does not allow measuring its compute; not rebalancing",
                            getattr(program, "name", type(program).__name__))
            self.unmeasurable = True

    def _record(self, step: int, t_hook: float) -> None:
        cur, self._cur = self._cur, None
        if cur is None or len(cur) != 6:
            return
        t0, t1, t2, dense, active, overlap = cur
        self._rows.append((step, t1 - t0, t2 - t1, t_hook - t2, int(dense), int(active), overlap))

    def _judge(self, record: RebalanceRecord, measured: float) -> None:
        """Keep the imbalance measured after ``record``; stop when it fell by less than half the predicted drop."""
        record.imbalance_after = measured
        if record.imbalance_before is None or record.imbalance_predicted is None:
            return
        expected = record.imbalance_before - record.imbalance_predicted
        record.effective = bool(record.imbalance_before - measured >= 0.5 * expected)
        if not record.effective and not record.forced:
            # A rank whose time does not shrink with its work (a fixed cost, a sleep's wake-up
            # latency on a busy node) would otherwise lose vertices at every rebalance.
            self.stalled = True
            log.info("rebalance: imbalance %.2f after the rebalance at superstep %d (predicted %.2f): "
                     "not following the work; no more rebalances", measured, record.superstep,
                     record.imbalance_predicted)

    def _measure(self) -> tuple[np.ndarray, np.ndarray]:
        """Every rank's median compute seconds per superstep over the window, and its work units.
        Collective (one Allreduce)."""
        from hpcdist.runtime.comm import MPI

        g = self.graph
        p, r = g.size, g.rank
        window = self._rows[-self.policy.window:]
        vec = np.zeros(2 * p, dtype=np.float64)
        # The median, not the sum: one superstep in which a busy node descheduled a rank
        # must not make that rank look slow.
        vec[r] = float(np.median([row[2] for row in window]))
        vec[p + r] = float(vertex_work(g.in_degree()).sum())
        out = np.empty_like(vec)
        g.comm.Allreduce(vec, out, op=MPI.SUM)  # one non-zero per slot: exact, equal on every rank
        return out[:p], out[p:]

    def _new_bounds(self, seconds: np.ndarray, work: np.ndarray) -> np.ndarray:
        """The cut at the measured speeds. Collective (an exclusive scan and one Allreduce)."""
        from hpcdist.runtime.comm import MPI

        g = self.graph
        w = vertex_work(g.in_degree())
        offset = float(np.sum(work[: g.rank]))  # equal on every rank: no scan needed
        counts = count_below(w, offset, cut_targets(seconds, work))
        total = np.empty_like(counts)
        g.comm.Allreduce(counts, total, op=MPI.SUM)
        return bounds_from_counts(total, g.n_vertices, g.size)

    def _segment_metrics(self) -> list[SuperstepMetrics]:
        """The measured supersteps of this segment, bytes and active summed over ranks. Collective."""
        from hpcdist.runtime.comm import MPI

        rows = self._rows
        local = np.array([[row[4], row[5]] for row in rows], dtype=np.int64).reshape(len(rows), 2)
        total = np.empty_like(local)
        self.graph.comm.Allreduce(local, total, op=MPI.SUM)
        out = []
        for i, row in enumerate(rows):
            m = SuperstepMetrics(row[0], row[2], row[1], row[3], int(total[i, 0]), int(total[i, 1]))
            if hasattr(m, "bytes_dense"):  # engines that count the sparse exchange's savings
                m.bytes_dense = int(total[i, 0])
                m.overlap_s = row[6]
            out.append(m)
        return out

    # -- the hook ----------------------------------------------------------------------
    def __call__(self, superstep: int, program: "VertexProgram") -> None:
        t_hook = time.perf_counter()
        if self.inner is not None:
            self.inner(superstep, program)
        if program is not self._program:
            self._program = program
            self._cur = None
            self._attach(program)
        else:
            self._record(superstep, t_hook)
        self._decide(superstep, program)

    def _decide(self, superstep: int, program: "VertexProgram") -> None:
        g = self.graph
        forced = self.plan(superstep, g) if self.plan is not None else None
        if g.size == 1 and forced is None:
            return
        measured = len(self._rows)
        seconds = work = None
        before = None
        if forced is None:
            need = self.policy.measured_needed(bool(self.records))
            wanted = self._after_pending or (len(self.records) < self.policy.max_rebalances and not self.stalled)
            if self.unmeasurable or not wanted or measured < need:
                return
            seconds, work = self._measure()
            before = imbalance(seconds)
            if self._after_pending:
                self._judge(self.records[-1], before)
                self._after_pending = False
            if self.stalled or len(self.records) >= self.policy.max_rebalances or before <= self.policy.threshold:
                return
            bounds = self._new_bounds(seconds, work)
        else:
            bounds = np.asarray(forced, dtype=np.int64)
            if measured and not self.unmeasurable:
                seconds, work = self._measure()
                before = imbalance(seconds)
        predicted = None
        if seconds is not None and work is not None:
            prefix = _work_at(g, bounds)
            new_work = np.diff(prefix)
            times = _predicted(seconds, work, new_work)
            predicted = imbalance(times)
            gain = 1.0 - float(times.max()) / float(seconds.max()) if seconds.max() > 0 else 0.0
            saving = float(seconds.max()) - float(times.max())
            if forced is None and (np.array_equal(bounds, g.bounds)
                                   or not self.policy.due(before, predicted, gain, len(self.records), saving)):
                return
        record = RebalanceRecord(
            superstep=int(superstep), old_bounds=[int(b) for b in g.bounds], new_bounds=[int(b) for b in bounds],
            imbalance_before=before, imbalance_predicted=predicted,
            seconds_per_rank=[] if seconds is None else [float(s) for s in seconds], forced=forced is not None,
        )
        from hpcdist.runtime.comm import MPI

        # Copies: the program may reuse its arrays; it is dropped before the migration.
        state = {k: np.array(np.asarray(v)[: g.n_owned], copy=True) for k, v in program.state().items()}
        scalars = dict(program.scalars())
        metrics = self._segment_metrics()
        elapsed = g.comm.allreduce(time.perf_counter() - self._t_segment, op=MPI.MAX)
        self._program = None
        raise Rebalance(int(superstep), bounds, state, scalars, metrics, float(elapsed), record)


def _work_at(graph: "DistGraph", bounds: np.ndarray) -> np.ndarray:
    """Cumulative work units at each of ``bounds`` (new ids). Collective (one Allreduce)."""
    from hpcdist.runtime.comm import MPI

    w = vertex_work(graph.in_degree())
    local = np.zeros(bounds.shape[0], dtype=np.float64)
    # The work of my vertices below each bound; summed over ranks it is the global prefix.
    k = np.clip(np.asarray(bounds, dtype=np.int64) - graph.start, 0, graph.n_owned)
    prefix = np.concatenate([[0.0], np.cumsum(w)])
    local[:] = prefix[k]
    out = np.empty_like(local)
    graph.comm.Allreduce(local, out, op=MPI.SUM)
    return out


# ---------------------------------------------------------------------------------------
# The driver


def run_with_rebalancing(
    graph: "DistGraph",
    call: Callable[["SuperstepHook", "Resume | None"], "VertexResult"],
    *,
    policy: RebalancePolicy | None = None,
    on_superstep: "SuperstepHook | None" = None,
    resume: Resume | None = None,
    plan: Plan | None = None,
    announce: bool = True,
) -> "VertexResult":
    """Run an algorithm, moving the part boundaries between supersteps when the ranks are out of balance.

    Collective over ``graph.comm``. The graph is changed in place (its boundaries,
    rows, ghosts and halo plan): after the call it holds the last layout, which the
    result's values follow.

    Parameters
    ----------
    graph : DistGraph
    call : callable
        ``call(on_superstep, resume) -> VertexResult``: the algorithm on ``graph`` with
        that hook and resume state (e.g. ``lambda hook, res: pagerank(graph,
        on_superstep=hook, resume=res)``). Called again after each rebalance, with a
        resume of the superstep it stopped after; it must run one algorithm (a loop
        over several BFS roots would start over).
    policy : RebalancePolicy, optional
    on_superstep : callable, optional
        The inner hook (checkpoints, :func:`hpcdist.metrics.slow_hook`): called first
        after each superstep.
    resume : Resume, optional
        Where the first call resumes (a checkpoint).
    plan : callable, optional
        ``plan(superstep, graph)`` -> bounds or None: rebalance to these bounds after
        that superstep, whatever the policy says (tests, experiments).
    announce : bool
        Print a line per rebalance on rank 0.

    Returns
    -------
    VertexResult
        The last call's result, with ``run`` a :class:`RebalancedRun` of all supersteps,
        ``seconds`` and ``iterations`` of the whole run, ``params["rebalances"]`` (count)
        and ``params["rebalance_records"]`` (:meth:`RebalanceRecord.as_dict` each).
    """
    from hpcdist.runtime.logs import echo

    hook = RebalanceHook(graph, policy, inner=on_superstep, plan=plan)
    metrics: list[SuperstepMetrics] = []
    seconds = 0.0
    migration = 0.0
    first_resume = resume
    while True:
        hook.start_segment()
        try:
            result = call(hook, resume)
        except Rebalance as stop:
            stop.__traceback__ = None  # its frames hold the old program: free it before migrating
            moved = graph.move_bounds(stop.bounds, stop.state)
            rec = stop.record
            rec.moved_vertices, rec.moved_edges, rec.migration_seconds = (moved.moved_vertices, moved.moved_edges,
                                                                          moved.seconds)
            hook.records.append(rec)
            metrics += stop.metrics
            seconds += stop.seconds + moved.seconds
            migration += moved.seconds
            if announce:
                echo(graph.comm, rec.line())
            log.info("%s", rec.line())
            resume = Resume(stop.superstep, moved.values, stop.scalars)
            continue
        break
    run = result.run
    if run is not None:
        metrics += list(run.metrics)
        seconds += float(run.seconds)
    result.run = RebalancedRun(
        supersteps=run.supersteps if run is not None else result.iterations,
        converged=run.converged if run is not None else result.converged,
        seconds=seconds, metrics=metrics,
        resumed_from=None if first_resume is None else first_resume.superstep,
        rebalances=list(hook.records), migration_seconds=migration,
    )
    if hook.records:
        result.seconds = seconds
        # Rates over the whole run, not the last segment.
        if "teps" in result.params and "edges_traversed" in result.params:
            result.params["teps"] = result.params["edges_traversed"] / seconds if seconds > 0 else 0.0
    result.params["rebalances"] = len(hook.records)
    result.params["rebalance_records"] = [r.as_dict() for r in hook.records]
    return result


def rebalance_lines(run: BSPRun | None) -> list[str]:
    """One line per rebalance of a run (with the imbalance measured after it), or []."""
    return [r.line() for r in getattr(run, "rebalances", [])]
