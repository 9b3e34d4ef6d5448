"""Per-rank superstep records, reduced over the ranks into per-superstep min/mean/max/argmax.

Each rank holds its own records: an ``(S, F)`` float64 array, one row per superstep and
one column per :data:`FIELDS` entry (seconds of each phase, bytes, messages). At the end
of the run three collectives over one flat vector (the rows, the rank's totals over
the run and its peak RSS) give every rank the same :class:`RunMetrics`:

* ``MAXLOC`` -> max and the rank that had it (lowest rank on ties),
* ``MINLOC`` -> min and its rank,
* ``SUM``    -> mean (sum / P).

No rank ever holds another rank's records: memory and message size are O(S * F) on
every rank, independent of the rank count, and the cost is paid once, not per superstep.
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import numpy as np

from hpcdist.metrics.findings import (
    IMBALANCE_WARN,
    STRAGGLER_CONSECUTIVE,
    STRAGGLER_MIN_EXCESS_S,
    STRAGGLER_THRESHOLD,
    Finding,
    communication_estimate,
    find_bound,
    find_imbalance,
    find_stragglers,
    imbalance_factor,
)
from hpcdist.metrics.timer import Timer

if TYPE_CHECKING:
    from mpi4py import MPI

__all__ = [
    "FIELDS",
    "StepRecorder",
    "RunMetrics",
    "Stats",
    "aggregate_arrays",
    "peak_rss_bytes",
    "metrics_for_run",
    "graph_info",
]

#: Columns of a rank's per-superstep record. Seconds are wall-clock
#: (``time.perf_counter``); bytes and messages are this rank's outgoing/incoming halo
#: traffic. ``step_s`` is exchange + compute + reduce.
FIELDS: tuple[str, ...] = (
    "compute_s",
    "exchange_s",
    "reduce_s",
    "step_s",
    "bytes_sent",
    "bytes_received",
    "messages_sent",
)
_F = {name: i for i, name in enumerate(FIELDS)}


def peak_rss_bytes() -> int:
    """This process's peak resident set size in bytes (``getrusage``; KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


@dataclass
class Stats:
    """Reductions over ranks of one array of per-rank values (any shape ``X``).

    Attributes
    ----------
    min, mean, max, sum : numpy.ndarray of float64, shape X
    argmin, argmax : numpy.ndarray of int64, shape X
        The rank holding the min / max (the lowest such rank on ties, as MPI's MINLOC/MAXLOC).
    """

    min: np.ndarray
    mean: np.ndarray
    max: np.ndarray
    sum: np.ndarray
    argmin: np.ndarray
    argmax: np.ndarray

    def at(self, index: Any) -> dict[str, float | int]:
        """The reductions at ``index`` as a JSON-able dict."""
        return {"min": float(self.min[index]), "mean": float(self.mean[index]), "max": float(self.max[index]),
                "argmin": int(self.argmin[index]), "argmax": int(self.argmax[index]), "sum": float(self.sum[index])}


def aggregate_arrays(stack: np.ndarray) -> Stats:
    """Reduce per-rank arrays stacked on axis 0 (``stack[r]`` is rank r's): the reference arithmetic.

    :meth:`RunMetrics.collect` gets the same numbers with MPI reductions; this function
    is the definition they are tested against (and the way to aggregate records
    gathered some other way, e.g. from per-rank files).
    """
    stack = np.asarray(stack, dtype=np.float64)
    p = stack.shape[0]
    total = stack.sum(axis=0)
    return Stats(min=stack.min(axis=0), mean=total / p, max=stack.max(axis=0), sum=total,
                 argmin=stack.argmin(axis=0).astype(np.int64), argmax=stack.argmax(axis=0).astype(np.int64))


