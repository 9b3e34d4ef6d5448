"""Halo exchange on random partitions at 1-4 ranks: every ghost gets its owner's value."""

import numpy as np
import pytest

from hpcdist.graph.halo import HaloPlan, build_layout

pytestmark = pytest.mark.mpi


def random_bounds(rng, n, size):
    cuts = np.sort(rng.integers(0, n + 1, size - 1))  # empty ranks allowed
    return np.concatenate([[0], cuts, [n]]).astype(np.int64)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("seed", range(4))
def test_every_ghost_gets_its_owners_value(comm, seed):
    rank, size = comm.rank, comm.size
    n = 50 + 17 * seed
    bounds = random_bounds(np.random.default_rng(seed), n, size)  # same on every rank
    start, stop = bounds[rank], bounds[rank + 1]
    mine = np.random.default_rng(100 * seed + rank)
    candidates = np.setdiff1d(np.arange(n), np.arange(start, stop))
    ghosts = np.sort(mine.choice(candidates, size=mine.integers(0, len(candidates) + 1), replace=False))
    layout = build_layout(comm, ghosts, bounds)
    assert layout.n_owned == stop - start and layout.n_ghost == ghosts.size
    with HaloPlan(comm, layout) as plan:
        for step in range(3):  # persistent requests are reused
            for dtype in (np.float64, np.int64):
                values = np.empty(plan.n_owned + plan.n_ghost, dtype=dtype)
                values[: plan.n_owned] = (np.arange(start, stop) * 7 + step).astype(dtype)
                values[plan.n_owned :] = -1
                plan.exchange(values)
                assert np.array_equal(values[plan.n_owned :], (ghosts * 7 + step).astype(dtype))
                assert values.dtype == dtype
        # bytes sent over all ranks = 8 bytes per ghost held anywhere
        assert comm.allreduce(plan.bytes_sent) == 8 * comm.allreduce(int(ghosts.size))
        # one neighbourhood: I receive from the owners of my ghosts, send to those who hold mine
        owners = np.unique(np.searchsorted(bounds, ghosts, side="right") - 1)
        assert layout.recv_ranks.tolist() == owners.tolist()
        senders_to = comm.allgather(owners.tolist())
        assert layout.send_ranks.tolist() == [r for r in range(size) if rank in senders_to[r]]


def test_plain_neighbor_alltoallv_fallback_matches(comm):
    rank, size = comm.rank, comm.size
    bounds = np.arange(size + 1, dtype=np.int64) * 3
    ghosts = np.array([g for g in range(3 * size) if g // 3 != rank], dtype=np.int64)
    plan = HaloPlan(comm, build_layout(comm, ghosts, bounds), persistent=False)
    try:
        values = np.concatenate([np.arange(3 * rank, 3 * rank + 3, dtype=float), np.zeros(ghosts.size)])
        plan.exchange(values)
        assert np.array_equal(values[3:], ghosts.astype(float))
    finally:
        plan.close()


def test_layout_rejects_own_or_unsorted_ghosts(comm):
    bounds = np.arange(comm.size + 1, dtype=np.int64) * 2
    bad = np.array([2 * comm.rank], dtype=np.int64)  # a vertex this rank owns
    with pytest.raises(ValueError, match="owned by other ranks"):
        build_layout(comm, bad, bounds)
