"""The task farm at 1, 2, 3 and 4 ranks: every feature, failures included.

Rank 0 runs the assertions; the workers serve inside ``with Farm(...)`` and get None.
Task functions live at module level so that every rank can unpickle them.
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import os
import signal
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from hpcdist.farm import (
    DependencyFailed,
    Farm,
    RemoteError,
    Requirements,
    RequirementError,
    ResultRejected,
    TaskStatus,
    TaskTimeout,
    run_stages,
)

pytestmark = pytest.mark.mpi

FAST = dict(heartbeat_interval=0.05, heartbeat_timeout=1.0, backoff=0.0)


def my_rank() -> int:
    return MPI.COMM_WORLD.Get_rank()


def square(x):
    return x * x


def add(a, b):
    return a + b


def where(*_):
    return my_rank()


def boom(x):
    raise ValueError(f"bad value {x}")


def sleep_then_rank(s):
    time.sleep(s)
    return my_rank()


def python_spin(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "finished"


def hold_gil_in_c(seconds):
    # libc usleep through PyDLL keeps the GIL: no other thread of this process runs.
    ctypes.PyDLL(None).usleep(int(seconds * 1e6))
    return my_rank()


def fail_first_time(path):
    if not os.path.exists(path):
        with open(path, "w") as fh:
            fh.write(str(my_rank()))
        raise RuntimeError("first attempt fails")
    return my_rank()


def touch(path):
    with open(path, "w") as fh:
        fh.write("ran")
    return True


def array_roundtrip(a):
    return a * 2, my_rank()


def sigterm_self():
    # What Slurm or an operator does to one rank: the worker must ask to be drained, not die.
    os.kill(os.getpid(), signal.SIGTERM)
    return my_rank()


def shared_path(comm, tmp_path, name):
    return comm.bcast(str(tmp_path / name) if comm.rank == 0 else None, root=0)


def expected_worker_ranks(comm):
    return {0} if comm.size == 1 else set(range(1, comm.size))


def test_submit_results_and_worker_roles(comm):
    with Farm(comm, **FAST) as farm:
        assert (farm is None) == (comm.rank != 0)
        if farm is not None:
            futures = [farm.submit(square, i) for i in range(200)]
            assert [f.result(timeout=30) for f in futures] == [i * i for i in range(200)]
            assert farm.submit(add, 2, b=5).result(timeout=10) == 7
            ranks = {farm.submit(where).result(timeout=10) for _ in range(20)}
            assert ranks <= expected_worker_ranks(comm)
            infos = farm.workers()
            assert {w.rank for w in infos} == expected_worker_ranks(comm)
            assert all(w.caps.host == socket.gethostname() and w.caps.cores >= 1 for w in infos)
            assert sum(w.tasks_done for w in infos) >= 221
            assert all(i.status == TaskStatus.COMPLETED for i in farm.tasks(status="completed"))
            assert farm.task(futures[0].id).status == TaskStatus.COMPLETED


def test_strategy_object_is_used_as_given(comm):
    from hpcdist.farm.strategies import Affinity, RoundRobin

    strategy = Affinity(max_learned=3)
    with Farm(comm, strategy=strategy, **FAST) as farm:
        if farm is not None:
            assert farm.strategy is strategy
            assert [farm.submit(square, i).result(timeout=30) for i in range(5)] == [0, 1, 4, 9, 16]
    with Farm(comm, strategy=RoundRobin, **FAST) as farm:
        if farm is not None:
            assert isinstance(farm.strategy, RoundRobin)
            assert farm.submit(square, 3).result(timeout=30) == 9


def test_futures_work_with_wait_and_as_completed(comm):
    with Farm(comm, **FAST) as farm:
        if farm is not None:
            futures = [farm.submit(sleep_then_rank, 0.01 * (i % 3)) for i in range(12)]
            done, not_done = cf.wait(futures, timeout=30)
            assert len(done) == 12 and not not_done
            assert len(list(cf.as_completed([farm.submit(square, i) for i in range(10)], timeout=30))) == 10


def test_remote_exception_has_traceback_with_rank_and_host(comm):
    with Farm(comm, **FAST) as farm:
        if farm is not None:
            fut = farm.submit(boom, 7)
            with pytest.raises(ValueError, match="bad value 7") as info:
                fut.result(timeout=30)
            cause = info.value.__cause__
            assert isinstance(cause, RemoteError)
            worker = 0 if comm.size == 1 else cause.rank
            assert f"rank {worker} on {socket.gethostname()}" in str(cause)
            assert "in boom" in str(cause) and 'raise ValueError(f"bad value {x}")' in str(cause)
            assert farm.task(fut.id).status == TaskStatus.ERROR


def test_timeout_marks_timed_out_and_the_farm_goes_on(comm):
    with Farm(comm, **FAST) as farm:
        if farm is not None:
            slow = farm.submit(python_spin, 2.0, timeout=0.2)
            t0 = time.monotonic()
            with pytest.raises(TaskTimeout, match="timeout of 0.2 s"):
                slow.result(timeout=30)
            assert time.monotonic() - t0 < 1.5
            assert farm.task(slow.id).status == TaskStatus.TIMED_OUT
            # The stuck worker was sent a cancel; the farm still runs work.
            assert [farm.submit(square, i).result(timeout=30) for i in range(5)] == [0, 1, 4, 9, 16]


def test_timeout_with_retries_runs_again_elsewhere(comm):
    with Farm(comm, **FAST) as farm:
        if farm is not None:
            fut = farm.submit(python_spin, 1.0, timeout=0.15, retries=1)
            with pytest.raises(TaskTimeout):
                fut.result(timeout=30)
            info = farm.task(fut.id)
            assert info.attempts == 2 and info.errors_used == 2
            if comm.size >= 3:
                assert len(set(info.tried)) == 2


def test_cancel_pending_task_never_runs(comm, tmp_path):
    path = shared_path(comm, tmp_path, "never")
    with Farm(comm, max_in_flight=1, **FAST) as farm:
        if farm is not None:
            blockers = [farm.submit(sleep_then_rank, 0.3) for _ in range(farm.n_workers)]
            victim = farm.submit(touch, path)
            assert victim.cancel() and victim.cancelled()
            for b in blockers:
                b.result(timeout=30)
            assert farm.submit(square, 3).result(timeout=30) == 9
            assert not os.path.exists(path)
            info = farm.task(victim.id)
            assert info.status == TaskStatus.CANCELLED and info.attempts == 0


def test_cancel_running_task_frees_the_worker(comm):
    with Farm(comm, max_in_flight=1, **FAST) as farm:
        if farm is not None:
            running = [farm.submit(python_spin, 20.0) for _ in range(farm.n_workers)]
            deadline = time.monotonic() + 10
            while len(farm.tasks(status="running")) < farm.n_workers and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.05)
            t0 = time.monotonic()
            assert all(f.cancel() for f in running)
            assert all(f.cancelled() for f in running)
            # Each worker is freed once the cancel interrupts the Python loop: long before 20 s.
            assert [farm.submit(square, i).result(timeout=10) for i in range(2 * farm.n_workers)] == [i * i for i in range(2 * farm.n_workers)]
            assert time.monotonic() - t0 < 5
            assert all(farm.task(f.id).status == TaskStatus.CANCELLED for f in running)


def test_retry_lands_on_another_worker(comm, tmp_path):
    path = shared_path(comm, tmp_path, "first")
    with Farm(comm, **FAST) as farm:
        if farm is not None:
            fut = farm.submit(fail_first_time, path, retries=1)
            rank = fut.result(timeout=30)
            first = int(Path(path).read_text())
            info = farm.task(fut.id)
            assert info.attempts == 2 and info.errors_used == 1
            if comm.size >= 3:
                assert rank != first and set(info.tried) == {first, rank}
            else:
                assert rank == first  # the only worker: retried where it failed
            # Without retries the error comes back.
            os.remove(path)
            with pytest.raises(RuntimeError, match="first attempt fails"):
                farm.submit(fail_first_time, path).result(timeout=30)


def message_on_the_next_communicator(comm) -> bool:
    """Whether a message waits on a fresh duplicate of ``comm`` on any rank (collective):
    one left on a freed communicator whose context id the duplicate got."""
    after = comm.Dup()
    try:
        comm.Barrier()
        time.sleep(0.05)
        waiting = after.Iprobe(MPI.ANY_SOURCE, MPI.ANY_TAG) or after.Iprobe(MPI.ANY_SOURCE, MPI.ANY_TAG)
        return any(comm.allgather(waiting))
    finally:
        after.Free()


def test_nothing_of_a_farm_is_left_for_the_next_communicator(comm):
    # MPICH gives a freed communicator's context id to the next Dup, and a message left
    # unreceived on the old one is matched there: a late heartbeat, or the "cancelled"
    # outcome of a task that ran on, would pass for the next farm's (a retry test saw a
    # task run twice at once this way).
    with Farm(comm, heartbeat_interval=0.001, heartbeat_timeout=5.0, backoff=0.0) as farm:
        if farm is not None:
            spinning = [farm.submit(python_spin, 0.5) for _ in range(farm.n_workers)]
            deadline = time.monotonic() + 10
            while len(farm.tasks(status="running")) < farm.n_workers and time.monotonic() < deadline:
                time.sleep(0.01)
            assert all(f.cancel() for f in spinning)
            time.sleep(0.1)  # heartbeats every millisecond meanwhile
    assert not message_on_the_next_communicator(comm)


def nap(seconds):
    time.sleep(seconds)
    return seconds


def test_a_coordinator_holding_the_gil_loses_no_worker(comm):
    """The coordinator's process holds the GIL for 3 s (C code that does not release it):
    no engine step runs, the workers' heartbeats pile up in MPI, and their silence over
    that time is the coordinator's. No worker may be failed for it."""
    with Farm(comm, heartbeat_interval=0.05, heartbeat_timeout=0.5, failure_timeout=1.0, backoff=0.0) as farm:
        if farm is not None:
            futures = [farm.submit(nap, 0.05) for _ in range(8 * max(1, farm.n_workers))]
            time.sleep(0.2)
            ctypes.PyDLL(None).sleep(3)  # libc's sleep, called with the GIL held
            assert [f.result(timeout=60) for f in futures] == [0.05] * len(futures)
            assert farm.worker_failures == []


