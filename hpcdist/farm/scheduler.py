"""The farm's scheduling state machine: ``Scheduler.handle(event) -> list[action]``.

Pure: no MPI, no threads, no clock of its own (every event carries ``now``). The MPI
driver (:mod:`hpcdist.farm.driver`) turns messages into events and actions into
messages; the unit tests drive it by hand (the design of dask's ``WorkerState``).

What it owns:

* the queue: higher ``priority`` first, FIFO within a priority;
* the lifecycle ``pending -> running -> completed | error | cancelled | timed_out``;
* a bounded number of tasks in flight per worker (adaptive: about ``prefetch_s`` of
  work, at least 2 so that a worker never waits for its next task, at most 256);
* retries after ``backoff ** attempt`` seconds, on a worker not tried before where one
  exists, counted by cause: the task's own error or timeout uses up ``retries``; a
  lost, quarantined or drained worker does not;
* timeouts: the task is marked timed out (or retried), the stuck worker is sent a
  cancel and quarantined until it reports the task ended;
* liveness: silent for ``heartbeat_timeout`` -> suspect (no new work, pinged); silent
  for ``failure_timeout`` with no proof of life (:class:`Alive`) -> failed, its tasks
  re-queued; a gap of more than ``heartbeat_timeout`` between two ticks is the
  coordinator's own silence and does not count against the workers;
* dependencies (``after``): results passed as leading arguments; a failed dependency
  fails its dependents with :class:`DependencyFailed`;
* requirements no worker can ever meet fail at once with :class:`RequirementError`;
* the walltime: a task whose expected time (its estimate, else the EWMA of its
  function) does not fit before ``deadline`` fails with :class:`WalltimeExceeded`;
* the strategy, which :class:`SetStrategy` replaces while the farm runs;
* the metrics' counters (:class:`~hpcdist.metrics.farm.FarmStats`, constant memory;
  :meth:`Scheduler.metrics` turns them into a metrics document).

Each worker runs its tasks one at a time, in the order it received them, so the
coordinator knows which of a worker's tasks is running (the oldest) and since when
(when the previous one's result arrived).
"""

from __future__ import annotations

import enum
import heapq
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterable

from hpcdist.farm.requirements import Capabilities, Requirements
from hpcdist.farm.strategies import LeastLoaded, Strategy
from hpcdist.farm.tasks import (
    DependencyFailed,
    DrainRequested,
    NoWorkersLeft,
    RequirementError,
    Task,
    TaskInfo,
    TaskStatus,
    TaskTimeout,
    WalltimeExceeded,
)
from hpcdist.metrics.farm import FOLD_AT, FarmStats, farm_metrics

__all__ = [
    "Scheduler",
    "WorkerStatus",
    "WorkerState",
    "WorkerInfo",
    # events
    "Submit",
    "WorkerJoined",
    "Results",
    "Outcome",
    "Heartbeat",
    "Alive",
    "Tick",
    "Cancel",
    "Drain",
    "DrainAll",
    "LeaveRequest",
    "WorkerLost",
    "SetStrategy",
    # actions
    "Dispatch",
    "SendCancel",
    "Resolve",
    "Ping",
    "Quarantine",
    "WorkerFailed",
    "Drained",
]

#: The statuses tested on every task's path, as module globals (an enum member through
#: its class costs a lookup more).
_PENDING = TaskStatus.PENDING
_RUNNING = TaskStatus.RUNNING
_COMPLETED = TaskStatus.COMPLETED

EWMA_ALPHA = 0.2
MIN_DEPTH = 2
MAX_DEPTH = 256
#: Tasks the dispatcher may pass over in one pass (held back by requirements or the
#: strategy) before it stops looking: bounds the cost of a pass on a long queue.
SKIP_LIMIT = 256
#: Queued tasks :meth:`Scheduler.slack` looks at per worker; the rest count at their average.
SLACK_SAMPLE = 8


# ----------------------------------------------------------------------------- events
@dataclass
class Submit:
    """A new task. ``known`` gives the outcome of dependencies that already finished:
    ``{task_id: (status, value_or_error)}``."""

    task: Task
    now: float
    known: dict[int, tuple[TaskStatus, Any]] = field(default_factory=dict)


@dataclass
class WorkerJoined:
    rank: int
    caps: Capabilities
    now: float


#: One task's end on a worker: (task id, "ok" | "error" | "cancelled", value or exception, seconds it ran).
Outcome = tuple[int, str, Any, float]


@dataclass
class Results:
    rank: int
    outcomes: list[Outcome]
    now: float


@dataclass
class Heartbeat:
    """A sign of life from ``rank``; ``running`` lists the task ids it is running (None: not said)."""

    rank: int
    now: float
    running: tuple[int, ...] | None = None
    resources: dict[str, Any] | None = None


@dataclass
class Alive:
    """Proof from outside MPI that ``rank``'s process lives (busy in C code, not dead)."""

    rank: int
    now: float


