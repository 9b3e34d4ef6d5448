"""The worker side of the farm: capabilities, resource updates and the serve loop.

Two threads per worker. The :class:`~hpcdist.farm.runner.Runner` thread receives
``TASK`` batches, runs them one by one and sends ``RESULT`` batches. The main thread
(:func:`serve`) polls the control tags (``CANCEL``, ``PING``, ``SHUTDOWN``) every few
milliseconds and sends a ``HEARTBEAT`` (running ids and resource figures) every
``heartbeat_interval`` seconds. Both use MPI (mpi4py initialises MPI with
``MPI_THREAD_MULTIPLE``); the :class:`~hpcdist.farm.serialization.Channel` keeps the
parts of one message together. On a drain signal (``SIGTERM``) the main thread asks
the coordinator to drain this worker (``LEAVE``) and serves on until the shutdown.
"""

from __future__ import annotations

import os
import resource
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Iterable

from hpcdist.farm.requirements import Capabilities, as_labels, parse_memory
from hpcdist.farm.runner import Runner
from hpcdist.farm.serialization import Channel, pack, pack_exception, unpack
from hpcdist.runtime.logs import get_logger
from hpcdist.runtime.messages import Msg

if TYPE_CHECKING:
    from hpcdist.runtime.context import Context

__all__ = ["local_capabilities", "resource_figures", "serve", "COORDINATOR"]

COORDINATOR = 0
log = get_logger(__name__)


