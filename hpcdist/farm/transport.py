"""How the coordinator reaches its workers: over MPI, or in-process on a single rank.

Both transports have the same small interface, used only by the engine
(:mod:`hpcdist.farm.driver`) under its lock:

* ``send_tasks(rank, tasks) -> events`` (events for tasks that could not be sent),
* ``send_cancel(rank, ids)``, ``send_ping(rank)``, ``shutdown(payload)``,
* ``poll(now) -> events`` (never blocks),
* ``alive(rank) -> bool | None``: proof of life from outside MPI, None when unknown,
* ``traffic``: ``{rank: [messages_sent, bytes_sent, messages_received, bytes_received]}``,
  the coordinator's side of its talk with each worker. Bytes are the payloads of task and
  result messages (pickles and out-of-band buffers); control messages (heartbeats, pings,
  cancels) count as messages only. Updated per message, not per task.

In-job recovery (ULFM, Open MPI ``mpirun --with-ft ulfm``): with ``ft=True`` the MPI
transport catches the process-failure errors of its MPI calls (a probe, a send, the
``Test`` of a send), asks :func:`hpcdist.runtime.ulfm.failed_ranks` who died and reports
each new dead rank as a :class:`~hpcdist.farm.scheduler.WorkerLost` event: the same event
the heartbeat path ends in, only milliseconds after the death. It never sends to a dead
rank again. Without ULFM (``ft=False``, MPICH) nothing of this runs.
"""

from __future__ import annotations

import os
import pickle
import socket
import threading
import time
from collections import deque
from typing import Any

from hpcdist.farm.requirements import Capabilities
from hpcdist.farm.runner import Runner
from hpcdist.farm.scheduler import Heartbeat, LeaveRequest, Results, WorkerLost
from hpcdist.farm.serialization import Channel, envelope_nbytes, pack, pack_exception, unpack, unpack_exception
from hpcdist.farm.tasks import Task
from hpcdist.runtime.messages import Msg

_TASK_TAG = Msg.TASK.tag
__all__ = ["MPITransport", "LocalTransport", "process_alive"]

#: Messages taken per poll, so that one flood cannot starve the rest of the engine.
MAX_MESSAGES_PER_POLL = 256
#: A batch of tasks whose arguments exceed this many bytes goes as several messages.
SPLIT_BYTES = 1 << 20
#: Bytes of such messages on the wire to one worker at a time (at least one message).
INFLIGHT_BYTES = 4 << 20


