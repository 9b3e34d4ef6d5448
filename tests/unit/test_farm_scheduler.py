"""The farm's scheduling state machine, driven by hand without MPI."""

from __future__ import annotations

import pytest

from hpcdist.farm.requirements import Capabilities, Requirements
from hpcdist.farm.scheduler import (
    Alive,
    Cancel,
    Dispatch,
    Drain,
    DrainAll,
    Drained,
    Heartbeat,
    LeaveRequest,
    Ping,
    Quarantine,
    Resolve,
    Results,
    Scheduler,
    SendCancel,
    Submit,
    Tick,
    WorkerFailed,
    WorkerJoined,
    WorkerLost,
    WorkerStatus,
)
from hpcdist.farm.strategies import Affinity, make_strategy
from hpcdist.farm.tasks import (
    DependencyFailed,
    DrainRequested,
    NoWorkersLeft,
    RequirementError,
    Task,
    TaskStatus,
    TaskTimeout,
    WalltimeExceeded,
)


class Boom(Exception):
    pass


def make(n_workers=2, *, caps=None, **kw):
    kw.setdefault("heartbeat_timeout", 5.0)
    s = Scheduler(**kw)
    for r in range(1, n_workers + 1):
        c = (caps or {}).get(r, Capabilities(rank=r, cores=4, memory=8 * 2**30))
        s.handle(WorkerJoined(r, c, 0.0))
    return s


_ids = iter(range(10**9))


def task(fn="f", *, args=(), **kw):
    return Task(next(_ids), ("fn", tuple(args), {}), fn_name=fn, **kw)


def dispatched(actions):
    return [(a.rank, t.id) for a in actions if isinstance(a, Dispatch) for t in a.tasks]


def resolved(actions):
    return {a.task.id: (a.status, a.value) for a in actions if isinstance(a, Resolve)}


def beat(s, now):
    for r in s.workers:
        s.handle(Heartbeat(r, now))


def ok(rank, *ids, now=1.0, value="v", elapsed=0.1):
    return Results(rank, [(i, "ok", value, elapsed) for i in ids], now)


def test_submitted_task_is_dispatched_and_completed():
    s = make(1)
    t = task()
    acts = s.handle(Submit(t, 0.0))
    assert dispatched(acts) == [(1, t.id)]
    assert s.task_info(t.id).status == TaskStatus.RUNNING
    acts = s.handle(ok(1, t.id, value=42))
    assert resolved(acts) == {t.id: (TaskStatus.COMPLETED, 42)}
    assert s.task_info(t.id).status == TaskStatus.COMPLETED and s.idle


def test_priority_first_then_fifo_within_a_priority():
    s = make(1, max_in_flight=1)
    blocker = task()
    s.handle(Submit(blocker, 0.0))
    prios = [0, 5, 1, 5, 0, 9, 1]
    ts = [task(priority=p) for p in prios]
    for t in ts:
        assert dispatched(s.handle(Submit(t, 0.1))) == []  # the only slot is taken
    order = []
    last = blocker
    for i in range(len(ts)):
        acts = s.handle(ok(1, last.id, now=1.0 + i))
        (r, tid), = dispatched(acts)
        order.append(tid)
        last = next(t for t in ts if t.id == tid)
    expected = [t.id for t in sorted(ts, key=lambda t: (-t.priority, t.id))]
    assert order == expected
    assert [s.task_info(i).dispatch_seq for i in order] == list(range(1, len(ts) + 1))


