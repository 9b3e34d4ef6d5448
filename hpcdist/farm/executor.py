"""``Farm``: the task farm as a ``concurrent.futures.Executor``.

::

    with hd.Farm() as farm:          # collective over the communicator
        if farm is not None:         # rank 0 coordinates; workers serve inside __enter__
            futures = [farm.submit(f, x) for x in xs]

On one rank (plain ``python`` or ``mpiexec -n 1``) the coordinator runs tasks itself in
a task thread, with the same semantics (priorities, timeouts, retries, cancellation),
except that arguments and results are shared rather than copied.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import itertools
import os
import sys
import threading
import time
from typing import Any, Callable, Iterable, Iterator, Sequence

from hpcdist.farm.driver import Engine
from hpcdist.farm.mapping import MapIterator
from hpcdist.farm.requirements import NO_REQUIREMENTS, Requirements
from hpcdist.farm.runner import Validated
from hpcdist.farm.scheduler import Cancel, Drain, Resolve, Scheduler, SetStrategy, Submit, WorkerInfo, WorkerJoined
from hpcdist.farm.strategies import Strategy, make_strategy
from hpcdist.farm.tasks import Task, TaskInfo, TaskStatus, function_name
from hpcdist.models.farm_mixin import ModelFarmMixin
from hpcdist.runtime.errors import HpcdistError, InputError, collective
from hpcdist.runtime.logs import get_logger

__all__ = ["Farm", "TaskFuture"]

log = get_logger(__name__)
_UNSET: Any = object()
_PENDING = cf._base.PENDING
_FINISHED = cf._base.FINISHED
_DONE_STATES = frozenset((cf._base.CANCELLED, cf._base.CANCELLED_AND_NOTIFIED, _FINISHED))
#: Seconds the coordinator waits for the workers' goodbyes after the shutdown.
FAREWELL_S = 10.0
#: Farm communicators that a goodbye may still reach: never freed, so that no later
#: communicator gets their context id and matches it there (see MPITransport.farewell).
_KEPT_COMMS: list[Any] = []


class TaskFuture(cf.Future):
    """A farm task's future. ``cancel()`` works on pending *and* running tasks.

    Waiting on it (``result()``, ``exception()``) drives the farm from the waiting
    thread, which keeps round trips short.

    Attributes
    ----------
    id : int
        The task id (:meth:`Farm.task`).
    key : str or None
        Its journal key, or the user's key.
    elapsed : float or None
        Seconds the task ran on its worker, once completed.
    """

    def __init__(self, farm: "Farm", task_id: int, key: str | None = None) -> None:
        # cf.Future.__init__ without its per-future Condition (a few microseconds each,
        # the largest cost of a submit): the futures of a farm share one. Safe because
        # the base class only *waits* on it in result()/exception(), which this class
        # reaches once the future is done; set_result's notify_all then wakes nobody
        # spuriously, and wait()/as_completed() register their own waiters as usual.
        self._condition = farm._future_condition
        self._state = _PENDING
        self._result = None
        self._exception = None
        self._waiters = []
        self._done_callbacks = []
        self._farm = farm
        self.id = task_id
        self.key = key
        self.elapsed: float | None = None

    def cancel(self) -> bool:
        if super().cancel():
            self._farm._post_cancel(self.id)
            return True
        return False

    def running(self) -> bool:
        info = self._farm.task(self.id)
        return info is not None and info.status == TaskStatus.RUNNING and not self.done()

    def status(self) -> TaskStatus | None:
        info = self._farm.task(self.id)
        return info.status if info is not None else None

    def done(self) -> bool:
        # Without the condition's lock (cf.Future.done takes it): the waiting loop asks
        # this on every turn, and one attribute read is atomic under the GIL.
        return self._state in _DONE_STATES

    def result(self, timeout: float | None = None) -> Any:
        if self._state == _FINISHED and self._exception is None:
            return self._result  # set before the state (cf.Future.set_result): no lock needed to read
        if self._state not in _DONE_STATES:
            self._farm._wait_for(self, timeout)
            if self._state == _FINISHED and self._exception is None:
                return self._result
        return super().result(timeout=0 if timeout is not None else None)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if not self.done():
            self._farm._wait_for(self, timeout)
        return super().exception(timeout=0 if timeout is not None else None)


class Farm(ModelFarmMixin, cf.Executor):
    """A coordinator/worker task farm over an MPI communicator.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm, optional
        Ranks of the farm (``COMM_WORLD`` when None); rank 0 coordinates.
    strategy : str or Strategy
        ``round_robin``, ``least_loaded``, ``capability``, ``latency``, ``affinity`` or an
        instance of :class:`~hpcdist.farm.strategies.Strategy`.
    timeout : float, optional
        Default per-task timeout in seconds.
    retries : int
        Default retries after a task's own error or timeout.
    backoff : float
        A retry waits ``backoff ** attempt`` seconds.
    journal : str, optional
        Path of a journal (HDF5) that records every completed result; a rerun skips
        the tasks whose key is in it. Coordinator only.
    walltime : float or Walltime, optional
        Seconds left for the job, or a ``Walltime``; by default the Slurm allocation's end
        when there is one. Tasks that cannot finish in time are not started.
    progress : bool, optional
        tqdm bars for :meth:`map` (default: when stderr is a terminal).
    heartbeat_interval, heartbeat_timeout, failure_timeout : float, optional
        Liveness (see :mod:`hpcdist.farm.driver`); the first two default to the settings.
    labels : iterable of str, optional
        This rank's labels (e.g. ``{"model:a"}``) when it is a worker.
    capabilities : dict, optional
        Overrides of this rank's detected capabilities (``cores``, ``memory``, ``gpus``, ...).
    max_in_flight : int, optional
        Tasks handed to a worker at a time; None adapts it to the task length.
    drain_signals : bool or tuple of signal numbers
        Drain on these signals and exit with ``EXIT_REQUEUE`` (needs the main thread).
        True means ``SIGTERM`` only (what Slurm sends at the time limit): MPICH sends
        ``SIGUSR1`` to the survivors when a rank dies, which must not drain the farm.
        Pass ``(signal.SIGTERM, signal.SIGUSR1)`` for ``sbatch --signal=USR1@60``.
    drain_timeout : float, optional
        Seconds a drain lets running tasks finish (default 5); then they are cancelled
        and left for the rerun (not counted as retries). None waits for them however
        long they take.
    metrics : str, optional
        Path of a metrics file (``*.json`` or ``*.jsonl``, format in docs/metrics.md) that
        the coordinator writes at shutdown: per worker and per function, tasks, busy and
        idle time, bytes and messages, EWMA, peak RSS, task-time distribution, throughput
        over time, retries by cause, how the load was spread, and findings (a worker whose
        EWMA drifts). The counters behind it are always kept (constant memory);
        :meth:`metrics` returns them at any time.
    status_dir : str, optional
        Run directory whose ``status.json`` the coordinator rewrites (atomically, at most
        once a second) with tasks done, pending and running, tasks/s, the slowest worker
        and memory, for ``hpcdist status DIR``.
    environ : mapping, optional
        Environment for the settings (tests).

    Notes
    -----
    ``__enter__`` and ``__exit__`` are collective over ``comm``. Defaults come from
    :func:`hpcdist.runtime.settings.load_settings`: explicit argument, then ``HPCDIST_*``
    variables, then the ``HPCDIST_CONFIG`` file, then the built-in default.
    """

    def __init__(
        self,
        comm: Any = None,
        strategy: "str | Strategy | None" = None,
        timeout: float | None = None,
        retries: int | None = None,
        backoff: float | None = None,
        journal: str | None = None,
        walltime: Any = None,
        progress: bool | None = None,
        *,
        heartbeat_interval: float | None = None,
        heartbeat_timeout: float | None = None,
        failure_timeout: float | None = None,
        labels: Iterable[str] | str | None = None,
        capabilities: dict[str, Any] | None = None,
        max_in_flight: int | None = None,
        walltime_margin: float = 30.0,
        drain_signals: "bool | tuple[int, ...]" = True,
        drain_timeout: float | None = 5.0,
        history: int = 100_000,
        metrics: "str | os.PathLike[str] | None" = None,
        status_dir: "str | os.PathLike[str] | None" = None,
        environ: dict[str, str] | None = None,
    ) -> None:
        self._comm_arg = comm
        self._args = dict(strategy=strategy, timeout=timeout, retries=retries, backoff=backoff,
                          heartbeat_interval=heartbeat_interval, heartbeat_timeout=heartbeat_timeout)
        self._journal_path = journal
        self._walltime_arg = walltime
        self._walltime_margin = walltime_margin
        self.progress = progress
        self._failure_timeout = failure_timeout
        self._labels = labels
        self._capabilities = capabilities
        self._max_in_flight = max_in_flight
        self._drain_signals = drain_signals
        self._drain_timeout = drain_timeout
        self._history = history
        self._metrics_path = metrics
        self._status_dir = status_dir
        self._status: Any = None  # StatusWriter on the coordinator
        self._status_next = 0.0
        self._status_prev = (0.0, 0)
        self._failed = False
        self._environ = environ
        self._ids = itertools.count()
        self._futures: dict[int, TaskFuture] = {}
        self._future_condition = threading.Condition()  # shared by this farm's futures (see TaskFuture)
        self._item_keys: dict[int, list[str]] = {}  # journal keys of a map chunk's items, by task id
        #: Tasks (and map items) answered from the journal without running, on this farm.
        self.skipped = 0
        self._item_seconds: dict[str, float] = {}  # map: seconds per item of each function (EWMA)
        self._last_fn: Any = None  # the function submit() saw last, and its name (function_name)
        self._last_fn_name = ""
        self._entered = False
        self._closed = False
        self._shutdown_done = False
        self._goodbyes_missing = False
        self.ctx: Any = None
        self.ulfm = False
        self.engine: Engine | None = None
        self.journal: Any = None
        self._drain_signal: Any = None
        self._worker_shutdown: dict[str, Any] = {}
        self.is_coordinator = True

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> "Farm | None":
        from hpcdist.farm.worker import local_capabilities, serve
        from hpcdist.runtime.context import Context
        from hpcdist.runtime.settings import load_settings

        self.ctx = Context(self._comm_arg, backend="numpy")
        ctx = self.ctx
        # In-job recovery from a dead worker (Open MPI, `mpirun --with-ft ulfm`): the same answer on every rank,
        # from the environment. False under MPICH and plain Open MPI: then nothing below changes.
        from hpcdist.runtime import ulfm

        self.ulfm = ctx.size > 1 and ulfm.ulfm_supported(ctx.comm)
        if self.ulfm:
            ulfm.prepare(ctx.comm)  # errors raise on the farm's private communicator, not abort
        with collective(ctx.comm):
            # A Strategy object (or class) is used as given; only names go through the settings' precedence.
            given = self._args["strategy"]
            is_object = isinstance(given, Strategy) or (isinstance(given, type) and issubclass(given, Strategy))
            args = {**self._args, "strategy": None} if is_object else self._args
            self.settings = load_settings(self._environ, **args)
            self.strategy = make_strategy(given if is_object else self.settings.strategy)
            if self.settings.retries < 0 or self.settings.backoff < 0:
                raise InputError(f"retries and backoff must be >= 0, got {self.settings.retries}, {self.settings.backoff}")
            caps = local_capabilities(ctx, self._labels, self._capabilities)
            # Not given: HPCDIST_METRICS / HPCDIST_STATUS_DIR or the config file.
            if self._metrics_path is None:
                self._metrics_path = self.settings.metrics
            if self._status_dir is None:
                self._status_dir = self.settings.status_dir
            if self._metrics_path is not None:
                from hpcdist.metrics.io import check_metrics_path

                check_metrics_path(self._metrics_path, probe=ctx.rank == 0)  # one probe file per job
            if self._status_dir is not None:
                from hpcdist.metrics.status import StatusWriter

                try:  # rank 0 only makes the directory; a failure is every rank's error
                    self._status = StatusWriter(self._status_dir, ctx.comm, what="farm", unit="tasks/s")
                except OSError as exc:
                    raise InputError(f"cannot create the status directory ({exc.strerror})",
                                     path=str(self._status_dir)) from None
        self._entered = True
        self._install_drain_signal()
        all_caps = ctx.comm.gather(caps, root=0)
        if ctx.rank != 0:
            self.is_coordinator = False
            drain_event = self._drain_signal.requested if self._drain_signal is not None else None
            self._worker_shutdown = serve(ctx.comm, heartbeat_interval=self.settings.heartbeat_interval,
                                          drain_event=drain_event, ulfm=self.ulfm)
            return None
        try:
            self._start_coordinator(all_caps)
        except BaseException:
            self._send_shutdown({"code": None})
            raise
        return self

    def _start_coordinator(self, all_caps: list) -> None:
        from hpcdist.farm.transport import LocalTransport, MPITransport

        s = self.settings
        now = time.monotonic()
        deadline, margin = self._deadline(now)
        self.scheduler = Scheduler(
            self.strategy, backoff=s.backoff, heartbeat_timeout=s.heartbeat_timeout,
            failure_timeout=self._failure_timeout, max_in_flight=self._max_in_flight,
            deadline=deadline, margin_s=margin, history=self._history,
        )
        if self.ctx.size == 1:
            transport: Any = LocalTransport()
            self.scheduler.handle(WorkerJoined(0, all_caps[0], now))
        else:
            transport = MPITransport(self.ctx.comm, {c.rank: c for c in all_caps[1:]}, ft=self.ulfm)
            for caps in all_caps[1:]:
                self.scheduler.handle(WorkerJoined(caps.rank, caps, now))
        if self._journal_path is not None:
            self.journal = _open_journal(self._journal_path)
        drain_event = self._drain_signal.requested if self._drain_signal is not None else None
        on_tick = self._status_tick if self._status is not None else None
        self.engine = Engine(self.scheduler, transport, self._on_resolve, tick_s=min(0.01, s.heartbeat_interval / 4),
                             drain_event=drain_event, drain_grace_s=self._drain_timeout, on_tick=on_tick)
        if self._status is not None:
            self._status_prev = (now, 0)
            self._write_status(now, force=True)
        self.engine.start()

    def _deadline(self, now: float) -> tuple[float | None, float]:
        """The allocation's end on the monotonic clock, and the safety margin."""
        w = self._walltime_arg
        margin = self._walltime_margin
        if w is None:
            try:
                from hpcdist.farm.walltime import allocation_end
            except ImportError:
                return None, margin
            end = allocation_end()
            return (None if end is None else now + (end - time.time())), margin
        if isinstance(w, (int, float)):
            return now + float(w), margin
        end = getattr(w, "end", None)
        margin = float(getattr(w, "margin_s", margin))
        return (None if end is None else now + (end - time.time())), margin

    def _install_drain_signal(self) -> None:
        if not self._drain_signals or threading.current_thread() is not threading.main_thread():
            return
        try:
            from hpcdist.farm.walltime import DrainSignal
        except ImportError:
            return
        import signal

        signals = (signal.SIGTERM,) if self._drain_signals is True else tuple(self._drain_signals)
        self._drain_signal = DrainSignal(signals)
        self._drain_signal.install()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        from hpcdist.farm.tasks import DrainRequested

        code = None
        self._failed = exc_type is not None and not issubclass(exc_type, (SystemExit, KeyboardInterrupt))
        try:
            if self.is_coordinator:
                if self.engine is not None:
                    # An exception leaves the block: cancel what is left, but always release the workers.
                    self.shutdown(wait=True, cancel_futures=exc_type is not None)
                if self.engine is not None and self.engine.drained:
                    code = _exit_requeue()
                lost = bool(self.engine and self.engine.lost)
            else:
                code = self._worker_shutdown.get("code")
                lost = bool(self._worker_shutdown.get("lost"))
        finally:
            if self._drain_signal is not None:
                self._drain_signal.restore()
        if lost:
            _skip_mpi_finalize(code or 0)  # a dead peer makes collectives and MPI_Finalize hang
        elif self._goodbyes_missing:
            _KEPT_COMMS.append(self.ctx.comm)  # a late goodbye must not reach the next farm
        else:
            self.ctx.close()
        if code is not None:
            sys.stdout.flush()
            raise _collective_exit(code)
        if exc_type is not None and issubclass(exc_type, DrainRequested):
            raise _collective_exit(_exit_requeue())
        return False

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking tasks; optionally cancel the pending ones; wait for the rest.

        On the coordinator, once nothing is left, the workers leave their serve loop.
        """
        if self.engine is None or self._shutdown_done:
            self._closed = True
            return
        if threading.current_thread() is self.engine._thread:
            raise RuntimeError("shutdown() from a future's callback would wait on itself")
        self._closed = True
        if cancel_futures:
            for fut in list(self._futures.values()):
                fut.cancel()
        if not wait:
            return  # __exit__ waits and releases the workers
        self.engine.wait_until(lambda: self.scheduler.idle and not self.engine.inbox)
        self.engine.stop()
        self._shutdown_done = True
        self._write_metrics_file()
        if self.journal is not None:
            # Before the workers are released: once they exit (a drain's EXIT_REQUEUE may
            # abort the job under `hpcdist exec`), this rank may be gone at any moment.
            self.journal.close()
        payload: dict[str, Any] = {"code": _exit_requeue() if self.engine.drained else None,
                                   "lost": bool(self.engine.lost)}
        if self.ulfm and self.engine.lost:
            payload["bye"] = True  # each worker confirms with a synchronous send (see MPITransport.farewell)
        self._send_shutdown(payload)

    def _send_shutdown(self, payload: dict[str, Any]) -> None:
        if self.engine is None:
            return
        transport = self.engine.transport
        live = [r for r in self.scheduler.workers if r not in self.engine.lost and r != 0]
        transport.shutdown(live, payload)
        # A lost worker whose process is still here (stopped, or silent too long) gets its
        # shutdown as well, so that it ends when it runs again instead of serving no one
        # and keeping the job alive; nobody waits for its goodbye, and it is not asked to
        # confirm with a synchronous send, which no one would match.
        lingering = [r for r in sorted(self.engine.lost) if r != 0 and transport.alive(r, stopped=True)]
        if lingering:
            transport.shutdown(lingering, {**payload, "bye": False, "lost": True})
        transport.flush(5.0)
        # Every worker's last message received: nothing of this farm is left for the next
        # one on a communicator with the same context id (see MPITransport.farewell).
        missing = transport.farewell(live, FAREWELL_S)
        if missing:
            self._goodbyes_missing = True
            log.warning("no goodbye from worker(s) %s within %g s of the shutdown; this farm's communicator is "
                        "kept, not freed, so that their messages reach no later one", sorted(missing), FAREWELL_S)

    @property
    def worker_failures(self) -> list[dict[str, Any]]:
        """The workers lost by this farm, one dict each (coordinator only).

        Keys: ``rank``, ``reason``, ``requeued`` (``time.monotonic()`` once its tasks were
        back in the queue and the survivors had been sent what they could take); under
        ULFM also ``detected`` (when the failure surfaced in an MPI call),
        ``error_class`` and ``detect_to_requeue_ms``.
        """
        if self.engine is None:
            return []
        found = {f["rank"]: f for f in getattr(self.engine.transport, "failures", [])}
        out = []
        for rec in self.engine.losses:
            rec = dict(rec)
            f = found.get(rec["rank"])
            if f is not None:
                rec.update(detected=f["detected"], error_class=f["error_class"],
                           detect_to_requeue_ms=round(1000 * (rec["requeued"] - f["detected"]), 3))
            out.append(rec)
        return out

    # ------------------------------------------------------- metrics and status
    def metrics(self) -> dict[str, Any]:
        """The farm's metrics so far (coordinator only): the document a ``metrics=`` file holds.

        Keys ``header``, ``summary`` (with ``load``, the load spread), ``workers``,
        ``functions``, ``throughput``, ``ewma``, ``findings``; see docs/metrics.md.
        """
        if self.engine is None:
            return {}
        with self.engine.lock:
            return self._metrics_doc(time.monotonic())

    def load(self) -> dict[str, Any]:
        """How the load was spread so far: tasks and busy seconds per worker, imbalance factors."""
        doc = self.metrics()
        if not doc:
            return {}
        out = dict(doc["summary"]["load"])
        out["per_worker"] = {w["rank"]: {"tasks": w["tasks"], "busy_s": w["busy_s"], "idle_s": w["idle_s"]}
                             for w in doc["workers"]}
        return out

    def _metrics_doc(self, now: float) -> dict[str, Any]:
        from hpcdist.metrics.run import peak_rss_bytes

        header = {"ranks": self.ctx.size if self.ctx is not None else 1, "coordinator_peak_rss": peak_rss_bytes(),
                  "skipped": self.skipped}
        traffic = getattr(self.engine.transport, "traffic", None) if self.engine is not None else None
        return self.scheduler.metrics(now, traffic=traffic, header=header)

    def _write_metrics_file(self) -> None:
        """At shutdown: the metrics file and the status file's last state (coordinator).

        Never raises: the workers still wait for their shutdown message.
        """
        now = time.monotonic()
        if self._metrics_path is not None:
            from hpcdist.metrics.io import write_metrics

            try:
                doc = self._metrics_doc(now)
                write_metrics(self._metrics_path, None, findings=doc["findings"], farm=doc)
            except Exception as exc:  # noqa: BLE001
                log.error("farm metrics not written to %s: %s", self._metrics_path, exc)
        if self._status is not None:
            try:
                self._write_status(now, force=True, overall=True)
                self._status.finish("failed" if self._failed else "finished", fill=False)
            except Exception as exc:  # noqa: BLE001
                log.error("farm status not written: %s", exc)

    def _status_tick(self, now: float) -> None:
        """The engine's tick (under its lock): rewrite the status file once ``min_interval`` has passed."""
        if now >= self._status_next:
            try:
                self._write_status(now)
            except OSError as exc:  # a full disk must not stop the farm: no more status, say so once
                log.warning("farm status file not written (%s); no more status updates", exc)
                self.engine.on_tick = None

    def _write_status(self, now: float, force: bool = False, overall: bool = False) -> None:
        """Rate: tasks/s since the last write (``overall``: since the start, for the final state)."""
        st = self._status
        self._status_next = now + st.min_interval
        sched = self.scheduler
        done = sched.stats.completed
        t_prev, done_prev = (sched.stats.t0, 0) if overall else self._status_prev
        rate = (done - done_prev) / (now - t_prev) if now > t_prev else None
        self._status_prev = (now, done)
        live = [w for w in sched.workers.values() if not w.lost]
        timed = [w for w in live if w.ewma_s is not None]
        slowest = max(timed, key=lambda w: (w.ewma_s, -w.rank)) if len(timed) > 1 else None
        rss = [w for w in live if w.peak_rss is not None]
        biggest = max(rss, key=lambda w: w.peak_rss) if rss else None
        failed = sum(sum(v.values()) for v in sched.stats.outcomes.values())
        message = None
        if slowest is not None:
            message = f"slowest worker: rank {slowest.rank}, EWMA task time {slowest.ewma_s:.3g} s"
        st.update(done=done, total=sched.stats.submitted, rate=rate,
                  slowest_rank=slowest.rank if slowest is not None else None, message=message, force=force,
                  pending=sched.n_pending, running=sched.n_running, failed=failed, workers=len(live),
                  worker_memory_max=biggest.peak_rss if biggest is not None else None,
                  worker_memory_max_rank=biggest.rank if biggest is not None else None)

    def set_strategy(self, strategy: "str | Strategy") -> None:
        """Place the tasks from now on with another strategy (a name or a :class:`Strategy`).

        Thread-safe: the change goes through the scheduler's event queue and is in
        effect when this returns. Tasks already handed to a worker stay there; queued
        ones follow the new strategy. The change is recorded in the metrics
        (``summary.strategies``).

        Raises
        ------
        InputError
            An unknown strategy name.
        """
        self._check_open()
        new = make_strategy(strategy)
        self.engine.post(SetStrategy(new, 0.0))
        self.engine.step()
        self.strategy = new

    # ------------------------------------------------------------------- submit
    def _check_open(self) -> None:
        if not self._entered or self.engine is None:
            raise RuntimeError("use the farm inside `with hpcdist.Farm() as farm:` (on the coordinator)")
        if self._closed:
            raise RuntimeError("cannot submit to a farm that was shut down")

    def submit(self, fn: Callable[..., Any], /, *args: Any, priority: int = 0, requires: Requirements | None = None,
               timeout: float | None = _UNSET, retries: int | None = None, key: str | None = None,
               after: Sequence[cf.Future] = (), expected_s: float | None = None,
               validate: Callable[[Any], Any] | None = None, **kwargs: Any) -> TaskFuture:
        """Schedule ``fn(*args, **kwargs)``; return its future.

        Parameters
        ----------
        priority : int
            Higher runs first; FIFO within a priority.
        requires : Requirements, optional
            Cores, memory, GPUs, labels the worker must have.
        timeout : float, optional
            Seconds the task may run (default: the farm's).
        retries : int, optional
            Retries after an error or timeout (default: the farm's).
        key : str, optional
            Identifies the task in the journal (default: a hash of function and arguments).
        after : sequence of futures
            Tasks that must complete first; their results are passed as leading arguments.
        expected_s : float, optional
            Expected run time, for the walltime check (default: the function's EWMA).
        validate : callable, optional
            ``validate(result)`` must be truthy, else the attempt is an error (retried).
        """
        self._check_open()
        if not callable(fn):
            raise TypeError(f"submit() needs a callable, got {type(fn).__name__}")
        target = Validated(fn, validate) if validate is not None else fn
        if fn is self._last_fn:  # a loop of submits of one function: its name once
            fn_name = self._last_fn_name
        else:
            fn_name = function_name(fn)
            self._last_fn, self._last_fn_name = fn, fn_name
        return self._submit_payload(
            (target, args, kwargs), fn_name, priority=priority, requires=requires, timeout=timeout,
            retries=retries, key=key, after=after, expected_s=expected_s, journal_fn=fn, journal_args=(args, kwargs),
        )

    def _submit_payload(self, payload: tuple, fn_name: str, *, priority: int = 0, requires: Requirements | None = None,
                        timeout: float | None = _UNSET, retries: int | None = None, key: str | None = None,
                        after: Sequence[cf.Future] = (), expected_s: float | None = None,
                        journal_fn: Any = None, journal_args: Any = None,
                        item_keys: list[str] | None = None) -> TaskFuture:
        """Queue one task. With a journal, a task of ``journal_fn(*journal_args)`` gets its key
        and is answered from the journal when done before; a map chunk passes ``item_keys``
        instead (one per item of its result list), recorded item by item."""
        task_id = next(self._ids)
        if self.journal is not None and not after and item_keys is None:
            from hpcdist.farm.journal import task_key

            key = task_key(journal_fn, journal_args[0], journal_args[1], key)
            if key in self.journal:
                fut = TaskFuture(self, task_id, key)
                fut.set_result(self.journal.get(key))
                self.skipped += 1
                return fut
        if item_keys is not None and self.journal is not None:
            self._item_keys[task_id] = item_keys
        fut = TaskFuture(self, task_id, key)
        dep_ids = []
        for dep in after:
            if not isinstance(dep, TaskFuture) or dep._farm is not self:
                raise InputError("after= takes futures returned by this farm's submit()")
            dep_ids.append(dep.id)
        task = Task(
            task_id, payload, fn_name=fn_name, priority=int(priority), requires=requires or NO_REQUIREMENTS,
            timeout=self.settings.timeout if timeout is _UNSET else timeout,
            retries=self.settings.retries if retries is None else int(retries),
            key=key, expected_s=expected_s, after=tuple(dep_ids),
        )
        self._futures[task_id] = fut
        if after:
            self.engine.post(_DeferredSubmit(task, list(after)))  # dependencies resolved under the engine lock
        else:
            self.engine.post(Submit(task, 0.0))
        return fut

    def _post_cancel(self, task_id: int) -> None:
        if self.engine is not None:
            self.engine.post(Cancel(task_id, 0.0))

    def _wait_for(self, fut: cf.Future, timeout: float | None) -> None:
        if self.engine is None:
            return
        self.engine.wait_until(fut.done, timeout)

    def _on_resolve(self, resolves: list[Resolve]) -> None:
        if self.journal is not None:
            done = []
            for r in resolves:
                item_keys = self._item_keys.pop(r.task.id, None)
                if r.status != TaskStatus.COMPLETED:
                    continue
                if item_keys is not None:
                    done.extend(zip(item_keys, r.value))  # a map chunk: one record per item
                elif r.task.key is not None:
                    done.append((r.task.key, r.value))
            if done:
                self.journal.record_many(done)  # durable before any future says "done"
        futures = self._futures
        completed = TaskStatus.COMPLETED
        done: list[TaskFuture] = []
        others: list[tuple[TaskFuture, Resolve]] = []
        # Results of the whole batch under one acquisition of the futures' shared
        # condition and one notify_all (what cf.Future.set_result does per future).
        with self._future_condition:
            for r in resolves:
                fut = futures.pop(r.task.id, None)
                if fut is None:
                    continue
                if r.status != completed:
                    others.append((fut, r))
                    continue
                if fut._state != _PENDING and fut._state != cf._base.RUNNING:
                    continue  # the user cancelled it at this very moment
                fut.elapsed = r.task.elapsed
                fut._result = r.value
                fut._state = _FINISHED
                for waiter in fut._waiters:
                    waiter.add_result(fut)
                done.append(fut)
            # Only a thread in result()/exception() of a future finished elsewhere waits
            # on it; with none waiting, notify_all's Python-level bookkeeping is skipped
            # (its waiter list is read under the lock, so none can be missed).
            if done and self._future_condition._waiters:  # type: ignore[attr-defined]
                self._future_condition.notify_all()
        for fut in done:
            if fut._done_callbacks:
                fut._invoke_callbacks()
        for fut, r in others:
            if fut.done():
                continue
            try:
                if r.status == TaskStatus.CANCELLED:
                    cf.Future.cancel(fut)
                else:
                    fut.set_exception(r.value)
            except cf.InvalidStateError:
                pass  # the user cancelled it at this very moment

    # ------------------------------------------------------------------ queries
    def tasks(self, status: TaskStatus | str | None = None) -> list[TaskInfo]:
        """Snapshots of the tasks (unfinished ones and the recently finished), optionally by status."""
        if self.engine is None:
            return []
        with self.engine.lock:
            self.engine._step()
            return self.scheduler.task_infos(status)

    def task(self, task_id: int) -> TaskInfo | None:
        """A snapshot of one task (None when unknown or forgotten)."""
        if self.engine is None:
            return None
        with self.engine.lock:
            return self.scheduler.task_info(task_id)

    def workers(self) -> list[WorkerInfo]:
        """Snapshots of the workers: status, capabilities, load, resource figures."""
        if self.engine is None:
            return []
        with self.engine.lock:
            return self.scheduler.worker_infos()

    def drain(self, rank: int) -> None:
        """Give ``rank`` no new tasks; its queued ones go elsewhere, its running one finishes."""
        self._check_open()
        if rank not in self.scheduler.workers:
            raise InputError(f"no worker with rank {rank}; workers: {sorted(self.scheduler.workers)}")
        self.engine.post(Drain(rank, 0.0))
        self.engine.step()

    @property
    def n_workers(self) -> int:
        return len(self.scheduler.workers) if self.engine is not None else 0

    # --------------------------------------------------------------------- map
    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any], timeout: float | None = None,
            chunksize: int | None = None, ordered: bool = True, progress: bool | None = None,
            priority: int = 0, **submit_kw: Any) -> Iterator[Any]:
        """``fn`` over the items, lazily: bounded memory on any length of input.

        Parameters
        ----------
        chunksize : int, optional
            Items per task. None batches automatically: a probe of one single-item
            task per worker, then about 10 ms of work per task, measured as the map
            runs (tiny functions get big chunks, long ones one item). The iterator
            reports what it sent: ``n_chunks``, ``n_items``, ``chunk_sizes``.
        ordered : bool
            Yield in input order (True) or as results arrive (False).
        timeout : float, optional
            Seconds, from the call, after which waiting for a result raises ``TimeoutError``.
        progress : bool, optional
            A tqdm bar (default: the farm's ``progress``, else when stderr is a terminal).

        Notes
        -----
        With a journal every item is journaled under its own key, the key
        ``submit(fn, item)`` would get (``fn, *item`` for several iterables), whatever
        the chunking: a rerun skips exactly the items done (``skipped`` on the iterator
        and on the farm counts them), with any ``chunksize``.
        """
        self._check_open()
        if chunksize is not None and chunksize < 1:
            raise InputError(f"chunksize must be >= 1, got {chunksize}")
        star = len(iterables) > 1
        items = zip(*iterables) if star else iter(iterables[0])
        total = None
        if not star and hasattr(iterables[0], "__len__"):
            total = len(iterables[0])  # type: ignore[arg-type]
        show = self.progress if progress is None else progress
        return MapIterator(self, fn, items, star, chunksize, ordered, timeout, show, total, priority, submit_kw)

    def ensemble(self, fns: Sequence[Callable[..., Any]], *args: Any, aggregate: Any = "all",
                 weights: Sequence[float] | None = None, validate: Callable[[Any], Any] | None = None,
                 timeout: float | None = None, **submit_kw: Any) -> Any:
        """Run every ``fn(*args)`` and combine the results (see :mod:`hpcdist.farm.aggregation`).

        ``aggregate`` is ``"first"`` (the first success; the others are cancelled), ``"all"``,
        ``"majority"`` (ties to the value seen first in ``fns`` order), ``"weighted_mean"``
        (with ``weights``) or a callable taking the list of results.
        """
        from hpcdist.farm.aggregation import combine

        futures = [self.submit(fn, *args, validate=validate, **submit_kw) for fn in fns]
        return combine(self, futures, aggregate, weights=weights, timeout=timeout)


