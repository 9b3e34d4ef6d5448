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

    A worker holds a label when it announced it at join (``Farm(labels=...)``) or, for
    labels starting with one of ``learn_prefixes`` (``"model:"`` by default), once this
    strategy has sent it a task carrying that label: the worker loaded the model then
    and keeps it in its cache. Among the holders, the least loaded wins. When no free
    candidate holds the labels (the holders are all busy, or none exists), the
    least-loaded other worker takes it (among equals, the one holding the fewest learnt
    models, which spreads models over the workers), and becomes a holder in turn.

    Parameters
    ----------
    learn_prefixes : tuple of str
        Labels learnt from routing (those of models loaded lazily on the worker).
    max_learned : int, optional
        Learnt labels remembered per worker, least recently routed forgotten first:
        set it to the number of models a worker's cache holds so that the strategy's
        picture follows the cache's evictions. None remembers all.

    Notes
    -----
    Labels are a preference here, not a requirement (``labels_required = False``): a
    task with a model label no worker announced is never refused, it is placed and
    teaches the strategy where that model now lives. Pure object: no MPI, no clock.
    """

    name = "affinity"
    labels_required = False

    def __init__(self, learn_prefixes: tuple[str, ...] = ("model:",), max_learned: int | None = None) -> None:
        if max_learned is not None and int(max_learned) < 1:
            raise InputError(f"max_learned must be >= 1 or None, got {max_learned}")
        self.learn_prefixes = tuple(learn_prefixes)
        self.max_learned = None if max_learned is None else int(max_learned)
        self._learned: dict[int, dict[str, None]] = {}  # rank -> labels, least recently routed first

    def __repr__(self) -> str:
        return f"Affinity(learn_prefixes={self.learn_prefixes!r}, max_learned={self.max_learned!r})"

    def labels_of(self, worker: WorkerView) -> frozenset[str]:
        """The labels ``worker`` holds: announced ones and learnt ones."""
        learned = self._learned.get(worker.rank)
        return worker.caps.labels | frozenset(learned) if learned else worker.caps.labels

    def holders(self, label: str) -> list[int]:
        """Ranks this strategy has learnt to hold ``label`` (announced labels not included)."""
        return sorted(r for r, labels in self._learned.items() if label in labels)

    def learn(self, rank: int, labels: "frozenset[str] | set[str] | list[str]") -> None:
        """Record that ``rank`` now holds ``labels`` (those with a learnt prefix)."""
        mine = [lab for lab in labels if lab.startswith(self.learn_prefixes)] if self.learn_prefixes else []
        if not mine:
            return
        held = self._learned.setdefault(rank, {})
        for lab in sorted(mine):
            held.pop(lab, None)
            held[lab] = None  # most recently used last
        if self.max_learned is not None:
            while len(held) > self.max_learned:
                del held[next(iter(held))]

    def forget(self, rank: int | None = None, label: str | None = None) -> None:
        """Drop learnt holdings: of one worker, of one label, or of one label on one worker."""
        ranks = [rank] if rank is not None else list(self._learned)
        for r in ranks:
            if label is None:
                self._learned.pop(r, None)
            else:
                self._learned.get(r, {}).pop(label, None)

    def choose(self, task, candidates, view):
        wanted = task.requires.labels
        pool = []
        if wanted:
            held = {w.rank: self.labels_of(w) for w in candidates}
            pool = [w for w in candidates if wanted <= held[w.rank]]
            if not pool:
                # Partial holders beat none: more shared labels first.
                best = max(len(wanted & held[w.rank]) for w in candidates)
                if best:
                    pool = [w for w in candidates if len(wanted & held[w.rank]) == best]
        if pool:
            pick = min(pool, key=lambda w: (w.in_flight / max(w.capacity, 1), w.in_flight, w.rank)).rank
        else:
            # Nobody free holds it: the least loaded, and among equals the one holding the
            # fewest learnt models, so that different models spread over the workers.
            pick = min(candidates, key=lambda w: (w.in_flight / max(w.capacity, 1), w.in_flight,
                                                  len(self._learned.get(w.rank, ())), w.rank)).rank
        if wanted:
            self.learn(pick, wanted)
        return pick


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