def test_in_flight_is_bounded_per_worker_and_adapts_to_task_time():
    s = make(2)
    ts = [task() for _ in range(1000)]
    acts = s.handle_many(Submit(t, 0.0) for t in ts)
    # Before any measurement: 2 per worker, so that nobody waits for its next task.
    per_rank = {1: 0, 2: 0}
    for r, _ in dispatched(acts):
        per_rank[r] += 1
    assert per_rank == {1: 2, 2: 2}
    # Tiny tasks: the depth grows (more work queued per message), bounded.
    first = [tid for r, tid in dispatched(acts) if r == 1]
    acts = s.handle(ok(1, *first, elapsed=1e-5))
    more = [tid for r, tid in dispatched(acts) if r == 1]
    assert 2 < s.workers[1].capacity <= 256
    assert len(more) == s.workers[1].capacity == s.workers[1].in_flight
    # Long tasks keep the depth at the minimum.
    acts = s.handle(Results(2, [(i, "ok", 0, 10.0) for i in list(s.workers[2].running)], 2.0))
    assert s.workers[2].capacity == 2 and s.workers[2].in_flight == 2


def test_a_function_never_timed_gets_the_minimum_depth_on_a_deep_worker():
    s = make(2)
    warm = [task("tiny") for _ in range(2)]
    acts = s.handle_many(Submit(t, 0.0) for t in warm)
    for rank in (1, 2):
        s.handle(ok(rank, *[tid for r, tid in dispatched(acts) if r == rank], elapsed=1e-6))
    assert s.workers[1].capacity == 256  # what the worker's own EWMA allows
    # A new function: its length is unknown, so no worker may take 256 of it.
    slow = [task("slow") for _ in range(100)]
    per_rank = {1: 0, 2: 0}
    for r, _ in dispatched(s.handle_many(Submit(t, 1.0) for t in slow)):
        per_rank[r] += 1
    assert per_rank == {1: 2, 2: 2}
    # Once timed at 10 ms, about prefetch_s (5 ms) of it: still the minimum of 2 each.
    head = next(iter(s.workers[1].running))
    acts = s.handle(ok(1, head, now=1.01, elapsed=0.01))
    assert len(dispatched(acts)) == 1 and s.workers[1].in_flight == 2


def test_slack_counts_the_work_queued_behind_the_running_task():
    s = make(2)
    a = [task("ten_ms") for _ in range(6)]
    s.fn_ewma["ten_ms"] = 0.010
    s.handle_many(Submit(t, 0.0) for t in a)  # 2 per worker: one runs, one waits
    assert s.slack(0.0, horizon=1.0) == pytest.approx(0.010)
    assert s.slack(0.0, horizon=0.004) == pytest.approx(0.004)  # bounded by the horizon
    s.handle(Submit(task("never_timed"), 0.0))
    assert s.slack(0.0, 1.0) == pytest.approx(0.010)  # queued at the scheduler, not at a worker
    # One task left on a worker: how much of it is left (its start is when it was seen).
    solo = make(1)
    solo.fn_ewma["ten_ms"] = 0.010
    solo.handle(Submit(task("ten_ms"), 0.0))
    assert solo.slack(0.004, 1.0) == pytest.approx(0.006)
    assert solo.slack(0.020, 1.0) == 0.0
    unknown = make(1)
    unknown.handle(Submit(task("never_timed"), 0.0))
    assert unknown.slack(0.0, 1.0) == 0.0  # its result may come at any moment


def test_a_worker_asking_to_leave_is_drained_and_all_asking_drains_the_farm():
    s = make(2, max_in_flight=2)
    ts = [task() for _ in range(6)]
    s.handle_many(Submit(t, 0.0) for t in ts)
    on_1 = list(s.workers[1].running)
    acts = s.handle(LeaveRequest(1, 1.0))
    assert any(isinstance(x, SendCancel) and x.rank == 1 and x.task_ids == on_1[1:] for x in acts)
    assert s.workers[1].draining and not s.draining
    acts = s.handle(ok(1, on_1[0], now=1.5))
    assert all(r == 2 for r, _ in dispatched(acts))
    assert s.workers[1].status == WorkerStatus.OFFLINE
    acts = s.handle(LeaveRequest(2, 2.0, grace_s=5.0))  # the last one: the job is being stopped
    assert s.draining
    for tid in list(s.workers[2].running):
        acts = s.handle(ok(2, tid, now=2.5))
    res = resolved(acts)
    assert any(isinstance(x, Drained) for x in acts)
    assert any(isinstance(v, DrainRequested) for _, v in res.values())