def gil_holder(seconds):
    time.sleep(0.05)
    ctypes.PyDLL(None).sleep(seconds)  # the GIL held: the worker's main thread cannot answer meanwhile
    return seconds


def test_a_goodbye_later_than_the_farewell_is_left_on_no_later_communicator(comm, monkeypatch):
    """A worker whose task holds the GIL at the shutdown says goodbye after the coordinator
    stopped waiting. Freed, the farm's communicator would give its context id to the next
    Dup, and the late messages would be matched there."""
    import hpcdist.farm.executor as executor

    monkeypatch.setattr(executor, "FAREWELL_S", 0.3)
    with Farm(comm, **FAST) as farm:
        if farm is not None:
            held = farm.submit(gil_holder, 2)
            deadline = time.monotonic() + 10
            while held.running() is False and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.2)  # into the C call
            assert held.cancel()
    assert not message_on_the_next_communicator(comm)  # its Dup returns once every worker said goodbye


def test_priority_order_is_respected(comm):
    with Farm(comm, max_in_flight=1, **FAST) as farm:
        if farm is not None:
            blockers = [farm.submit(sleep_then_rank, 0.4) for _ in range(farm.n_workers)]
            deadline = time.monotonic() + 10
            while len(farm.tasks(status="running")) < farm.n_workers and time.monotonic() < deadline:
                time.sleep(0.01)
            prios = [0, 3, 1, 3, 2, 0, 5, 1, 2, 4]
            futs = [farm.submit(square, i, priority=p) for i, p in enumerate(prios)]
            for f in blockers + futs:
                f.result(timeout=30)
            seq = sorted(futs, key=lambda f: farm.task(f.id).dispatch_seq)
            assert [prios[futs.index(f)] for f in seq] == sorted(prios, reverse=True)
            same = [f for f in seq if prios[futs.index(f)] == 3]
            assert same == [futs[1], futs[3]]  # FIFO within a priority


