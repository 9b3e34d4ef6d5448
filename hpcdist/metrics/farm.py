"""The task farm's metrics: constant-cost counters the coordinator keeps while the farm runs.

Pure (no MPI, no clock of its own: every call passes ``now``), so the scheduler can own
a :class:`FarmStats` and the unit tests can drive one by hand. Memory is bounded
whatever the number of tasks: per (worker, function) a few counters, an EWMA and a
log-bucketed histogram (:class:`LogHistogram`, at most a few hundred buckets for any
range of task times); the completions over time in at most :data:`MAX_BUCKETS` buckets
(:class:`Throughput` doubles its bucket width when full); the per-worker EWMA of each
function sampled at most :data:`MAX_SAMPLES` times (:class:`EwmaSamples`, the input of
the drift finding). Nothing is kept per task.

Per task the scheduler does one dict lookup and one list append (:class:`FnCounter`'s
``pending``); on its clock tick (every 10 ms) the appended times are folded into the
counters in one numpy pass per (worker, function), the completions booked in the
throughput and the EWMAs sampled when due. Measured: the append costs about 0.07 us
where adding each time at once (:meth:`FnCounter.add`) cost 0.36 us.

:func:`farm_metrics` turns the counters into the records of a metrics file (format in
docs/metrics.md); :func:`load_spread` is the load report.
"""

from __future__ import annotations

import math
import time
from math import frexp as _frexp
from typing import Any, Iterable, Mapping, Sequence

__all__ = [
    "LogHistogram",
    "Throughput",
    "FnCounter",
    "EwmaSamples",
    "FarmStats",
    "load_spread",
    "farm_metrics",
    "farm_findings",
    "SUB_BUCKETS",
    "MAX_BUCKETS",
    "MAX_SAMPLES",
    "RETRY_CAUSES",
]

#: Histogram buckets per doubling of the task time: 8 gives quantiles within about 6 %.
SUB_BUCKETS = 8
#: Throughput buckets kept; when full, neighbours merge and the width doubles.
MAX_BUCKETS = 240
#: EWMA samples kept per function; when full, every other one is dropped and the interval doubles.
MAX_SAMPLES = 240
#: Functions whose per-worker EWMA is sampled (the ones with the most busy time first).
MAX_SAMPLED_FUNCTIONS = 8
#: Pending task times folded with numpy from this many on (fewer: one by one).
FOLD_NUMPY = 32
#: Pending task times over all counters that make the scheduler fold before its next tick.
FOLD_AT = 8192
#: Why a task went back to the queue (``FarmStats.retries``): ``error`` and ``timeout`` use up
#: the task's ``retries``; the others do not: ``worker_lost`` (its worker failed),
#: ``returned`` (the worker gave it back, draining), ``drained`` (queued at a worker that was
#: drained), ``quarantined`` (queued behind a task that timed out), ``drain`` (running when a
#: farm-wide drain's grace period ended).
RETRY_CAUSES = ("error", "timeout", "worker_lost", "returned", "drained", "quarantined", "drain")


