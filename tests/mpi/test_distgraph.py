"""DistGraph construction at 1-4 ranks: edges, duplicates, ordering, maps, ghosts, report."""

import numpy as np
import pytest

from hpcdist.graph import from_csr, from_edges
from hpcdist.runtime.errors import InputError
from hpcdist.runtime.ranges import owned_range

pytestmark = pytest.mark.mpi

PARTITIONERS = ["block", "hash", "metis"]


def random_graph(seed, n=120, m=700, weighted=True):
    """The same edge list on every rank, with duplicates (different weights) and self-loops."""
    rng = np.random.default_rng(seed)
    src = rng.integers(0, n, m)
    dst = (src + rng.integers(-5, 6, m)) % n  # local structure, so partitioners differ
    src = np.concatenate([src, src[:50], [3, 3]])
    dst = np.concatenate([dst, dst[:50], [3, 3]])
    w = rng.integers(1, 20, src.size).astype(float) if weighted else None
    return n, src, dst, w


def reference_edges(src, dst, w):
    """{(src, dst): smallest weight}."""
    best = {}
    for i, (s, d) in enumerate(zip(src.tolist(), dst.tolist())):
        val = 1.0 if w is None else w[i]
        best[(s, d)] = min(best.get((s, d), np.inf), val)
    return best


def my_slice(comm, *arrays):
    return [None if a is None else a[comm.rank :: comm.size] for a in arrays]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("partitioner", PARTITIONERS)
@pytest.mark.parametrize("weighted", [True, False])
def test_graph_holds_each_edge_once_sorted_by_source(comm, partitioner, weighted):
    n, src, dst, w = random_graph(1, weighted=weighted)
    s, d, ww = my_slice(comm, src, dst, w)
    with from_edges(s, d, ww, n=n, comm=comm, partitioner=partitioner) as g:
        ref = reference_edges(src, dst, w)
        assert g.n_vertices == n and g.n_edges == len(ref) and g.weighted == weighted
        assert g.partition.method == partitioner
        assert comm.allreduce(g.n_owned) == n and g.n_owned == g.stop - g.start
        # Local CSR back to input ids.
        l2g_input = np.concatenate([g.owned_input_ids, np.zeros(g.n_ghost, dtype=np.int64)])
        ghost_inputs = g.to_input_layout(g.owned_input_ids)  # identity: input id of each block vertex
        assert np.array_equal(ghost_inputs, np.arange(*g.block_range))
        # Ghost input ids via the directory: new global id -> input id.
        new_to_input = np.concatenate(comm.allgather(g.owned_input_ids))  # small test graph only
        l2g_input[g.n_owned :] = new_to_input[g.ghost_global]
        mine = {}
        for v in range(g.n_owned):
            row = slice(g.in_indptr[v], g.in_indptr[v + 1])
            srcs = l2g_input[g.in_indices[row]]
            assert np.all(np.diff(srcs) > 0)  # sorted by source input id, no duplicates
            for j, u in zip(range(row.start, row.stop), srcs.tolist()):
                mine[(u, int(g.owned_input_ids[v]))] = 1.0 if g.in_weights is None else g.in_weights[j]
        merged = {k: v for part in comm.allgather(mine) for k, v in part.items()}
        assert merged == ref
        # Out-degree and out-weight of owned vertices.
        for v, u in enumerate(g.owned_input_ids.tolist()):
            out = [wt for (a, _), wt in ref.items() if a == u]
            assert g.out_degree[v] == len(out) and g.out_weight[v] == pytest.approx(sum(out), rel=1e-15)
        # Ghosts: exactly the remote sources.
        needed = {u for (u, x) in mine}
        owned = set(g.owned_input_ids.tolist())
        assert set(l2g_input[g.n_owned :].tolist()) == needed - owned
        assert np.array_equal(g.global_to_local(g.local_to_global), np.arange(g.n_local))
        assert g.global_to_local(np.array([n + 5]))[0] == -1 or g.n_local == 0
        # Report: consistent with the arrays.
        r = g.report
        assert r.vertices.tolist() == comm.allgather(g.n_owned)
        assert r.edges.tolist() == comm.allgather(int(g.in_indptr[-1]))
        assert r.ghosts.tolist() == comm.allgather(g.n_ghost) and r.n_edges == g.n_edges
        cut = sum(1 for (a, b) in ref if g.owner_of(np.array([_new(new_to_input, a)]))[0]
                  != g.owner_of(np.array([_new(new_to_input, b)]))[0])
        assert r.cut_edges == cut
        assert (cut == 0) == (comm.size == 1)


def _new(new_to_input, input_id):
    return int(np.flatnonzero(new_to_input == input_id)[0])