def test_batches_many_tasks_in_one_dispatch_per_worker():
    s = make(2, max_in_flight=10)
    ts = [task() for _ in range(15)]
    s.handle_many(Submit(t, 0.0) for t in ts[:1])
    acts = []
    for t in ts[1:]:
        acts += s.handle(Submit(t, 0.0))
    assert sum(len(a.tasks) for a in acts if isinstance(a, Dispatch)) == 14


def test_error_uses_up_retries_with_backoff_on_another_worker():
    s = make(3, backoff=2.0)
    t = task(retries=2)
    (r1, _), = dispatched(s.handle(Submit(t, 0.0)))
    acts = s.handle(Results(r1, [(t.id, "error", Boom("1"), 0.1)], 1.0))
    assert resolved(acts) == {} and dispatched(acts) == []  # waits backoff ** 1 = 2 s
    assert dispatched(s.handle(Tick(2.9))) == []
    (r2, _), = dispatched(s.handle(Tick(3.0)))
    assert r2 != r1
    acts = s.handle(Results(r2, [(t.id, "error", Boom("2"), 0.1)], 4.0))
    beat(s, 7.9)
    assert dispatched(s.handle(Tick(4.0 + 3.9))) == []  # backoff ** 2 = 4 s
    beat(s, 8.0)
    (r3, _), = dispatched(s.handle(Tick(8.0)))
    assert r3 not in (r1, r2)
    err = Boom("3")
    acts = s.handle(Results(r3, [(t.id, "error", err, 0.1)], 9.0))
    assert resolved(acts) == {t.id: (TaskStatus.ERROR, err)}
    info = s.task_info(t.id)
    assert info.attempts == 3 and info.errors_used == 3 and set(info.tried) == {1, 2, 3}


def test_retry_returns_to_a_tried_worker_only_when_no_other_exists():
    s = make(1, backoff=0)
    t = task(retries=1)
    s.handle(Submit(t, 0.0))
    acts = s.handle(Results(1, [(t.id, "error", Boom(), 0.1)], 1.0))
    assert dispatched(acts) == [(1, t.id)]


def test_retry_waits_for_an_untried_worker_that_is_busy():
    s = make(2, backoff=0, max_in_flight=1)
    t, other = task(retries=1), task()
    s.handle(Submit(t, 0.0))
    s.handle(Submit(other, 0.0))
    assert (s.task_info(t.id).worker, s.task_info(other.id).worker) == (1, 2)
    acts = s.handle(Results(1, [(t.id, "error", Boom(), 0.1)], 1.0))
    assert dispatched(acts) == []  # rank 1 is free, but rank 2 was not tried yet
    assert dispatched(s.handle(ok(2, other.id, now=2.0))) == [(2, t.id)]


def test_worker_lost_requeues_without_using_retries():
    s = make(2, max_in_flight=1)
    t = task(retries=0)
    (r, _), = dispatched(s.handle(Submit(t, 0.0)))
    acts = s.handle(WorkerLost(r, 1.0, "process gone"))
    assert any(isinstance(a, WorkerFailed) and a.rank == r for a in acts)
    assert dispatched(acts) == [(3 - r, t.id)]
    assert s.task_info(t.id).errors_used == 0
    assert s.workers[r].status == WorkerStatus.OFFLINE
    # A late result from the lost worker is ignored.
    assert resolved(s.handle(ok(r, t.id, now=1.5))) == {}
    assert resolved(s.handle(ok(3 - r, t.id, now=2.0, value=7))) == {t.id: (TaskStatus.COMPLETED, 7)}


def test_every_worker_lost_fails_pending_tasks():
    s = make(1)
    t = task()
    s.handle(Submit(t, 0.0))
    acts = s.handle(WorkerLost(1, 1.0))
    status, err = resolved(acts)[t.id]
    assert status == TaskStatus.ERROR and isinstance(err, NoWorkersLeft)