class LogHistogram:
    """A streaming histogram of positive values in log-spaced buckets (:data:`SUB_BUCKETS` per octave).

    Exact count, sum, min and max; quantiles to within half a bucket (about 4 % relative
    with 8 sub-buckets). A value ``<= 0`` counts in a bucket of its own (index None in
    :meth:`to_dict`, reported as 0). Memory: one dict entry per bucket seen, at most
    ``SUB_BUCKETS`` x the number of octaves the values span.

    Examples
    --------
    >>> h = LogHistogram()
    >>> for x in (0.001, 0.002, 0.004):
    ...     h.add(x)
    >>> round(h.quantile(0.5), 3)
    0.002
    """

    __slots__ = ("buckets", "count", "sum", "min", "max", "zeros")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.zeros = 0

    def add(self, x: float) -> None:
        self.count += 1
        self.sum += x
        if x < self.min:
            self.min = x
        if x > self.max:
            self.max = x
        if x > 0.0:
            m, e = math.frexp(x)  # x = m * 2**e, 0.5 <= m < 1
            i = e * SUB_BUCKETS + int((m - 0.5) * (2 * SUB_BUCKETS))
            b = self.buckets
            b[i] = b.get(i, 0) + 1
        else:
            self.zeros += 1

    @staticmethod
    def bounds(i: int) -> tuple[float, float]:
        """The value range ``[lo, hi)`` of bucket ``i``."""
        e, k = divmod(i, SUB_BUCKETS)
        scale = math.ldexp(1.0, e)
        return scale * (0.5 + k / (2 * SUB_BUCKETS)), scale * (0.5 + (k + 1) / (2 * SUB_BUCKETS))

    def merge(self, other: "LogHistogram") -> "LogHistogram":
        """Add ``other``'s counts into this histogram; returns self."""
        for i, n in other.buckets.items():
            self.buckets[i] = self.buckets.get(i, 0) + n
        self.count += other.count
        self.sum += other.sum
        self.zeros += other.zeros
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        return self

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1): the geometric middle of its bucket, clamped to [min, max]. None when empty."""
        if self.count == 0:
            return None
        rank = q * (self.count - 1)  # the 0-based position in the sorted values
        seen = self.zeros
        if rank < seen:
            return 0.0
        for i in sorted(self.buckets):
            seen += self.buckets[i]
            if rank < seen:
                lo, hi = self.bounds(i)
                return min(max(math.sqrt(lo * hi), self.min), self.max)
        return self.max

    @property
    def mean(self) -> float | None:
        return self.sum / self.count if self.count else None

    def summary(self) -> dict[str, Any]:
        """count, sum, mean, min, p50, p90, p99, max (None when empty)."""
        empty = self.count == 0
        return {"count": self.count, "sum": self.sum, "mean": self.mean,
                "min": None if empty else self.min, "p50": self.quantile(0.5), "p90": self.quantile(0.9),
                "p99": self.quantile(0.99), "max": None if empty else self.max}

    def to_dict(self) -> dict[str, Any]:
        """:meth:`summary` plus the buckets: ``[[lo, hi, count], ...]`` in increasing order (seconds)."""
        out = self.summary()
        rows = [[0.0, 0.0, self.zeros]] if self.zeros else []
        rows += [[*self.bounds(i), n] for i, n in sorted(self.buckets.items())]
        out["buckets"] = rows
        out["sub_buckets"] = SUB_BUCKETS
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LogHistogram":
        """Rebuild from :meth:`to_dict` (for merging histograms read from a file)."""
        h = cls()
        for lo, hi, n in d.get("buckets") or []:
            if hi <= 0:
                h.zeros += int(n)
                continue
            m, e = math.frexp(math.sqrt(lo * hi))
            h.buckets[e * SUB_BUCKETS + int((m - 0.5) * (2 * SUB_BUCKETS))] = int(n)
        h.count = int(d.get("count") or 0)
        h.sum = float(d.get("sum") or 0.0)
        h.min = float(d["min"]) if d.get("min") is not None else math.inf
        h.max = float(d["max"]) if d.get("max") is not None else -math.inf
        return h


class Throughput:
    """Completed tasks per time bucket since ``t0``, in at most ``max_buckets`` buckets.

    Starts with ``bucket_s`` wide buckets; when a completion falls past the last one,
    neighbouring buckets merge pairwise and the width doubles, so a run of any length
    keeps at most ``max_buckets`` counts, each covering ``bucket_s`` seconds.
    """

    __slots__ = ("t0", "bucket_s", "counts", "max_buckets")

    def __init__(self, t0: float, bucket_s: float = 0.05, max_buckets: int = MAX_BUCKETS) -> None:
        self.t0 = t0
        self.bucket_s = bucket_s
        self.counts: list[int] = []
        self.max_buckets = max(2, max_buckets - max_buckets % 2)

    def add(self, now: float, n: int = 1) -> None:
        i = int((now - self.t0) / self.bucket_s)
        if i < 0:
            i = 0
        while i >= self.max_buckets:
            c = self.counts
            self.counts = [sum(c[j:j + 2]) for j in range(0, len(c), 2)]
            self.bucket_s *= 2
            i = int((now - self.t0) / self.bucket_s)
        c = self.counts
        if i >= len(c):
            c.extend([0] * (i + 1 - len(c)))
        c[i] += n

    def rates(self) -> list[float]:
        """Tasks per second in each bucket."""
        return [n / self.bucket_s for n in self.counts]

    def to_dict(self, end: float | None = None) -> dict[str, Any]:
        counts = list(self.counts)
        if end is not None:  # buckets up to the end, so that a quiet tail shows as zeros
            want = min(self.max_buckets, int((end - self.t0) / self.bucket_s) + 1)
            counts += [0] * max(0, want - len(counts))
        return {"bucket_s": self.bucket_s, "counts": counts, "total": sum(counts)}


class FnCounter:
    """One worker's counters for one function: the per-task cost of the farm's metrics.

    On the coordinator's hot path a task time is only appended to :attr:`pending` (and
    the counter put on :attr:`FarmStats.dirty` when that list was empty);
    :meth:`fold` adds the pending times to the counters, with numpy for a batch, on
    the scheduler's clock tick (every 10 ms) and before anything reads them. :meth:`add`
    adds one time at once. :attr:`hist` is the histogram as a :class:`LogHistogram`.
    """

    __slots__ = ("tasks", "errors", "busy_s", "ewma_s", "buckets", "min", "max", "zeros", "pending")

    def __init__(self) -> None:
        self.tasks = 0  # attempts that ran to an end (ok or error), cancelled ones excluded
        self.errors = 0
        self.busy_s = 0.0
        self.ewma_s: float | None = None
        self.buckets: dict[int, int] = {}
        self.min = math.inf
        self.max = -math.inf
        self.zeros = 0
        self.pending: list[float] = []  # task times not folded in yet

    def fold(self, alpha: float) -> None:
        """Add the :attr:`pending` task times to the counters (in order: the EWMA is exact)."""
        pending = self.pending
        n = len(pending)
        if n == 0:
            return
        self.pending = []
        if n < FOLD_NUMPY:
            for x in pending:
                self.add(x, alpha)
            return
        import numpy as np

        x = np.asarray(pending, dtype=np.float64)
        self.tasks += n
        self.busy_s += float(x.sum())
        e = self.ewma_s
        if e is None:
            e, x_rest = float(x[0]), x[1:]
        else:
            x_rest = x
        k = x_rest.shape[0]
        if k:
            # e_k = (1-a)^k e_0 + sum_j a (1-a)^(k-1-j) x_j: the recurrence of add(), closed form.
            decay = (1.0 - alpha) ** np.arange(k - 1, -1, -1, dtype=np.float64)
            e = (1.0 - alpha) ** k * e + alpha * float(decay @ x_rest)
        self.ewma_s = e
        self.min = min(self.min, float(x.min()))
        self.max = max(self.max, float(x.max()))
        pos = x[x > 0.0]
        self.zeros += n - pos.shape[0]
        if pos.shape[0]:
            m, ex = np.frexp(pos)
            idx = ex.astype(np.int64) * SUB_BUCKETS + ((m - 0.5) * (2 * SUB_BUCKETS)).astype(np.int64)
            lo = int(idx.min())
            counts = np.bincount(idx - lo)
            b = self.buckets
            for j in np.flatnonzero(counts).tolist():
                b[lo + j] = b.get(lo + j, 0) + int(counts[j])

    def add(self, elapsed: float, alpha: float) -> None:
        """One attempt that ran ``elapsed`` seconds (the caller counts ``errors`` itself)."""
        self.tasks += 1
        self.busy_s += elapsed
        e = self.ewma_s
        self.ewma_s = elapsed if e is None else e + alpha * (elapsed - e)
        if elapsed < self.min:
            self.min = elapsed
        if elapsed > self.max:
            self.max = elapsed
        if elapsed > 0.0:
            m, x = _frexp(elapsed)
            i = x * SUB_BUCKETS + int((m - 0.5) * (2 * SUB_BUCKETS))
            b = self.buckets
            b[i] = b.get(i, 0) + 1
        else:
            self.zeros += 1

    @property
    def hist(self) -> LogHistogram:
        """The task times as a :class:`LogHistogram` (a copy)."""
        h = LogHistogram()
        h.buckets = dict(self.buckets)
        h.count, h.sum, h.min, h.max, h.zeros = self.tasks, self.busy_s, self.min, self.max, self.zeros
        return h


class EwmaSamples:
    """The per-worker EWMA of each function, sampled over time, in bounded memory.

    ``sample(now, per_fn)`` takes ``{fn: {rank: ewma_s}}``; at most ``max_samples`` are
    kept (when full, every other one is dropped and the interval doubles).
    """

    __slots__ = ("interval_s", "next_at", "times", "rows", "max_samples")

    def __init__(self, t0: float, interval_s: float = 0.1, max_samples: int = MAX_SAMPLES) -> None:
        self.interval_s = interval_s
        self.next_at = t0 + interval_s
        self.times: list[float] = []
        self.rows: list[dict[str, dict[int, float]]] = []
        self.max_samples = max(4, max_samples)

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def sample(self, now: float, per_fn: dict[str, dict[int, float]]) -> None:
        self.times.append(now)
        self.rows.append(per_fn)
        self.next_at = now + self.interval_s
        if len(self.times) >= self.max_samples:
            self.times = self.times[1::2]
            self.rows = self.rows[1::2]
            self.interval_s *= 2

    def series(self, fn: str, t0: float = 0.0) -> dict[str, Any]:
        """``{"fn", "t": [...], "ranks": [...], "ewma_s": [[per rank] per sample]}`` (None where unknown)."""
        ranks = sorted({r for row in self.rows for r in row.get(fn, {})})
        t, values = [], []
        for when, row in zip(self.times, self.rows):
            got = row.get(fn)
            if not got:
                continue
            t.append(when - t0)
            values.append([got.get(r) for r in ranks])
        return {"fn": fn, "t": t, "ranks": ranks, "ewma_s": values}

    def functions(self) -> list[str]:
        seen: dict[str, None] = {}
        for row in self.rows:
            for fn in row:
                seen.setdefault(fn, None)
        return list(seen)


class FarmStats:
    """Everything the farm's metrics file says, kept as counters by the scheduler.

    Parameters
    ----------
    t0 : float
        Start, on the events' clock.
    alpha : float
        EWMA weight of the newest task time.
    bucket_s, sample_s : float
        Initial throughput bucket width and EWMA sampling interval (both double as needed).
    """

    def __init__(self, t0: float = 0.0, *, alpha: float = 0.2, bucket_s: float = 0.05, sample_s: float = 0.1) -> None:
        self.t0 = t0
        self.alpha = alpha
        #: rank -> fn -> counters
        self.by_worker: dict[int, dict[str, FnCounter]] = {}
        self.throughput = Throughput(t0, bucket_s)
        self.ewma = EwmaSamples(t0, sample_s)
        #: fn -> cause -> count of returns to the queue
        self.retries: dict[str, dict[str, int]] = {}
        #: fn -> final outcomes other than completed: {"error": n, "timed_out": n, "cancelled": n, ...}
        self.outcomes: dict[str, dict[str, int]] = {}
        self.submitted = 0
        self.completed = 0
        self._booked = 0  # completions already in the throughput
        #: Counters with pending task times (see FnCounter); ``unfolded`` counts the times.
        self.dirty: list[FnCounter] = []
        self.unfolded = 0
        #: [{"t": seconds since t0, "strategy": name}]
        self.strategies: list[dict[str, Any]] = []
        self.last = t0

    def start(self, t0: float) -> None:
        """Set time zero (the first event's ``now``); what was counted before keeps its counts."""
        self.t0 = t0
        self.throughput = Throughput(t0, self.throughput.bucket_s, self.throughput.max_buckets)
        self.ewma = EwmaSamples(t0, self.ewma.interval_s, self.ewma.max_samples)
        self.last = t0

    def counter(self, rank: int, fn: str) -> FnCounter:
        """The counters of ``fn`` on worker ``rank`` (created on first use)."""
        per = self.by_worker.get(rank)
        if per is None:
            per = self.by_worker[rank] = {}
        c = per.get(fn)
        if c is None:
            c = per[fn] = FnCounter()
        return c

    def completions(self, now: float, n: int) -> None:
        """``n`` tasks completed at ``now``, counted in the throughput at once.

        The scheduler adds to :attr:`completed` directly and calls :meth:`tick` on its
        clock tick instead (one integer add per batch of results).
        """
        self.completed += n
        self.tick(now)

    def fold(self) -> None:
        """Fold every counter's pending task times in (before reading the counters)."""
        dirty, self.dirty, self.unfolded = self.dirty, [], 0
        alpha = self.alpha
        for c in dirty:
            c.fold(alpha)

    def tick(self, now: float) -> None:
        """Fold the pending task times, book the completions since the last tick in ``now``'s
        throughput bucket, and sample the EWMAs when due."""
        if self.dirty:
            self.fold()
        n = self.completed - self._booked
        if n:
            self.throughput.add(now, n)
            self._booked = self.completed
            self.last = now
        if now >= self.ewma.next_at:
            self.maybe_sample(now)

    def retry(self, fn: str, cause: str) -> None:
        per = self.retries.get(fn)
        if per is None:
            per = self.retries[fn] = {}
        per[cause] = per.get(cause, 0) + 1

    def outcome(self, fn: str, status: str) -> None:
        per = self.outcomes.get(fn)
        if per is None:
            per = self.outcomes[fn] = {}
        per[status] = per.get(status, 0) + 1

    def strategy(self, now: float, name: str) -> None:
        self.strategies.append({"t": now - self.t0, "strategy": name})

    def maybe_sample(self, now: float) -> None:
        """Sample the per-worker EWMAs when the interval has passed (call on a tick)."""
        if now < self.ewma.next_at:
            return
        self.fold()
        busy: dict[str, float] = {}
        for per in self.by_worker.values():
            for fn, c in per.items():
                busy[fn] = busy.get(fn, 0.0) + c.busy_s
        top = sorted(busy, key=lambda f: -busy[f])[:MAX_SAMPLED_FUNCTIONS]
        row: dict[str, dict[int, float]] = {}
        for fn in top:
            got = {r: per[fn].ewma_s for r, per in self.by_worker.items() if fn in per and per[fn].ewma_s is not None}
            if got:
                row[fn] = got  # type: ignore[assignment]
        self.ewma.sample(now, row)

    # ----------------------------------------------------------------- views
    def worker_total(self, rank: int) -> tuple[int, int, float, LogHistogram]:
        """tasks, errors, busy seconds and the merged histogram of worker ``rank``."""
        self.fold()
        tasks = errors = 0
        busy = 0.0
        hist = LogHistogram()
        for c in self.by_worker.get(rank, {}).values():
            tasks += c.tasks
            errors += c.errors
            busy += c.busy_s
            hist.merge(c.hist)
        return tasks, errors, busy, hist

    def function_totals(self) -> dict[str, dict[str, Any]]:
        """fn -> tasks, errors, busy_s, hist (merged over workers)."""
        self.fold()
        out: dict[str, dict[str, Any]] = {}
        for per in self.by_worker.values():
            for fn, c in per.items():
                t = out.get(fn)
                if t is None:
                    t = out[fn] = {"tasks": 0, "errors": 0, "busy_s": 0.0, "hist": LogHistogram()}
                t["tasks"] += c.tasks
                t["errors"] += c.errors
                t["busy_s"] += c.busy_s
                t["hist"].merge(c.hist)
        return out


def load_spread(tasks: Mapping[int, float], busy: Mapping[int, float]) -> dict[str, Any]:
    """How the load was spread over the workers (pure).

    Parameters
    ----------
    tasks, busy : mapping rank -> number
        Tasks run and seconds busy per worker (every worker, idle ones with 0).

    Returns
    -------
    dict
        ``imbalance_tasks`` and ``imbalance_busy`` (max/mean, 1.0 when the mean is 0),
        ``busiest`` (the rank with the most busy time), ``least_busy``, ``share``
        (rank -> fraction of all busy time), and the min/mean/max of each.
    """
    ranks = sorted(set(tasks) | set(busy))

    def stats(d: Mapping[int, float]) -> tuple[float, float, float]:
        v = [float(d.get(r, 0)) for r in ranks]
        if not v:
            return 0.0, 0.0, 0.0
        return min(v), sum(v) / len(v), max(v)

    t_min, t_mean, t_max = stats(tasks)
    b_min, b_mean, b_max = stats(busy)
    total = sum(float(busy.get(r, 0.0)) for r in ranks)
    busiest = max(ranks, key=lambda r: (float(busy.get(r, 0.0)), -r)) if ranks else None
    least = min(ranks, key=lambda r: (float(busy.get(r, 0.0)), r)) if ranks else None
    return {
        "workers": len(ranks),
        "imbalance_tasks": t_max / t_mean if t_mean > 0 else 1.0,
        "imbalance_busy": b_max / b_mean if b_mean > 0 else 1.0,
        "tasks": {"min": t_min, "mean": t_mean, "max": t_max},
        "busy_s": {"min": b_min, "mean": b_mean, "max": b_max},
        "busiest": busiest,
        "least_busy": least,
        "share": {str(r): (float(busy.get(r, 0.0)) / total if total > 0 else 0.0) for r in ranks},
    }


def farm_findings(doc: Mapping[str, Any], **drift_kw: Any) -> list[dict[str, Any]]:
    """Findings of a farm metrics document (:func:`farm_metrics`): EWMA drift per function, load imbalance."""
    from hpcdist.metrics.findings import IMBALANCE_WARN, find_drift, finding

    out: list[dict[str, Any]] = []
    for series in doc.get("ewma") or []:
        out.extend(find_drift(series["t"], series["ewma_s"], series["ranks"], fn=series["fn"], **drift_kw))
    spread = (doc.get("summary") or {}).get("load") or {}
    if spread.get("workers", 0) > 1 and (spread.get("busy_s") or {}).get("max", 0) > 0:
        imb = float(spread["imbalance_busy"])
        out.append(finding(
            "farm_imbalance", "warning" if imb > IMBALANCE_WARN else "info",
            f"farm load imbalance {imb:.2f} (max/mean busy time over {spread['workers']} workers); "
            f"busiest rank {spread['busiest']}, least busy rank {spread['least_busy']}",
            imbalance_busy=imb, imbalance_tasks=float(spread["imbalance_tasks"]), busiest=spread["busiest"],
            least_busy=spread["least_busy"], warn=IMBALANCE_WARN,
        ))
    return out


def farm_metrics(
    stats: FarmStats,
    workers: Iterable[Mapping[str, Any]],
    *,
    now: float,
    traffic: Mapping[int, Sequence[int]] | None = None,
    header: Mapping[str, Any] | None = None,
    pending: int = 0,
    running: int = 0,
) -> dict[str, Any]:
    """The farm part of a metrics document from the coordinator's counters (pure).

    Parameters
    ----------
    stats : FarmStats
    workers : iterable of dict
        One per worker: ``rank``, ``host``, ``status``, ``joined`` and ``left`` (events'
        clock; ``left`` None while it serves), ``ewma_s``, ``peak_rss`` (bytes, from
        its resource updates), ``tasks_done``.
    now : float
        The end of the run on the events' clock.
    traffic : mapping rank -> (messages_sent, bytes_sent, messages_received, bytes_received), optional
        From the transport (coordinator's view: sent to / received from each worker).
    header : dict, optional
        Extra header fields (``ranks``, ``strategy``, ...).

    Returns
    -------
    dict
        ``{"header", "summary", "workers", "functions", "throughput", "ewma", "findings"}``
        (format in docs/metrics.md).
    """
    traffic = traffic or {}
    span = max(now - stats.t0, 0.0)
    worker_recs = []
    tasks_by: dict[int, float] = {}
    busy_by: dict[int, float] = {}
    for w in sorted(workers, key=lambda w: w["rank"]):
        rank = int(w["rank"])
        tasks, errors, busy, hist = stats.worker_total(rank)
        joined = float(w.get("joined", stats.t0))
        left = w.get("left")
        wall = max((float(left) if left is not None else now) - joined, 0.0)
        msgs_sent, bytes_sent, msgs_recv, bytes_recv = (list(traffic.get(rank, ())) + [0, 0, 0, 0])[:4]
        per_fn = {fn: {"tasks": c.tasks, "errors": c.errors, "busy_s": c.busy_s, "ewma_s": c.ewma_s}
                  for fn, c in sorted(stats.by_worker.get(rank, {}).items())}
        worker_recs.append({
            "type": "farm_worker", "rank": rank, "host": w.get("host"), "status": w.get("status"),
            "tasks": tasks, "errors": errors, "busy_s": busy, "idle_s": max(wall - busy, 0.0), "wall_s": wall,
            "utilisation": busy / wall if wall > 0 else None,
            "bytes_sent": bytes_sent, "bytes_received": bytes_recv,
            "messages_sent": msgs_sent, "messages_received": msgs_recv,
            "ewma_s": w.get("ewma_s"), "peak_rss": w.get("peak_rss"), "task_time": hist.summary(),
            "functions": per_fn,
        })
        tasks_by[rank] = tasks
        busy_by[rank] = busy
    fn_recs = []
    for fn, t in sorted(stats.function_totals().items()):
        fn_recs.append({
            "type": "farm_function", "fn": fn, "tasks": t["tasks"], "errors": t["errors"], "busy_s": t["busy_s"],
            "ewma_s": {str(r): per[fn].ewma_s for r, per in sorted(stats.by_worker.items()) if fn in per},
            "outcomes": dict(stats.outcomes.get(fn, {})), "retries": dict(stats.retries.get(fn, {})),
            "task_time": t["hist"].to_dict(),
        })
    retries: dict[str, int] = {}
    for per in stats.retries.values():
        for cause, n in per.items():
            retries[cause] = retries.get(cause, 0) + n
    outcomes: dict[str, int] = {}
    for per in stats.outcomes.values():
        for status, n in per.items():
            outcomes[status] = outcomes.get(status, 0) + n
    summary = {
        "type": "farm_summary", "seconds": span, "submitted": stats.submitted, "completed": stats.completed,
        "outcomes": outcomes, "pending": pending, "running": running,
        "throughput": stats.completed / span if span > 0 else None,
        "busy_s": sum(busy_by.values()), "retries": retries, "strategies": list(stats.strategies),
        "load": load_spread(tasks_by, busy_by),
    }
    ewma = []
    for fn in stats.ewma.functions():
        s = stats.ewma.series(fn, stats.t0)
        if len(s["ranks"]) > 1 and s["t"]:
            ewma.append(dict(s, type="farm_ewma"))
    head = {"type": "header", "format": "hpcdist-metrics", "version": 1, "kind": "farm",
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seconds": span,
            "workers": len(worker_recs)}
    head.update(header or {})
    doc = {"header": head, "summary": summary, "workers": worker_recs, "functions": fn_recs,
           "throughput": dict(stats.throughput.to_dict(now), type="farm_throughput"), "ewma": ewma}
    doc["findings"] = farm_findings(doc)
    return doc