@dataclass
class Tick:
    now: float


@dataclass
class Cancel:
    task_id: int
    now: float


@dataclass
class Drain:
    rank: int
    now: float


@dataclass
class DrainAll:
    """Stop handing out work (a drain signal); pending tasks end with DrainRequested once idle.

    Running tasks may finish for ``grace_s`` seconds (None: as long as they take); then
    they are cancelled on their workers and returned to the queue, not counted as retries
    (a rerun of the job runs them again).
    """

    now: float
    grace_s: float | None = None


@dataclass
class LeaveRequest:
    """A worker asks to leave the pool (it got a drain signal on its own).

    It is drained like :class:`Drain`. When every live worker has asked, the whole farm
    drains as for :class:`DrainAll` (with ``grace_s``): the job is being stopped.
    """

    rank: int
    now: float
    grace_s: float | None = None


@dataclass
class WorkerLost:
    rank: int
    now: float
    reason: str = "lost"


@dataclass
class SetStrategy:
    """Place the tasks from now on with ``strategy`` (tasks already handed out stay where they are)."""

    strategy: Strategy
    now: float = 0.0


# ---------------------------------------------------------------------------- actions
@dataclass
class Dispatch:
    rank: int
    tasks: list[Task]


@dataclass
class SendCancel:
    rank: int
    task_ids: list[int]


@dataclass
class Resolve:
    task: Task
    status: TaskStatus
    value: Any  # the result, or the exception


@dataclass
class Ping:
    rank: int


@dataclass
class Quarantine:
    rank: int
    reason: str


@dataclass
class WorkerFailed:
    rank: int
    reason: str


@dataclass
class Drained:
    """Emitted once after :class:`DrainAll` when no task runs any more."""


# ---------------------------------------------------------------------------- workers
class WorkerStatus(str, enum.Enum):
    ONLINE = "online"  # idle, takes work
    BUSY = "busy"  # runs tasks
    DRAINING = "draining"  # finishes what it has, takes nothing new
    OFFLINE = "offline"  # drained, or lost
    ERROR = "error"  # quarantined (a task of it timed out) until it answers


class WorkerState:
    """The scheduler's view of one worker (read by strategies through :class:`WorkerView`)."""

    __slots__ = (
        "rank", "caps", "running", "head_since", "ewma_s", "tasks_done", "last_seen", "last_alive",
        "suspect", "stuck", "draining", "lost", "lost_reason", "resources", "fixed_depth", "prefetch_s", "capacity",
        "joined", "left", "peak_rss", "counters",
    )

    def __init__(self, rank: int, caps: Capabilities, now: float, fixed_depth: int | None, prefetch_s: float) -> None:
        self.rank = rank
        self.caps = caps
        self.running: OrderedDict[int, float] = OrderedDict()  # in execution order; the first one runs
        self.head_since = now
        self.ewma_s: float | None = None
        self.tasks_done = 0
        self.last_seen = now
        self.last_alive = now
        self.suspect = False
        self.stuck: set[int] = set()  # timed-out tasks it has not reported ended
        self.draining = False
        self.lost = False
        self.lost_reason = ""
        self.resources: dict[str, Any] = {}
        self.fixed_depth = fixed_depth
        self.prefetch_s = prefetch_s
        self.capacity = fixed_depth if fixed_depth is not None else MIN_DEPTH  # tasks it may hold at once
        self.joined = now
        self.left: float | None = None  # when it was lost
        self.peak_rss: int | None = None  # the largest RSS its resource updates reported
        self.counters: dict[str, Any] = {}  # fn -> FnCounter (the scheduler's FarmStats owns them)

    @property
    def in_flight(self) -> int:
        return len(self.running)

    def observe(self, elapsed: float) -> None:
        """Fold one task's run time into the EWMA and adapt the depth (about ``prefetch_s`` of work)."""
        self.ewma_s = elapsed if self.ewma_s is None else (1 - EWMA_ALPHA) * self.ewma_s + EWMA_ALPHA * elapsed
        if self.fixed_depth is None:
            self.capacity = max(MIN_DEPTH, min(MAX_DEPTH, math.ceil(self.prefetch_s / max(self.ewma_s, 1e-7))))

    @property
    def quarantined(self) -> bool:
        return bool(self.stuck)

    @property
    def available(self) -> bool:
        """May receive new tasks."""
        return not (self.lost or self.draining or self.suspect or self.stuck)

    @property
    def status(self) -> WorkerStatus:
        if self.lost:
            return WorkerStatus.OFFLINE
        if self.stuck:
            return WorkerStatus.ERROR
        if self.draining:
            return WorkerStatus.DRAINING if self.running else WorkerStatus.OFFLINE
        return WorkerStatus.BUSY if self.running else WorkerStatus.ONLINE

    def info(self) -> "WorkerInfo":
        return WorkerInfo(
            rank=self.rank, status=self.status, caps=self.caps, in_flight=self.in_flight, capacity=self.capacity,
            tasks_done=self.tasks_done, ewma_s=self.ewma_s, suspect=self.suspect, quarantined=self.quarantined,
            resources=dict(self.resources), reason=self.lost_reason,
        )


