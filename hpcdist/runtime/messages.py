"""The coordinator/worker message kinds, each with its MPI tag, enumerated once.

Tags start at 100 so that they never collide with small tags a user may employ on
a communicator they pass in (hpcdist duplicates communicators anyway).
"""

from __future__ import annotations

import enum

__all__ = ["Msg", "Direction"]


class Direction(enum.Enum):
    TO_WORKER = "coordinator -> worker"
    TO_COORDINATOR = "worker -> coordinator"
    BOTH = "either way"


class Msg(enum.IntEnum):
    """Message kinds of the task farm; the value is the MPI tag.

    Each kind's direction is in :attr:`direction`, its meaning in :attr:`doc`.
    """

    JOIN = 100
    TASK = 101
    RESULT = 102
    HEARTBEAT = 103
    RESOURCE_UPDATE = 104
    CANCEL = 105
    DRAIN = 106
    LEAVE = 107
    SHUTDOWN = 108
    ERROR = 109
    PING = 110

    @property
    def tag(self) -> int:
        return int(self)

    @property
    def direction(self) -> Direction:
        return _META[self][0]

    @property
    def doc(self) -> str:
        return _META[self][1]


_META = {
    Msg.JOIN: (Direction.TO_COORDINATOR, "a worker announces its capabilities (host, cores, memory, GPU, labels)"),
    Msg.TASK: (Direction.TO_WORKER, "one task or a batch of tasks to run"),
    Msg.RESULT: (Direction.TO_COORDINATOR, "the outcome of a task: a value, or a remote exception with traceback"),
    Msg.HEARTBEAT: (Direction.TO_COORDINATOR, "I am alive, with the ids of the tasks I am running"),
    Msg.RESOURCE_UPDATE: (Direction.TO_COORDINATOR, "RSS, cpu %, GPU memory, tasks done, EWMA task time"),
    Msg.CANCEL: (Direction.TO_WORKER, "stop a running task (best effort) and report it cancelled"),
    Msg.DRAIN: (Direction.TO_WORKER, "finish running tasks, take no new ones"),
    Msg.LEAVE: (Direction.TO_COORDINATOR, "a worker leaves the pool (drained, or about to exit)"),
    Msg.SHUTDOWN: (Direction.TO_WORKER, "the farm is closing: exit the serve loop"),
    Msg.ERROR: (Direction.TO_COORDINATOR, "a worker-level failure outside any task"),
    Msg.PING: (Direction.BOTH, "liveness probe of a quarantined worker, and its answer"),
}
assert set(_META) == set(Msg), "every message kind needs a direction and a meaning"
