"""The traversal kernels (BFS, CC, SSSP): numba gives exactly what the numpy reference gives."""

import numpy as np
import pytest

from hpcdist.graph.frontier_exchange import pack_masks
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


def bfs_setup(seed, n_owned=60, n_ghost=25, m=300):
    """A local graph with its rows sorted by key, a BFS state after ``level`` 2 and a
    frontier (owned vertices at level 2, random ghosts)."""
    indptr, indices, _, keys, n_local = local_graph(seed, n_owned, n_ghost, m, weighted=False)
    rng = np.random.default_rng(100 + seed)
    keys = rng.permutation(keys)  # rows no longer in key order: bfs_sort_rows restores it
    rows = ref.bfs_sort_rows(indptr, indices, keys)
    t_indptr, t_rows, _ = ref.transpose_csr(indptr, rows, None, n_local)
    dist0 = np.where(rng.random(n_owned) < 0.3, rng.integers(0, 3, n_owned), -1).astype(np.int64)
    flags = np.zeros(n_local, dtype=np.uint8)
    flags[n_owned:] = rng.random(n_ghost) < 0.2
    in_deg = np.diff(indptr).astype(np.int32)
    first = np.where(in_deg > 0, rows[np.minimum(indptr[:-1], rows.shape[0] - 1)], -1).astype(rows.dtype)
    return dict(indptr=indptr, indices=indices, rows=rows, keys=keys, n_local=n_local, t_indptr=t_indptr,
                t_rows=t_rows, dist0=dist0, flags=flags, in_deg=in_deg, first=first, level=2,
                out_deg=np.arange(n_owned, dtype=np.int64))


@pytest.mark.parametrize("seed", SEEDS)
def test_bfs_sort_rows_identical_and_sorted(seed):
    s = bfs_setup(seed)
    indptr, keys = s["indptr"], s["keys"]
    got = nb.bfs_sort_rows(indptr, s["indices"], keys)
    assert np.array_equal(got, s["rows"]) and got.dtype == s["indices"].dtype
    for i in range(indptr.shape[0] - 1):
        row = got[indptr[i]:indptr[i + 1]]
        assert np.array_equal(np.sort(row), np.sort(s["indices"][indptr[i]:indptr[i + 1]]))
        assert (np.diff(keys[row]) > 0).all()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("every", [True, False])