def tick_until(s, start, end, beating=(), alive=(), dt=0.1):
    """Tick every ``dt`` s from ``start`` to ``end`` as the engine does (every few ms), with a
    heartbeat from each of ``beating`` and proof of life for each of ``alive`` before each
    tick; all the actions."""
    acts = []
    for k in range(int(round((end - start) / dt)) + 1):
        now = start + k * dt
        for rank in beating:
            s.handle(Heartbeat(rank, now))
        for rank in alive:
            s.handle(Alive(rank, now))
        acts += s.handle(Tick(now))
    return acts


def test_heartbeats_suspect_then_failed_unless_proven_alive():
    s = make(2, heartbeat_timeout=1.0, failure_timeout=3.0, max_in_flight=1)
    t = task()
    s.handle(Submit(t, 0.0))
    r = s.task_info(t.id).worker
    acts = tick_until(s, 0.1, 1.5, beating=[3 - r])
    assert [a.rank for a in acts if isinstance(a, Ping)] == [r]
    assert s.workers[r].suspect and not s.workers[r].available
    # Busy in C code: the process is alive, so it is not failed.
    acts = tick_until(s, 1.6, 3.5, beating=[3 - r], alive=[r])
    assert not any(isinstance(a, WorkerFailed) for a in acts)
    # It answers again: no longer suspect, its task finishes normally.
    s.handle(Heartbeat(r, 4.0, running=(t.id,)))
    assert not s.workers[r].suspect
    s.handle(Heartbeat(3 - r, 4.0))
    assert resolved(s.handle(ok(r, t.id, now=4.1))) == {t.id: (TaskStatus.COMPLETED, "v")}
    # Dead: silent and no proof of life -> failed, its task re-queued elsewhere.
    t2 = task()
    s.handle(Submit(t2, 4.2))
    r2 = s.task_info(t2.id).worker
    acts = tick_until(s, 4.2, 7.5, beating=[3 - r2])
    assert any(isinstance(a, WorkerFailed) and a.rank == r2 for a in acts)
    assert dispatched(acts) == [(3 - r2, t2.id)]


def test_a_coordinator_that_did_not_look_for_a_while_does_not_fail_its_workers():
    """Ticks 3 s apart (the coordinator stopped, or its process held the GIL): the silence
    over the gap is the coordinator's, not the workers'. Silence after it still counts."""
    s = make(2, heartbeat_timeout=0.5, failure_timeout=1.0)
    t = task()
    s.handle(Submit(t, 0.0))
    tick_until(s, 0.0, 0.4, beating=[1, 2])
    acts = s.handle(Tick(3.4))  # nothing received meanwhile: the heartbeats still wait in MPI
    assert not any(isinstance(a, (WorkerFailed, Ping)) for a in acts)
    assert all(not w.suspect for w in s.workers.values())
    # worker 1's queued heartbeats arrive; worker 2 stays silent from here on: failed
    acts = tick_until(s, 3.5, 5.0, beating=[1])
    assert [a.rank for a in acts if isinstance(a, WorkerFailed)] == [2]
    failed_at = next(k for k, a in enumerate(acts) if isinstance(a, WorkerFailed))
    assert s.workers[1].available and failed_at > 0


