"""Scheduling strategies: which free worker gets a task. Pure objects, no MPI.

The scheduler filters workers first (alive, not draining or quarantined, a free slot,
requirements met, not tried before when an untried worker exists); a strategy only
picks among those ``candidates``. A strategy may return None to leave the task
queued for now (it is offered again when a worker frees up).

To write your own::

    class Cheapest(Strategy):
        name = "cheapest"
        def choose(self, task, candidates, view):
            return min(candidates, key=lambda w: (w.caps.cores, w.rank)).rank

and pass ``Farm(strategy=Cheapest())``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Sequence

from hpcdist.runtime.errors import InputError

if TYPE_CHECKING:
    from hpcdist.farm.requirements import Capabilities
    from hpcdist.farm.tasks import Task

__all__ = [
    "WorkerView",
    "Strategy",
    "RoundRobin",
    "LeastLoaded",
    "CapabilityMatch",
    "Latency",
    "Affinity",
    "make_strategy",
    "STRATEGIES",
]


class WorkerView(Protocol):
    """What a strategy may read about a worker (the scheduler's worker state)."""

    rank: int
    caps: "Capabilities"
    ewma_s: float | None  # EWMA of this worker's task run time, None before its first result
    tasks_done: int

    @property
    def in_flight(self) -> int: ...

    @property
    def capacity(self) -> int: ...


class Strategy:
    """Base class: pick a rank among ``candidates`` for ``task``.

    Attributes
    ----------
    name : str
        The name ``Farm(strategy=...)`` accepts.
    labels_required : bool
        Whether a task's ``Requirements.labels`` are hard requirements (True) or a
        preference this strategy handles itself (False, as in :class:`Affinity`).
    """

    name = "base"
    labels_required = True

    def choose(self, task: "Task", candidates: Sequence[WorkerView], view: object) -> int | None:
        """Return the chosen worker's rank, or None to keep the task queued.

        Parameters
        ----------
        task : Task
            The task to place.
        candidates : sequence of WorkerView
            Workers that may take it now, in rank order; never empty.
        view : Scheduler
            The whole scheduler, read-only, for strategies that look wider.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class RoundRobin(Strategy):
    """Each task to the next worker in rank order (skipping those without a free slot)."""

    name = "round_robin"

    def __init__(self) -> None:
        self._last = -1

    def choose(self, task, candidates, view):
        after = [w for w in candidates if w.rank > self._last]
        pick = (after or candidates)[0].rank
        self._last = pick
        return pick


class LeastLoaded(Strategy):
    """The worker with the fewest tasks in flight relative to its depth; ties to the lowest rank."""

    name = "least_loaded"

    def choose(self, task, candidates, view):
        return min(candidates, key=lambda w: (w.in_flight / max(w.capacity, 1), w.in_flight, w.rank)).rank


class CapabilityMatch(Strategy):
    """The tightest fit: the least-endowed worker that meets the requirements.

    Leaves big workers (many cores, GPUs, memory) free for the tasks that need them.
    """

    name = "capability"

    def choose(self, task, candidates, view):
        def surplus(w: WorkerView) -> tuple:
            c = w.caps
            return (c.gpus - task.requires.gpu, c.cores - task.requires.cpus, c.memory or 0, w.in_flight, w.rank)

        return min(candidates, key=surplus).rank


class Latency(Strategy):
    """The worker expected to finish it first: EWMA task time x (tasks ahead + 1).

    A worker without measurements yet counts as fastest, so that every worker is
    measured early.
    """

    name = "latency"

    def choose(self, task, candidates, view):
        def expected(w: WorkerView) -> tuple:
            ewma = w.ewma_s if w.ewma_s is not None else 0.0
            return (ewma * (w.in_flight + 1), w.in_flight, w.rank)

        return min(candidates, key=expected).rank


class Affinity(Strategy):
    """Route a task to workers holding its labels (e.g. ``model:a``); fall back when none is free.

    Among the holders, the least loaded wins. When no candidate holds the labels (the
    holders are all busy, or none exists), the least-loaded other worker takes it.
    """

    name = "affinity"
    labels_required = False

    def choose(self, task, candidates, view):
        wanted = task.requires.labels
        pool = [w for w in candidates if wanted <= w.caps.labels] if wanted else []
        if not pool and wanted:
            # Partial holders beat none: more shared labels first.
            best = max(len(wanted & w.caps.labels) for w in candidates)
            pool = [w for w in candidates if len(wanted & w.caps.labels) == best]
        pool = pool or list(candidates)
        return min(pool, key=lambda w: (w.in_flight / max(w.capacity, 1), w.in_flight, w.rank)).rank


STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (RoundRobin, LeastLoaded, CapabilityMatch, Latency, Affinity)
}


def make_strategy(strategy: "str | Strategy") -> Strategy:
    """A strategy object from a name (``"least_loaded"``) or an instance (returned as is).

    Raises
    ------
    InputError
        An unknown name; the message lists the known ones.
    """
    if isinstance(strategy, Strategy):
        return strategy
    if isinstance(strategy, type) and issubclass(strategy, Strategy):
        return strategy()
    cls = STRATEGIES.get(str(strategy).lower().replace("-", "_"))
    if cls is None:
        raise InputError(f"unknown strategy {strategy!r}; choose one of {', '.join(sorted(STRATEGIES))} or pass a Strategy")
    return cls()