def test_impossible_requirements_fail_at_once(comm):
    with Farm(comm, **FAST) as farm:
        if farm is not None:
            t0 = time.monotonic()
            fut = farm.submit(square, 2, requires=Requirements(gpu=4, memory="64T"))
            with pytest.raises(RequirementError) as info:
                fut.result(timeout=10)
            assert time.monotonic() - t0 < 2
            text = str(info.value)
            assert "gpu=4" in text and "memory=64.0T" in text and "rank " in text and "cpus=" in text
            assert farm.submit(square, 2, requires=Requirements(cpus=1)).result(timeout=10) == 4


def test_dependencies_pass_results_and_failures_propagate(comm):
    with Farm(comm, **FAST) as farm:
        if farm is not None:
            a = farm.submit(square, 3)
            b = farm.submit(square, 4)
            c = farm.submit(add, after=[a, b])
            assert c.result(timeout=30) == 25
            d = farm.submit(add, 1, after=[c])  # c already done
            assert d.result(timeout=30) == 26
            bad = farm.submit(boom, 1)
            child = farm.submit(square, after=[bad])
            grandchild = farm.submit(square, after=[child])
            with pytest.raises(DependencyFailed, match=f"dependency task {bad.id}.*ValueError: bad value 1"):
                child.result(timeout=30)
            with pytest.raises(DependencyFailed):
                grandchild.result(timeout=30)
            futs = run_stages(farm, [square, square, str], [1, 2, 3])
            assert [f.result(timeout=30) for f in futs] == ["1", "16", "81"]


