"""The task farm: rank 0 schedules, the other ranks run tasks.

``Farm`` is a ``concurrent.futures.Executor``; see ``docs/farm.md``. The scheduling
logic is the pure state machine in :mod:`hpcdist.farm.scheduler`, driven over MPI by
:mod:`hpcdist.farm.driver`.
"""

from hpcdist.farm.apply import distributed_apply
from hpcdist.farm.executor import Farm, TaskFuture
from hpcdist.farm.pipeline import run_stages
from hpcdist.farm.requirements import Capabilities, Requirements, parse_memory
from hpcdist.farm.scheduler import Scheduler, WorkerInfo, WorkerStatus
from hpcdist.farm.strategies import (
    Affinity,
    CapabilityMatch,
    Latency,
    LeastLoaded,
    RoundRobin,
    Strategy,
    make_strategy,
)
from hpcdist.farm.tasks import (
    DependencyFailed,
    DrainRequested,
    FarmError,
    NoWorkersLeft,
    RemoteError,
    RequirementError,
    ResultRejected,
    TaskCancelled,
    TaskInfo,
    TaskStatus,
    TaskTimeout,
    WalltimeExceeded,
)

__all__ = [
    "Farm",
    "TaskFuture",
    "Requirements",
    "Capabilities",
    "parse_memory",
    "distributed_apply",
    "run_stages",
    "Scheduler",
    "WorkerInfo",
    "WorkerStatus",
    "Strategy",
    "RoundRobin",
    "LeastLoaded",
    "CapabilityMatch",
    "Latency",
    "Affinity",
    "make_strategy",
    "TaskInfo",
    "TaskStatus",
    "FarmError",
    "RemoteError",
    "TaskTimeout",
    "TaskCancelled",
    "RequirementError",
    "DependencyFailed",
    "WalltimeExceeded",
    "NoWorkersLeft",
    "ResultRejected",
    "DrainRequested",
]