def test_timeout_retries_elsewhere_and_quarantines_until_the_worker_answers():
    s = make(2, backoff=0, max_in_flight=2)
    t = task(timeout=1.0, retries=1)
    s.handle(Submit(t, 0.0))
    r = s.task_info(t.id).worker
    acts = s.handle(Tick(0.9))
    assert not any(isinstance(a, Quarantine) for a in acts)
    s.handle(Heartbeat(1, 1.5)); s.handle(Heartbeat(2, 1.5))
    acts = s.handle(Tick(1.5))
    assert any(isinstance(a, Quarantine) and a.rank == r for a in acts)
    assert any(isinstance(a, SendCancel) and a.rank == r and t.id in a.task_ids for a in acts)
    assert (3 - r, t.id) in dispatched(acts)  # retried on the other worker at once
    assert s.workers[r].status == WorkerStatus.ERROR and not s.workers[r].available
    # Still running the stuck task: stays quarantined.
    s.handle(Heartbeat(r, 2.0, running=(t.id,)))
    assert s.workers[r].quarantined
    # It answers without the stuck task: back in service.
    s.handle(Heartbeat(r, 2.5, running=()))
    assert not s.workers[r].quarantined and s.workers[r].available
    # The second attempt also times out: timed_out, with a TaskTimeout.
    s.handle(Heartbeat(1, 3.0)); s.handle(Heartbeat(2, 3.0))
    acts = s.handle(Tick(3.0))
    status, err = resolved(acts)[t.id]
    assert status == TaskStatus.TIMED_OUT and isinstance(err, TaskTimeout) and "timeout of 1 s" in str(err)


def test_timeout_clock_starts_when_the_task_starts_not_when_it_was_queued():
    s = make(1, max_in_flight=2)
    a, b = task(), task(timeout=1.0)
    s.handle(Submit(a, 0.0))
    s.handle(Submit(b, 0.0))
    s.handle(Heartbeat(1, 2.0))
    assert not any(isinstance(x, Quarantine) for x in s.handle(Tick(2.0)))  # b waits behind a
    s.handle(ok(1, a.id, now=2.5))
    s.handle(Heartbeat(1, 3.4))
    assert not any(isinstance(x, Quarantine) for x in s.handle(Tick(3.4)))
    s.handle(Heartbeat(1, 3.6))
    assert any(isinstance(x, Quarantine) for x in s.handle(Tick(3.6)))


def test_stuck_worker_reporting_the_task_ended_leaves_quarantine():
    s = make(1)
    t = task(timeout=0.5)
    s.handle(Submit(t, 0.0))
    s.handle(Heartbeat(1, 1.0))
    acts = s.handle(Tick(1.0))
    assert resolved(acts)[t.id][0] == TaskStatus.TIMED_OUT
    assert s.workers[1].quarantined
    s.handle(Results(1, [(t.id, "cancelled", None, None)], 1.2))
    assert not s.workers[1].quarantined


def test_cancel_pending_and_running():
    s = make(1, max_in_flight=1)
    running, pending = task(), task()
    s.handle(Submit(running, 0.0))
    s.handle(Submit(pending, 0.0))
    acts = s.handle(Cancel(pending.id, 0.5))
    assert resolved(acts) == {pending.id: (TaskStatus.CANCELLED, None)}
    assert not any(isinstance(a, SendCancel) for a in acts)
    acts = s.handle(Cancel(running.id, 0.6))
    assert resolved(acts) == {running.id: (TaskStatus.CANCELLED, None)}
    assert any(isinstance(a, SendCancel) and a.task_ids == [running.id] for a in acts)
    # The worker's slot stays taken until it says the task ended.
    nxt = task()
    assert dispatched(s.handle(Submit(nxt, 0.7))) == []
    acts = s.handle(Results(1, [(running.id, "cancelled", None, None)], 0.8))
    assert dispatched(acts) == [(1, nxt.id)] and resolved(acts) == {}
    assert s.task_info(running.id).status == TaskStatus.CANCELLED


def test_impossible_requirements_fail_at_once_naming_requirement_and_workers():
    caps = {1: Capabilities(rank=1, host="n1", cores=2, memory=2**30), 2: Capabilities(rank=2, host="n2", cores=8, memory=2**31)}
    s = make(2, caps=caps)
    t = task(requires=Requirements(gpu=1, memory="4G"))
    acts = s.handle(Submit(t, 0.0))
    status, err = resolved(acts)[t.id]
    assert status == TaskStatus.ERROR and isinstance(err, RequirementError)
    text = str(err)
    assert "gpu=1" in text and "memory=4.0G" in text and "rank 1 on n1" in text and "rank 2 on n2" in text
    ok_task = task(requires=Requirements(cpus=4, memory="1.5G"))
    assert dispatched(s.handle(Submit(ok_task, 0.0))) == [(2, ok_task.id)]
    label_task = task(requires=Requirements(labels={"model:a"}))
    assert isinstance(resolved(s.handle(Submit(label_task, 0.0)))[label_task.id][1], RequirementError)