def _reduce_stats(comm: "MPI.Intracomm", local: np.ndarray) -> Stats:
    """:func:`aggregate_arrays` over the ranks of ``comm`` with three Allreduce calls."""
    from hpcdist.runtime.comm import MPI

    flat = np.ascontiguousarray(local, dtype=np.float64).ravel()
    rank, p = comm.Get_rank(), comm.Get_size()
    # MPI_DOUBLE_INT is C's struct {double; int}: padded to 16 bytes, as numpy's aligned struct.
    pair = np.dtype([("v", np.float64), ("i", np.int32)], align=True)
    send = np.empty(flat.shape[0], dtype=pair)
    send["v"], send["i"] = flat, rank
    hi, lo = np.empty_like(send), np.empty_like(send)
    comm.Allreduce([send, MPI.DOUBLE_INT], [hi, MPI.DOUBLE_INT], op=MPI.MAXLOC)
    comm.Allreduce([send, MPI.DOUBLE_INT], [lo, MPI.DOUBLE_INT], op=MPI.MINLOC)
    total = np.empty_like(flat)
    comm.Allreduce(flat, total, op=MPI.SUM)
    shape = local.shape
    return Stats(min=lo["v"].reshape(shape).copy(), mean=(total / p).reshape(shape), max=hi["v"].reshape(shape).copy(),
                 sum=total.reshape(shape), argmin=lo["i"].astype(np.int64).reshape(shape),
                 argmax=hi["i"].astype(np.int64).reshape(shape))


