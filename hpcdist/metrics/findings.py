"""Findings: what the aggregated per-superstep arrays say about a run, as structured records.

Pure functions of numpy arrays (no MPI), so they are tested on synthetic traces. Every
finding is a dict ``{"kind", "severity", "message", "evidence"}``: ``message`` is one line
for people, ``evidence`` the numbers behind it for programs. Severities: ``"info"``,
``"warning"``.

The inputs are the per-superstep reductions over ranks that
:class:`~hpcdist.metrics.run.RunMetrics` holds (max, mean, argmax), never per-rank
records: a straggler is therefore the rank that was the *slowest* in each superstep of a
run of supersteps; a second rank that is also slow but never the slowest is not named.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = [
    "Finding",
    "finding",
    "step_ranges",
    "format_ranges",
    "imbalance_factor",
    "communication_estimate",
    "find_stragglers",
    "find_bound",
    "find_imbalance",
    "find_drift",
    "STRAGGLER_THRESHOLD",
    "STRAGGLER_CONSECUTIVE",
    "STRAGGLER_MIN_EXCESS_S",
    "IMBALANCE_WARN",
]

Finding = dict[str, Any]

#: A rank is slow in a superstep when its compute exceeds the mean by this fraction...
STRAGGLER_THRESHOLD = 0.20
#: ... for at least this many consecutive supersteps...
STRAGGLER_CONSECUTIVE = 3
#: ... and by at least this many seconds (100 us): on a shared node a descheduled rank shows
#: 10x the mean on a 50-microsecond compute, which is noise, not a straggler.
STRAGGLER_MIN_EXCESS_S = 1e-4
#: Overall imbalance (max/mean of the ranks' compute totals) above which it is a warning.
IMBALANCE_WARN = 1.2
#: A farm worker drifts when its EWMA of a function exceeds the median of the other workers' by this fraction...
DRIFT_THRESHOLD = 0.5
#: ... in at least this many consecutive samples...
DRIFT_CONSECUTIVE = 3
#: ... spanning at least this many seconds...
DRIFT_MIN_SPAN_S = 0.0
#: ... and by at least this many seconds (tasks of microseconds vary by 2x with no cause worth naming).
DRIFT_MIN_EXCESS_S = 1e-4


def finding(kind: str, severity: str, message: str, **evidence: Any) -> Finding:
    """One finding record."""
    return {"kind": kind, "severity": severity, "message": message, "evidence": evidence}


def step_ranges(steps: Sequence[int]) -> list[list[int]]:
    """``[1, 2, 3, 7, 9, 10]`` -> ``[[1, 3], [7, 7], [9, 10]]`` (sorted, inclusive ranges)."""
    out: list[list[int]] = []
    for s in sorted(int(x) for x in steps):
        if out and s == out[-1][1] + 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    return out


def format_ranges(ranges: Sequence[Sequence[int]], limit: int = 6) -> str:
    """``[[1, 3], [7, 7]]`` -> ``"1-3, 7"``; more than ``limit`` ranges end with ``", ..."``."""
    parts = [f"{a}" if a == b else f"{a}-{b}" for a, b in ranges[:limit]]
    return ", ".join(parts) + (", ..." if len(ranges) > limit else "")


def imbalance_factor(maximum: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``max / mean`` elementwise; 1.0 where the mean is 0 (nothing to balance)."""
    maximum = np.asarray(maximum, dtype=np.float64)
    mean = np.asarray(mean, dtype=np.float64)
    out = np.ones_like(maximum)
    np.divide(maximum, mean, out=out, where=mean > 0)
    return out


def communication_estimate(step_mean: np.ndarray, compute_max: np.ndarray) -> np.ndarray:
    """Seconds of a superstep not explained by the slowest rank's compute.

    In a bulk-synchronous superstep every rank waits for the slowest one inside the
    collectives, so a rank's exchange + reduce time is communication plus idle wait.
    Subtracting the wait (``compute_max - compute_r``) and averaging over ranks leaves
    ``mean(step_s) - max(compute_s)``: the communication on the critical path. Taking
    exchange + reduce as it is would make every rank but a straggler look
    communication-bound.
    """
    return np.maximum(np.asarray(step_mean, dtype=np.float64) - np.asarray(compute_max, dtype=np.float64), 0.0)