def process_alive(pid: int, *, stopped: bool = True) -> bool:
    """True when process ``pid`` exists on this host and is not a zombie.

    ``stopped=False`` also says False for a stopped process (SIGSTOP, a debugger's
    stop: ``T`` or ``t`` in ``/proc``): it exists, but runs nothing until someone
    continues it, so it is no proof that a silent worker is busy."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
        return state not in (("Z", "X") if stopped else ("Z", "X", "T", "t"))
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
            return True
        except PermissionError:
            return True
        except OSError:
            return False


def _outcomes(rank: int, envelope: tuple) -> list[tuple[int, str, Any, float | None]]:
    ids, meta, values = unpack(envelope)
    if isinstance(values, BaseException):
        err = pack_exception(values, 0)
        return [(i, "error", unpack_exception(err), None) for i in ids]
    out = []
    for task_id, (kind, elapsed), value in zip(ids, meta, values):
        if kind == "error":
            value = unpack_exception(value)
        out.append((task_id, kind, value, elapsed))
    return out


class MPITransport:
    """Talks to the workers ``1..size-1`` of ``comm`` with nonblocking messages (:class:`Channel`)."""

    def __init__(self, comm: Any, caps: dict[int, Capabilities], ft: bool = False) -> None:
        self.chan = Channel(comm)
        self.caps = caps
        self.host = socket.gethostname()
        # (request, what it sends: kept alive until done, rank, bytes counted in flight)
        self._sends: list[tuple[Any, Any, int, int]] = []
        self._backlog: dict[int, deque[tuple[Any, int]]] = {}  # large task messages not sent yet
        self._inflight: dict[int, int] = {}  # bytes of large task messages on the wire, by rank
        #: ULFM on: process failures of peers are reported (see the module docstring), not fatal.
        self.ft = ft
        #: Ranks ULFM reported dead; nothing is sent to them any more.
        self.dead: set[int] = set()
        #: One record per dead rank: ``rank``, ``error_class``, ``detected`` (monotonic seconds).
        self.failures: list[dict[str, Any]] = []
        self._events: list[Any] = []  # WorkerLost events found outside poll(), returned by the next poll()
        self.traffic: dict[int, list[int]] = {}

    # ------------------------------------------------------------------ ULFM
    def _on_failure(self, exc: BaseException) -> bool:
        """Handle ``exc`` when it is a peer's process failure under ULFM; False for anything else.

        Acknowledges the failures (which re-enables ``ANY_SOURCE`` probes), queues a
        :class:`WorkerLost` for each rank not known dead before and drops what was
        still to be sent to it.
        """
        if not self.ft:
            return False
        from hpcdist.runtime import ulfm

        if not ulfm.is_process_failure(exc):
            return False
        now = time.monotonic()
        new = sorted(set(ulfm.failed_ranks(self.chan.comm)) - self.dead)
        for rank in new:
            self.dead.add(rank)
            self._backlog.pop(rank, None)
            self._inflight.pop(rank, None)
            self.failures.append({"rank": rank, "error_class": exc.Get_error_class(), "detected": now})  # type: ignore[attr-defined]
            self._events.append(WorkerLost(rank, now, f"process failed (ULFM: MPI error class {exc.Get_error_class()})"))  # type: ignore[attr-defined]
        if new:
            # A request to a dead rank is complete (in error) or never will be: drop it and what it keeps alive.
            self._sends = [s for s in self._sends if s[2] not in self.dead]
        return True

    def _isend(self, obj: Any, rank: int, tag: int, nbytes: int = 0) -> None:
        if rank in self.dead:
            return  # never send to a dead rank; its tasks went back to the queue with its WorkerLost
        try:
            sent = self.chan.isend(obj, rank, tag)
        except Exception as exc:  # noqa: BLE001 - MPI errors are process failures only under ULFM
            if not self._on_failure(exc):
                raise
            if rank in self.dead:
                return
            sent = self.chan.isend(obj, rank, tag)  # another rank's failure surfaced here: send again
        self._sends.append((sent, obj, rank, nbytes))
        if nbytes:
            self._inflight[rank] = self._inflight.get(rank, 0) + nbytes
        t = self.traffic.get(rank)
        if t is None:
            t = self.traffic[rank] = [0, 0, 0, 0]
        t[0] += 1
        if tag == _TASK_TAG:
            t[1] += nbytes or envelope_nbytes(obj)

    def _send_large(self, rank: int, env: tuple) -> None:
        """A task message of split batch: sent now, or once less than ``INFLIGHT_BYTES`` is on the wire.

        Hundreds of large sends posted at once make every poll test them all, and MPI
        moves them no faster than a few at a time: the worker takes them in order anyway.
        """
        size = envelope_nbytes(env)
        queue = self._backlog.get(rank)
        busy = self._inflight.get(rank, 0)
        if queue or (busy and busy + size > INFLIGHT_BYTES):
            self._backlog.setdefault(rank, deque()).append((env, size))
        else:
            self._isend(env, rank, Msg.TASK.tag, size)

    def _reap(self) -> None:
        """Forget the sends that completed; start backlogged ones where room was made."""
        still = []
        failed = False
        for s in self._sends:
            try:
                done = s[0].test()[0]
            except Exception as exc:  # noqa: BLE001 - under ULFM a send to a dead rank completes in error
                if not self._on_failure(exc):
                    raise
                failed, done = True, True
            if done:
                if s[3] and s[2] in self._inflight:
                    self._inflight[s[2]] -= s[3]
            else:
                still.append(s)
        self._sends = [s for s in still if s[2] not in self.dead] if failed else still
        for rank, queue in self._backlog.items():
            while queue and (not self._inflight.get(rank) or self._inflight[rank] + queue[0][1] <= INFLIGHT_BYTES):
                env, size = queue.popleft()
                self._isend(env, rank, Msg.TASK.tag, size)

    def forget(self, rank: int) -> None:
        """Drop what waits to be sent to ``rank`` (a failed worker)."""
        self._backlog.pop(rank, None)

    def send_tasks(self, rank: int, tasks: list[Task]) -> list[Any]:
        ids = [t.id for t in tasks]
        try:
            env = pack(ids, None, [t.payload for t in tasks])
            if len(tasks) > 1 and envelope_nbytes(env) > SPLIT_BYTES:
                self._send_split(rank, tasks)
            else:
                self._isend(env, rank, Msg.TASK.tag)
            return []
        except Exception:  # noqa: BLE001 - find the tasks that do not pickle, send the rest
            good, failed = [], []
            for t in tasks:
                try:
                    pickle.dumps(t.payload, protocol=5)
                    good.append(t)
                except Exception as exc:  # noqa: BLE001
                    err = TypeError(f"task {t.id} ({t.fn_name}) cannot be sent to a worker: {type(exc).__name__}: {exc}")
                    failed.append((t.id, "error", err, None))
            if good:
                self._isend(pack([t.id for t in good], None, [t.payload for t in good]), rank, Msg.TASK.tag)
            return [Results(rank, failed, 0.0)] if failed else []

    def _send_split(self, rank: int, tasks: list[Task]) -> None:
        """A batch with large arguments as several messages of about ``SPLIT_BYTES``.

        The worker starts on the first task while the next ones are still on the wire,
        and sends its results back meanwhile; one message of a hundred arrays would be
        received whole before anything runs.
        """
        group: list[Task] = []
        group_bytes = 0
        for t in tasks:
            env = pack([t.id], None, [t.payload])
            size = envelope_nbytes(env)
            if group and group_bytes + size > SPLIT_BYTES:
                self._send_large(rank, pack([g.id for g in group], None, [g.payload for g in group]))
                group, group_bytes = [], 0
            if size > SPLIT_BYTES:
                self._send_large(rank, env)
                continue
            group.append(t)
            group_bytes += size
        if group:
            self._send_large(rank, pack([g.id for g in group], None, [g.payload for g in group]))

    @property
    def sending(self) -> bool:
        """Whether a send is still in progress (a large one moves only while MPI is polled)."""
        return bool(self._sends) or any(self._backlog.values())

    def send_cancel(self, rank: int, ids: list[int]) -> None:
        self._isend(list(ids), rank, Msg.CANCEL.tag)

    def send_ping(self, rank: int) -> None:
        self._isend(None, rank, Msg.PING.tag)

    def shutdown(self, ranks: list[int], payload: dict[str, Any]) -> None:
        self._backlog.clear()  # tasks that ended (cancelled) before they were sent: a worker past SHUTDOWN must get nothing more
        for rank in ranks:
            self._isend(payload, rank, Msg.SHUTDOWN.tag)

    def farewell(self, ranks: list[int], timeout_s: float = 10.0) -> set[int]:
        """After the shutdown: wait (bounded) for each worker's goodbye; return the ranks that sent none.

        A goodbye is the last message a worker sends on this communicator, and MPI keeps
        one sender's messages in order: what came before it (heartbeats, the outcome of a
        task cancelled while it ran) is received here and dropped, never unpickled. Left
        unreceived, such a message outlives the communicator: MPICH matches it on the
        next one that reuses the context id, where it passes for the next farm's. A
        worker told ``bye`` (ULFM, after a failure) says goodbye with a synchronous send,
        which returns once matched: then it has its shutdown, and either side may end
        without ``MPI_Finalize``. A failure meanwhile only removes a rank from the wait.
        Point-to-point only.
        """
        from hpcdist.runtime.comm import MPI

        waiting = set(ranks) - self.dead
        end = time.monotonic() + timeout_s
        idle = 0
        while waiting and time.monotonic() < end:
            try:
                if self._sends:
                    self._reap()
                got = self.chan.discard(MPI.ANY_SOURCE, MPI.ANY_TAG)
            except Exception as exc:  # noqa: BLE001
                if not self._on_failure(exc):
                    raise
                waiting -= self.dead
                continue
            if got is None:
                idle += 1
                if idle > 1:  # a second look first: see Channel.poll
                    time.sleep(0.0005)
            else:
                idle = 0
                if got[1] == Msg.SHUTDOWN.tag:
                    waiting.discard(got[0])
        return waiting

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait (bounded) for every pending send to complete; True when all did."""
        end = time.monotonic() + timeout_s
        while self._sends and time.monotonic() < end:
            self._reap()
            if self._sends:
                time.sleep(0.0005)
        return not self._sends

    def poll(self, now: float, recheck: bool = True) -> list[Any]:
        """Messages that arrived, as events; ``recheck``: look twice before saying none (after a sleep)."""
        MPI = self.chan._mpi
        if self._sends or self._backlog:
            self._reap()
        events: list[Any] = []
        for i in range(MAX_MESSAGES_PER_POLL):
            try:
                msg = self.chan.poll(MPI.ANY_SOURCE, MPI.ANY_TAG, recheck=recheck and i == 0)
            except Exception as exc:  # noqa: BLE001 - under ULFM a dead peer surfaces here first, as a rule
                if not self._on_failure(exc):
                    raise
                continue  # acknowledged: ANY_SOURCE probes work again
            if msg is None:
                break
            source, tag, obj = msg
            t = self.traffic.get(source)
            if t is None:
                t = self.traffic[source] = [0, 0, 0, 0]
            t[2] += 1
            if tag == Msg.RESULT.tag:
                t[3] += envelope_nbytes(obj)
                events.append(Results(source, _outcomes(source, obj), now))
            elif tag == Msg.LEAVE.tag:
                events.append(Heartbeat(source, now))
                events.append(LeaveRequest(source, now))
            elif tag in (Msg.HEARTBEAT.tag, Msg.PING.tag, Msg.RESOURCE_UPDATE.tag):
                obj = obj or {}
                running = obj.get("running")
                events.append(Heartbeat(source, now, tuple(running) if running is not None else None, obj.get("resources")))
        if self._events:
            # After the messages: a result the dead rank sent before it died still counts.
            events.extend(self._events)
            self._events = []
        return events

    def alive(self, rank: int, *, stopped: bool = False) -> bool | None:
        """Whether worker ``rank``'s process runs (None: not on this host, so unknown).

        ``stopped=True`` counts a stopped process as alive too: it still exists (what
        the shutdown asks), though it proves nothing about a silent worker (what the
        failure detector asks, with the default)."""
        caps = self.caps.get(rank)
        if caps is None or caps.host != self.host or not caps.pid:
            return None
        return process_alive(caps.pid, stopped=stopped)