class StepRecorder:
    """Collects one rank's superstep records for a loop that is not :func:`~hpcdist.graph.bsp.run_bsp`.

    Examples
    --------
    >>> rec = StepRecorder()                                      # doctest: +SKIP
    >>> for step in range(n):                                     # doctest: +SKIP
    ...     with rec.timer.span("exchange"): halo.exchange(x)
    ...     with rec.timer.span("compute"): kernel(x)
    ...     with rec.timer.span("reduce"): comm.allreduce(err)
    ...     rec.end_step(step, bytes_sent=halo.bytes_sent, active=n_active)
    >>> m = RunMetrics.collect(comm, *rec.arrays(), algorithm="mine")   # doctest: +SKIP
    """

    def __init__(self) -> None:
        self.timer = Timer()
        self.steps: list[int] = []
        self.rows: list[list[float]] = []
        self.active: list[int] = []

    def record(self, superstep: int, *, compute_s: float = 0.0, exchange_s: float = 0.0, reduce_s: float = 0.0,
               bytes_sent: float = 0, bytes_received: float = 0, messages_sent: float = 0, active: int = 0) -> None:
        """Add one superstep of this rank (``active`` is the global count, equal on every rank)."""
        self.steps.append(int(superstep))
        self.rows.append([compute_s, exchange_s, reduce_s, compute_s + exchange_s + reduce_s,
                          bytes_sent, bytes_received, messages_sent])
        self.active.append(int(active))

    def end_step(self, superstep: int, **counts: float) -> None:
        """Record the timer's ``compute``/``exchange``/``reduce`` spans since the last call, then reset it."""
        t = self.timer.reset()
        self.record(superstep, compute_s=t.get("compute", 0.0), exchange_s=t.get("exchange", 0.0),
                    reduce_s=t.get("reduce", 0.0), **counts)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(supersteps (S,), records (S, F), active (S,))``."""
        rows = np.array(self.rows, dtype=np.float64).reshape(len(self.rows), len(FIELDS))
        return np.array(self.steps, dtype=np.int64), rows, np.array(self.active, dtype=np.int64)


@dataclass
class RunMetrics:
    """A run's metrics, reduced over ranks; the same object on every rank.

    Attributes
    ----------
    algorithm : str
    ranks : int
    rank : int
        The rank holding this copy (only rank 0 writes files).
    supersteps : numpy.ndarray of int64, shape (S,)
        Superstep numbers (a resumed run starts after its checkpoint).
    steps : Stats
        Per-superstep reductions over ranks of the records, arrays of shape (S, F);
        columns as :data:`FIELDS` (:meth:`field` picks one).
    totals : Stats
        Reductions over ranks of each rank's totals over the run, shape (F,).
    peak_rss : Stats
        Reductions over ranks of the peak RSS in bytes, shape ().
    active : numpy.ndarray of int64, shape (S,)
        Global active vertices per superstep.
    converged : bool or None
    seconds : float or None
        Wall time of the superstep loop (slowest rank).
    graph : dict
        What the run ran on (vertices, edges, partitioner, input, ...).
    bytes_split : str
        ``"halo"`` when per-rank bytes come from the halo layout (exact for the halo
        exchange), ``"even"`` when the global count was split evenly (no layout given).
    resumed_from : int or None
    created : float
        Unix time the metrics were reduced.
    """

    algorithm: str
    ranks: int
    rank: int
    supersteps: np.ndarray
    steps: Stats
    totals: Stats
    peak_rss: Stats
    active: np.ndarray
    converged: bool | None = None
    seconds: float | None = None
    graph: dict[str, Any] = field(default_factory=dict)
    bytes_split: str = "even"
    resumed_from: int | None = None
    created: float = field(default_factory=time.time)

    # -- building ------------------------------------------------------------------
    @classmethod
    def collect(
        cls,
        comm: "MPI.Intracomm",
        supersteps: np.ndarray,
        records: np.ndarray,
        active: np.ndarray | None = None,
        *,
        algorithm: str,
        graph_info: Mapping[str, Any] | None = None,
        converged: bool | None = None,
        seconds: float | None = None,
        bytes_split: str = "even",
        resumed_from: int | None = None,
        peak_rss: int | None = None,
    ) -> "RunMetrics":
        """Reduce every rank's ``records`` (shape (S, F), columns :data:`FIELDS`). Collective.

        Every rank must pass the same number of supersteps (true of any BSP loop); a
        mismatch raises ``ValueError`` on every rank.
        """
        from hpcdist.runtime.comm import MPI

        records = np.asarray(records, dtype=np.float64).reshape(-1, len(FIELDS))
        s = records.shape[0]
        lo_hi = np.array([s, -s], dtype=np.int64)
        comm.Allreduce(MPI.IN_PLACE, lo_hi, op=MPI.MIN)
        if lo_hi[0] != -lo_hi[1]:
            raise ValueError(f"ranks recorded different numbers of supersteps ({lo_hi[0]} to {-lo_hi[1]})")
        rss = peak_rss_bytes() if peak_rss is None else int(peak_rss)
        flat = np.concatenate([records.ravel(), records.sum(axis=0), [float(rss)]])
        st = _reduce_stats(comm, flat)
        n = s * len(FIELDS)

        def part(a: np.ndarray, lo: int, hi: int, shape: tuple[int, ...]) -> np.ndarray:
            return a[lo:hi].reshape(shape)

        def split(lo: int, hi: int, shape: tuple[int, ...]) -> Stats:
            return Stats(**{k: part(getattr(st, k), lo, hi, shape) for k in ("min", "mean", "max", "sum",
                                                                             "argmin", "argmax")})

        f = len(FIELDS)
        act = np.zeros(s, dtype=np.int64) if active is None else np.asarray(active, dtype=np.int64)
        return cls(algorithm=algorithm, ranks=comm.Get_size(), rank=comm.Get_rank(),
                   supersteps=np.asarray(supersteps, dtype=np.int64).reshape(s),
                   steps=split(0, n, (s, f)), totals=split(n, n + f, (f,)), peak_rss=split(n + f, n + f + 1, ()),
                   active=act, converged=converged, seconds=seconds, graph=dict(graph_info or {}),
                   bytes_split=bytes_split, resumed_from=resumed_from)

    @classmethod
    def from_bsp(
        cls,
        comm: "MPI.Intracomm",
        run: Any,
        *,
        algorithm: str,
        graph_info: Mapping[str, Any] | None = None,
        halo_layout: Any = None,
    ) -> "RunMetrics":
        """Build from a :class:`~hpcdist.graph.bsp.BSPRun` after the run. Collective over ``comm``.

        The engine's ``SuperstepMetrics`` give each rank's phase seconds; its
        ``bytes_sent`` is the global sum, which is split into per-rank bytes by this
        rank's share of the halo (``halo_layout.n_send / sum of n_send``, exact since all
        ranks exchange one dtype in a superstep) when ``halo_layout`` is given, evenly
        otherwise. Messages: one per neighbour in a superstep that exchanged.

        Parameters
        ----------
        comm : mpi4py.MPI.Intracomm
            The graph's communicator.
        run : BSPRun
        algorithm : str
        graph_info : mapping, optional
            Written into the header (vertices, edges, partitioner, ...).
        halo_layout : hpcdist.graph.halo.HaloLayout, optional
            ``graph.halo.layout``.
        """
        from hpcdist.runtime.comm import MPI

        ms = list(run.metrics)
        s = len(ms)
        steps = np.array([m.superstep for m in ms], dtype=np.int64)
        glob = np.array([m.bytes_sent for m in ms], dtype=np.float64)
        rec = np.zeros((s, len(FIELDS)), dtype=np.float64)
        rec[:, _F["compute_s"]] = [m.compute_s for m in ms]
        rec[:, _F["exchange_s"]] = [m.exchange_s for m in ms]
        rec[:, _F["reduce_s"]] = [m.reduce_s for m in ms]
        rec[:, _F["step_s"]] = rec[:, _F["compute_s"]] + rec[:, _F["exchange_s"]] + rec[:, _F["reduce_s"]]
        p = comm.Get_size()
        if halo_layout is not None:
            mine = np.array([halo_layout.n_send, halo_layout.n_ghost], dtype=np.float64)
            tot = np.empty_like(mine)
            comm.Allreduce(mine, tot, op=MPI.SUM)
            share_s = mine[0] / tot[0] if tot[0] else 0.0
            share_r = mine[1] / tot[1] if tot[1] else 0.0
            exchanged = glob > 0
            rec[:, _F["bytes_sent"]] = glob * share_s
            rec[:, _F["bytes_received"]] = glob * share_r
            rec[:, _F["messages_sent"]] = np.where(exchanged, len(halo_layout.send_ranks), 0)
            split = "halo"
        else:
            rec[:, _F["bytes_sent"]] = glob / p
            rec[:, _F["bytes_received"]] = glob / p
            split = "even"
        return cls.collect(comm, steps, rec, np.array([m.active for m in ms], dtype=np.int64), algorithm=algorithm,
                           graph_info=graph_info, converged=getattr(run, "converged", None),
                           seconds=getattr(run, "seconds", None), bytes_split=split,
                           resumed_from=getattr(run, "resumed_from", None))

    # -- views ---------------------------------------------------------------------
    def field(self, name: str) -> Stats:
        """Per-superstep reductions of one column of :data:`FIELDS` (arrays of shape (S,))."""
        j = _F[name]
        return Stats(**{k: getattr(self.steps, k)[:, j] for k in ("min", "mean", "max", "sum", "argmin", "argmax")})

    def total(self, name: str) -> dict[str, float | int]:
        """Reductions over ranks of one column's per-rank totals over the run."""
        return self.totals.at(_F[name])

    @property
    def imbalance(self) -> np.ndarray:
        """Per superstep: max / mean of compute seconds (1.0 where the mean is 0)."""
        c = self.field("compute_s")
        return imbalance_factor(c.max, c.mean)

    @property
    def imbalance_overall(self) -> float:
        """max / mean of the ranks' compute totals over the run."""
        t = self.total("compute_s")
        return float(imbalance_factor(np.array([t["max"]]), np.array([t["mean"]]))[0])

    def idle(self) -> Stats:
        """Per superstep, reductions of each rank's wait for the slowest compute (``max - compute_r``).

        Derived, not measured: min 0 (the slowest rank), mean ``max - mean``, max ``max - min``,
        argmax the fastest rank.
        """
        c = self.field("compute_s")
        zero = np.zeros_like(c.max)
        return Stats(min=zero, mean=c.max - c.mean, max=c.max - c.min, sum=(c.max - c.mean) * self.ranks,
                     argmin=c.argmax.copy(), argmax=c.argmin.copy())

    def communication(self) -> np.ndarray:
        """Per superstep, communication on the critical path (:func:`~hpcdist.metrics.findings.communication_estimate`)."""
        return communication_estimate(self.field("step_s").mean, self.field("compute_s").max)

    def findings(
        self,
        *,
        threshold: float = STRAGGLER_THRESHOLD,
        consecutive: int = STRAGGLER_CONSECUTIVE,
        min_excess_s: float = STRAGGLER_MIN_EXCESS_S,
        imbalance_warn: float = IMBALANCE_WARN,
    ) -> list[Finding]:
        """Stragglers, communication/compute bound, imbalance (see :mod:`hpcdist.metrics.findings`)."""
        c, t = self.field("compute_s"), self.total("compute_s")
        out = find_stragglers(c.max, c.mean, c.argmax, self.supersteps, threshold=threshold, consecutive=consecutive,
                              min_excess_s=min_excess_s)
        out += find_bound(c.max, self.field("step_s").mean, self.supersteps)
        out += find_imbalance(c.max, c.mean, t["max"], t["mean"], self.supersteps, warn=imbalance_warn)
        return out

    # -- records -------------------------------------------------------------------
    def header(self) -> dict[str, Any]:
        """The header record (see docs/metrics.md)."""
        return {"type": "header", "format": "hpcdist-metrics", "version": 1, "kind": "bsp",
                "algorithm": self.algorithm, "ranks": self.ranks, "supersteps": int(self.supersteps.shape[0]),
                "first_superstep": int(self.supersteps[0]) if self.supersteps.shape[0] else None,
                "converged": self.converged, "seconds": self.seconds, "resumed_from": self.resumed_from,
                "graph": dict(self.graph), "bytes_split": self.bytes_split, "fields": list(FIELDS),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created))}

    def superstep_records(self) -> Iterable[dict[str, Any]]:
        """One record per superstep: reductions of every field, idle, imbalance, bound."""
        idle, comm, imb = self.idle(), self.communication(), self.imbalance
        cmax = self.field("compute_s").max
        for i, step in enumerate(self.supersteps.tolist()):
            rec: dict[str, Any] = {"type": "superstep", "superstep": int(step), "active": int(self.active[i])}
            for j, name in enumerate(FIELDS):
                rec[name] = self.steps.at((i, j))
            rec["idle_s"] = idle.at(i)
            rec["communication_s"] = float(comm[i])
            rec["imbalance"] = float(imb[i])
            rec["bound"] = "communication" if comm[i] > cmax[i] else "compute"
            yield rec

    def summary(self) -> dict[str, Any]:
        """The summary record: per-rank totals reduced over ranks, peak RSS, overall imbalance."""
        out: dict[str, Any] = {"type": "summary", "totals": {name: self.total(name) for name in FIELDS},
                               "peak_rss_bytes": self.peak_rss.at(()),
                               "imbalance_overall": self.imbalance_overall,
                               "communication_s": float(self.communication().sum())}
        return out