def find_stragglers(
    compute_max: np.ndarray,
    compute_mean: np.ndarray,
    compute_argmax: np.ndarray,
    supersteps: np.ndarray | None = None,
    *,
    threshold: float = STRAGGLER_THRESHOLD,
    consecutive: int = STRAGGLER_CONSECUTIVE,
    min_excess_s: float = STRAGGLER_MIN_EXCESS_S,
) -> list[Finding]:
    """Ranks that were the slowest, by more than ``threshold`` over the mean, for ``consecutive`` supersteps.

    Parameters
    ----------
    compute_max, compute_mean : numpy.ndarray, shape (S,)
        Per-superstep max and mean over ranks of the compute seconds.
    compute_argmax : numpy.ndarray of int, shape (S,)
        The rank that had the max.
    supersteps : numpy.ndarray of int, optional
        Superstep numbers (default ``0..S-1``); consecutive means consecutive entries.
    threshold : float
        Relative excess over the mean (0.2: 20 %).
    consecutive : int
        Shortest run of slow supersteps that counts.
    min_excess_s : float
        Smallest absolute excess (seconds) that counts.

    Returns
    -------
    list of dict
        One ``"straggler"`` warning per run of supersteps (a rank slow twice, with a
        gap, gives two), with evidence ``rank``, ``supersteps`` (first, last),
        ``count``, ``ratio`` (mean of max/mean over the run), ``ratio_max`` and
        ``excess_s`` (sum of max - mean: about the time the others waited).
    """
    cmax = np.asarray(compute_max, dtype=np.float64)
    cmean = np.asarray(compute_mean, dtype=np.float64)
    arg = np.asarray(compute_argmax, dtype=np.int64)
    steps = np.arange(cmax.shape[0]) if supersteps is None else np.asarray(supersteps, dtype=np.int64)
    slow = (cmax > cmean * (1.0 + threshold)) & (cmax - cmean >= min_excess_s)
    out: list[Finding] = []
    i, n = 0, cmax.shape[0]
    while i < n:
        if not slow[i]:
            i += 1
            continue
        j = i + 1
        while j < n and slow[j] and arg[j] == arg[i]:
            j += 1
        if j - i >= consecutive:
            ratio = imbalance_factor(cmax[i:j], cmean[i:j])
            rank, first, last = int(arg[i]), int(steps[i]), int(steps[j - 1])
            out.append(finding(
                "straggler", "warning",
                f"rank {rank} is a straggler: compute {ratio.mean():.1f}x the mean in supersteps {first}-{last}",
                rank=rank, supersteps=[first, last], count=j - i, ratio=float(ratio.mean()),
                ratio_max=float(ratio.max()), excess_s=float((cmax[i:j] - cmean[i:j]).sum()),
                threshold=threshold, consecutive=consecutive,
            ))
        i = j
    return out


def find_bound(
    compute_max: np.ndarray,
    step_mean: np.ndarray,
    supersteps: np.ndarray | None = None,
) -> list[Finding]:
    """Whether supersteps are communication- or compute-bound.

    A superstep is communication-bound when :func:`communication_estimate` exceeds the
    slowest rank's compute. Returns one finding: ``"communication_bound"`` (warning)
    when at least half the supersteps are, else ``"compute_bound"`` (info), naming the
    communication-bound supersteps either way (``evidence["communication_bound"]`` is a
    list of inclusive ranges). Empty for a run without supersteps.
    """
    cmax = np.asarray(compute_max, dtype=np.float64)
    n = cmax.shape[0]
    if n == 0:
        return []
    steps = np.arange(n) if supersteps is None else np.asarray(supersteps, dtype=np.int64)
    comm = communication_estimate(step_mean, cmax)
    bound = comm > cmax
    k = int(bound.sum())
    ranges = step_ranges(steps[bound])
    total_comm, total_compute = float(comm.sum()), float(cmax.sum())
    ratio = total_comm / total_compute if total_compute > 0 else float("inf") if total_comm > 0 else 1.0
    evidence = dict(communication_bound=ranges, count=k, supersteps=n, fraction=k / n,
                    communication_s=total_comm, compute_s=total_compute,
                    ratio=ratio if np.isfinite(ratio) else None)
    where = f" (supersteps {format_ranges(ranges)})" if k else ""
    share = f"communication {ratio:.2f}x compute" if np.isfinite(ratio) else "no compute"
    if 2 * k >= n:
        return [finding("communication_bound", "warning",
                        f"{k} of {n} supersteps are communication-bound: {share} on the critical path{where}",
                        **evidence)]
    return [finding("compute_bound", "info",
                    f"{n - k} of {n} supersteps are compute-bound: {share} on the critical path{where}",
                    **evidence)]