class LocalTransport:
    """One in-process worker (rank 0 itself) with its own task thread: the single-rank farm.

    Tasks are not pickled: arguments and results are shared, not copied.
    """

    RANK = 0

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._inbox: deque[tuple[int, Any]] = deque()
        self._results: deque[list] = deque()
        self.runner = Runner(self.RANK, socket.gethostname(), self._fetch, self._results.append, self._wait)
        self.runner.start()
        #: Messages only: arguments and results are shared, not sent (no bytes).
        self.traffic: dict[int, list[int]] = {self.RANK: [0, 0, 0, 0]}

    def _fetch(self) -> list[tuple[int, Any]]:
        if not self._inbox:
            return []
        with self._cond:
            got = list(self._inbox)
            self._inbox.clear()
        return got

    def _wait(self, seconds: float) -> None:
        with self._cond:
            if not self._inbox:
                self._cond.wait(seconds * 20)  # new work notifies: a longer nap costs nothing

    def send_tasks(self, rank: int, tasks: list[Task]) -> list[Any]:
        with self._cond:
            self._inbox.extend((t.id, t.payload) for t in tasks)
            self._cond.notify()
        self.traffic[self.RANK][0] += 1
        return []

    def send_cancel(self, rank: int, ids: list[int]) -> None:
        self.runner.cancel(list(ids))

    def send_ping(self, rank: int) -> None:
        pass  # poll() reports the running ids every time

    def shutdown(self, ranks: list[int], payload: dict[str, Any]) -> None:
        self.runner.stop(join_s=float(payload.get("join_s", 2.0)))

    def flush(self, timeout_s: float = 5.0) -> bool:
        return True

    def farewell(self, ranks: list[int], timeout_s: float = 10.0) -> set[int]:
        return set()  # no messages: nothing is left to collect

    def poll(self, now: float, recheck: bool = True) -> list[Any]:
        events: list[Any] = []
        while self._results:
            batch = self._results.popleft()
            self.traffic[self.RANK][2] += 1
            out = [(i, k, unpack_exception(v) if k == "error" else v, e) for i, k, v, e in batch]
            events.append(Results(self.RANK, out, now))
        events.append(Heartbeat(self.RANK, now, self.runner.running_ids()))
        return events

    def alive(self, rank: int, *, stopped: bool = False) -> bool | None:
        return True