def graph_info(graph: Any) -> dict[str, Any]:
    """What the header records about a :class:`~hpcdist.graph.distgraph.DistGraph` (all global values)."""
    info: dict[str, Any] = {}
    for key, attr in (("n_vertices", "n_vertices"), ("n_edges", "n_edges"), ("input", "name"),
                      ("directed", "directed"), ("weighted", "weighted")):
        value = getattr(graph, attr, None)
        if value is not None:
            info[key] = value if isinstance(value, (bool, int, float)) else str(value)
    part = getattr(graph, "partition", None)
    if part is not None and getattr(part, "method", None):
        info["partitioner"] = str(part.method)
    return info


def metrics_for_run(comm: "MPI.Intracomm", graph: Any, result: Any, algorithm: str) -> RunMetrics:
    """The metrics of one graph algorithm's run, for the graph CLI's ``--metrics``. Collective.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        The graph's communicator.
    graph : DistGraph
    result : VertexResult
        Its ``run`` (a :class:`~hpcdist.graph.bsp.BSPRun`) holds the engine's records;
        a result without one gives metrics with no supersteps.
    algorithm : str

    Returns
    -------
    RunMetrics
        Equal on every rank; write it with :func:`hpcdist.metrics.write_metrics`.
    """
    run = getattr(result, "run", None)
    if run is None:  # e.g. an algorithm that finished before its first superstep
        from types import SimpleNamespace  # not BSPRun: metrics sits below graph and imports nothing of it

        run = SimpleNamespace(metrics=[], converged=bool(getattr(result, "converged", True)),
                              seconds=float(getattr(result, "seconds", 0.0)), resumed_from=None)
    halo = getattr(graph, "halo", None)
    info = graph_info(graph)
    info.update({k: v for k, v in getattr(result, "params", {}).items()
                 if k in ("backend", "alpha", "tol", "source", "delta") and isinstance(v, (int, float, str, bool))})
    return RunMetrics.from_bsp(comm, run, algorithm=algorithm, graph_info=info,
                               halo_layout=getattr(halo, "layout", None))