def test_affinity_routes_to_label_holders(comm):
    labels = {"model:a"} if comm.rank == 1 else {"model:b"}
    with Farm(comm, strategy="affinity", labels=labels, **FAST) as farm:
        if farm is not None:
            for _ in range(6):
                rank = farm.submit(where, requires=Requirements(labels={"model:a"})).result(timeout=30)
                assert rank == (1 if comm.size > 1 else 0)
            # Nobody holds model:z: affinity falls back instead of failing.
            assert farm.submit(where, requires=Requirements(labels={"model:z"})).result(timeout=30) in expected_worker_ranks(comm)


def test_labels_are_hard_requirements_under_other_strategies(comm):
    labels = {"model:a"} if comm.rank == comm.size - 1 else set()
    with Farm(comm, labels=labels, **FAST) as farm:
        if farm is not None:
            holder = comm.size - 1
            futs = [farm.submit(where, requires=Requirements(labels={"model:a"})) for _ in range(10)]
            assert {f.result(timeout=30) for f in futs} == {holder}


def test_busy_worker_holding_the_gil_is_not_declared_dead(comm):
    with Farm(comm, heartbeat_interval=0.05, heartbeat_timeout=0.2, failure_timeout=0.5, backoff=0.0) as farm:
        if farm is not None:
            fut = farm.submit(hold_gil_in_c, 1.5)
            rank = fut.result(timeout=30)
            info = farm.task(fut.id)
            assert info.attempts == 1  # never re-queued: the worker was busy, not dead
            w = {x.rank: x for x in farm.workers()}[rank]
            assert w.status.value in ("online", "busy") and not w.suspect
            assert farm.submit(square, 5).result(timeout=10) == 25


def below_five(v):
    return v < 5


def test_validator_rejects_results_and_counts_as_error(comm, tmp_path):
    path = shared_path(comm, tmp_path, "first")
    with Farm(comm, **FAST) as farm:
        if farm is not None:
            fut = farm.submit(square, 3, validate=below_five, retries=1)
            with pytest.raises(ResultRejected, match="below_five"):
                fut.result(timeout=30)
            assert farm.task(fut.id).errors_used == 2  # rejected twice: counted as errors, retried
            assert farm.submit(square, 2, validate=below_five).result(timeout=30) == 4


