"""The traversal kernels (BFS, CC, SSSP): numba gives exactly what the numpy reference gives."""

import numpy as np
import pytest

from hpcdist.kernels import numba_cpu as nb
from hpcdist.kernels import numpy_ref as ref


def local_graph(seed, n_owned=60, n_ghost=25, m=300, weighted=True):
    """A local in-edge CSR: rows = owned vertices, columns = owned + ghosts, rows sorted by
    a random distinct key per column (as DistGraph sorts them by input id)."""
    rng = np.random.default_rng(seed)
    n_local = n_owned + n_ghost
    keys = rng.permutation(10 * n_local)[:n_local].astype(np.int64)
    dst = rng.integers(0, n_owned, m)
    src = rng.integers(0, n_local, m)
    pairs = np.unique(np.stack([dst, src], axis=1), axis=0)
    dst, src = pairs[:, 0], pairs[:, 1]
    order = np.lexsort((keys[src], dst))
    dst, src = dst[order], src[order]
    indptr = np.zeros(n_owned + 1, dtype=np.int64)
    np.cumsum(np.bincount(dst, minlength=n_owned), out=indptr[1:])
    w = None
    if weighted:
        w = rng.random(src.shape[0]) * 3.0
        w[rng.random(src.shape[0]) < 0.15] = 0.0
    return indptr, src.astype(np.int32), w, keys, n_local


SEEDS = range(12)


@pytest.mark.parametrize("seed", SEEDS)
def test_transpose_identical_and_correct(seed):
    indptr, indices, w, _, n_local = local_graph(seed)
    a = ref.transpose_csr(indptr, indices, w, n_local)
    b = nb.transpose_csr(indptr, indices, w, n_local)
    for x, y in zip(a, b):
        assert np.array_equal(x, y) and x.dtype == y.dtype
    assert b[1].dtype == indices.dtype
    # the transpose of the transpose is the CSR with each row's columns in increasing order
    t_indptr, t_rows, t_w = b
    back = nb.transpose_csr(t_indptr, t_rows, t_w, indptr.shape[0] - 1)
    row = np.repeat(np.arange(indptr.shape[0] - 1), np.diff(indptr))
    order = np.lexsort((indices, row))
    assert np.array_equal(back[0], indptr) and np.array_equal(back[1], indices[order])
    assert np.array_equal(back[2], w[order])
    assert nb.transpose_csr(indptr, indices, None, n_local)[2] is None


@pytest.mark.parametrize("seed", SEEDS)
def test_bfs_levels_identical_in_both_directions(seed):
    indptr, indices, _, keys, n_local = local_graph(seed, weighted=False)
    n_owned = indptr.shape[0] - 1
    t_indptr, t_rows, _ = ref.transpose_csr(indptr, indices, None, n_local)
    rng = np.random.default_rng(100 + seed)
    dist0 = np.where(rng.random(n_owned) < 0.3, rng.integers(0, 3, n_owned), -1).astype(np.int64)
    parent0 = np.where(dist0 >= 0, 5, -1).astype(np.int64)
    level = 2
    frontier = (rng.random(n_local) < 0.2).astype(np.uint8)
    out_deg = np.arange(n_owned, dtype=np.int64)
    in_deg = np.diff(indptr)
    outs = []
    for k in (ref, nb):
        f = frontier.copy()
        k.bfs_frontier(dist0, level, f)
        cols = k.nonzero_positions(f)
        d, p, nxt = dist0.copy(), parent0.copy(), np.zeros(n_local, dtype=np.uint8)
        td = k.bfs_top_down(t_indptr, t_rows, cols, keys, d, p, level, out_deg, in_deg, nxt)
        d2, p2, nxt2 = dist0.copy(), parent0.copy(), np.zeros(n_local, dtype=np.uint8)
        todo = np.flatnonzero(in_deg > 0)
        bu = k.bfs_bottom_up(indptr, indices, f, keys, d2, p2, level, out_deg, in_deg, nxt2, todo, todo.shape[0])
        todo = todo[: bu[4]]
        stats = k.bfs_stats(d, level + 1, out_deg, in_deg)
        outs.append((f, cols, d, p, d2, p2, td, bu, stats, nxt, nxt2, todo))
    for x, y in zip(*outs):
        assert np.array_equal(x, y)
    f, cols, d, p, d2, p2, td, bu, stats, nxt, nxt2, todo = outs[0]
    assert np.array_equal(todo, np.flatnonzero((in_deg > 0) & (d2 < 0)))
    # both directions reach the same vertices with the same (smallest-key) parents
    assert np.array_equal(d, d2) and np.array_equal(p, p2) and np.array_equal(nxt, nxt2)
    assert np.array_equal(td[:3], bu[:3])
    assert td[3] == (t_indptr[cols + 1] - t_indptr[cols]).sum() and bu[3] <= indices.shape[0]
    new = np.flatnonzero((d == level + 1) & (dist0 < 0))
    assert np.array_equal(np.flatnonzero(nxt), new) and td[0] == new.shape[0]
    assert td[1] == out_deg[new].sum() and td[2] == in_deg[new].sum()
    for v in new:
        row = indices[indptr[v]:indptr[v + 1]]
        assert p[v] == keys[row[f[row] != 0]].min()