def test_bfs_levels_identical_in_both_directions(seed, every):
    s = bfs_setup(seed)
    indptr, rows, keys, n_local, level = s["indptr"], s["rows"], s["keys"], s["n_local"], s["level"]
    dist0, flags, in_deg = s["dist0"], s["flags"], s["in_deg"]
    n_owned = indptr.shape[0] - 1
    front = np.flatnonzero(dist0 == level).astype(rows.dtype)
    ghosts = n_owned + np.flatnonzero(flags[n_owned:])
    words = (n_local + 63) // 64
    outs = []
    for k in (ref, nb):
        for out_deg in (s["out_deg"], in_deg[:0]):  # an empty out-degree stands for the in-degree
            # top-down in two calls (owned columns, then ghosts), as with the overlap
            d, p, q = dist0.copy(), np.zeros(n_owned, dtype=rows.dtype), np.zeros(n_local, dtype=rows.dtype)
            td = k.bfs_top_down(s["t_indptr"], s["t_rows"], front, front.shape[0], keys, d, p, level, out_deg,
                                in_deg, q, 0)
            td2 = k.bfs_top_down(s["t_indptr"], s["t_rows"], ghosts, ghosts.shape[0], keys, d, p, level, out_deg,
                                 in_deg, q, int(td[4]))
            bits = np.full(words, 12345, dtype=np.uint64)  # stale bits: bfs_bitmap clears them
            k.bfs_bitmap(bits, front, front.shape[0], flags, n_owned)
            # the ghosts pushed straight from their bits: the same level as from their list
            d3, p3, q3 = dist0.copy(), np.zeros(n_owned, dtype=rows.dtype), np.zeros(n_local, dtype=rows.dtype)
            td3 = k.bfs_top_down(s["t_indptr"], s["t_rows"], front, front.shape[0], keys, d3, p3, level, out_deg,
                                 in_deg, q3, 0)
            td3 = k.bfs_top_down_bits(s["t_indptr"], s["t_rows"], bits, n_owned, n_local, keys, d3, p3, level,
                                      out_deg, in_deg, q3, td3)
            assert np.array_equal(td3[:4], (td + td2)[:4]) and td3[4] == td2[4]
            assert np.array_equal(d3, d) and np.array_equal(p3, p) and np.array_equal(q3, q)
            # both pushes in one call: the same level
            d4, p4, q4 = dist0.copy(), np.zeros(n_owned, dtype=rows.dtype), np.zeros(n_local, dtype=rows.dtype)
            td4 = k.bfs_top_down_both(s["t_indptr"], s["t_rows"], front, front.shape[0], bits, n_owned, n_local, keys,
                                      d4, p4, level, out_deg, in_deg, q4, 0)
            assert np.array_equal(td4, td3) and np.array_equal(d4, d3) and np.array_equal(p4, p3)
            assert np.array_equal(q4, q3)
            d2, p2, q2 = dist0.copy(), np.zeros(n_owned, dtype=rows.dtype), np.zeros(n_local, dtype=rows.dtype)
            todo = np.flatnonzero((in_deg > 0) & (dist0 < 0) | (dist0 == 0)).astype(rows.dtype)
            n_todo = -1 if every else todo.shape[0]
            next_bits = np.full(words, 777, dtype=np.uint64)
            cand = np.flatnonzero(in_deg > 0).astype(rows.dtype)
            bu = k.bfs_bottom_up(indptr, rows, s["first"], bits, next_bits, keys, d2, p2, level, out_deg, in_deg,
                                 q2, cand, todo, n_todo)
            ids = k.bfs_parent_ids(d, p, keys)
            assert np.array_equal(ids, np.where(d > 0, keys[p], -1)) and ids.dtype == np.int64
            outs.append((td, td2, d, p[d == level + 1], q[: td2[4]], bits, bu, d2, p2[d2 == level + 1],
                         q2[: bu[4]], todo[: bu[5]], next_bits, ids, p2))
    for a, b in ((0, 2), (1, 3)):  # numpy and numba, for each kind of out-degree
        for x, y in zip(outs[a], outs[b]):
            assert np.array_equal(x, y)
    # with the in-degree standing for the out-degree, only the out-edge counts differ
    for i, (x, y) in enumerate(zip(outs[0], outs[1])):
        assert np.array_equal(x[[0, 2, 3, 4]], y[[0, 2, 3, 4]]) if i in (0, 1, 6) else np.array_equal(x, y)
    assert outs[1][6][1] == outs[1][6][2]
    td, td2, d, p, q, bits, bu, d2, p2, q2, todo, next_bits, ids, p2_all = outs[0]
    new = np.flatnonzero((d == level + 1) & (dist0 < 0))
    # both directions reach the same vertices with the same (smallest-key) parents
    assert np.array_equal(d, d2) and np.array_equal(p, p2)
    assert np.array_equal(np.sort(q), new) and np.array_equal(np.sort(q2), new)
    # bottom-up's queue: the vertices whose first column hit, then the others, each increasing
    at_first = s["first"][q2] == p2_all[q2]
    n_first = int(at_first.sum())
    assert at_first[:n_first].all() and not at_first[n_first:].any()
    assert (np.diff(q2[:n_first]) > 0).all() and (np.diff(q2[n_first:]) > 0).all()
    assert np.array_equal((td + td2)[:3], bu[:3]) and td2[4] == bu[4] == new.shape[0]
    assert bu[1] == s["out_deg"][new].sum() and bu[2] == in_deg[new].sum()
    in_front = np.zeros(n_local, dtype=bool)
    in_front[front] = in_front[ghosts] = True
    assert np.array_equal(np.unpackbits(bits.view(np.uint8), bitorder="little")[:n_local], in_front)
    reached_bits = np.unpackbits(next_bits.view(np.uint8), bitorder="little")
    assert np.array_equal(np.flatnonzero(reached_bits), new)
    for v, pv in zip(new, p):
        row = rows[indptr[v]:indptr[v + 1]]
        assert keys[pv] == keys[row[in_front[row]]].min()
    assert np.array_equal(todo, np.flatnonzero((in_deg > 0) & (d2 < 0)))
    # a scan stops at its first hit, which the dense first column may already be
    assert bu[3] <= rows.shape[0]