def _node_memory() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def local_capabilities(ctx: "Context", labels: Iterable[str] | str | None = None, overrides: dict[str, Any] | None = None) -> Capabilities:
    """What this rank offers: its share of the node's cores and memory, its GPU, its labels.

    ``overrides`` (``cores``, ``memory``, ``gpus``, ...) replace what was detected, for
    sites where the detection is wrong or for tests.
    """
    try:
        cores_on_node = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores_on_node = os.cpu_count() or 1
    memory = _node_memory()
    dev = ctx.device
    caps: dict[str, Any] = dict(
        rank=ctx.rank,
        host=ctx.topology.hostname,
        node=ctx.topology.node_index,
        pid=os.getpid(),
        cores=max(1, cores_on_node // max(1, ctx.topology.local_size)),
        memory=memory // max(1, ctx.topology.local_size) if memory else None,
        gpus=1 if dev.is_gpu else 0,
        gpu_model=dev.name if dev.is_gpu else "",
        gpu_memory=dev.memory_bytes if dev.is_gpu else None,
        labels=as_labels(labels),
    )
    for key, value in (overrides or {}).items():
        if key not in caps:
            from hpcdist.runtime.errors import InputError

            raise InputError(f"unknown capability {key!r}; known: {', '.join(sorted(caps))}")
        caps[key] = parse_memory(value) if key in ("memory", "gpu_memory") else (as_labels(value) if key == "labels" else value)
    return Capabilities(**caps)


def resource_figures(runner: Runner | None, t_start: float, cpu_start: float) -> dict[str, Any]:
    """RSS, cpu % since start, tasks done and EWMA task time of this process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - cpu_start
    wall = max(time.monotonic() - t_start, 1e-9)
    rss = None
    try:
        with open("/proc/self/statm") as fh:
            rss = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        rss = usage.ru_maxrss * 1024
    return {
        "rss": rss,
        "cpu_percent": round(100.0 * cpu / wall, 1),
        "tasks_done": runner.tasks_done if runner else 0,
        "ewma_s": runner.ewma_s if runner else None,
    }


def serve(
    comm: Any,
    *,
    heartbeat_interval: float = 1.0,
    control_poll_s: float = 0.01,
    drain_event: threading.Event | None = None,
    ulfm: bool = False,
) -> dict[str, Any]:
    """Serve the coordinator until it says SHUTDOWN; return the shutdown message.

    Collective in effect: the coordinator must run the farm on the same ``comm``.

    Parameters
    ----------
    drain_event : threading.Event, optional
        Set by this rank's drain signal (``SIGTERM``): the worker then asks the
        coordinator to drain it (``LEAVE``) and serves on until the shutdown, finishing
        its running task. A worker cannot leave the MPI job alone; when every worker
        has asked, the coordinator drains the whole farm.
    ulfm : bool
        In-job recovery is on (Open MPI ``--with-ft ulfm``): a worker that loses its
        coordinator ends its process with status 1 at once (nothing is left to serve), and
        a shutdown that asks for a goodbye (``bye``, after a worker died) is answered with
        a synchronous send.
    """
    rank = comm.Get_rank()
    host = socket.gethostname()
    chan = Channel(comm)
    tag_task = Msg.TASK.tag

    # Set once this worker stops serving: a task left running at the shutdown must not
    # touch the communicator after the farm frees it (nor a later farm's, which MPI may
    # give the same handle); its outcome has no one to go to.
    closed = False
    pending: list = []  # results in flight: a large one must not block this thread (rendezvous)
    pending_lock = threading.Lock()

    def fetch() -> list[tuple[int, Any]]:
        # One message per call (the runner calls before each task): a worker sent many
        # large arguments in several messages starts on the first while the rest arrive.
        if closed:
            return []
        msg = chan.poll(COORDINATOR, tag_task)
        if msg is None:
            return []
        ids, _, objs = unpack(msg[2])
        if isinstance(objs, BaseException):
            return [(i, objs) for i in ids]
        return list(zip(ids, objs))

    def emit(outcomes: list) -> None:
        ids = [o[0] for o in outcomes]
        meta = [(o[1], o[3]) for o in outcomes]
        values = [o[2] for o in outcomes]
        try:
            env = pack(ids, meta, values)
        except Exception:  # noqa: BLE001 - some result does not pickle: send the others, report it
            meta, values = _portable_outcomes(outcomes, rank, host)
            env = pack(ids, meta, values)
        with pending_lock:
            if closed:
                log.info("rank %d: tasks %s ended after this worker's shutdown; their outcomes are dropped", rank, ids)
                return
            req = chan.isend(env, COORDINATOR, Msg.RESULT.tag)
            # The sends that completed are forgotten after this one started, not before:
            # testing them is off the path of the result.
            pending[:] = [p for p in pending if not p[0].test()[0]]
            pending.append((req, env))

    # glibc keeps freed memory (hpcdist.runtime.malloc, set where MPI is imported), so the
    # task thread's arena does not fault every task's arrays in afresh
    runner = Runner(rank, host, fetch, emit)
    runner.start()
    t_start, cpu0 = time.monotonic(), sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
    next_beat = 0.0
    shutdown: dict[str, Any] = {}
    asked_to_leave = False
    try:
        while True:
            now = time.monotonic()
            if drain_event is not None and not asked_to_leave and drain_event.is_set():
                asked_to_leave = True
                log.info("rank %d: drain signal; asking the coordinator to drain this worker", rank)
                chan.send({"running": runner.running_ids()}, COORDINATOR, Msg.LEAVE.tag)
            if now >= next_beat:
                chan.send({"running": runner.running_ids(), "resources": resource_figures(runner, t_start, cpu0)},
                          COORDINATOR, Msg.HEARTBEAT.tag)
                next_beat = now + heartbeat_interval
            msg = chan.poll(COORDINATOR, Msg.CANCEL.tag)
            while msg is not None:
                runner.cancel(list(msg[2]))
                msg = chan.poll(COORDINATOR, Msg.CANCEL.tag)
            if chan.poll(COORDINATOR, Msg.PING.tag) is not None:
                chan.send({"running": runner.running_ids()}, COORDINATOR, Msg.PING.tag)
            msg = chan.poll(COORDINATOR, Msg.SHUTDOWN.tag)
            if msg is not None:
                shutdown = dict(msg[2] or {})
                break
            time.sleep(control_poll_s)
    except Exception as exc:  # noqa: BLE001
        if ulfm:
            from hpcdist.runtime import ulfm as _ulfm

            if _ulfm.is_process_failure(exc):
                # Only the coordinator talks to a worker: it is gone, and with it every result. Not survivable.
                log.error("rank %d: the coordinator died (%s); ending this worker", rank, exc)
                _ulfm.hard_exit(1)
        raise
    finally:
        stopped = runner.stop(join_s=float(shutdown.get("join_s", 2.0)))
        with pending_lock:
            closed = True
        if not stopped:
            log.warning("rank %d: a task is still running at shutdown; leaving it behind", rank)
    try:
        # What the coordinator sent before the shutdown and this loop did not take (a
        # last ping or cancel) must not be left on the communicator: see MPITransport.farewell.
        dropped = chan.drain(COORDINATOR)
        if shutdown.get("bye"):
            # After a worker died: MPI_Finalize is skipped, so confirm with a synchronous send (returns once the
            # coordinator has matched it) that this worker has its shutdown before either side ends its process.
            chan.ssend(None, COORDINATOR, Msg.SHUTDOWN.tag)
        else:
            chan.send(None, COORDINATOR, Msg.SHUTDOWN.tag)
    except Exception as exc:  # noqa: BLE001 - the coordinator died meanwhile: nothing to confirm to
        log.warning("rank %d: no goodbye to the coordinator: %s", rank, exc)
    else:
        if dropped:
            log.debug("rank %d: %d message(s) from the coordinator left at the shutdown, dropped", rank, dropped)
    return shutdown


def _portable_outcomes(outcomes: list, rank: int, host: str) -> tuple[list, list]:
    import pickle

    meta, values = [], []
    for task_id, kind, value, elapsed in outcomes:
        try:
            pickle.dumps(value, protocol=5)
        except Exception as exc:  # noqa: BLE001
            err = TypeError(f"the result of task {task_id} cannot be sent back: {type(exc).__name__}: {exc}")
            kind, value = "error", pack_exception(err, rank, host)
        meta.append((kind, elapsed))
        values.append(value)
    return meta, values
