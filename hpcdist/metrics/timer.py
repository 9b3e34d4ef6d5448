"""A cheap phase timer: ``with timer.span("compute"): ...`` adds the block's duration to a total.

Used where code wants per-phase seconds without the BSP engine (a custom superstep loop,
a farm task); :class:`~hpcdist.metrics.run.StepRecorder` turns a timer's totals into one
superstep record.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

__all__ = ["Timer"]


class Timer:
    """Accumulates ``time.perf_counter`` durations per phase name.

    One dict update per span: cheap enough to wrap every superstep phase (about a
    microsecond of overhead per span). Not thread-safe; use one timer per thread.

    Examples
    --------
    >>> t = Timer()
    >>> with t.span("compute"):
    ...     pass
    >>> sorted(t.totals)
    ['compute']
    """

    __slots__ = ("totals", "counts")

    def __init__(self) -> None:
        #: phase name -> seconds accumulated
        self.totals: dict[str, float] = {}
        #: phase name -> number of spans
        self.counts: dict[str, int] = {}

    @contextmanager
    def span(self, name: str) -> Iterator[None]:
        """Time the block and add its duration to ``totals[name]`` (also when it raises)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0)

    def add(self, name: str, seconds: float) -> None:
        """Add ``seconds`` to phase ``name`` as one span (for durations measured elsewhere)."""
        self.totals[name] = self.totals.get(name, 0.0) + seconds
        self.counts[name] = self.counts.get(name, 0) + 1

    def get(self, name: str) -> float:
        """Seconds accumulated in phase ``name`` (0.0 when it never ran)."""
        return self.totals.get(name, 0.0)

    def reset(self) -> dict[str, float]:
        """Clear the totals and return what they were (one superstep's phases, say)."""
        out = self.totals
        self.totals, self.counts = {}, {}
        return out

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v:.6f}s" for k, v in self.totals.items())
        return f"Timer({inner})"