def test_requirements_become_impossible_when_the_only_capable_worker_goes():
    caps = {1: Capabilities(rank=1, cores=1), 2: Capabilities(rank=2, cores=8)}
    s = make(2, caps=caps, max_in_flight=1)
    blocker, big = task(requires=Requirements(cpus=8)), task(requires=Requirements(cpus=8))
    s.handle(Submit(blocker, 0.0))
    s.handle(Submit(big, 0.0))
    acts = s.handle(Drain(2, 1.0))
    assert isinstance(resolved(acts)[big.id][1], RequirementError)
    assert s.workers[2].status == WorkerStatus.DRAINING
    s.handle(ok(2, blocker.id, now=2.0))
    assert s.workers[2].status == WorkerStatus.OFFLINE


def test_dependencies_pass_results_as_leading_arguments():
    s = make(2)
    a, b = task(), task()
    c = Task(next(_ids), ("fn", (10,), {}), fn_name="c", after=(a.id, b.id))
    s.handle(Submit(a, 0.0))
    s.handle(Submit(b, 0.0))
    assert dispatched(s.handle(Submit(c, 0.0))) == []
    assert s.task_info(c.id).status == TaskStatus.PENDING
    s.handle(Results(s.task_info(b.id).worker, [(b.id, "ok", "B", 0.1)], 1.0))
    acts = s.handle(Results(s.task_info(a.id).worker, [(a.id, "ok", "A", 0.1)], 1.0))
    (r, tid), = dispatched(acts)
    sent = next(t for x in acts if isinstance(x, Dispatch) for t in x.tasks)
    assert tid == c.id and sent.payload == ("fn", ("A", "B", 10), {})


def test_known_dependency_results_and_failed_dependency():
    s = make(1)
    c = Task(next(_ids), ("fn", (), {}), after=(999_001,))
    acts = s.handle(Submit(c, 0.0, known={999_001: (TaskStatus.COMPLETED, 5)}))
    sent = next(t for x in acts if isinstance(x, Dispatch) for t in x.tasks)
    assert sent.payload == ("fn", (5,), {})
    d = Task(next(_ids), ("fn", (), {}), after=(999_002,))
    acts = s.handle(Submit(d, 0.0, known={999_002: (TaskStatus.ERROR, Boom("bad input"))}))
    status, err = resolved(acts)[d.id]
    assert status == TaskStatus.ERROR and isinstance(err, DependencyFailed)
    assert "999002" in str(err) and "Boom: bad input" in str(err) and isinstance(err.__cause__, Boom)


def test_failed_dependency_fails_the_whole_chain():
    s = make(1, max_in_flight=1)
    a = task()
    b = Task(next(_ids), ("fn", (), {}), fn_name="b", after=(a.id,))
    c = Task(next(_ids), ("fn", (), {}), fn_name="c", after=(b.id,))
    for t in (a, b, c):
        s.handle(Submit(t, 0.0))
    acts = s.handle(Results(1, [(a.id, "error", Boom("x"), 0.1)], 1.0))
    res = resolved(acts)
    assert res[a.id][0] == TaskStatus.ERROR
    assert isinstance(res[b.id][1], DependencyFailed) and isinstance(res[c.id][1], DependencyFailed)
    assert f"dependency task {b.id} (b) ended error" in str(res[c.id][1])
    assert s.idle


def test_cancelled_dependency_fails_dependent():
    s = make(1, max_in_flight=1)
    blocker, a = task(), task()
    b = Task(next(_ids), ("fn", (), {}), after=(a.id,))
    for t in (blocker, a, b):
        s.handle(Submit(t, 0.0))
    acts = s.handle(Cancel(a.id, 1.0))
    assert "ended cancelled" in str(resolved(acts)[b.id][1])


