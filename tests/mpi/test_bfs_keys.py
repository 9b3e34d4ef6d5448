"""BFS's degree-aware parent key: its order, the tree it defines on graphs full of degree
ties and hubs, the same tree from the edge-cut and the vertex-cut BFS at every rank count,
and the per-graph plan that repeated roots reuse."""

from __future__ import annotations

import numpy as np
import pytest

from hpcdist.graph import bfs
from hpcdist.graph.algorithms.bfs import bfs_plan, parent_keys, validate_bfs
from tests.graph_helpers import bfs_reference, csr_min, distribute, gathered, generated, on_rank0, strided_share

pytestmark = pytest.mark.mpi


def test_parent_keys_order_degree_down_then_id_up():
    rng = np.random.default_rng(0)
    n = 1000
    ids = rng.permutation(n).astype(np.int64)
    deg = rng.integers(0, 6, n).astype(np.int64)  # many ties: the id decides
    keys = parent_keys(deg, ids, n)
    assert np.array_equal(np.argsort(keys), np.lexsort((ids, -deg)))
    assert np.array_equal(keys & ((1 << 10) - 1), ids)  # the low bits are the id
    # degrees beyond what the key holds tie, and the id decides among them
    huge = parent_keys(np.array([2**60, 2**59, 3]), np.array([1, 0, 2]), 2**40)
    assert huge[1] < huge[0] < huge[2]


def hub_and_helper(n=50):
    """Root 0 joined to a low-id helper 1 and to the hub ``n - 1``; the hub is joined to every
    other vertex, the helper to a few: those few have two parents on level 1, and the hub's
    degree beats the helper's smaller id."""
    hub = n - 1
    pairs = [(0, 1), (0, hub)] + [(hub, v) for v in range(2, hub)] + [(1, v) for v in range(2, 11)]
    src, dst = np.array(pairs).T
    return n, np.concatenate([src, dst]), np.concatenate([dst, src])


@pytest.mark.parametrize("kind", ["star", "grid2d", "rmat"])
def test_edge_cut_and_vertex_cut_give_the_reference_tree(comm, kind):
    from hpcdist.graph import EdgeList
    from hpcdist.graph.gas import build_vertex_cut
    from hpcdist.graph.gas_algorithms import bfs_gas

    n, src, dst = hub_and_helper() if kind == "star" else generated(kind)
    A = csr_min(src, dst, None, n)
    ids = np.arange(n) * 2 + 1
    source = int(np.argmax(np.diff(A.indptr))) if kind != "star" else 0
    exp_dist, exp_parent = on_rank0(comm, lambda: bfs_reference(A, source))
    exp_parent_orig = np.where(exp_parent >= 0, ids[np.maximum(exp_parent, 0)], -1)
    # the graph has vertices whose parent is not their smallest-id candidate: the degree decides
    u, v = np.repeat(np.arange(n), np.diff(A.indptr)), A.indices
    tree = (exp_dist[u] >= 0) & (exp_dist[v] == exp_dist[u] + 1)
    smallest = np.full(n, n)
    np.minimum.at(smallest, v[tree], u[tree])
    reached = exp_dist > 0
    assert (exp_parent[reached] != smallest[reached]).any() or kind == "grid2d"  # a grid's degrees tie
    if kind == "star":
        assert (exp_parent[2:11] == n - 1).all() and (smallest[2:11] == 1).all()
    outdeg = np.diff(A.indptr)
    assert (outdeg[exp_parent[reached]] >= outdeg[smallest[reached]]).all()
    for part in ("block", "hash"):
        with distribute(comm, A, ids, part, weighted=False) as g:
            for direction in ("auto", "top-down", "bottom-up"):
                r = bfs(g, int(ids[source]), direction=direction)
                assert np.array_equal(gathered(comm, r), exp_dist), (part, direction)
                assert np.array_equal(gathered(comm, r, "parent"), exp_parent_orig), (part, direction)
                assert validate_bfs(r) == []
    # the vertex-cut and hybrid BFS on the same edges (hybrid spreads the hubs' in-edges)
    for method in ("vertex-cut", "hybrid"):
        s_, d_, w_, block_ids = strided_share(comm, A, ids, False)
        with build_vertex_cut(EdgeList(n, s_, d_, w_, True, block_ids, kind), comm, method, threshold=4) as vg:
            for direction in ("auto", "top-down", "bottom-up"):
                r = bfs_gas(vg, int(ids[source]), direction=direction)
                assert np.array_equal(gathered(comm, r), exp_dist), (method, direction)
                assert np.array_equal(gathered(comm, r, "parent"), exp_parent_orig), (method, direction)


def test_repeated_roots_reuse_the_plan_and_give_fresh_results(comm):
    n, src, dst = generated("rmat")
    A = csr_min(src, dst, None, n)
    with distribute(comm, A, np.arange(n), "block", weighted=False) as g:
        first = bfs(g, 0)
        plan = bfs_plan(g, None)
        second = bfs(g, 1)
        assert bfs_plan(g, None) is plan
        again = bfs(g, 0)
        # results own their arrays: a later search leaves an earlier result alone
        assert np.array_equal(again.values, first.values)
        assert np.array_equal(again.extras["parent"], first.extras["parent"])
        assert again.values is not first.values and again.extras["parent"] is not first.extras["parent"]
        assert not np.array_equal(gathered(comm, second), gathered(comm, first))
        # numpy and numba on the same plan agree
        ref = bfs(g, 1, backend="numpy")
        assert np.array_equal(ref.values, second.values)
        assert np.array_equal(ref.extras["parent"], second.extras["parent"])
