"""Runs a worker's tasks, one at a time, in a thread of their own.

The thread that runs tasks is not the one that answers the coordinator: while a task
computes, the worker's main thread still sends heartbeats, answers pings and takes
cancel requests. Python switches threads every ``sys.getswitchinterval()`` (5 ms)
even when the task is pure Python, and C code that releases the GIL (``time.sleep``,
numpy, I/O) does not hold it up at all. Only C code that holds the GIL for long
stops the heartbeats; the coordinator then checks that the process still lives
(see :mod:`hpcdist.farm.driver`), which is how busy is told apart from dead.

Cancelling a running task raises :class:`TaskCancelled` inside it at its next
Python bytecode (``PyThreadState_SetAsyncExc``); a task inside C code sees it
when the C call returns. Either way the worker reports the task as cancelled.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections import deque
from typing import Any, Callable

from hpcdist.farm.serialization import pack_exception
from hpcdist.farm.tasks import TaskCancelled

__all__ = ["Runner", "ChunkCall", "Validated"]

#: An outcome as the worker reports it: (task id, "ok" | "error" | "cancelled", value, seconds).
WireOutcome = tuple[int, str, Any, "float | None"]


class ChunkCall:
    """``fn`` applied to each item of a chunk (the unit :meth:`Farm.map` sends)."""

    __slots__ = ("fn", "star")

    def __init__(self, fn: Callable[..., Any], star: bool = False) -> None:
        self.fn = fn
        self.star = star

    def __call__(self, items: list[Any]) -> list[Any]:
        fn = self.fn
        if self.star:
            return [fn(*item) for item in items]
        return [fn(item) for item in items]

    def __reduce__(self):
        return (ChunkCall, (self.fn, self.star))


class Validated:
    """``fn`` whose result ``validator(result)`` must accept (return truthy, not raise)."""

    __slots__ = ("fn", "validator")

    def __init__(self, fn: Callable[..., Any], validator: Callable[[Any], Any]) -> None:
        self.fn = fn
        self.validator = validator

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from hpcdist.farm.tasks import ResultRejected

        value = self.fn(*args, **kwargs)
        if not self.validator(value):
            raise ResultRejected(f"validator {getattr(self.validator, '__name__', self.validator)!r} rejected the result {value!r:.200}")
        return value

    def __reduce__(self):
        return (Validated, (self.fn, self.validator))


_yield = getattr(os, "sched_yield", lambda: None)

#: A result this large (bytes) goes back at once, not held to share a message.
LARGE_RESULT = 256 * 1024


def _large(value: Any) -> bool:
    """Whether ``value`` (or an item of a short list of results, a map chunk) is a large buffer."""
    if isinstance(value, (list, tuple)):
        return len(value) <= 8 and any(_nbytes(v) >= LARGE_RESULT for v in value)
    return _nbytes(value) >= LARGE_RESULT


def _nbytes(value: Any) -> int:
    nbytes = getattr(value, "nbytes", 0)
    return nbytes if isinstance(nbytes, int) else 0


def _raise_in_thread(thread_id: int, exc_type: type[BaseException]) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc_type))


class Runner:
    """The task-running thread of one worker.

    Parameters
    ----------
    rank, host : int, str
        Head the remote tracebacks.
    fetch : callable
        ``fetch()`` returns newly arrived tasks ``[(id, (fn, args, kwargs) or exception), ...]``
        without blocking.
    emit : callable
        ``emit(outcomes)`` reports finished tasks; called from this thread and from the
        control thread (must be thread-safe).
    wait : callable
        ``wait(seconds)`` idles while there is nothing to do (a sleep, or a condition wait
        that new work ends early).
    flush_s : float
        Finished outcomes are held at most this long, so that many go in one message.
    spin_s, idle_max_s : float
        After the last activity, poll without sleeping for ``spin_s``, then sleep with
        exponential back-off up to ``idle_max_s`` between polls.
    """

    def __init__(
        self,
        rank: int,
        host: str,
        fetch: Callable[[], list[tuple[int, Any]]],
        emit: Callable[[list[WireOutcome]], None],
        wait: Callable[[float], None] = time.sleep,
        *,
        flush_s: float = 0.002,
        spin_s: float = 0.005,
        idle_max_s: float = 0.001,
    ) -> None:
        self.rank = rank
        self.host = host
        self._fetch = fetch
        self._emit = emit
        self._wait = wait
        self.flush_s = flush_s
        self.spin_s = spin_s
        self.idle_max_s = idle_max_s
        self._lock = threading.Lock()
        self._queue: deque[tuple[int, Any]] = deque()
        self._cancelled: set[int] = set()
        self._current: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.tasks_done = 0
        self.ewma_s: float | None = None

    # --------------------------------------------------------------- control side
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"hpcdist-runner-{self.rank}", daemon=True)
        self._thread.start()

    def stop(self, join_s: float = 2.0) -> bool:
        """Stop after the current task; True when the thread ended within ``join_s``."""
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(join_s)
        return not self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    def running_ids(self) -> tuple[int, ...]:
        with self._lock:
            ids = [self._current] if self._current is not None else []
            return tuple(ids + [i for i, _ in self._queue])

    def cancel(self, ids: list[int]) -> None:
        """Drop queued tasks (reported cancelled now); interrupt the running one (best effort)."""
        dropped: list[WireOutcome] = []
        with self._lock:
            wanted = set(ids)
            kept = deque()
            for item in self._queue:
                if item[0] in wanted:
                    dropped.append((item[0], "cancelled", None, None))
                    wanted.discard(item[0])
                else:
                    kept.append(item)
            self._queue = kept
            if self._current is not None and self._current in wanted and self._thread is not None:
                _raise_in_thread(self._thread.ident, TaskCancelled)  # type: ignore[arg-type]
                wanted.discard(self._current)
            # Not seen yet (the cancel overtook its task on another tag): drop it on arrival.
            self._cancelled |= wanted
            if len(self._cancelled) > 100_000:
                self._cancelled.clear()
        if dropped:
            self._emit(dropped)

    # ---------------------------------------------------------------- runner side
    def _take(self) -> tuple[int, Any] | None:
        with self._lock:
            while self._queue:
                item = self._queue.popleft()
                if item[0] in self._cancelled:
                    self._cancelled.discard(item[0])
                    return (item[0], None)  # reported cancelled by the caller
                self._current = item[0]
                return item
        return None

    def _run(self, task_id: int, payload: Any) -> WireOutcome:
        if isinstance(payload, BaseException):  # the task could not be unpickled here
            return (task_id, "error", pack_exception(payload, self.rank, self.host), None)
        kind, value, elapsed = "error", None, None
        t0 = time.perf_counter()
        try:
            try:
                fn, args, kwargs = payload
                value = fn(*args, **kwargs)
                elapsed = time.perf_counter() - t0
                kind = "ok"
            except TaskCancelled:
                kind, value = "cancelled", None
            except BaseException as exc:  # noqa: BLE001 - every task failure goes back to the coordinator
                elapsed = time.perf_counter() - t0
                if exc.__traceback__ is not None and exc.__traceback__.tb_next is not None:
                    exc = exc.with_traceback(exc.__traceback__.tb_next)  # hide this runner's frame
                value = pack_exception(exc, self.rank, self.host)
            finally:
                with self._lock:
                    self._current = None
        except TaskCancelled:
            pass  # the cancel landed between the task's end and the line above: keep its outcome
        if kind != "cancelled" and elapsed is not None:
            self.tasks_done += 1
            self.ewma_s = elapsed if self.ewma_s is None else 0.8 * self.ewma_s + 0.2 * elapsed
        return (task_id, kind, value, elapsed)

    def _loop(self) -> None:
        outbox: list[WireOutcome] = []
        first_held = 0.0
        idle_since: float | None = None
        sleep_s = 0.0
        while not self._stop.is_set():
            try:
                arrived = self._fetch()
                if arrived:
                    with self._lock:
                        self._queue.extend(arrived)
                item = self._take()
                if item is not None:
                    idle_since = None
                    task_id, payload = item
                    outcome = (task_id, "cancelled", None, None) if payload is None else self._run(task_id, payload)
                    if not outbox:
                        first_held = time.perf_counter()
                    outbox.append(outcome)
                    # Hold an outcome only while the next ones may join it within flush_s:
                    # after a long task, holding it would hide a free slot from the
                    # coordinator for a whole task and let this worker's queue run dry.
                    now = time.perf_counter()
                    if (not self._queue or now - first_held >= self.flush_s or (outcome[3] or 0.0) >= self.flush_s
                            or _large(outcome[2])):
                        self._emit(outbox)
                        outbox = []
                    continue
                if outbox:
                    self._emit(outbox)
                    outbox = []
                now = time.perf_counter()
                if idle_since is None:
                    idle_since, sleep_s = now, 0.0
                if now - idle_since < self.spin_s:
                    # Spinning keeps a round trip short; yielding the core on each turn
                    # lets the coordinator (or the other worker) run when the cores are
                    # all taken, where a plain spin would slow down the one feeding us.
                    _yield()
                    continue
                sleep_s = min(self.idle_max_s, max(2 * sleep_s, 2e-5))
                self._wait(sleep_s)
            except TaskCancelled:
                continue  # a late cancel landed in this loop: nothing to undo