@pytest.mark.parametrize("k", [ref, nb], ids=["numpy", "numba"])
def test_bfs_small_kernels(k):
    s = bfs_setup(5)
    n_owned, n_local = s["indptr"].shape[0] - 1, s["n_local"]
    rng = np.random.default_rng(0)
    flags = np.zeros(n_local, dtype=np.uint8)
    old = np.array([1, 4, 9], dtype=np.int32)
    flags[old] = 1
    new = np.array([2, 4, 30], dtype=np.int32)
    k.bfs_flags(flags, old, 3, new, 2)
    assert np.array_equal(np.flatnonzero(flags), [2, 4])
    # bits: with n_queue -1 the owned bits stay and the ghosts' are rebuilt
    bits = np.zeros((n_local + 63) // 64, dtype=np.uint64)
    ghost = np.zeros(n_local, dtype=np.uint8)
    ghost[n_owned + 3] = 1
    k.bfs_bitmap(bits, new, 3, ghost, n_owned)
    ghost[n_owned + 3], ghost[n_owned + 5] = 0, 1
    k.bfs_bitmap(bits, new[:0], -1, ghost, n_owned)
    assert np.array_equal(np.flatnonzero(np.unpackbits(bits.view(np.uint8), bitorder="little")),
                          [2, 4, 30, n_owned + 5])
    dist = np.array([0, 1, -1, 2], dtype=np.int64)
    parent = rng.integers(0, n_local, 4).astype(np.int32)
    ids = np.arange(n_local, dtype=np.int64) * 10
    assert np.array_equal(k.bfs_parent_ids(dist, parent, ids), [-1, parent[1] * 10, -1, parent[3] * 10])


def test_int64_full_on_threads_and_not():
    for n in (0, 5, nb.PASS_PARALLEL_MIN + 3):
        for value in (-7, -1, 0):  # -1 and 0: a byte fill on one thread
            got = nb.int64_full(n, value)
            assert got.dtype == np.int64 and np.array_equal(got, ref.int64_full(n, value))
    out = np.zeros(1000, dtype=np.int64)
    nb._fill_parallel(out, np.int64(-1))  # the threaded fill, whatever this rank's thread count
    assert (out == -1).all()


def test_parent_ids_parallel_variant_matches():
    rng = np.random.default_rng(4)
    dist = rng.integers(-1, 4, 5000).astype(np.int64)
    parent = rng.integers(0, 7000, 5000).astype(np.int32)
    ids = rng.permutation(7000).astype(np.int64) * 3
    got = [np.empty(5000, dtype=np.int64) for _ in range(2)]
    for par, out in zip((False, True), got):
        nb._PARENT_IDS[par](dist, parent, ids, out)
    assert np.array_equal(got[0], got[1])
    assert np.array_equal(got[0], ref.bfs_parent_ids(dist, parent, ids))


def test_bottom_up_parallel_variant_matches(monkeypatch):
    s = bfs_setup(3, n_owned=400, n_ghost=100, m=5000)
    n_owned, n_local, rows = s["indptr"].shape[0] - 1, s["n_local"], s["rows"]
    bits = np.zeros((n_local + 63) // 64, dtype=np.uint64)
    front = np.flatnonzero(np.random.default_rng(1).random(n_owned) < 0.1).astype(rows.dtype)
    nb.bfs_bitmap(bits, front, front.shape[0], s["flags"], n_owned)
    d0 = np.where(np.isin(np.arange(n_owned), front), 0, -1).astype(np.int64)
    got = []
    monkeypatch.setattr(nb, "BOTTOM_UP_CHUNK", 37)
    monkeypatch.setattr(nb, "BOTTOM_UP_PARALLEL_MIN", 0)
    for minimum in (1 << 40, 0):  # the serial loop, then the prange one
        monkeypatch.setattr(nb, "PARALLEL_MIN_EDGES", minimum)
        cand = np.flatnonzero(s["in_deg"] > 0).astype(rows.dtype)
        for n_todo in (-1, cand.shape[0]):
            d, p = d0.copy(), np.zeros(n_owned, dtype=rows.dtype)
            q, nxt = np.zeros(n_owned, dtype=rows.dtype), np.zeros_like(bits)
            todo = cand.copy()  # candidates have in-edges (the kernels' contract)
            out = nb.bfs_bottom_up(s["indptr"], rows, s["first"], bits, nxt, s["keys"], d, p, 0, s["in_deg"][:0],
                                   s["in_deg"], q, cand, todo, n_todo)
            got.append((out, d, p, q[: out[4]], nxt, todo[: out[5]]))
    for other in got[1:]:
        for x, y in zip(got[0], other):
            assert np.array_equal(x, y)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("m", [70, 400])  # small components, then one giant (Afforest's skip)
def test_local_components_identical_and_minimal(seed, m):
    indptr, indices, _, keys, n_local = local_graph(seed, m=m)
    t_indptr, t_rows, _ = ref.transpose_csr(indptr, indices, None, n_local)
    a = ref.local_components(indptr, indices, n_local, keys)
    b = nb.local_components(indptr, indices, n_local, keys, t_indptr, t_rows)
    assert np.array_equal(a, b)
    # every vertex points at the smallest-key member of its component, which points at itself
    assert np.array_equal(b[b], b)
    for root in np.unique(b):
        members = np.flatnonzero(b == root)
        assert keys[root] == keys[members].min()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("m", [30, 300])  # many small local components, then few large ones
def test_cc_component_minima_identical_and_minimal(seed, m):
    indptr, indices, _, keys, n_local = local_graph(seed, m=m)
    root = ref.local_components(indptr, indices, n_local, keys)
    rng = np.random.default_rng(seed)
    gkey = rng.integers(0, 50, n_local).astype(np.int64)
    gptr = gkey * 1000 + 7  # a pointer determined by the key, as in the algorithm
    outs = []
    for k in (ref, nb):
        mk, mp = np.full(n_local, -5, dtype=np.int64), np.full(n_local, -5, dtype=np.int64)  # stale: overwritten
        k.cc_component_min(root, gkey, gptr, mk, mp)
        index = rng.integers(0, n_local, 40) if k is ref else outs[0][2]
        key = rng.integers(0, 50, 40).astype(np.int64) if k is ref else outs[0][3]
        fk, fp = mk.copy(), mp.copy()
        k.cc_combine(index, key, key * 1000 + 7, fk, fp)
        outs.append((mk, mp, index, key, fk, fp))
    for x, y in zip(*outs):
        assert np.array_equal(x, y)
    mk, mp = outs[0][:2]
    for c in range(n_local):  # the minimum over the members of c's local component
        assert mk[c] == gkey[root == root[c]].min()
    assert np.array_equal(mp, mk * 1000 + 7)
    # never above the minimum over c's neighbours (and itself), what FastSV needs
    row = np.repeat(np.arange(indptr.shape[0] - 1), np.diff(indptr))
    for a, b in ((row, indices), (indices, row)):
        assert (mk[a] <= gkey[b]).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_edge_set_hashes_tell_a_symmetric_edge_set(seed):
    rng = np.random.default_rng(seed)
    n = 40
    u, v = rng.integers(0, n, 150), rng.integers(0, n, 150)
    sym = np.unique(np.stack([np.concatenate([u, v]), np.concatenate([v, u])], axis=1), axis=0)
    one_way = sym[sym[:, 0] != sym[:, 1]][:1]  # dropping one direction of one edge breaks it
    broken = np.array([e for e in sym.tolist() if e != one_way[0].tolist()])
    ids = rng.permutation(10 * n)[:n].astype(np.int64) * 1_000_003  # any global ids
    key = int(rng.integers(0, 2**63))
    for edges, symmetric in ((sym, True), (broken, False)):
        # split the rows over two "ranks" as a partition would, and XOR their hashes
        total = {}
        for k in (ref, nb):
            acc = np.zeros(2, dtype=np.uint64)
            for part in (edges[edges[:, 0] < n // 2], edges[edges[:, 0] >= n // 2]):
                rows = np.unique(part[:, 0])
                indptr = np.zeros(rows.shape[0] + 1, dtype=np.int64)
                np.cumsum(np.bincount(np.searchsorted(rows, part[:, 0]), minlength=rows.shape[0]), out=indptr[1:])
                acc ^= k.edge_set_hashes(indptr, part[:, 1].astype(np.int32), ids[rows], ids, key)
            total[k.NAME] = acc
        assert np.array_equal(total["numpy"], total["numba"])
        assert (total["numpy"][0] == total["numpy"][1]) == symmetric


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
            pbits = k.pending_bits(pend)
            assert np.array_equal(as_bools(pbits, n_owned), pend != 0)
            buckets = k.sssp_buckets(d, pend, delta, pbits)
            pub = np.full(n_local, np.inf)
            pub[n_owned:] = np.where(rng.random(n_local - n_owned) < 0.3, 1.5, np.inf) if k is ref else outs[0][2][n_owned:]
            b = int(buckets[0 if bit == 1 else 1])
            owned = np.full(n_owned, -1, dtype=np.int64)
            owned[:3] = [0, 1, 2]  # the previous phase's frontier, which goes back to inf
            pub[:3] = 9.0
            active = k.sssp_publish(d, pend, delta, b, bit, pub, owned, 3, pbits)
            cols = k.nonzero_positions(pub != np.inf)
            assert np.array_equal(owned[:active], cols[cols < n_owned])  # the owned frontier, increasing
            assert np.array_equal(as_bools(pbits, n_owned), pend != 0)
            kinds = k.sssp_edge_kinds(t_indptr, t_w, delta)
            relaxed = k.sssp_relax(t_indptr, t_rows, t_w, pub, cols, d, delta, bit == 1, pend, kinds, pbits)
            assert np.array_equal(as_bools(pbits, n_owned), pend != 0)
            outs.append((buckets, active, pub, cols, relaxed, d, pend, kinds, pbits))
        for x, y in zip(*outs):
            assert np.array_equal(x, y)
        buckets, active, pub, cols, relaxed, d, pend, kinds, pbits = outs[0]
        assert (d <= dist0).all() and ((pend & kinds[:n_owned])[d < dist0] == kinds[:n_owned][d < dist0]).all()
        # the buckets are the minima over the vertices with each kind pending
        bk = np.floor(dist0 / delta)
        for i, kind in enumerate((1, 2)):
            sel = (pending0 & kind) != 0
            assert buckets[i] == (bk[sel].min() if sel.any() else nb.NO_BUCKET)
        for c in range(n_local):  # the kinds of each row's edges
            w_row = t_w[t_indptr[c]:t_indptr[c + 1]]
            assert kinds[c] == (1 if (w_row <= delta).any() else 0) | (2 if (w_row > delta).any() else 0)
    empty = np.zeros(0)
    for k in (ref, nb):
        got = k.sssp_buckets(empty, empty.astype(np.uint8), 1.0, np.zeros(0, dtype=np.uint64))
        assert np.array_equal(got, [k.NO_BUCKET, k.NO_BUCKET])


@pytest.mark.parametrize("seed", SEEDS)
def test_sssp_light_closure_reaches_the_local_fixed_point(seed):
    indptr, indices, w, _, n_local = local_graph(seed)
    n_owned = indptr.shape[0] - 1
    t_indptr, t_rows, t_w = ref.transpose_csr(indptr, indices, w, n_local)
    rng = np.random.default_rng(seed + 7)
    delta = 0.7
    kinds = ref.sssp_edge_kinds(t_indptr, t_w, delta)
    dist0 = np.where(rng.random(n_owned) < 0.3, rng.random(n_owned) * 3, np.inf)
    pending0 = np.where(np.isfinite(dist0), kinds[:n_owned], 0).astype(np.uint8)
    remote = (rng.random(n_owned) < 0.2).astype(np.uint8)
    bucket = 2
    outs = []
    for k in (ref, nb):
        d, pend = dist0.copy(), pending0.copy()
        pbits = k.pending_bits(pend)
        ring, queued = np.zeros(n_owned, dtype=np.int64), np.zeros(n_owned, dtype=np.uint8)
        # the starting work: the light phase's relaxation from its published frontier (every
        # vertex with light work in the bucket, which the publish takes the bit from) appends it
        n_seeds = np.zeros(1, dtype=np.int64)
        pub = np.full(n_local, np.inf)
        cols = np.flatnonzero(((pend & 1) != 0) & (np.floor(d / delta) <= bucket))
        pub[cols] = d[cols]
        pend[cols] &= np.uint8(254)
        pbits = k.pending_bits(pend)
        k.sssp_relax(t_indptr, t_rows, t_w, pub, cols, d, delta, True, pend, kinds, pbits,
                     (remote, ring, queued, n_seeds, bucket))
        seeds = ring[: n_seeds[0]].copy()
        assert (queued[seeds] == 1).all() and queued.sum() == seeds.shape[0] and not remote[seeds].any()
        relaxed = k.sssp_light_closure(t_indptr, t_rows, t_w, d, delta, bucket, pend, kinds, pbits, remote, ring,
                                       queued, int(n_seeds[0]))
        assert not queued.any()  # the scratch is left as found
        assert np.array_equal(as_bools(pbits, n_owned), pend != 0)
        outs.append((seeds, d, pend, relaxed, cols))
    for x, y in zip(*outs):  # the same seeds in the same order, the same counts
        assert np.array_equal(x, y)
    seeds, d, pend, relaxed, cols = outs[0]
    assert seeds.shape[0] > 0 and relaxed > 0 and (d <= dist0).all()
    # the fixed point: no local light edge from a vertex of the bucket that improved
    in_bucket = np.floor(d / delta) <= bucket
    for u in np.flatnonzero(in_bucket & (d < dist0) & (kinds[:n_owned] & 1 != 0)):
        # cleared where relaxed; other ranks store some edges of a remote one: it waits for the publish
        assert bool(pend[u] & 1) == bool(remote[u]), u
        if not remote[u]:
            row = slice(t_indptr[u], t_indptr[u + 1])
            light = t_w[row] <= delta
            assert (d[t_rows[row][light]] <= d[u] + t_w[row][light]).all(), u
    # and it is the fixed point that plain relaxation rounds from those columns reach
    d2, pend2 = dist0.copy(), pending0.copy()
    front = cols
    pub = np.full(n_local, np.inf)
    pub[front] = d2[front]
    pend2[front] &= np.uint8(254)
    ref.sssp_relax(t_indptr, t_rows, t_w, pub, front, d2, delta, True, pend2, kinds, ref.pending_bits(pend2))
    while True:
        front = np.flatnonzero(((pend2 & 1) != 0) & (remote == 0) & (np.floor(d2 / delta) <= bucket))
        if front.shape[0] == 0:
            break
        pub = np.full(n_local, np.inf)
        pub[front] = d2[front]
        pend2[front] &= np.uint8(254)
        ref.sssp_relax(t_indptr, t_rows, t_w, pub, front, d2, delta, True, pend2, kinds, ref.pending_bits(pend2))
    assert np.array_equal(d, d2)


def as_bools(words: np.ndarray, n: int) -> np.ndarray:
    return np.unpackbits(words.view(np.uint8), bitorder="little")[:n].astype(bool)


def frontier_layout(seed: int, n_owned: int = 301, neighbours: int = 3):
    """A send layout as a halo plan builds it: per neighbour, increasing owned ids."""
    rng = np.random.default_rng(seed)
    lists = [np.flatnonzero(rng.random(n_owned) < rng.uniform(0.05, 0.9)) for _ in range(neighbours)]
    counts = np.array([x.shape[0] for x in lists], dtype=np.int64)
    words = (counts + 63) // 64
    word_at = np.concatenate([[0], np.cumsum(words)]).astype(np.int64)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    index = np.concatenate(lists).astype(np.int64)
    seg = np.repeat(np.arange(neighbours), counts)
    pos = 64 * word_at[seg] + np.arange(index.shape[0]) - first[seg]
    order = np.argsort(index, kind="stable")
    ptr = np.zeros(n_owned + 1, dtype=np.int32)
    np.cumsum(np.bincount(index, minlength=n_owned), out=ptr[1:])
    return lists, counts, word_at, first, index, ptr, np.append(pos[order], 0).astype(np.int32)


@pytest.mark.parametrize("n_owned", [301, 4099])
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("k", [ref, nb], ids=["numpy", "numba"])
def test_frontier_publish_and_gather_build_the_same_bitmaps(k, seed, n_owned):
    lists, counts, word_at, first, index, ptr, pos = frontier_layout(seed, n_owned)
    rng = np.random.default_rng(seed + 1)
    for share in (0.0, 0.03, 0.5, 1.0):
        queue = rng.permutation(np.flatnonzero(rng.random(n_owned) < share)).astype(np.int32)
        member = np.zeros(n_owned, dtype=bool)
        member[queue] = True
        send = np.full(int(word_at[-1]), 0xFFFF, dtype=np.uint64)  # stale bits: publish clears them
        k.frontier_publish(send, ptr, pos, queue, queue.shape[0])
        for j, lst in enumerate(lists):  # neighbour j's bitmap: its send list's members, in order
            seg = send[word_at[j]:word_at[j + 1]]
            assert np.array_equal(as_bools(seg, 64 * seg.shape[0])[: lst.shape[0]], member[lst])
            assert not as_bools(seg, 64 * seg.shape[0])[lst.shape[0]:].any()
        bits = np.zeros((n_owned + 200 + 63) // 64, dtype=np.uint64)  # owned bits, ghosts' words after
        k.bfs_owned_bits(bits, queue, queue.shape[0], n_owned)
        gathered = np.full_like(send, 7)
        k.frontier_gather(gathered, word_at[:-1], *pack_masks(index, first, counts), bits)
        assert np.array_equal(gathered, send)



@pytest.mark.parametrize("k", [ref, nb], ids=["numpy", "numba"])
def test_frontier_kernels_carry_int64_words_beside_the_bitmaps(k):
    lists, counts, word_at, first, index, ptr, pos = frontier_layout(3, 1000)
    n_nb, bitmap = len(lists), int(word_at[-1])
    carry = np.array([7, -5, 2**40, 0, 1], dtype=np.int64)
    at = bitmap + carry.shape[0] * np.arange(n_nb, dtype=np.int64)  # each neighbour's words, after the bitmaps
    queue = np.arange(0, 1000, 3, dtype=np.int32)
    plain = np.zeros(bitmap, dtype=np.uint64)
    k.frontier_publish(plain, ptr, pos, queue, queue.shape[0])
    bits = np.zeros((1000 + 63) // 64, dtype=np.uint64)
    k.bfs_owned_bits(bits, queue, queue.shape[0], 1000)
    for build in ("publish", "gather"):
        send = np.full(bitmap + carry.shape[0] * n_nb, 9, dtype=np.uint64)
        if build == "publish":
            k.frontier_publish(send, ptr, pos, queue, queue.shape[0], at, carry)
        else:
            send[:bitmap] = 0
            k.frontier_gather(send, word_at[:-1], *pack_masks(index, first, counts), bits, at, carry)
        assert np.array_equal(send[:bitmap], plain), build
        assert np.array_equal(send[bitmap:].view(np.int64), np.tile(carry, n_nb)), build
        # the receiver: the same words, and each neighbour's carry added to its own
        total = np.array([1, 1, 1, 1, 1], dtype=np.int64)
        ghosts = np.zeros((64 + int(counts.sum()) + 63) // 64, dtype=np.uint64)
        k.frontier_unpack(send, word_at[:-1], counts, ghosts, 64, at, total)
        assert np.array_equal(total, 1 + n_nb * carry), build
        alone = np.zeros_like(ghosts)
        k.frontier_unpack(send, word_at[:-1], counts, alone, 64)
        assert np.array_equal(ghosts, alone), build

def test_pack_masks_mark_each_send_list_word_by_word():
    lists, counts, _, first, index, _, _ = frontier_layout(5, 1000)
    ptr, word, mask = pack_masks(index, first, counts)
    for j, lst in enumerate(lists):
        w, m = word[ptr[j]:ptr[j + 1]], mask[ptr[j]:ptr[j + 1]]
        assert np.all(np.diff(w) > 0)
        marked = [64 * int(wi) + b for wi, mi in zip(w, m) for b in range(64) if (int(mi) >> b) & 1]
        assert marked == lst.tolist()
    with pytest.raises(ValueError, match="strictly increasing"):
        pack_masks(np.array([3, 2]), np.array([0]), np.array([2]))


def test_software_pext_equals_the_instruction_and_the_definition():
    import numba

    @numba.njit
    def soft(x, m):
        return nb._pext_sw(x, m)

    @numba.njit
    def chosen(x, m):
        return nb._pext(x, m)

    rng = np.random.default_rng(0)
    for _ in range(300):
        x, m, sparser = rng.integers(0, 2**64, size=3, dtype=np.uint64)
        if rng.random() < 0.5:
            m &= sparser
        want, k = 0, 0
        for b in range(64):
            if (int(m) >> b) & 1:
                want |= ((int(x) >> b) & 1) << k
                k += 1
        assert int(soft(x, m)) == want
        assert int(chosen(x, m)) == want  # the BMI2 instruction where the CPU has it
    assert int(soft(np.uint64(2**64 - 1), np.uint64(2**64 - 1))) == 2**64 - 1


@pytest.mark.parametrize("k", [ref, nb], ids=["numpy", "numba"])
@pytest.mark.parametrize("n_owned", [0, 64, 129, 200])
def test_frontier_unpack_overwrites_ghost_bits_and_keeps_owned_ones(k, n_owned):
    rng = np.random.default_rng(n_owned)
    counts = np.array([70, 0, 5, 130], dtype=np.int64)
    words = (counts + 63) // 64
    recv_word = np.concatenate([[0], np.cumsum(words)[:-1]]).astype(np.int64)
    want = [rng.random(c) < 0.4 for c in counts]
    recv = np.zeros(int(words.sum()), dtype=np.uint64)
    for j, w in enumerate(want):
        dense = np.zeros(64 * words[j], dtype=np.uint8)
        dense[: counts[j]] = w
        recv[recv_word[j]:recv_word[j] + words[j]] = np.packbits(dense, bitorder="little").view(np.uint64)
    n_local = n_owned + int(counts.sum())
    bits = np.full((n_local + 63) // 64, np.iinfo(np.uint64).max, dtype=np.uint64)  # stale ghost bits
    owned = as_bools(bits, n_owned).copy()
    k.frontier_unpack(recv, recv_word, counts, bits, n_owned)
    got = as_bools(bits, n_local)
    assert np.array_equal(got[:n_owned], owned)
    assert np.array_equal(got[n_owned:], np.concatenate(want))
    # the owned bits rebuilt from a queue leave the ghosts' as the exchange wrote them
    queue = np.flatnonzero(rng.random(n_owned) < 0.3).astype(np.int32)
    k.bfs_owned_bits(bits, queue, queue.shape[0], n_owned)
    got = as_bools(bits, n_local)
    assert np.array_equal(np.flatnonzero(got[:n_owned]), queue)
    assert np.array_equal(got[n_owned:], np.concatenate(want))


@pytest.mark.parametrize("seed", SEEDS)
def test_value_frontier_kernels_identical_and_round_trip(seed):
    # a send list over 3 neighbours; each owned vertex on 0-3 of them (hpcdist.graph.value_frontier)
    rng = np.random.default_rng(seed)
    n_owned, n_nb = 40, 3
    lists = [np.sort(rng.choice(n_owned, size=int(rng.integers(5, 20)), replace=False)) for _ in range(n_nb)]
    counts_all = np.array([x.shape[0] for x in lists])
    send_index = np.concatenate(lists)
    first = np.concatenate([[0], np.cumsum(counts_all)[:-1]])
    owner_nb = np.repeat(np.arange(n_nb), counts_all)
    place = np.arange(send_index.shape[0]) - first[owner_nb]
    order = np.argsort(send_index, kind="stable")
    map_ptr = np.zeros(n_owned + 1, dtype=np.int64)
    np.cumsum(np.bincount(send_index, minlength=n_owned), out=map_ptr[1:])
    values = rng.random(n_owned)
    cols = rng.permutation(n_owned)[: int(rng.integers(0, n_owned))].astype(np.int64)
    got = []
    for k in (ref, nb):
        send = np.zeros(2 * send_index.shape[0], dtype=np.uint64)
        counts = np.full(n_nb, 99, dtype=np.int64)
        k.value_publish(send, counts, first, map_ptr, owner_nb[order], place[order], values.view(np.uint64), cols,
                        cols.shape[0])
        # the receiver: the same lists as its ghosts, in the same order, after n_owned owned slots
        recv_vals = np.full(n_owned + send_index.shape[0], np.inf)
        recv_vals[n_owned + 5] = 7.0  # written by the previous exchange: back to the blank value
        ghosts = np.full(send_index.shape[0], -1, dtype=np.int64)
        ghosts[0] = n_owned + 5
        blank = np.array([np.inf]).view(np.uint64)[0]
        n = k.value_unpack(send, counts, first, recv_vals.view(np.uint64), n_owned, blank, ghosts, 1)
        got.append((send, counts, recv_vals, ghosts[:n]))
        # exactly the frontier's copies arrive, each at its ghost slot
        in_front = np.isin(send_index, cols)
        assert np.array_equal(counts, np.bincount(owner_nb[in_front], minlength=n_nb))
        expect = np.full(n_owned + send_index.shape[0], np.inf)
        expect[n_owned + np.flatnonzero(in_front)] = values[send_index[in_front]]
        assert np.array_equal(recv_vals, expect)
        assert np.array_equal(np.sort(ghosts[:n]), n_owned + np.flatnonzero(in_front))
    for x, y in zip(*got):
        assert np.array_equal(x, y)


@pytest.mark.parametrize("seed", SEEDS)
def test_unique_inverse_equals_numpy_unique(seed):
    rng = np.random.default_rng(seed)
    cases = [np.zeros(0, dtype=np.int64), np.array([7]), rng.integers(-(2**62), 2**62, 1000),
             np.where(rng.random(5000) < 0.9, rng.choice([3, 2**40, -5], 5000), rng.integers(0, 100, 5000)),
             np.arange(300)[::-1] * 64]  # ids a power of two apart: every one must still hash apart
    for values in cases:
        values = np.asarray(values, dtype=np.int64)
        want_u, want_i = np.unique(values, return_inverse=True)
        for k in (ref, nb):
            u, inv = k.unique_inverse(values)
            assert np.array_equal(u, want_u) and np.array_equal(inv, want_i) and inv.dtype == np.int64
            assert np.array_equal(u[inv], values)
        # unsorted: the distinct values in the order they first appear, the same on both backends
        _, first = np.unique(values, return_index=True)
        for k in (ref, nb):
            u, inv = k.unique_inverse(values, sort=False)
            assert np.array_equal(u, values[np.sort(first)]) and inv.dtype == np.int64
            assert np.array_equal(u[inv], values)