@dataclass(frozen=True)
class WorkerInfo:
    """A snapshot of one worker, as :meth:`Farm.workers` returns it."""

    rank: int
    status: WorkerStatus
    caps: Capabilities
    in_flight: int
    capacity: int
    tasks_done: int
    ewma_s: float | None
    suspect: bool
    quarantined: bool
    resources: dict[str, Any]
    reason: str = ""


# -------------------------------------------------------------------------- scheduler
class Scheduler:
    """The pure scheduling state machine.

    Parameters
    ----------
    strategy : Strategy
        Picks a worker among the candidates.
    backoff : float
        A retry waits ``backoff ** attempt`` seconds (attempt 1, 2, ...).
    heartbeat_timeout : float
        Silence after which a worker is suspect (no new work; pinged).
    failure_timeout : float, optional
        Silence, with no proof of life, after which a worker is failed (default 2x
        ``heartbeat_timeout``).
    max_in_flight : int, optional
        Tasks in flight per worker; None adapts it to about ``prefetch_s`` of work.
    prefetch_s : float
        Seconds of work to keep queued at a worker when adapting the depth.
    deadline : float, optional
        When the allocation ends, on the events' clock; ``margin_s`` is kept free.
    history : int
        Finished tasks remembered for :meth:`task_info` (oldest forgotten first).
    """

    def __init__(
        self,
        strategy: Strategy | None = None,
        *,
        backoff: float = 1.5,
        heartbeat_timeout: float = 10.0,
        failure_timeout: float | None = None,
        max_in_flight: int | None = None,
        prefetch_s: float = 0.005,
        deadline: float | None = None,
        margin_s: float = 0.0,
        history: int = 100_000,
    ) -> None:
        self.strategy = strategy or LeastLoaded()
        self.backoff = backoff
        self.heartbeat_timeout = heartbeat_timeout
        self.failure_timeout = failure_timeout if failure_timeout is not None else 2 * heartbeat_timeout
        self.max_in_flight = max_in_flight
        self.prefetch_s = prefetch_s
        self.deadline = deadline
        self.margin_s = margin_s
        self.workers: dict[int, WorkerState] = {}
        self._last_tick: float | None = None  # when this scheduler last looked at the clock
        self.tasks: dict[int, Task] = {}  # unfinished tasks
        self.history: OrderedDict[int, Task] = OrderedDict()  # finished, payload dropped
        self.history_size = history
        self.fn_ewma: dict[str, float] = {}
        self.draining = False
        self._leaving: set[int] = set()  # workers that asked to leave (LeaveRequest)
        self._drain_deadline: float | None = None
        self._drained_sent = False
        self._ready: list[tuple[int, int, Task]] = []
        self._delayed: list[tuple[float, int, Task]] = []
        self._seq = 0
        self._dispatch_seq = 0
        self.n_running = 0
        self._handlers: dict[type, Any] = {}
        self._workers_version = 0  # bumped whenever the set of usable workers changes
        self._possible_cache: dict[Requirements, tuple[int, bool]] = {}
        #: Counters for the metrics file and the load report (constant memory; see hpcdist.metrics.farm).
        self.stats = FarmStats(alpha=EWMA_ALPHA)
        self._started = False
        self.stats.strategy(0.0, _strategy_name(self.strategy))

    # ------------------------------------------------------------------ public queries
    @property
    def n_pending(self) -> int:
        return len(self.tasks) - self.n_running

    @property
    def idle(self) -> bool:
        return not self.tasks

    def task_info(self, task_id: int) -> TaskInfo | None:
        task = self.tasks.get(task_id) or self.history.get(task_id)
        return task.info() if task is not None else None

    def task_infos(self, status: TaskStatus | str | None = None) -> list[TaskInfo]:
        wanted = TaskStatus(status) if status is not None else None
        live = [t.info() for t in self.tasks.values() if wanted is None or t.status == wanted]
        done = [t.info() for t in self.history.values() if wanted is None or t.status == wanted]
        return sorted(live + done, key=lambda i: i.id)

    def worker_infos(self) -> list[WorkerInfo]:
        return [w.info() for w in sorted(self.workers.values(), key=lambda w: w.rank)]

    def metrics(self, now: float, *, traffic: dict[int, Any] | None = None,
                header: dict[str, Any] | None = None) -> dict[str, Any]:
        """The farm's metrics document at ``now`` (see :func:`hpcdist.metrics.farm.farm_metrics`)."""
        self.stats.tick(now)  # completions since the last tick
        workers = [{"rank": w.rank, "host": w.caps.host, "status": w.status.value, "joined": w.joined,
                    "left": w.left, "ewma_s": w.ewma_s, "peak_rss": w.peak_rss, "tasks_done": w.tasks_done}
                   for w in self.workers.values()]
        head = {"strategy": _strategy_name(self.strategy)}
        head.update(header or {})
        return farm_metrics(self.stats, workers, now=now, traffic=traffic, header=head,
                            pending=self.n_pending, running=self.n_running)

    # ------------------------------------------------------------------------ handle
    def handle(self, event: Any) -> list[Any]:
        """Apply one event; return the actions the driver must carry out, in order."""
        return self.handle_many((event,))

    def handle_many(self, events: Iterable[Any]) -> list[Any]:
        """Apply several events, then hand out work once (cheaper than one :meth:`handle` each)."""
        actions: list[Any] = []
        now = None
        for event in events:
            handler = self._handlers.get(type(event))
            if handler is None:
                handler = getattr(self, "_on_" + type(event).__name__, None)
                if handler is None:
                    raise TypeError(f"unknown scheduler event {type(event).__name__}")
                self._handlers[type(event)] = handler
            handler(event, actions)
            now = event.now
        if now is None:
            return actions
        if not self._started:
            self._started = True
            self.stats.start(now)  # the events' clock is the caller's: the first event sets time zero
        if self._ready:
            self._dispatch(now, actions)
        if self.draining and not self._drained_sent and self.n_running == 0:
            self._drained_sent = True
            for task in [t for t in self.tasks.values() if t.status == TaskStatus.PENDING]:
                self._finish(task, TaskStatus.ERROR, DrainRequested("the farm drained before this task ran"), now, actions)
            actions.append(Drained())
        return actions

    # ------------------------------------------------------------------------ events
    def _on_WorkerJoined(self, ev: WorkerJoined, actions: list) -> None:
        w = self.workers[ev.rank] = WorkerState(ev.rank, ev.caps, ev.now, self.max_in_flight, self.prefetch_s)
        w.counters = self.stats.by_worker.setdefault(ev.rank, {})
        self._workers_version += 1

    def _on_SetStrategy(self, ev: SetStrategy, actions: list) -> None:
        self.strategy = ev.strategy
        # labels_required may differ: which workers can run a task is to be worked out again.
        self._possible_cache.clear()
        self._workers_version += 1
        self.stats.strategy(ev.now, _strategy_name(ev.strategy))

    def _on_Submit(self, ev: Submit, actions: list) -> None:
        task = ev.task
        task.submitted_at = ev.now
        task.status = _PENDING
        self.tasks[task.id] = task
        self.stats.submitted += 1
        for pos, dep_id in enumerate(task.after):
            if dep_id in ev.known:
                status, value = ev.known[dep_id]
                if status != TaskStatus.COMPLETED:
                    self._finish(task, TaskStatus.ERROR, _dependency_error(dep_id, status, value), ev.now, actions)
                    return
                task.dep_values[pos] = value
                continue
            dep = self.tasks.get(dep_id)
            if dep is None:
                info = self.history.get(dep_id)
                status = info.status if info is not None else None
                reason = f"its outcome ({status.value if status else 'unknown'}) is no longer held by the scheduler"
                self._finish(task, TaskStatus.ERROR, DependencyFailed(f"dependency task {dep_id}: {reason}"), ev.now, actions)
                return
            dep.dependents.append((task.id, pos))
            task.n_unmet += 1
        if not self._check_possible(task, ev.now, actions):
            return
        if task.n_unmet == 0:
            self._push_ready(task)

    def _on_Results(self, ev: Results, actions: list) -> None:
        w = self.workers.get(ev.rank)
        if w is None or w.lost:
            return  # a worker declared failed: its tasks are already elsewhere
        self._seen(w, ev.now)
        counters = w.counters
        stats = self.stats
        dirty = stats.dirty
        n_ok = 0
        for task_id, kind, value, elapsed in ev.outcomes:
            if task_id in w.stuck:
                w.stuck.discard(task_id)
                continue
            if task_id not in w.running:
                continue  # stale: cancelled and re-queued while in flight
            self._remove_running(w, task_id, ev.now)
            w.tasks_done += 1
            task = self.tasks.get(task_id)
            if kind != "cancelled" and elapsed is not None:
                w.observe(elapsed)
                known = task if task is not None else self.history.get(task_id)
                fn = known.fn_name if known is not None else ""
                c = counters.get(fn)
                if c is None:
                    c = stats.counter(ev.rank, fn)
                # Appended only: folded into the counters on the tick (see FnCounter).
                pending = c.pending
                if not pending:
                    dirty.append(c)
                pending.append(elapsed)
                if kind == "error":
                    c.errors += 1
            if task is None or task.status != _RUNNING or task.worker != ev.rank:
                continue  # cancelled by the user while it ran: the slot is free now, nothing else
            self.n_running -= 1
            if kind == "ok":
                n_ok += 1
                task.elapsed = elapsed
                if elapsed is not None and task.fn_name:
                    old = self.fn_ewma.get(task.fn_name)
                    self.fn_ewma[task.fn_name] = elapsed if old is None else (1 - EWMA_ALPHA) * old + EWMA_ALPHA * elapsed
                self._finish(task, _COMPLETED, value, ev.now, actions)
            elif kind == "error":
                task.errors_used += 1
                if task.errors_used <= task.retries:
                    self._retry(task, ev.now, counted=True, cause="error")
                else:
                    self._finish(task, TaskStatus.ERROR, value, ev.now, actions)
            else:  # the worker gave it back (it drains): not the task's fault
                self._retry(task, ev.now, counted=False, cause="returned")
        if n_ok:
            stats.completed += n_ok  # booked in the throughput on the next tick
        stats.unfolded += len(ev.outcomes)
        if stats.unfolded > FOLD_AT:  # no tick for a while (a pure driver, a flood): bound the pending lists
            stats.fold()

    def _on_Heartbeat(self, ev: Heartbeat, actions: list) -> None:
        w = self.workers.get(ev.rank)
        if w is None or w.lost:
            return
        self._seen(w, ev.now)
        if ev.resources:
            w.resources.update(ev.resources)
            rss = ev.resources.get("rss")
            if rss is not None and (w.peak_rss is None or rss > w.peak_rss):
                w.peak_rss = int(rss)
        if ev.running is not None and w.stuck:
            w.stuck &= set(ev.running)  # a stuck task it no longer runs has ended

    def _on_Alive(self, ev: Alive, actions: list) -> None:
        w = self.workers.get(ev.rank)
        if w is not None and not w.lost:
            w.last_alive = max(w.last_alive, ev.now)

    def _on_Tick(self, ev: Tick, actions: list) -> None:
        now = ev.now
        self.stats.tick(now)
        if self._last_tick is not None and now - self._last_tick > self.heartbeat_timeout:
            # The coordinator did not look for that long (stopped, descheduled, or its
            # process held the GIL in C code): the workers' silence over the gap proves
            # nothing, and what they sent meanwhile may still wait to be received (a poll
            # takes a bounded number of messages). The gap is taken off their silence.
            gap = now - self._last_tick
            for w in self.workers.values():
                w.last_seen = min(now, w.last_seen + gap)
        self._last_tick = now
        if self.draining:
            self._drain_check(now, actions)
        while self._delayed and self._delayed[0][0] <= now:
            _, _, task = heapq.heappop(self._delayed)
            if task.status == TaskStatus.PENDING and task.id in self.tasks:
                self._push_ready(task)
        for w in list(self.workers.values()):
            if w.lost:
                continue
            silent = now - w.last_seen
            if silent > self.heartbeat_timeout and not w.suspect:
                w.suspect = True
                actions.append(Ping(w.rank))
            if now - max(w.last_seen, w.last_alive) > self.failure_timeout:
                self._lose(w, f"silent for {silent:.1f} s (heartbeat timeout {self.heartbeat_timeout:g} s)", now, actions)
                continue
            self._check_timeout(w, now, actions)

    def _on_Cancel(self, ev: Cancel, actions: list) -> None:
        task = self.tasks.get(ev.task_id)
        if task is None:
            return
        if task.status == TaskStatus.RUNNING:
            self.n_running -= 1
            # The slot stays taken until the worker says the task ended.
            actions.append(SendCancel(task.worker, [task.id]))  # type: ignore[arg-type]
        self._finish(task, TaskStatus.CANCELLED, None, ev.now, actions)

    def _on_Drain(self, ev: Drain, actions: list) -> None:
        w = self.workers.get(ev.rank)
        if w is None or w.lost or w.draining:
            return
        w.draining = True
        self._workers_version += 1
        self._give_back_queued(w, ev.now, actions)
        for task in list(self.tasks.values()):
            if task.status == TaskStatus.PENDING:
                self._check_possible(task, ev.now, actions)

    def _on_LeaveRequest(self, ev: LeaveRequest, actions: list) -> None:
        w = self.workers.get(ev.rank)
        if w is None or w.lost:
            return
        self._leaving.add(ev.rank)
        if all(x.rank in self._leaving for x in self.workers.values() if not x.lost):
            self._on_DrainAll(DrainAll(ev.now, ev.grace_s), actions)
        else:
            self._on_Drain(Drain(ev.rank, ev.now), actions)

    def _on_DrainAll(self, ev: DrainAll, actions: list) -> None:
        if self.draining:
            return
        self.draining = True
        if ev.grace_s is not None:
            self._drain_deadline = ev.now + max(0.0, ev.grace_s)
        for w in self.workers.values():
            if not w.lost:
                self._give_back_queued(w, ev.now, actions)
        self._drain_check(ev.now, actions)

    def _drain_check(self, now: float, actions: list) -> None:
        """Past the drain's grace period: cancel the tasks still running and take them back."""
        if self._drain_deadline is None or now < self._drain_deadline or self._drained_sent:
            return
        for w in self.workers.values():
            if w.lost or not w.running:
                continue
            back = []
            for task_id in list(w.running):
                task = self.tasks.get(task_id)
                if task is not None and task.status == TaskStatus.RUNNING and task.worker == w.rank:
                    self.n_running -= 1
                    self._retry(task, now, counted=False, cause="drain")
                    back.append(task_id)
            # The slots stay taken until the worker reports the tasks ended (as for a user's cancel).
            if back:
                actions.append(SendCancel(w.rank, back))

    def _on_WorkerLost(self, ev: WorkerLost, actions: list) -> None:
        w = self.workers.get(ev.rank)
        if w is not None and not w.lost:
            self._lose(w, ev.reason, ev.now, actions)

    # ------------------------------------------------------------------------ helpers
    def _seen(self, w: WorkerState, now: float) -> None:
        w.last_seen = max(w.last_seen, now)
        w.suspect = False

    def _push_ready(self, task: Task) -> None:
        self._seq += 1
        heapq.heappush(self._ready, (-task.priority, self._seq, task))

    def _remove_running(self, w: WorkerState, task_id: int, now: float) -> None:
        was_head = next(iter(w.running)) == task_id
        del w.running[task_id]
        if was_head:
            w.head_since = now

    def _retry(self, task: Task, now: float, *, counted: bool, cause: str = "error") -> None:
        task.status = TaskStatus.PENDING
        task.worker = None
        self.stats.retry(task.fn_name, cause)
        if counted and self.backoff > 0:
            task.not_before = now + self.backoff ** task.errors_used
            self._seq += 1
            heapq.heappush(self._delayed, (task.not_before, self._seq, task))
        else:
            self._push_ready(task)

    def _finish(self, task: Task, status: TaskStatus, value: Any, now: float, actions: list) -> None:
        task.status = status
        task.finished_at = now
        if status != _COMPLETED:
            task.error = value if isinstance(value, BaseException) else None
            self.stats.outcome(task.fn_name, status.value)
        self.tasks.pop(task.id, None)
        self.history[task.id] = task
        while len(self.history) > self.history_size:
            self.history.popitem(last=False)
        actions.append(Resolve(task, status, value))
        dependents, task.dependents = task.dependents, []
        task.dep_values = []
        task.payload = None  # the history must not hold arguments alive
        for dep_id, pos in dependents:
            child = self.tasks.get(dep_id)
            if child is None or child.status != _PENDING:
                continue
            if status == _COMPLETED:
                child.dep_values[pos] = value
                child.n_unmet -= 1
                if child.n_unmet == 0:
                    self._push_ready(child)
            else:
                self._finish(child, TaskStatus.ERROR, _dependency_error(task.id, status, value, task.fn_name), now, actions)

    def _lose(self, w: WorkerState, reason: str, now: float, actions: list) -> None:
        w.lost = True
        w.lost_reason = reason
        w.left = now
        self._workers_version += 1
        w.stuck.clear()
        for task_id in list(w.running):
            task = self.tasks.get(task_id)
            if task is not None and task.status == TaskStatus.RUNNING and task.worker == w.rank:
                self.n_running -= 1
                self._retry(task, now, counted=False, cause="worker_lost")
        w.running.clear()
        # A replacement on the same rank starts without the lost process's models.
        forget = getattr(self.strategy, "forget", None)
        if callable(forget):
            forget(w.rank)
        actions.append(WorkerFailed(w.rank, reason))
        if all(x.lost for x in self.workers.values()):
            for task in list(self.tasks.values()):
                if task.status == TaskStatus.PENDING:
                    self._finish(task, TaskStatus.ERROR, NoWorkersLeft(f"every worker is gone (last: rank {w.rank}, {reason})"), now, actions)
            return
        for task in list(self.tasks.values()):
            if task.status == TaskStatus.PENDING:
                self._check_possible(task, now, actions)

    def _give_back_queued(self, w: WorkerState, now: float, actions: list) -> None:
        """Return the tasks waiting in ``w``'s local queue (all but the running one) to the farm's queue."""
        queued = list(w.running)[1:]
        back = []
        for task_id in queued:
            task = self.tasks.get(task_id)
            del w.running[task_id]
            if task is not None and task.status == TaskStatus.RUNNING and task.worker == w.rank:
                self.n_running -= 1
                task.tried.discard(w.rank)  # it never ran there
                self._retry(task, now, counted=False, cause="drained")
            back.append(task_id)
        if back:
            actions.append(SendCancel(w.rank, back))

    def _check_timeout(self, w: WorkerState, now: float, actions: list) -> None:
        if not w.running:
            return
        head_id = next(iter(w.running))
        task = self.tasks.get(head_id)
        if task is None or task.status != TaskStatus.RUNNING or task.timeout is None:
            return
        if now - max(w.head_since, task.dispatched_at or 0.0) <= task.timeout:
            return
        # The worker is stuck in this task: quarantine it until it reports the task ended.
        del w.running[head_id]
        w.head_since = now
        w.stuck.add(head_id)
        self.n_running -= 1
        actions.append(SendCancel(w.rank, [head_id]))
        actions.append(Quarantine(w.rank, f"task {head_id} ({task.fn_name}) ran past its timeout of {task.timeout:g} s"))
        actions.append(Ping(w.rank))
        self._give_back_queued_after_stuck(w, now, actions)
        task.errors_used += 1
        if task.errors_used <= task.retries:
            self._retry(task, now, counted=True, cause="timeout")
        else:
            self._finish(task, TaskStatus.TIMED_OUT, TaskTimeout(
                f"task {task.id} ({task.fn_name}) ran past its timeout of {task.timeout:g} s on rank {w.rank}"
                + (f" (attempt {task.attempts} of {task.retries + 1})" if task.retries else "")), now, actions)

    def _give_back_queued_after_stuck(self, w: WorkerState, now: float, actions: list) -> None:
        back = []
        for task_id in list(w.running):
            task = self.tasks.get(task_id)
            del w.running[task_id]
            if task is not None and task.status == TaskStatus.RUNNING and task.worker == w.rank:
                self.n_running -= 1
                task.tried.discard(w.rank)
                self._retry(task, now, counted=False, cause="quarantined")
            back.append(task_id)
        if back:
            actions.append(SendCancel(w.rank, back))

    def _possible_workers(self, task: Task) -> list[WorkerState]:
        labels = self.strategy.labels_required
        return [w for w in self.workers.values() if not w.lost and not w.draining and task.requires.satisfied_by(w.caps, labels=labels)]

    def _check_possible(self, task: Task, now: float, actions: list) -> bool:
        if not self.workers:
            return True
        cached = self._possible_cache.get(task.requires)
        if cached is not None and cached[0] == self._workers_version and cached[1]:
            return True
        possible = bool(self._possible_workers(task))
        self._possible_cache[task.requires] = (self._workers_version, possible)
        if possible:
            return True
        labels = self.strategy.labels_required
        live = [w for w in self.workers.values() if not w.lost and not w.draining]
        if not live:
            err: Exception = NoWorkersLeft(f"task {task.id} ({task.fn_name}): no worker is left to run it")
        else:
            lines = "; ".join(f"{w.caps.describe()} (lacks {', '.join(task.requires.unmet(w.caps, labels=labels))})" for w in live)
            err = RequirementError(f"task {task.id} ({task.fn_name}) needs {task.requires.describe()}, which no worker can satisfy: {lines}")
        self._finish(task, TaskStatus.ERROR, err, now, actions)
        return False

    def _fits_walltime(self, task: Task, now: float) -> tuple[bool, float | None]:
        if self.deadline is None:
            return True, None
        expected = task.expected_s if task.expected_s is not None else self.fn_ewma.get(task.fn_name)
        if expected is None:
            return True, None
        return now + expected + self.margin_s <= self.deadline, expected

    def _fn_depth(self, task: Task) -> int | None:
        """Tasks a worker may hold when ``task`` is placed, by what its function is known to take.

        A worker's own depth comes from its EWMA over every function it ran: after a
        thousand no-ops it would queue 256 tasks of a 10 ms function too, all on one
        worker. So a function never timed gets the minimum depth, a timed one about
        ``prefetch_s`` of its own work. None: no limit beyond the worker's (a fixed
        ``max_in_flight``, or a task without a function name).
        """
        if self.max_in_flight is not None or not task.fn_name:
            return None
        expected = task.expected_s if task.expected_s is not None else self.fn_ewma.get(task.fn_name)
        if expected is None:
            return MIN_DEPTH
        return max(MIN_DEPTH, min(MAX_DEPTH, math.ceil(self.prefetch_s / max(expected, 1e-7))))

    def slack(self, now: float, horizon: float) -> float:
        """Seconds the engine may leave the workers alone (at most ``horizon``).

        A worker holding several tasks needs the coordinator only before its queue runs
        dry: the known run time of the tasks queued behind the one running (their
        functions' EWMA or ``expected_s``). The running one's progress is left out on
        purpose: its start is only known as when the previous result was *seen*, and
        counting it would let each late look make the next one later still. A worker
        with a single task has nothing queued; there the estimate of what is left of
        it only decides how soon its result is looked for. 0 when a task's length is
        unknown (its result may come at any moment).
        """
        least = horizon
        tasks = self.tasks
        ewma = self.fn_ewma
        for w in self.workers.values():
            if w.lost or not w.running:
                continue
            left = 0.0
            n = len(w.running)
            for i, task_id in enumerate(w.running):
                task = tasks.get(task_id)
                if task is None:
                    return 0.0
                expected = task.expected_s if task.expected_s is not None else ewma.get(task.fn_name)
                if expected is None:
                    return 0.0
                if i == 0:
                    if n == 1:
                        left = w.head_since + expected - now
                    continue
                left += expected
                if left >= least:
                    break
                if i == SLACK_SAMPLE and n > i + 1:
                    # A deep queue of short tasks: the rest are counted at the average so far,
                    # so that an idle step does not walk 256 tasks.
                    left += (left / i) * (n - 1 - i)
                    break
            if left < least:
                if left <= 0.0:
                    return 0.0
                least = left
        return least

    def _dispatch(self, now: float, actions: list) -> None:
        if self.draining or not self._ready:
            return
        # The availability test inlined (WorkerState.available): this runs on every step
        # that has a ready task, the path of every round trip.
        free = [w for w in self.workers.values()
                if not (w.lost or w.draining or w.suspect or w.stuck) and len(w.running) < w.capacity]
        if not free:
            return
        if len(free) > 1:
            free.sort(key=_by_rank)
        healthy: list[WorkerState] | None = None  # worked out for a retry only
        labels = self.strategy.labels_required
        budget = 0
        for w in free:
            budget += w.capacity - len(w.running)
        batches: dict[int, list[Task]] = {}
        skipped: list[tuple[int, int, Task]] = []
        passes = 0
        while self._ready and budget > 0 and passes < budget + SKIP_LIMIT:
            entry = heapq.heappop(self._ready)
            task = entry[2]
            if task.status != _PENDING or task.id not in self.tasks or task.n_unmet:
                continue
            passes += 1
            fits, expected = self._fits_walltime(task, now) if self.deadline is not None else (True, None)
            if not fits:
                self._finish(task, TaskStatus.ERROR, WalltimeExceeded(
                    f"task {task.id} ({task.fn_name}) is expected to take {expected:.3g} s, more than is left "
                    f"before the allocation ends ({self.deadline - now - self.margin_s:.3g} s after the margin)"), now, actions)
                continue
            req = task.requires
            cands = [w for w in free if req.satisfied_by(w.caps, labels=labels)]
            depth = self._fn_depth(task)
            if depth is not None and cands:
                roomy = [w for w in cands if len(w.running) < depth]
                if not roomy:
                    # Every worker that could take it already holds its function's depth
                    # of work: wait for results. When those are all the free workers,
                    # nothing behind it can go anywhere new either: end the pass.
                    skipped.append(entry)
                    if len(cands) == len(free):
                        break
                    continue
                cands = roomy
            if task.tried and cands:
                if healthy is None:
                    healthy = [w for w in self.workers.values() if w.available]
                untried = [w for w in healthy if w.rank not in task.tried and req.satisfied_by(w.caps, labels=labels)]
                if untried:
                    cands = [w for w in cands if w.rank not in task.tried]
            rank = self.strategy.choose(task, cands, self) if cands else None
            if rank is None:
                skipped.append(entry)
                continue
            w = self.workers[rank]
            task.status = _RUNNING
            task.worker = rank
            task.attempts += 1
            task.tried.add(rank)
            task.dispatched_at = now
            task.dispatch_seq = self._dispatch_seq
            self._dispatch_seq += 1
            if task.after:  # once: a retry must not prepend them again
                task.payload = _with_dependencies(task.payload, task.dep_values)
                task.after, task.dep_values = (), []
            if not w.running:
                w.head_since = now
            w.running[task.id] = now
            self.n_running += 1
            batches.setdefault(rank, []).append(task)
            budget -= 1
            if len(w.running) >= w.capacity:
                free.remove(w)
                if not free:
                    break
        for entry in skipped:
            heapq.heappush(self._ready, entry)
        for rank, tasks in batches.items():
            actions.append(Dispatch(rank, tasks))


def _strategy_name(strategy: Strategy) -> str:
    """A strategy's ``name``, or its class name for a user strategy that kept the base's."""
    name = getattr(strategy, "name", "")
    return name if name and name != Strategy.name else type(strategy).__name__


def _by_rank(w: WorkerState) -> int:
    return w.rank


def _dependency_error(dep_id: int, status: TaskStatus, value: Any, fn_name: str = "") -> DependencyFailed:
    what = f"dependency task {dep_id}" + (f" ({fn_name})" if fn_name else "")
    cause = f": {type(value).__name__}: {value}" if isinstance(value, BaseException) else ""
    err = DependencyFailed(f"{what} ended {status.value}{cause}")
    if isinstance(value, BaseException):
        err.__cause__ = value
    return err


def _with_dependencies(payload: Any, dep_values: list[Any]) -> Any:
    """Prepend the dependencies' results to the task's arguments (payload ``(fn, args, kwargs)``)."""
    if isinstance(payload, tuple) and len(payload) == 3:
        fn, args, kwargs = payload
        return (fn, tuple(dep_values) + tuple(args), kwargs)
    return payload
