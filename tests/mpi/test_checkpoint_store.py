"""The checkpoint store at 1-4 ranks: round trips, elastic restores, pruning, fallbacks, agreed errors."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from hpcdist.checkpoint import CheckpointError, CheckpointStore, list_checkpoints, verify_checkpoint
from hpcdist.runtime.faults import Faults

pytestmark = pytest.mark.mpi

BLOCK = 4096  # small checksum blocks, so that small arrays span many


@pytest.fixture
def shared_dir(comm):
    """One temporary directory seen by every rank (tmp_path differs per rank)."""
    path = tempfile.mkdtemp(prefix="hpcdist-ckpt-") if comm.rank == 0 else None
    path = Path(comm.bcast(path, root=0))
    yield path / "ckpt"
    comm.Barrier()
    if comm.rank == 0:
        shutil.rmtree(path, ignore_errors=True)


def global_values(total: int, step: int) -> dict[str, np.ndarray]:
    idx = np.arange(total)
    return {"x": np.sin(idx * 0.01) + step, "n": (idx * 7 + step).astype(np.int64),
            "c": (idx % 5).astype(np.uint8)}


def split_points(total: int, parts: int, seed: int) -> np.ndarray:
    """Random tiling of 0..total into ``parts`` slices (empty ones allowed), the same on every rank."""
    cuts = np.sort(np.random.default_rng(seed).integers(0, total + 1, parts - 1))
    return np.concatenate([[0], cuts, [total]]).astype(np.int64)


def save_slices(store: CheckpointStore, step: int, total: int, bounds: np.ndarray, meta=None):
    r = store.comm.rank
    lo, hi = int(bounds[r]), int(bounds[r + 1])
    arrays = {k: v[lo:hi] for k, v in global_values(total, step).items()}
    return store.save(step, arrays, lo, total, meta or {"algorithm": "test", "graph": "g1"})


def make_store(comm, directory, keep=2, faults=None):
    return CheckpointStore(directory, comm, keep=keep, block_bytes=BLOCK, faults=faults or Faults())


@pytest.mark.timeout(60)
@pytest.mark.parametrize("seed", [0, 1])
def test_round_trip_with_uneven_and_empty_slices(comm, shared_dir, seed):
    total = 20_000 + 37 * seed
    bounds = split_points(total, comm.size, seed)
    store = make_store(comm, shared_dir)
    info = save_slices(store, 5, total, bounds)
    assert (info.step, info.ranks, info.total) == (5, comm.size, total)
    assert [f.offset for f in info.files] == bounds[:-1].tolist()
    assert comm.allgather((info.name, info.created)) == [(info.name, info.created)] * comm.size
    lo, hi = int(bounds[comm.rank]), int(bounds[comm.rank + 1])
    got_info, arrays = store.restore({"algorithm": "test"}, lo, hi)
    want = global_values(total, 5)
    assert got_info.name == info.name
    for name, values in want.items():
        assert arrays[name].dtype == values.dtype and np.array_equal(arrays[name], values[lo:hi])
    if comm.rank == 0:
        assert verify_checkpoint(info) == []


@pytest.mark.timeout(60)
def test_written_by_fewer_ranks_restores_on_all(comm, shared_dir):
    """Elastic: a sub-communicator of k < size ranks writes, every rank reads arbitrary ranges."""
    from mpi4py import MPI

    total = 30_001
    k = max(1, comm.size - 1)
    sub = comm.Split(0 if comm.rank < k else MPI.UNDEFINED, comm.rank)
    if sub != MPI.COMM_NULL:
        try:
            save_slices(make_store(sub, shared_dir), 3, total, split_points(total, k, 11))
        finally:
            sub.Free()
    comm.Barrier()
    store = make_store(comm, shared_dir)
    info = store.latest({"algorithm": "test"})
    assert info.ranks == k
    want = global_values(total, 3)
    rng = np.random.default_rng(100 + comm.rank)
    ranges = [(0, total)] + [tuple(sorted(rng.integers(0, total + 1, 2))) for _ in range(4)]
    for lo, hi in ranges:  # the same number of collective loads on every rank
        arrays = store.load(info, int(lo), int(hi))
        for name, values in want.items():
            assert np.array_equal(arrays[name], values[lo:hi]), (name, lo, hi)


@pytest.mark.timeout(60)
def test_written_by_all_restores_on_fewer_ranks_across_file_boundaries(comm, shared_dir):
    from mpi4py import MPI

    total = 25_000
    bounds = split_points(total, comm.size, 5)
    save_slices(make_store(comm, shared_dir), 8, total, bounds)
    k = max(1, comm.size // 2)
    sub = comm.Split(0 if comm.rank < k else MPI.UNDEFINED, comm.rank)
    if sub != MPI.COMM_NULL:
        try:
            store = make_store(sub, shared_dir)
            mine = np.linspace(0, total, k + 1).astype(int)  # a block layout that ignores the writers'
            lo, hi = int(mine[sub.rank]), int(mine[sub.rank + 1])
            info, arrays = store.restore({"graph": "g1"}, lo, hi, names=["n", "x"])
            assert info.ranks == comm.size and sorted(arrays) == ["n", "x"]
            want = global_values(total, 8)
            assert np.array_equal(arrays["n"], want["n"][lo:hi]) and np.array_equal(arrays["x"], want["x"][lo:hi])
        finally:
            sub.Free()
    comm.Barrier()


@pytest.mark.timeout(60)
def test_keep_prunes_older_checkpoints(comm, shared_dir):
    total = 5000
    bounds = split_points(total, comm.size, 2)
    store = make_store(comm, shared_dir, keep=2)
    for step in range(1, 6):
        save_slices(store, step, total, bounds)
    found = list_checkpoints(shared_dir)
    assert [(c.step, c.committed) for c in found] == [(4, True), (5, True)]
    assert store.latest().step == 5


@pytest.mark.timeout(60)
def test_corrupted_newest_falls_back_to_previous_on_every_rank(comm, shared_dir):
    total = 12_000
    bounds = split_points(total, comm.size, 3)
    store = make_store(comm, shared_dir, keep=3)
    save_slices(store, 1, total, bounds)
    newest = save_slices(store, 2, total, bounds)
    if comm.rank == 0:  # damage the last non-empty rank file: most ranks never read it
        victim = [f for f in newest.files if f.length][-1]
        with h5py.File(victim.path, "r") as f:
            where = f["x"].id.get_offset() + 8 * (victim.length - 1)
        with open(victim.path, "r+b") as fh:
            fh.seek(where)
            fh.write(b"\x00\x01\x02\x03")
    comm.Barrier()
    lo, hi = int(bounds[comm.rank]), int(bounds[comm.rank + 1])
    info, arrays = store.restore({"algorithm": "test"}, lo, hi)
    assert comm.allgather(info.step) == [1] * comm.size
    assert len(info.skipped) == 1 and "checksum mismatch" in info.skipped[0]
    assert np.array_equal(arrays["x"], global_values(total, 1)["x"][lo:hi])
    with pytest.raises(CheckpointError, match="checksum mismatch"):  # a direct load of it fails everywhere
        store.load(newest, lo, hi)


@pytest.mark.timeout(60)
def test_another_runs_checkpoint_is_refused_on_every_rank(comm, shared_dir):
    store = make_store(comm, shared_dir)
    save_slices(store, 1, 1000, split_points(1000, comm.size, 0), {"algorithm": "pagerank", "graph": "aaa"})
    with pytest.raises(CheckpointError) as err:
        store.restore({"algorithm": "pagerank", "graph": "bbb"}, 0, 10)
    text = str(err.value)
    assert comm.allgather(text) == [text] * comm.size
    assert str(shared_dir) in text and "graph" in text and '"aaa"' in text and '"bbb"' in text


@pytest.mark.timeout(60)
def test_a_failed_write_on_one_rank_raises_everywhere_and_keeps_the_previous(comm, shared_dir):
    total = 4000
    bounds = split_points(total, comm.size, 9)
    store = make_store(comm, shared_dir)
    save_slices(store, 1, total, bounds)
    store.faults = Faults.parse(f"rank:{comm.size - 1},phase:checkpoint-write,kind:raise")
    with pytest.raises(CheckpointError) as err:
        save_slices(store, 2, total, bounds)
    text = str(err.value)
    assert comm.allgather(text) == [text] * comm.size and "InjectedFault" in text
    assert f"rank-{comm.size - 1:05d}.h5" in text
    store.faults = Faults()
    comm.Barrier()
    found = list_checkpoints(shared_dir, uncommitted=True)
    assert [(c.step, c.committed) for c in found] == [(1, True)]
    info, arrays = store.restore(None, int(bounds[comm.rank]), int(bounds[comm.rank + 1]))
    assert info.step == 1
    save_slices(store, 3, total, bounds)  # the store goes on working
    assert store.latest().step == 3


@pytest.mark.timeout(60)
def test_inconsistent_layout_is_refused_on_every_rank(comm, shared_dir):
    store = make_store(comm, shared_dir)
    n, last = 10, comm.size - 1
    offset = comm.rank * n + (1 if comm.rank == last else 0)  # the last rank leaves a gap
    with pytest.raises(CheckpointError) as err:
        store.save(1, {"a": np.zeros(n)}, offset, n * comm.size + 1, {})
    text = str(err.value)
    assert comm.allgather(text) == [text] * comm.size
    assert f"rank {last} starts at offset {last * n + 1}, expected {last * n}" in text
    dtype = np.float32 if comm.rank == last else np.float64
    with pytest.raises(CheckpointError) as err:
        store.save(1, {"a": np.zeros(n, dtype)}, comm.rank * n, n * comm.size + 1, {})
    text = str(err.value)
    assert comm.allgather(text) == [text] * comm.size
    if comm.size > 1:
        assert "names and dtypes must agree" in text
    else:
        assert "the slices cover 10 items, total is 11" in text
    assert list_checkpoints(shared_dir) == []