def test_layout_roundtrip_and_original_ids(comm):
    n = 37
    rng = np.random.default_rng(5)
    src, dst = rng.integers(0, n, 90), rng.integers(0, n, 90)
    start, stop = owned_range(n, comm.size, comm.rank)
    orig = 1000 + 3 * np.arange(start, stop)
    s, d = my_slice(comm, src, dst)
    with from_edges(s, d, n=n, comm=comm, partitioner="hash", vertex_ids=orig) as g:
        block = np.arange(start, stop) * 1.5
        owned = g.from_input_layout(block)
        assert np.array_equal(owned, g.owned_input_ids * 1.5)
        assert np.array_equal(g.to_input_layout(owned), block)
        assert np.array_equal(g.block_original_ids(), orig)
        mapping = {1000 + 3 * i: float(i) for i in range(0, n, 2)} | {-7: 9.0}
        assert np.array_equal(g.block_values_from_mapping(mapping), np.where(np.arange(start, stop) % 2 == 0, np.arange(start, stop), 0.0))
        # every original id is found on exactly its owner, at its owned place; others nowhere
        owned_orig = g.owned_original_ids()
        for v in range(n):
            local = g.find_original(1000 + 3 * v)
            assert comm.allreduce(int(local >= 0)) == 1
            if local >= 0:
                assert owned_orig[local] == 1000 + 3 * v and g.locate(1000 + 3 * v) == local
            else:
                assert g.locate(1000 + 3 * v) == -1
        for junk in (1001, -3, 2**70, "x", None, 1000.5):
            assert g.find_original(junk) == -1
        with pytest.raises(InputError, match="1001 is not a vertex"):
            g.locate(1001)


def test_from_csr_equals_from_edges(comm):
    n, src, dst, w = random_graph(2, n=60, m=300)
    order = np.lexsort((dst, src))
    src, dst, w = src[order], dst[order], w[order]
    start, stop = owned_range(n, comm.size, comm.rank)
    rows = (src >= start) & (src < stop)
    indptr = np.searchsorted(src[rows], np.arange(start, stop + 1)).astype(np.int64)
    with from_csr(indptr, dst[rows], w[rows], comm=comm) as a:
        s, d, ww = my_slice(comm, src, dst, w)
        with from_edges(s, d, ww, n=n, comm=comm) as b:
            assert a.n_vertices == n and a.n_edges == b.n_edges
            assert np.array_equal(a.in_indptr, b.in_indptr) and np.array_equal(a.in_indices, b.in_indices)
            assert np.array_equal(a.in_weights, b.in_weights) and np.array_equal(a.out_weight, b.out_weight)


def test_more_ranks_than_vertices_and_no_edges(comm):
    with from_edges(np.array([], dtype=np.int64), np.array([], dtype=np.int64), n=2, comm=comm) as g:
        assert comm.allreduce(g.n_owned) == 2 and g.n_edges == 0 and g.n_ghost == 0
    edges = (np.array([0, 1]), np.array([1, 0])) if comm.rank == 0 else (np.array([], int), np.array([], int))
    with from_edges(*edges, comm=comm, partitioner="metis") as g:
        assert g.n_vertices == 2 and g.n_edges == 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(src=[0, 5], dst=[1, 2], n=4), "source vertex 5 outside 0..3"),
        (dict(src=[0, 1], dst=[1, -1], n=4), "destination vertex -1 outside 0..3"),
        (dict(src=[0, 1], dst=[1, 2], weights=[1.0, -2.0], n=4), "finite and non-negative, got -2.0"),
        (dict(src=[0, 1], dst=[1, 2], weights=[1.0, np.nan], n=4), "finite and non-negative"),
        (dict(src=[0], dst=[1], n=4, partitioner="spectral"), "unknown partitioner 'spectral'"),
        (dict(src=[], dst=[], n=0), "empty graph"),
    ],
)
def test_bad_input_raises_the_same_error_on_every_rank(comm, kwargs, message):
    kwargs = dict(kwargs)
    if comm.rank != comm.size - 1:  # only one rank holds the bad edge
        for key in ("src", "dst", "weights"):
            if key in kwargs:
                kwargs[key] = []
    with pytest.raises(InputError, match=message) as info:
        from_edges(comm=comm, **kwargs)
    assert info.value.collective


@pytest.mark.parametrize("partitioner", PARTITIONERS)
def test_is_symmetric_checks_the_edges_not_the_claim(comm, partitioner):
    rng = np.random.default_rng(11)
    n = 80
    u, v = rng.integers(0, n, 300), rng.integers(0, n, 300)
    sym = np.unique(np.stack([np.concatenate([u, v]), np.concatenate([v, u])], axis=1), axis=0)
    loop = sym[:, 0] == sym[:, 1]
    drop = int(np.flatnonzero(~loop)[0])  # one edge whose reverse stays
    broken = np.delete(sym, drop, axis=0)
    cases = [(sym, True, True), (sym, False, True),  # the claim does not matter, the edges do
             (broken, False, False), (np.stack([u, v], axis=1), True, False)]
    for edges, directed, want in cases:
        s, d = my_slice(comm, edges[:, 0], edges[:, 1])
        with from_edges(s, d, n=n, comm=comm, partitioner=partitioner, directed=directed) as g:
            assert g.is_symmetric() == want