def test_bottom_up_parallel_variant_matches(monkeypatch):
    indptr, indices, _, keys, n_local = local_graph(3, n_owned=400, n_ghost=100, m=5000, weighted=False)
    frontier = (np.random.default_rng(1).random(n_local) < 0.1).astype(np.uint8)
    d0 = np.full(indptr.shape[0] - 1, -1, dtype=np.int64)
    got = []
    monkeypatch.setattr(nb, "BOTTOM_UP_CHUNK", 37)
    monkeypatch.setattr(nb, "BOTTOM_UP_PARALLEL_MIN", 0)
    for minimum in (1 << 40, 0):  # the serial loop, then the prange one
        monkeypatch.setattr(nb, "PARALLEL_MIN_EDGES", minimum)
        d, p, nxt = d0.copy(), d0.copy(), np.zeros(n_local, dtype=np.uint8)
        deg = np.diff(indptr)
        todo = np.arange(d.shape[0])
        got.append((nb.bfs_bottom_up(indptr, indices, frontier, keys, d, p, 0, deg, deg, nxt, todo, todo.shape[0]),
                    d, p, nxt, todo))
    for x, y in zip(*got):
        assert np.array_equal(x, y)


@pytest.mark.parametrize("seed", SEEDS)
def test_local_components_identical_and_minimal(seed):
    indptr, indices, _, keys, n_local = local_graph(seed, m=70)
    a = ref.local_components(indptr, indices, n_local, keys)
    b = nb.local_components(indptr, indices, n_local, keys)
    assert np.array_equal(a, b)
    # every vertex points at the smallest-key member of its component, which points at itself
    assert np.array_equal(b[b], b)
    for root in np.unique(b):
        members = np.flatnonzero(b == root)
        assert keys[root] == keys[members].min()


@pytest.mark.parametrize("seed", SEEDS)
def test_cc_pair_minima_identical(seed):
    indptr, indices, _, keys, n_local = local_graph(seed)
    rng = np.random.default_rng(seed)
    gkey = rng.integers(0, 50, n_local).astype(np.int64)
    gptr = gkey * 1000 + 7  # a pointer determined by the key, as in the algorithm
    outs = []
    for k in (ref, nb):
        mk, mp = gkey.copy(), gptr.copy()
        k.cc_min_neighbour(indptr, indices, gkey, gptr, mk, mp)
        index = rng.integers(0, n_local, 40) if k is ref else outs[0][2]
        key = rng.integers(0, 50, 40).astype(np.int64) if k is ref else outs[0][3]
        fk, fp = mk.copy(), mp.copy()
        k.cc_combine(index, key, key * 1000 + 7, fk, fp)
        outs.append((mk, mp, index, key, fk, fp))
    for x, y in zip(*outs):
        assert np.array_equal(x, y)
    mk, mp = outs[0][:2]
    assert np.array_equal(mp, mk * 1000 + 7) and (mk <= gkey).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_sssp_phase_identical(seed):
    indptr, indices, w, _, n_local = local_graph(seed)
    n_owned = indptr.shape[0] - 1
    t_indptr, t_rows, t_w = ref.transpose_csr(indptr, indices, w, n_local)
    rng = np.random.default_rng(seed)
    dist0 = np.where(rng.random(n_owned) < 0.5, rng.random(n_owned) * 4, np.inf)
    pending0 = np.where(np.isfinite(dist0), rng.integers(0, 4, n_owned), 0).astype(np.uint8)
    delta = 0.7
    for bit in (1, 2):
        outs = []
        for k in (ref, nb):
            d, pend = dist0.copy(), pending0.copy()
            buckets = k.sssp_buckets(d, pend, delta)
            pub = np.full(n_local, np.inf)
            pub[n_owned:] = np.where(rng.random(n_local - n_owned) < 0.3, 1.5, np.inf) if k is ref else outs[0][2][n_owned:]
            b = int(buckets[0 if bit == 1 else 1])
            active = k.sssp_publish(d, pend, delta, b, bit, pub)
            cols = k.nonzero_positions(pub != np.inf)
            kinds = k.sssp_edge_kinds(t_indptr, t_w, delta)
            relaxed = k.sssp_relax(t_indptr, t_rows, t_w, pub, cols, d, delta, bit == 1, pend, kinds)
            outs.append((buckets, active, pub, cols, relaxed, d, pend, kinds))
        for x, y in zip(*outs):
            assert np.array_equal(x, y)
        buckets, active, pub, cols, relaxed, d, pend, kinds = outs[0]
        assert (d <= dist0).all() and ((pend & kinds[:n_owned])[d < dist0] == kinds[:n_owned][d < dist0]).all()
        for c in range(n_local):  # the kinds of each row's edges
            w_row = t_w[t_indptr[c]:t_indptr[c + 1]]
            assert kinds[c] == (1 if (w_row <= delta).any() else 0) | (2 if (w_row > delta).any() else 0)
    empty = np.zeros(0)
    assert np.array_equal(nb.sssp_buckets(empty, empty.astype(np.uint8), 1.0), [nb.NO_BUCKET, nb.NO_BUCKET])
    assert np.array_equal(ref.sssp_buckets(empty, empty.astype(np.uint8), 1.0), [ref.NO_BUCKET, ref.NO_BUCKET])