def test_unpicklable_task_fails_cleanly(comm):
    with Farm(comm, **FAST) as farm:
        if farm is not None:
            fut = farm.submit(square, 3)
            if comm.size > 1:
                with pytest.raises(TypeError, match="cannot be sent to a worker"):
                    farm.submit(lambda: 1).result(timeout=30)
            else:
                assert farm.submit(lambda: 1).result(timeout=30) == 1  # one rank: nothing is pickled
            assert fut.result(timeout=30) == 9


def test_ensemble_aggregates(comm):
    with Farm(comm, **FAST) as farm:
        if farm is not None:
            assert farm.ensemble([square, square, square], 3, aggregate="all") == [9, 9, 9]
            assert farm.ensemble([square, where, square], 4, aggregate="majority") == 16
            assert farm.ensemble([square, boom, square], 2, aggregate="majority") == 4
            assert farm.ensemble([square, square], 3, aggregate="weighted_mean", weights=[1, 3]) == 9.0
            assert farm.ensemble([square, square], 3, aggregate=sum) == 18
            first = farm.ensemble([sleep_then_rank, sleep_then_rank], 0.01, aggregate="first")
            assert first in expected_worker_ranks(comm)
            with pytest.raises(ValueError):
                farm.ensemble([boom, square], 1, aggregate="all")


def test_map_ordered_unordered_and_generators(comm):
    with Farm(comm, **FAST) as farm:
        if farm is not None:
            assert list(farm.map(square, range(5000))) == [i * i for i in range(5000)]
            assert list(farm.map(add, range(100), range(100), chunksize=7)) == [2 * i for i in range(100)]
            gen = (i for i in range(3000))
            assert sorted(farm.map(square, gen, ordered=False, chunksize=1)) == [i * i for i in range(3000)]
            assert list(farm.map(square, [])) == []
            with pytest.raises(ValueError, match="bad value"):
                list(farm.map(boom, range(10)))


def test_numpy_arrays_travel_intact(comm):
    with Farm(comm, **FAST) as farm:
        if farm is not None:
            a = np.arange(2**17, dtype=np.float64)  # 1 MiB
            doubled, rank = farm.submit(array_roundtrip, a).result(timeout=30)
            assert np.array_equal(doubled, 2 * a) and doubled.dtype == a.dtype
            assert rank in expected_worker_ranks(comm)


def test_drain_sends_no_more_work_to_a_worker(comm):
    with Farm(comm, **FAST) as farm:
        if farm is not None:
            if comm.size >= 3:
                farm.drain(1)
                ranks = {f.result(timeout=30) for f in [farm.submit(where) for _ in range(20)]}
                assert 1 not in ranks
                assert {w.rank: w.status.value for w in farm.workers()}[1] == "offline"
            else:
                farm.drain(farm.workers()[0].rank)
                with pytest.raises(Exception, match="no worker"):
                    farm.submit(square, 2).result(timeout=10)


def test_sigterm_on_one_worker_drains_only_that_worker(comm):
    with Farm(comm, **FAST) as farm:
        if farm is not None and comm.size >= 3:  # with one worker, its signal drains the whole farm
            rank = farm.submit(sigterm_self).result(timeout=30)
            end = time.monotonic() + 10
            while {w.rank: w.status.value for w in farm.workers()}[rank] != "offline":
                assert time.monotonic() < end, farm.workers()
                time.sleep(0.01)
            ranks = {f.result(timeout=30) for f in [farm.submit(where) for _ in range(20)]}
            assert ranks and rank not in ranks
            assert not farm.scheduler.draining  # the others go on; the job ends normally


def test_settings_precedence(comm):
    env = {"HPCDIST_RETRIES": "3", "HPCDIST_STRATEGY": "round_robin"}
    with Farm(comm, backoff=0.0, retries=1, environ=env, heartbeat_interval=0.05) as farm:
        if farm is not None:
            assert farm.settings.retries == 1 and farm.settings.strategy == "round_robin"
            assert type(farm.strategy).__name__ == "RoundRobin"


def test_unknown_strategy_is_one_error_on_every_rank(comm):
    from hpcdist.runtime.errors import InputError

    with pytest.raises(InputError, match="unknown strategy 'fastest'"):
        with Farm(comm, strategy="fastest"):
            pass
