"""Redistribution and the distributed HDF5 writer at 1-4 ranks."""

import h5py
import numpy as np
import pytest

from hpcdist.graph.exchange import redistribute
from hpcdist.graph.h5io import write_distributed
from hpcdist.runtime.errors import InputError

pytestmark = pytest.mark.mpi


def test_redistribute_delivers_every_item_once_in_source_order(comm):
    rank, size = comm.rank, comm.size
    rng = np.random.default_rng(rank)
    n = 1000 + 37 * rank
    dest = rng.integers(0, size, n)
    ids = rank * 10**6 + np.arange(n, dtype=np.int64)
    vals = ids.astype(np.float64) / 3
    got_ids, got_vals = redistribute(comm, dest, ids, vals)
    assert np.array_equal(got_vals, got_ids.astype(np.float64) / 3)
    # Everything sent to me arrived, grouped by source rank, in the order it was sent.
    expected = []
    for src in range(size):
        d = np.random.default_rng(src).integers(0, size, 1000 + 37 * src)
        expected.append(src * 10**6 + np.flatnonzero(d == rank))
    assert np.array_equal(got_ids, np.concatenate(expected))


def test_redistribute_empty_and_dtypes(comm):
    (a,) = redistribute(comm, np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int32))
    assert a.shape == (0,) and a.dtype == np.int32


def test_write_distributed_concatenates_in_rank_order(comm, tmp_path_factory):
    base = comm.bcast(str(tmp_path_factory.mktemp("h5")) if comm.rank == 0 else None)
    path = f"{base}/out.h5"
    mine = np.arange(comm.rank * 3, dtype=np.int64) + 100 * comm.rank  # rank 0 writes nothing
    write_distributed(comm, path, {"v": mine, "w": mine.astype(np.float64)}, {"algorithm": "test", "n": 5})
    with h5py.File(path, "r") as f:
        expected = np.concatenate([np.arange(r * 3) + 100 * r for r in range(comm.size)])
        assert np.array_equal(f["v"][:], expected) and np.array_equal(f["w"][:], expected.astype(float))
        assert f.attrs["algorithm"] == "test" and f.attrs["n"] == 5
    comm.Barrier()


def test_write_distributed_unwritable_path_fails_on_every_rank(comm):
    with pytest.raises(InputError, match="^/nonexistent-dir/x.h5: cannot write the output file"):
        write_distributed(comm, "/nonexistent-dir/x.h5", {"v": np.zeros(2)})