class _DeferredSubmit:
    """A submit with dependencies; the engine looks at them under its lock."""

    __slots__ = ("task", "after", "now")

    def __init__(self, task: Task, after: list[TaskFuture]) -> None:
        self.task = task
        self.after = after
        self.now = 0.0

    def prepare(self, now: float) -> Submit:
        return _deferred_to_submit(self, now)


def _deferred_to_submit(ev: _DeferredSubmit, now: float) -> Submit:
    known: dict[int, tuple[TaskStatus, Any]] = {}
    for dep in ev.after:
        if dep.done():
            if dep.cancelled():
                known[dep.id] = (TaskStatus.CANCELLED, None)
            elif dep.exception() is not None:
                known[dep.id] = (TaskStatus.ERROR, dep.exception())
            else:
                known[dep.id] = (TaskStatus.COMPLETED, dep.result())
    return Submit(ev.task, now, known)


def _open_journal(path: str) -> Any:
    try:
        from hpcdist.farm.journal import Journal
    except ImportError as exc:
        raise HpcdistError(f"journal={path!r} needs hpcdist.farm.journal, which is not available ({exc})") from None
    return Journal(path)


def _exit_requeue() -> int:
    try:
        from hpcdist.farm.walltime import EXIT_REQUEUE
    except ImportError:
        return 75
    return int(EXIT_REQUEUE)


def _collective_exit(code: int) -> SystemExit:
    """A ``SystemExit`` that every rank of the farm raises with the same code (a drain).

    Marked ``collective`` like :class:`~hpcdist.runtime.errors.HpcdistError`: it is not
    one rank failing alone, so a guard need not abort the job over it.
    """
    exc = SystemExit(code)
    exc.collective = True  # type: ignore[attr-defined]
    return exc


_skip_registered = False


def _skip_mpi_finalize(code: int) -> None:
    """End this process at exit without MPI_Finalize (it hangs once a peer has died)."""
    global _skip_registered
    if _skip_registered:
        return
    _skip_registered = True

    def _bye() -> None:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)

    atexit.register(_bye)