def test_dependency_retry_does_not_prepend_twice():
    s = make(2, backoff=0)
    a = task()
    b = Task(next(_ids), ("fn", (1,), {}), after=(a.id,), retries=1)
    s.handle(Submit(a, 0.0))
    s.handle(Submit(b, 0.0))
    acts = s.handle(Results(s.task_info(a.id).worker, [(a.id, "ok", "A", 0.1)], 1.0))
    sent = next(t for x in acts if isinstance(x, Dispatch) for t in x.tasks)
    acts = s.handle(Results(sent.worker, [(b.id, "error", Boom(), 0.1)], 2.0))
    again = next(t for x in acts if isinstance(x, Dispatch) for t in x.tasks)
    assert again.payload == ("fn", ("A", 1), {})


def test_affinity_routes_to_holders_and_falls_back_when_none_is_free():
    caps = {1: Capabilities(rank=1, cores=4, labels={"model:a"}), 2: Capabilities(rank=2, cores=4, labels={"model:b"}),
            3: Capabilities(rank=3, cores=4)}
    s = make(3, caps=caps, strategy=Affinity(), max_in_flight=1)
    ta = task(requires=Requirements(labels={"model:a"}))
    tb = task(requires=Requirements(labels={"model:b"}))
    assert dispatched(s.handle(Submit(tb, 0.0))) == [(2, tb.id)]
    assert dispatched(s.handle(Submit(ta, 0.0))) == [(1, ta.id)]
    # Both holders busy: a model:a request falls back to the free worker.
    ta2 = task(requires=Requirements(labels={"model:a"}))
    assert dispatched(s.handle(Submit(ta2, 0.0))) == [(3, ta2.id)]
    # A label nobody holds is not impossible under affinity.
    tc = task(requires=Requirements(labels={"model:c"}))
    assert resolved(s.handle(Submit(tc, 0.0))) == {}


def test_walltime_refuses_tasks_that_cannot_finish():
    s = make(1, deadline=100.0, margin_s=5.0)
    quick, slow = task(expected_s=10.0), task(expected_s=200.0)
    assert dispatched(s.handle(Submit(quick, 0.0))) == [(1, quick.id)]
    status, err = resolved(s.handle(Submit(slow, 0.0)))[slow.id]
    assert status == TaskStatus.ERROR and isinstance(err, WalltimeExceeded) and "200" in str(err)
    # Without an estimate, the EWMA of the function decides.
    f1 = task(fn="g")
    s.handle(Submit(f1, 50.0))
    s.handle(ok(1, quick.id, now=50.0))
    s.handle(Results(1, [(f1.id, "ok", 1, 30.0)], 80.0))
    f2 = task(fn="g")
    assert isinstance(resolved(s.handle(Submit(f2, 80.0)))[f2.id][1], WalltimeExceeded)  # 80 + 30 + 5 > 100
    f3 = task(fn="h")
    assert dispatched(s.handle(Submit(f3, 80.0))) == [(1, f3.id)]  # unknown: runs


def test_drain_all_returns_queued_tasks_and_ends_pending_ones():
    s = make(1, max_in_flight=2)
    a, b, c = task(), task(), task()
    for t in (a, b, c):
        s.handle(Submit(t, 0.0))
    acts = s.handle(DrainAll(1.0))
    assert any(isinstance(x, SendCancel) and x.task_ids == [b.id] for x in acts)
    assert not any(isinstance(x, Drained) for x in acts)
    acts = s.handle(ok(1, a.id, now=2.0))
    res = resolved(acts)
    assert res[a.id][0] == TaskStatus.COMPLETED
    assert isinstance(res[b.id][1], DrainRequested) and isinstance(res[c.id][1], DrainRequested)
    assert any(isinstance(x, Drained) for x in acts) and dispatched(acts) == []


