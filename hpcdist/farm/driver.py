"""The coordinator's engine: turns messages into scheduler events and actions into messages.

One ``step()`` takes the events user threads posted (submit, cancel, drain), polls the
transport, ticks the scheduler's clock every ``tick_s``, and carries out the actions.
Steps run under one lock, from one of two places:

* the thread that waits on a future (``result()``, ``map``): it spins on ``step()``
  for a short while, then sleeps with exponential back-off; no thread hand-off on the
  path of a result, which keeps round trips short;
* otherwise a background thread, which sleeps with back-off between empty steps (at
  most ``idle_max_s`` while work is in flight, ``rest_s`` when there is none, woken at
  once by a submit). The coordinator therefore does not burn a core while idle.

Either sleeps instead of spinning while every busy worker has work queued behind its
running task (:meth:`Scheduler.slack`, from the functions' known run times): on a
machine with no core to spare, a coordinator polling for results it does not need yet
would take CPU from the workers.

Busy versus dead: any message from a worker counts as a heartbeat. A worker silent for
``heartbeat_timeout`` is suspect (gets no new work, is pinged). When its process is on
this host, the engine then checks it in ``/proc``: alive means busy (e.g. C code holding
the GIL), and it keeps its tasks; stopped (SIGSTOP) is no proof, as it runs nothing. A
worker silent for ``failure_timeout`` with no such
proof of life is failed: its tasks go to other workers, not counted as retries. Workers
on other hosts have no proof of life, so ``failure_timeout`` must exceed the longest
stretch a task may hold the GIL there.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Callable

from hpcdist.farm.scheduler import (
    Alive,
    Dispatch,
    Drained,
    Heartbeat,
    LeaveRequest,
    Ping,
    Quarantine,
    Resolve,
    Scheduler,
    SendCancel,
    Submit,
    Tick,
    WorkerFailed,
)
from hpcdist.runtime.logs import get_logger

__all__ = ["Engine"]

log = get_logger(__name__)


class Engine:
    """Drives a :class:`Scheduler` over a transport. Thread-safe entry points: ``post``, ``step``."""

    def __init__(
        self,
        scheduler: Scheduler,
        transport: Any,
        on_resolve: Callable[[list[Resolve]], None],
        *,
        tick_s: float = 0.01,
        idle_max_s: float = 0.001,
        rest_s: float = 0.05,
        spin_s: float = 0.0003,
        nap_min_s: float = 0.001,
        waiter_poll_s: float = 0.02,
        drain_event: threading.Event | None = None,
        on_drain: Callable[[], Any] | None = None,
        drain_grace_s: float | None = None,
        on_tick: Callable[[float], None] | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.transport = transport
        self.on_resolve = on_resolve
        self.tick_s = tick_s
        self.idle_max_s = idle_max_s
        self.rest_s = rest_s
        self.spin_s = spin_s
        self.nap_min_s = nap_min_s
        self.waiter_poll_s = waiter_poll_s
        self.drain_event = drain_event
        self.on_drain = on_drain
        self.drain_grace_s = drain_grace_s
        #: ``on_tick(now)`` after a step that ticked the clock (every ``tick_s`` at most), under the lock:
        #: the farm's status file hangs here.
        self.on_tick = on_tick
        self.lock = threading.RLock()
        self.inbox: deque[Any] = deque()
        self.lost: set[int] = set()
        #: One record per failed worker: ``rank``, ``reason``, ``requeued`` (monotonic seconds at the end of the step
        #: that returned its tasks to the queue and sent what could be sent of them).
        self.losses: list[dict[str, Any]] = []
        self.drained = False
        self._drain_posted = False
        self._next_tick = 0.0
        self._wake = threading.Event()
        self._resting = False
        self._napping = False
        self._slept = True
        self._waiters = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self.steps = 0

    # --------------------------------------------------------------- entry points
    def post(self, event: Any) -> None:
        """Queue an event from any thread; the next step applies it."""
        self.inbox.append(event)
        if self._resting or self._napping:
            self._wake.set()

    def step(self) -> bool:
        """One round of work; True when anything happened. Call with or without the lock held."""
        with self.lock:
            return self._step()

    def _step(self) -> bool:
        now = time.monotonic()
        events: list[Any] = []
        inbox = self.inbox
        while inbox:
            ev = inbox.popleft()
            if type(ev) is not Submit:  # the common event has no prepare (a failed getattr costs)
                prepare = getattr(ev, "prepare", None)
                if prepare is not None:
                    ev = prepare(now)  # e.g. a submit whose dependencies are looked at now, under the lock
            ev.now = now  # posted from user threads without a clock
            events.append(ev)
        # After a sleep, look twice for messages (see Channel.poll); while spinning, the
        # next turn looks again anyway.
        slept, self._slept = self._slept, False
        for ev in self.transport.poll(now, recheck=slept):
            if type(ev) is LeaveRequest:
                ev.grace_s = self.drain_grace_s  # every worker asking means the job stops: drain as for a signal
                log.info("worker %d asked to leave (drain signal): it gets no new tasks", ev.rank)
            events.append(ev)
        ticked = now >= self._next_tick
        if ticked:
            self._next_tick = now + self.tick_s
            if self.drain_event is not None and self.drain_event.is_set() and not self._drain_posted:
                from hpcdist.farm.scheduler import DrainAll

                self._drain_posted = True
                events.append(DrainAll(now, self.drain_grace_s))
            for w in self.scheduler.workers.values():
                if w.suspect and not w.lost and self.transport.alive(w.rank):
                    events.append(Alive(w.rank, now))
            events.append(Tick(now))
        if not events:
            return False
        busy = False
        for e in events:
            kind = type(e)
            if kind is not Tick and kind is not Heartbeat:
                busy = True
                break
        sched = self.scheduler
        dispatch: dict[int, list] = {}
        resolves: list[Resolve] = []
        failed: list[dict[str, Any]] = []
        for action in sched.handle_many(events):
            kind = type(action)
            if kind is Dispatch:
                dispatch.setdefault(action.rank, []).extend(action.tasks)
            elif kind is Resolve:
                resolves.append(action)
            elif kind is SendCancel:
                if action.rank not in self.lost:
                    self.transport.send_cancel(action.rank, action.task_ids)
            elif kind is Ping:
                if action.rank not in self.lost:
                    self.transport.send_ping(action.rank)
            elif kind is Quarantine:
                log.info("worker %d quarantined: %s", action.rank, action.reason)
            elif kind is WorkerFailed:
                self.lost.add(action.rank)
                forget = getattr(self.transport, "forget", None)
                if forget is not None:
                    forget(action.rank)
                failed.append({"rank": action.rank, "reason": action.reason, "requeued": None})
                log.warning("worker %d failed: %s", action.rank, action.reason)
            elif kind is Drained:
                self.drained = True
                if self.on_drain is not None:
                    self.on_drain()
        for rank, tasks in dispatch.items():
            for event in self.transport.send_tasks(rank, tasks):
                self.inbox.append(event)
        if failed:
            t = time.monotonic()
            for rec in failed:
                rec["requeued"] = t
            self.losses.extend(failed)
        if resolves:
            self.on_resolve(resolves)
        if ticked and self.on_tick is not None:
            self.on_tick(now)
        self.steps += 1
        return busy or bool(dispatch) or bool(resolves)

    # ---------------------------------------------------- waiting and background
    def _slack(self) -> float:
        """Seconds the workers can do without the engine (see :meth:`Scheduler.slack`)."""
        if self.inbox:
            return 0.0
        return self.scheduler.slack(time.monotonic(), self.tick_s)

    def _sending(self) -> bool:
        return bool(getattr(self.transport, "sending", False))

    def _locked_slack(self) -> float:
        with self.lock:
            return self._slack()

    def _nap(self, seconds: float) -> None:
        """Sleep ``seconds``, or until a user thread posts an event."""
        self._slept = True
        self._napping = True
        self._wake.clear()
        if not self.inbox:
            self._wake.wait(seconds)
        self._napping = False

    def wait_until(self, done: Callable[[], bool], timeout: float | None = None) -> bool:
        """Drive the farm from this thread until ``done()`` or ``timeout``; True when done.

        The waiting thread does the engine's steps itself: a result is taken off the
        wire, resolved and the next task sent without waking another thread. When the
        workers have work queued for a while (:meth:`_slack`) it sleeps through that;
        otherwise it spins for ``spin_s``, then backs off up to ``idle_max_s``.
        """
        end = None if timeout is None else time.monotonic() + timeout
        self._waiters += 1
        try:
            idle_since: float | None = None
            sleep_s = 0.0
            while not done():
                slack = 0.0
                sending = False
                if self.lock.acquire(blocking=False):
                    try:
                        worked = self._step()
                        if not worked:
                            sending = self._sending()
                            # The slack only shrinks while nothing happens: look at it when an
                            # idle stretch begins, then only before each sleep.
                            if idle_since is None or time.monotonic() - idle_since >= self.spin_s:
                                slack = self._slack()
                    finally:
                        self.lock.release()
                else:
                    worked = False
                now = time.monotonic()
                if end is not None and now >= end:
                    return done()
                if worked:
                    idle_since = None
                    continue
                # Sleep through the slack even with a send in flight: a task sent ahead to a
                # busy worker waits for that worker to take it, and polling it meanwhile only
                # takes a core from the workers (measured: a whole core during predict_batch).
                if slack > self.nap_min_s:
                    nap = 0.75 * slack
                    self._nap(nap if end is None else min(nap, max(0.0, end - now)))
                    idle_since = None
                    continue
                if idle_since is None:
                    idle_since, sleep_s = now, 0.0
                # Otherwise a large send moves only while MPI is polled: keep stepping.
                if sending or now - idle_since < self.spin_s:
                    continue
                sleep_s = min(self.idle_max_s, max(2 * sleep_s, 2e-5))
                if end is not None:
                    sleep_s = min(sleep_s, max(0.0, end - now))
                self._slept = True
                time.sleep(sleep_s)
            return True
        finally:
            self._waiters -= 1

    def start(self) -> None:
        self._thread = threading.Thread(target=self._background, name="hpcdist-farm-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._closed = True
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5.0)

    def _background(self) -> None:
        sleep_s = 0.0
        while not self._closed:
            if self._waiters:
                time.sleep(self.waiter_poll_s)  # a waiting thread drives; stay out of its way
                continue
            try:
                worked = self.step()
            except BaseException:  # noqa: BLE001 - an engine bug must not die silently in a thread
                log.exception("farm engine step failed")
                raise
            if worked:
                sleep_s = 0.0
                continue
            slack = self._locked_slack()
            if self._sending() and slack <= self.nap_min_s:
                sleep_s = 0.0  # a large send moves only while MPI is polled
                continue
            if self.scheduler.idle and not self.inbox:
                self._resting = True
                self._slept = True
                self._wake.clear()
                if not self.inbox:
                    self._wake.wait(self.rest_s)
                self._resting = False
                sleep_s = 0.0
            elif slack > self.nap_min_s:
                self._nap(0.75 * slack)
                sleep_s = 0.0
            else:
                sleep_s = min(self.idle_max_s, max(2 * sleep_s, 5e-5))
                self._slept = True
                time.sleep(sleep_s)
