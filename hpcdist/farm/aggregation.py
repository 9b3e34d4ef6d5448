"""Combining the results of an ensemble: first, all, majority, weighted mean, or a callable.

The pure combiners (:func:`majority`, :func:`weighted_mean`) work on plain lists and are
tested without MPI; :func:`combine` waits on the futures.

Errors: ``first`` and ``majority`` use the members that succeeded and fail only when
none did; ``all``, ``weighted_mean`` and a callable need every member and raise the
first member's error (in ``fns`` order).
"""

from __future__ import annotations

import concurrent.futures as cf
import pickle
import time
from typing import Any, Callable, Sequence

from hpcdist.runtime.errors import InputError

__all__ = ["majority", "weighted_mean", "combine", "AGGREGATES"]

AGGREGATES = ("first", "all", "majority", "weighted_mean")


def _vote_key(value: Any) -> Any:
    try:
        hash(value)
        return ("h", value)
    except TypeError:
        try:
            return ("p", pickle.dumps(value, protocol=5))  # arrays, lists: equal bytes, equal vote
        except Exception:  # noqa: BLE001
            return ("r", repr(value))


def majority(values: Sequence[Any]) -> Any:
    """The most frequent value; a tie goes to the tied value that appears first.

    Raises
    ------
    ValueError
        When ``values`` is empty.
    """
    if not values:
        raise ValueError("majority of no values")
    counts: dict[Any, int] = {}
    first: dict[Any, int] = {}
    for i, v in enumerate(values):
        k = _vote_key(v)
        counts[k] = counts.get(k, 0) + 1
        first.setdefault(k, i)
    best = max(counts, key=lambda k: (counts[k], -first[k]))
    return values[first[best]]


def weighted_mean(values: Sequence[Any], weights: Sequence[float] | None = None) -> Any:
    """``sum(w * v) / sum(w)``; equal weights when ``weights`` is None. Works on numbers and arrays."""
    if not values:
        raise ValueError("weighted mean of no values")
    if weights is None:
        weights = [1.0] * len(values)
    if len(weights) != len(values):
        raise InputError(f"weighted_mean: {len(weights)} weights for {len(values)} results")
    total = float(sum(weights))
    if total == 0:
        raise InputError("weighted_mean: the weights sum to zero")
    acc = None
    for w, v in zip(weights, values):
        term = v * w
        acc = term if acc is None else acc + term
    return acc / total


def combine(farm: Any, futures: list, aggregate: Any, *, weights: Sequence[float] | None = None,
            timeout: float | None = None) -> Any:
    """Wait for an ensemble's futures and combine them as ``aggregate`` says."""
    end = None if timeout is None else time.monotonic() + timeout

    def left() -> float | None:
        return None if end is None else max(0.0, end - time.monotonic())

    if aggregate == "first":
        return _first(farm, futures, left)
    if isinstance(aggregate, str) and aggregate not in AGGREGATES:
        raise InputError(f"unknown aggregate {aggregate!r}; choose one of {', '.join(AGGREGATES)} or pass a callable")
    cf.wait(futures, timeout=left()) if end is not None else [f.exception() for f in futures]
    if aggregate == "majority":
        good = [f.result() for f in futures if f.done() and not f.cancelled() and f.exception() is None]
        if not good:
            raise _first_error(futures)
        return majority(good)
    values = [f.result(timeout=left()) for f in futures]
    if aggregate == "all":
        return values
    if aggregate == "weighted_mean":
        return weighted_mean(values, weights)
    if callable(aggregate):
        return aggregate(values)
    raise InputError(f"aggregate must be a name or a callable, got {type(aggregate).__name__}")


def _first(farm: Any, futures: list, left: Callable[[], float | None]) -> Any:
    pending = set(futures)
    while pending:
        farm.engine.wait_until(lambda: any(f.done() for f in pending), left())
        done = [f for f in futures if f in pending and f.done()]
        if not done:
            raise cf.TimeoutError("ensemble: no member finished in time")
        for f in done:
            pending.discard(f)
            if not f.cancelled() and f.exception() is None:
                for other in pending:
                    other.cancel()
                return f.result()
    raise _first_error(futures)


def _first_error(futures: list) -> BaseException:
    for f in futures:
        if f.done() and not f.cancelled() and f.exception() is not None:
            return f.exception()
    return cf.CancelledError("every member of the ensemble was cancelled")