def find_imbalance(
    compute_max: np.ndarray,
    compute_mean: np.ndarray,
    total_max: float,
    total_mean: float,
    supersteps: np.ndarray | None = None,
    *,
    warn: float = IMBALANCE_WARN,
) -> list[Finding]:
    """The load imbalance factor (max/mean of compute), overall and per superstep.

    Overall is ``max_r(total compute of r) / mean_r(...)``, which is not the mean of the
    per-superstep factors (a rank slow in one superstep and fast in the next balances
    out overall but still makes the others wait twice). One ``"imbalance"`` finding,
    a warning when the overall factor or the mean per-superstep factor exceeds ``warn``.
    """
    cmax = np.asarray(compute_max, dtype=np.float64)
    n = cmax.shape[0]
    if n == 0:
        return []
    steps = np.arange(n) if supersteps is None else np.asarray(supersteps, dtype=np.int64)
    per = imbalance_factor(cmax, compute_mean)
    overall = float(imbalance_factor(np.array([total_max]), np.array([total_mean]))[0])
    worst = int(np.argmax(per))
    mean_per = float(per.mean())
    severity = "warning" if max(overall, mean_per) > warn else "info"
    return [finding(
        "imbalance", severity,
        f"load imbalance {overall:.2f} overall (max/mean compute); per superstep mean {mean_per:.2f}, "
        f"worst {per[worst]:.2f} in superstep {int(steps[worst])}",
        overall=overall, per_superstep_mean=mean_per, worst=float(per[worst]), worst_superstep=int(steps[worst]),
        warn=warn,
    )]


def find_drift(
    t: Sequence[float],
    ewma_s: Sequence[Sequence[float | None]],
    ranks: Sequence[int],
    *,
    fn: str = "",
    threshold: float = DRIFT_THRESHOLD,
    consecutive: int = DRIFT_CONSECUTIVE,
    min_span_s: float = DRIFT_MIN_SPAN_S,
    min_excess_s: float = DRIFT_MIN_EXCESS_S,
) -> list[Finding]:
    """Farm workers whose EWMA task time of one function drifts above the others', for a sustained period.

    At each sample, a worker is slow when its EWMA exceeds the median of the *other*
    workers' EWMAs (those known at that sample) by more than ``threshold`` (relative)
    and ``min_excess_s`` (absolute). A run of at least ``consecutive`` slow samples
    spanning at least ``min_span_s`` seconds is one finding. Needs two workers with an
    EWMA at a sample; a worker's unknown EWMA (None or NaN) ends its run.

    Parameters
    ----------
    t : sequence of float, shape (S,)
        Sample times (seconds, increasing).
    ewma_s : sequence of sequences, shape (S, W)
        EWMA of the function's task time on each worker at each sample; None/NaN unknown.
    ranks : sequence of int, shape (W,)
        The workers' ranks, the columns of ``ewma_s``.
    fn : str
        The function's name, for the message.

    Returns
    -------
    list of dict
        One ``"farm_drift"`` warning per run, with evidence ``rank``, ``fn``, ``t``
        [first, last] (seconds), ``samples``, ``ratio`` (mean over the run of EWMA /
        median of the others), ``ratio_max``, ``ewma_s`` (at the end of the run),
        ``median_others_s`` (same), ``threshold``.
    """
    times = np.asarray(t, dtype=np.float64)
    vals = np.array([[np.nan if v is None else float(v) for v in row] for row in ewma_s], dtype=np.float64)
    if vals.size == 0:
        return []
    vals = vals.reshape(times.shape[0], len(ranks))
    n_s, n_w = vals.shape
    if n_w < 2:
        return []
    ratio = np.full((n_s, n_w), np.nan)
    median_others = np.full((n_s, n_w), np.nan)
    for s in range(n_s):
        row = vals[s]
        known = ~np.isnan(row)
        if known.sum() < 2:
            continue
        for w in np.flatnonzero(known):
            others = row[known & (np.arange(n_w) != w)]
            med = float(np.median(others))
            median_others[s, w] = med
            ratio[s, w] = row[w] / med if med > 0 else np.inf
    slow = (ratio > 1.0 + threshold) & (vals - median_others >= min_excess_s)
    slow &= ~np.isnan(ratio)
    out: list[Finding] = []
    for w in range(n_w):
        s = 0
        while s < n_s:
            if not slow[s, w]:
                s += 1
                continue
            e = s + 1
            while e < n_s and slow[e, w]:
                e += 1
            span = float(times[e - 1] - times[s])
            if e - s >= consecutive and span >= min_span_s:
                r = ratio[s:e, w]
                r = r[np.isfinite(r)]
                mean_r = float(r.mean()) if r.size else float("inf")
                rank = int(ranks[w])
                what = f" of {fn}" if fn else ""
                out.append(finding(
                    "farm_drift", "warning",
                    f"farm worker {rank} drifts: its EWMA task time{what} is {mean_r:.1f}x the median of the "
                    f"other workers from t={times[s]:.1f} s to {times[e - 1]:.1f} s ({e - s} samples)",
                    rank=rank, fn=fn, t=[float(times[s]), float(times[e - 1])], samples=e - s,
                    ratio=mean_r, ratio_max=float(r.max()) if r.size else None,
                    ewma_s=float(vals[e - 1, w]), median_others_s=float(median_others[e - 1, w]),
                    threshold=threshold, consecutive=consecutive, min_span_s=min_span_s,
                ))
            s = e
    return out
