"""Tasks, their lifecycle, and the errors a task can end with.

A task goes ``pending -> running -> completed | error | cancelled | timed_out``. A
retry sends it back to ``pending``. "running" means handed to a worker (it may wait
in that worker's short local queue before it starts).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Callable

from hpcdist.farm.requirements import NO_REQUIREMENTS, Requirements
from hpcdist.runtime.errors import HpcdistError

__all__ = [
    "TaskStatus",
    "Task",
    "TaskInfo",
    "FarmError",
    "RemoteError",
    "TaskCancelled",
    "TaskTimeout",
    "RequirementError",
    "DependencyFailed",
    "WalltimeExceeded",
    "NoWorkersLeft",
    "ResultRejected",
    "DrainRequested",
    "function_name",
]


class TaskStatus(str, enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    ERROR = "error"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def finished(self) -> bool:
        return self not in (TaskStatus.PENDING, TaskStatus.RUNNING)


class FarmError(HpcdistError):
    """Base of the errors the farm itself gives a task (not raised by the task's code)."""


class RemoteError(FarmError):
    """Stands for an exception raised on a worker; its text is the remote traceback.

    The task's own exception is re-raised on the coordinator with this as its
    ``__cause__``; when the exception does not pickle, this error is raised itself.
    """

    def __init__(self, text: str, rank: int | None = None, host: str | None = None) -> None:
        super().__init__(text)
        self.rank = rank
        self.host = host

    def __reduce__(self):
        return (RemoteError, (self.message, self.rank, self.host))


class TaskCancelled(FarmError):
    """Raised inside a running task's thread to stop it (best effort)."""

    def __init__(self, message: str = "the task was cancelled") -> None:  # raised as a bare class
        super().__init__(message)


class TaskTimeout(FarmError, TimeoutError):
    """The task ran past its timeout (on every attempt)."""


class RequirementError(FarmError):
    """No worker of the farm can ever satisfy the task's requirements."""


class DependencyFailed(FarmError):
    """A task listed in ``after=`` failed, timed out or was cancelled."""


class WalltimeExceeded(FarmError):
    """The task's expected run time does not fit in what is left of the allocation."""


class NoWorkersLeft(FarmError):
    """Every worker of the farm failed or left."""


class ResultRejected(FarmError):
    """The task's validator rejected its result (counted as an error of the task)."""


class DrainRequested(FarmError):
    """The farm is draining (a signal asked the job to stop); the task was not run."""


def function_name(fn: Callable[..., Any]) -> str:
    """A stable, readable name for ``fn`` (module.qualname), used for per-function statistics."""
    inner = getattr(fn, "fn", None)  # validated / chunk wrappers name their target
    if inner is not None and callable(inner) and inner is not fn:
        return function_name(inner)
    module = getattr(fn, "__module__", None) or type(fn).__module__
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{module}.{name}"


class Task:
    """One unit of work inside the scheduler. Mutable; owned by the scheduler.

    ``payload`` is opaque to the scheduler: the driver puts there what the worker
    needs (function, arguments) and reads it back when it sends the task.
    """

    __slots__ = (
        "id", "payload", "fn_name", "priority", "requires", "timeout", "retries", "key",
        "expected_s", "after", "dep_values", "n_unmet", "status", "errors_used", "attempts",
        "tried", "worker", "submitted_at", "dispatched_at", "started_at", "finished_at",
        "not_before", "error", "dispatch_seq", "dependents", "elapsed",
    )

    def __init__(
        self,
        id: int,
        payload: Any = None,
        *,
        fn_name: str = "",
        priority: int = 0,
        requires: Requirements = NO_REQUIREMENTS,
        timeout: float | None = None,
        retries: int = 0,
        key: str | None = None,
        expected_s: float | None = None,
        after: tuple[int, ...] = (),
    ) -> None:
        self.id = id
        self.payload = payload
        self.fn_name = fn_name
        self.priority = priority
        self.requires = requires
        self.timeout = timeout
        self.retries = retries
        self.key = key
        self.expected_s = expected_s
        self.after = tuple(after)
        self.dep_values: list[Any] = [None] * len(self.after)
        self.n_unmet = 0
        self.status = TaskStatus.PENDING
        self.errors_used = 0  # attempts that ended by the task's own fault (error, timeout)
        self.attempts = 0  # times handed to a worker
        self.tried: set[int] = set()
        self.worker: int | None = None
        self.submitted_at = 0.0
        self.dispatched_at: float | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.not_before = 0.0
        self.error: BaseException | None = None
        self.dispatch_seq: int | None = None
        self.dependents: list[tuple[int, int]] = []  # (dependent task id, position in its after-list)
        self.elapsed: float | None = None  # seconds the successful run took on its worker

    def info(self) -> "TaskInfo":
        return TaskInfo(
            id=self.id, key=self.key, fn=self.fn_name, status=self.status, priority=self.priority,
            worker=self.worker, attempts=self.attempts, errors_used=self.errors_used, tried=tuple(sorted(self.tried)),
            submitted_at=self.submitted_at, dispatched_at=self.dispatched_at, finished_at=self.finished_at,
            dispatch_seq=self.dispatch_seq, error=None if self.error is None else f"{type(self.error).__name__}: {self.error}",
        )

    def __repr__(self) -> str:
        return f"Task({self.id}, {self.fn_name}, {self.status.value}, priority={self.priority})"


@dataclass(frozen=True)
class TaskInfo:
    """A snapshot of one task, as :meth:`Farm.tasks` and :meth:`Farm.task` return it.

    Times are the coordinator's monotonic clock. ``worker`` is the last rank the task
    was handed to; ``tried`` every rank it was handed to; ``dispatch_seq`` the order in
    which tasks were handed out (0, 1, 2, ...).
    """

    id: int
    key: str | None
    fn: str
    status: TaskStatus
    priority: int
    worker: int | None
    attempts: int
    errors_used: int
    tried: tuple[int, ...]
    submitted_at: float
    dispatched_at: float | None
    finished_at: float | None
    dispatch_seq: int | None
    error: str | None