def test_drain_grace_cancels_running_tasks_and_leaves_them_for_the_rerun():
    s = make(2, max_in_flight=1)
    a, b, c = task(), task(), task()
    for t in (a, b, c):
        s.handle(Submit(t, 0.0))
    b_rank = b.worker
    assert a.worker is not None and b_rank is not None and c.worker is None
    acts = s.handle(DrainAll(1.0, grace_s=2.0))
    assert not any(isinstance(x, Drained) for x in acts)
    acts = s.handle(Tick(2.5))  # within the grace: the running tasks may still finish
    assert not any(isinstance(x, (Drained, SendCancel)) for x in acts)
    acts = s.handle(ok(a.worker, a.id, now=2.8))
    assert resolved(acts)[a.id][0] == TaskStatus.COMPLETED and not any(isinstance(x, Drained) for x in acts)
    acts = s.handle(Tick(3.1))  # past it: b is cancelled on its worker, and ends not run
    assert any(isinstance(x, SendCancel) and x.task_ids == [b.id] for x in acts)
    res = resolved(acts)
    assert isinstance(res[b.id][1], DrainRequested) and isinstance(res[c.id][1], DrainRequested)
    assert b.errors_used == 0 and any(isinstance(x, Drained) for x in acts)
    acts = s.handle(Results(b_rank, [(b.id, "cancelled", None, None)], 3.2))
    assert dispatched(acts) == [] and resolved(acts) == {}  # its late report changes nothing


def test_history_is_bounded_and_status_queries():
    s = make(1, history=3)
    ts = [task() for _ in range(5)]
    for t in ts:
        s.handle(Submit(t, 0.0))
    s.handle(Results(1, [(t.id, "ok", 0, 0.1) for t in ts[:2]], 1.0))
    assert {i.id for i in s.task_infos("completed")} == {ts[0].id, ts[1].id}
    assert {i.id for i in s.task_infos(TaskStatus.RUNNING)} == {ts[2].id, ts[3].id}
    assert {i.id for i in s.task_infos("pending")} == {ts[4].id}
    s.handle(Results(1, [(t.id, "ok", 0, 0.1) for t in ts[2:4]], 1.0))
    s.handle(Results(1, [(ts[4].id, "ok", 0, 0.1)], 1.0))
    assert s.task_info(ts[0].id) is None and s.task_info(ts[4].id).status == TaskStatus.COMPLETED


def test_long_queue_with_unplaceable_head_does_not_block_others():
    caps = {1: Capabilities(rank=1, cores=1), 2: Capabilities(rank=2, cores=8)}
    s = make(2, caps=caps, max_in_flight=1)
    big_busy = task(requires=Requirements(cpus=8))
    s.handle(Submit(big_busy, 0.0))
    bigs = [task(requires=Requirements(cpus=8), priority=5) for _ in range(3)]
    small = task(priority=0)
    for t in bigs:
        s.handle(Submit(t, 0.0))
    assert dispatched(s.handle(Submit(small, 0.0))) == [(1, small.id)]


def test_unknown_event_is_rejected():
    with pytest.raises(TypeError):
        Scheduler().handle(object())


@pytest.mark.parametrize("name", ["round_robin", "least_loaded", "capability", "latency", "affinity"])
def test_every_strategy_runs_every_task_exactly_once(name):
    s = make(3, strategy=make_strategy(name))
    ts = [task(priority=i % 3) for i in range(60)]
    seen = []
    acts = s.handle_many(Submit(t, 0.0) for t in ts)
    now = 1.0
    while not s.idle:
        for r, tid in dispatched(acts):
            seen.append(tid)
        by_rank = {}
        for rank, w in s.workers.items():
            if w.running:
                by_rank[rank] = list(w.running)
        acts = []
        for rank, ids in by_rank.items():
            acts += s.handle(ok(rank, *ids, now=now))
        now += 1
    assert sorted(seen) == sorted(t.id for t in ts)
