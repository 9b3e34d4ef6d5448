"""``map``'s automatic batching, its journal keys per item, and the walltime check, at 1-4 ranks.

Chunk sizes are observed on the map's iterator (``n_chunks``, ``n_items``,
``chunk_sizes``), never inferred from timings.
"""

from __future__ import annotations

import time

import pytest

from hpcdist.farm import Farm, TaskStatus, WalltimeExceeded

pytestmark = pytest.mark.mpi

FAST = dict(heartbeat_interval=0.05, heartbeat_timeout=2.0, backoff=0.0, progress=False)


def inc(x):
    return x + 1


def nap(seconds):
    time.sleep(seconds)
    return seconds


def triple(x):
    return (x, 3 * x, f"item-{x}")


def n_workers(comm):
    return max(1, comm.size - 1)


def test_tiny_tasks_are_batched_automatically(comm):
    with Farm(comm, **FAST) as farm:
        if farm is not None:
            it = farm.map(inc, range(20_000))
            # Before any timing, only the probe is out: one single-item chunk per worker.
            assert it.n_chunks == n_workers(comm) and it.chunk_sizes == {1: n_workers(comm)}
            assert list(it) == [x + 1 for x in range(20_000)]
            assert it.n_items == 20_000
            assert max(it.chunk_sizes) >= 64, it.chunk_sizes
            assert it.n_chunks <= 20_000 / 20, (it.n_chunks, it.chunk_sizes)


def test_long_tasks_keep_one_item_per_chunk(comm):
    with Farm(comm, **FAST) as farm:
        if farm is not None:
            it = farm.map(nap, [0.02] * 8)
            assert list(it) == [0.02] * 8
            assert it.chunk_sizes == {1: 8}


def test_generators_are_batched_too(comm):
    with Farm(comm, **FAST) as farm:
        if farm is not None:
            it = farm.map(inc, (x for x in range(5_000)), ordered=False)
            assert sorted(it) == [x + 1 for x in range(5_000)]
            assert it.n_chunks < 5_000 / 10, it.chunk_sizes


def test_journaled_map_resumes_item_by_item_whatever_the_chunks(comm, tmp_path):
    path = str(tmp_path / "map.h5")  # only the coordinator opens it
    with Farm(comm, journal=path, **FAST) as farm:
        if farm is not None:
            it = farm.map(triple, range(120), chunksize=7)
            first = [next(it) for _ in range(40)]  # an interrupted run: the rest is abandoned
            it.close()
            assert first == [triple(x) for x in range(40)]
            assert farm.skipped == 0
    with Farm(comm, journal=path, **FAST) as farm:
        if farm is not None:
            done = len(farm.journal)
            assert done >= 40  # every item of every completed chunk, under its own key
            it = farm.map(triple, range(200), chunksize=None)  # other chunks, longer input
            assert list(it) == [triple(x) for x in range(200)]
            assert it.skipped == done and farm.skipped == done
            assert it.n_items == 200 - done  # only the items not journaled ran
            # submit() of one item has the key map gave it: answered from the journal
            f = farm.submit(triple, 150)
            assert f.done() and f.result() == triple(150) and farm.skipped == done + 1
    with Farm(comm, journal=path, **FAST) as farm:
        if farm is not None:
            it = farm.map(triple, range(200), chunksize=3, ordered=False)
            assert sorted(it) == [triple(x) for x in range(200)]
            assert it.n_items == 0 and it.n_chunks == 0 and farm.skipped == 200
            # Partly journaled, unordered: the journaled items come at once, the rest as computed.
            it = farm.map(triple, range(150, 260), ordered=False)
            assert sorted(it) == [triple(x) for x in range(150, 260)]
            assert it.skipped == 50 and it.n_items == 60


def test_walltime_does_not_start_tasks_that_cannot_finish(comm):
    with Farm(comm, walltime=4.0, walltime_margin=0.5, **FAST) as farm:
        if farm is not None:
            # The user's estimate: refused at once, never handed to a worker.
            too_long = farm.submit(nap, 0.01, expected_s=100.0)
            with pytest.raises(WalltimeExceeded, match="expected to take 100"):
                too_long.result(timeout=10)
            assert farm.task(too_long.id).attempts == 0
            # The function's EWMA: nap took 2 s, and less than 2 s are left after it.
            assert farm.submit(nap, 2.0).result(timeout=30) == 2.0
            again = farm.submit(nap, 2.0)
            with pytest.raises(WalltimeExceeded):
                again.result(timeout=10)
            info = farm.task(again.id)
            assert info.attempts == 0 and info.status == TaskStatus.ERROR
            # An estimate that fits overrides the EWMA.
            assert farm.submit(nap, 0.01, expected_s=0.05).result(timeout=10) == 0.01
