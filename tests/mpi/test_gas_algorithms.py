"""BFS, connected components, SSSP and PageRank by gather-apply-scatter on edge partitions
(vertex-cut, dbh, hybrid): equal to the edge-cut runs and to scipy / networkx, on
generated graphs with the awkward cases and on real graphs, at every rank count."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse.csgraph import dijkstra

from hpcdist.graph import EdgeList, bfs, connected_components, pagerank, sssp
from hpcdist.graph.gas import build_vertex_cut
from hpcdist.graph.gas_algorithms import (
    bfs_gas,
    connected_components_gas,
    pagerank_gas,
    sssp_gas,
    validate_bfs_gas,
)
from hpcdist.graph.io import read_edges
from hpcdist.graph.partition import EDGE_METHODS
from hpcdist.runtime.errors import InputError
from hpcdist.runtime.ranges import owned_range
from tests.mpi.test_bfs import (
    GRAPHS,
    bfs_reference,
    csr_min,
    distribute,
    gathered,
    generated,
    needs_graphs,
    on_rank0,
    reference_graph,
)
from tests.mpi.test_cc import cc_reference
from tests.mpi.test_sssp import weighted_generated

pytestmark = pytest.mark.mpi

#: Small enough that hybrid spreads the in-edges of the generated graphs' hubs.
THRESHOLD = 4


def vertex_cut(comm, A, ids, method: str, weighted: bool = True, name: str = "test"):
    """A VertexCutGraph of the CSR's arcs, each rank passing a strided share."""
    coo = A.tocoo()
    mine = slice(comm.rank, None, comm.size)
    n = A.shape[0]
    start, stop = owned_range(n, comm.size, comm.rank)
    el = EdgeList(n, coo.row[mine], coo.col[mine], coo.data[mine] if weighted else None, True,
                  np.asarray(ids[start:stop], dtype=np.int64), name)
    return build_vertex_cut(el, comm, method, threshold=THRESHOLD)


def edge_cut(cache, key, fn):
    """The edge-cut run ``fn()``, once per test and key (several edge partitions compare with it)."""
    if key not in cache:
        cache[key] = fn()
    return cache[key]


def check_bfs(comm, vg, g, A, ids, source_in, what, cache=None):
    cache = {} if cache is None else cache
    exp_dist, exp_parent = on_rank0(comm, lambda: bfs_reference(A, source_in))
    exp_parent_orig = np.where(exp_parent >= 0, ids[np.maximum(exp_parent, 0)], -1)
    r = bfs_gas(vg, int(ids[source_in]))
    e = edge_cut(cache, ("bfs", source_in), lambda: bfs(g, int(ids[source_in]), backend="numpy"))
    assert r.values.dtype == np.int64 and r.converged
    assert np.array_equal(gathered(comm, r), exp_dist), what
    assert np.array_equal(gathered(comm, r, "parent"), exp_parent_orig), what
    assert np.array_equal(gathered(comm, r), gathered(comm, e)), what
    assert np.array_equal(gathered(comm, r, "parent"), gathered(comm, e, "parent")), what
    for key in ("levels", "reached", "edges_traversed"):
        assert r.params[key] == e.params[key], (what, key)
    assert validate_bfs_gas(r) == [], what


def check_cc(comm, vg, g, A, ids, what, cache=None):
    cache = {} if cache is None else cache
    exp, sizes = on_rank0(comm, lambda: cc_reference(A, ids))
    r = connected_components_gas(vg)
    e = edge_cut(cache, "cc", lambda: connected_components(g, backend="numpy"))
    assert r.converged and r.values.dtype == np.int64
    assert np.array_equal(gathered(comm, r), exp), what
    assert np.array_equal(gathered(comm, r), gathered(comm, e)), what
    for key in ("components", "largest_component", "size_histogram"):
        assert r.params[key] == e.params[key], (what, key)
    assert r.params["components"] == sizes.shape[0]
    return r


def check_sssp(comm, vg, g, A, ids, source_in, what, deltas=(None, 0.7), cache=None):
    cache = {} if cache is None else cache
    expected = on_rank0(comm, lambda: dijkstra(A, indices=source_in))
    e = edge_cut(cache, ("sssp", source_in), lambda: gathered(comm, sssp(g, int(ids[source_in]), backend="numpy")))
    assert np.array_equal(e, expected), what
    for delta in deltas:
        r = sssp_gas(vg, int(ids[source_in]), delta=delta)
        got = gathered(comm, r)
        # the same bits as Dijkstra, inf where unreachable
        assert got.dtype == np.float64 and np.array_equal(got, expected), f"{what}, delta {delta}"
        assert r.params["reached"] == int(np.isfinite(expected).sum())


def check_pagerank(comm, vg, g, what, cache=None):
    cache = {} if cache is None else cache
    e = edge_cut(cache, "pagerank", lambda: pagerank(g, tol=1e-10, backend="numpy"))
    r = pagerank_gas(vg, tol=1e-10)
    assert r.converged and abs(r.iterations - e.iterations) <= 1, what
    # each vertex's sum is split over the parts: the last bits may differ
    assert np.allclose(gathered(comm, r), gathered(comm, e), rtol=1e-9, atol=1e-13), what
    assert abs(float(comm.allreduce(float(r.values.sum()))) - 1.0) < 1e-12


@pytest.mark.timeout(180)
@pytest.mark.parametrize("method", EDGE_METHODS)
@pytest.mark.parametrize("kind", ["rmat", "grid2d", "disconnected"])
def test_generated_graphs_every_algorithm(comm, kind, method):
    """Self-loops and duplicates (disconnected), zero weights and ties (weighted_generated),
    hubs (rmat), a long diameter (grid2d); original ids in another order than the input ids."""
    n, src, dst, w = weighted_generated(kind)
    A = csr_min(src, dst, w, n)
    ids = (np.arange(n) * 7919) % 10007
    sources = [0, 95] if kind == "disconnected" else [int(np.argmax(np.diff(A.indptr))), n - 1]
    A_hops = csr_min(src, dst, None, n)
    with distribute(comm, A, ids, "block") as g, vertex_cut(comm, A, ids, method) as vg:
        assert vg.weighted and vg.n_edges == g.n_edges
        for s in sources:
            check_bfs(comm, vg, g, A_hops, ids, s, f"bfs {kind}/{method} at {comm.size} ranks from {s}")
            check_sssp(comm, vg, g, A, ids, s, f"sssp {kind}/{method} at {comm.size} ranks from {s}")
        check_cc(comm, vg, g, A_hops, ids, f"cc {kind}/{method} at {comm.size} ranks")
        check_pagerank(comm, vg, g, f"pagerank {kind}/{method} at {comm.size} ranks")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", EDGE_METHODS)
def test_pagerank_matches_networkx(comm, method):
    import networkx as nx

    n, src, dst, w = weighted_generated("rmat")
    A = csr_min(src, dst, w, n)
    ids = np.arange(n)

    def reference():
        G = nx.DiGraph()
        G.add_nodes_from(range(n))
        coo = A.tocoo()
        G.add_weighted_edges_from(zip(coo.row.tolist(), coo.col.tolist(), coo.data.tolist()))
        pr = nx.pagerank(G, tol=1e-12, max_iter=500)
        return np.array([pr[v] for v in range(n)])

    expected = on_rank0(comm, reference)
    with vertex_cut(comm, A, ids, method) as vg:
        r = pagerank_gas(vg, tol=1e-12, max_iter=500)
        assert r.converged and r.params["weighted"]
        assert np.allclose(gathered(comm, r), expected, rtol=1e-8, atol=1e-12)


def test_unreachable_and_isolated_sources(comm):
    n, src, dst = generated("disconnected")
    A = csr_min(src, dst, None, n)
    for method in EDGE_METHODS:
        with vertex_cut(comm, A, np.arange(n), method, weighted=False) as vg:
            assert not vg.weighted
            r = bfs_gas(vg, 95)  # isolated
            dist = gathered(comm, r)
            assert dist[95] == 0 and (np.delete(dist, 95) == -1).all()
            assert (gathered(comm, r, "parent") == -1).all()
            assert r.params["edges_traversed"] == 0 and r.params["levels"] == 1
            assert gathered(comm, bfs_gas(vg, 89))[60:90].tolist() == [-1] * 29 + [0]  # nothing leaves 89
            d = gathered(comm, sssp_gas(vg, 95))
            assert d[95] == 0.0 and np.isinf(np.delete(d, 95)).all()
            # unit weights without a weighted graph: hop counts as floats
            assert np.array_equal(gathered(comm, sssp_gas(vg, 0)), dijkstra(A, indices=0))


def test_bad_input_gives_the_edge_cut_messages(comm):
    A = csr_min(np.array([0, 1]), np.array([1, 2]), None, 3)
    ids = np.array([10, 20, 30])
    with vertex_cut(comm, A, ids, "vertex-cut", weighted=False) as vg:
        for fn, what in ((bfs_gas, "bfs"), (sssp_gas, "sssp")):
            with pytest.raises(InputError, match=f"{what}: source vertex 7 is not a vertex"):
                fn(vg, 7)
        with pytest.raises(InputError, match="delta must be a positive number"):
            sssp_gas(vg, 10, delta=-1.0)
        with pytest.raises(InputError, match="alpha must lie in"):
            pagerank_gas(vg, alpha=2.0)
        assert gathered(comm, bfs_gas(vg, 10)).tolist() == [0, 1, 2]
    # negative weights: refused at build with the engine's own message
    mine = slice(comm.rank, None, comm.size)
    src, dst, w = np.array([0, 1, 2]), np.array([1, 2, 0]), np.array([1.0, -2.0, 1.0])
    messages = []
    for build in ("edge-cut", "vertex-cut", "hybrid"):
        el = EdgeList(3, src[mine], dst[mine], w[mine], True, None, "neg")
        with pytest.raises(InputError) as err:
            if build == "edge-cut":
                from hpcdist.graph import from_edgelist

                from_edgelist(el, comm, "block")
            else:
                build_vertex_cut(el, comm, build)
        messages.append(str(err.value))
    assert messages[0] == messages[1] == messages[2] and "non-negative" in messages[0]


@pytest.mark.timeout(120)
def test_long_path_needs_few_supersteps(comm):
    """Pointer jumping on a vertex-cut too: a 4000-vertex path in random order, O(log n)
    iterations where label propagation would need ~4000."""
    n = 4000
    order = np.random.default_rng(5).permutation(n)
    A = csr_min(order[:-1], order[1:], None, n)
    with vertex_cut(comm, A, np.arange(n), "vertex-cut", weighted=False) as vg:
        r = connected_components_gas(vg)
        assert (gathered(comm, r) == 0).all() and r.params["components"] == 1
        assert r.iterations <= 2 * int(np.log2(n)) + 4, r.iterations


def test_validation_finds_a_broken_tree(comm):
    n, src, dst = generated("rmat")
    A = csr_min(src, dst, None, n)
    with vertex_cut(comm, A, np.arange(n), "dbh", weighted=False) as vg:
        r = bfs_gas(vg, int(np.argmax(np.diff(A.indptr))))
        assert validate_bfs_gas(r) == []
        far = np.flatnonzero(r.values >= 2)
        broken = comm.allreduce(int(far.shape[0] > 0))
        if far.shape[0]:
            r.values[far[0]] += 5
        problems = validate_bfs_gas(r)
        assert (len(problems) > 0) == (broken > 0)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("name", ["rome99.gr", "email-Eu-core.txt"])
def test_real_graphs(comm, name):
    """rome99: a weighted road network (long diameter, parallel arcs); email-Eu-core:
    directed, 642 self-loops. Every algorithm, every edge partitioner, against scipy
    and the edge-cut run."""
    needs_graphs()
    A, ids = on_rank0(comm, lambda: reference_graph(name))
    from hpcdist.graph import load

    A_hops = A.copy()
    A_hops.data[:] = 1.0
    s = int(np.argmax(np.diff(A.indptr)))
    cache: dict = {}
    with load(str(GRAPHS / name), comm, partitioner="block") as g:
        for method in EDGE_METHODS:
            edges = read_edges(str(GRAPHS / name), comm)
            with build_vertex_cut(edges, comm, method) as vg:
                what = f"{name}/{method} at {comm.size} ranks"
                assert vg.n_edges == g.n_edges and vg.weighted == g.weighted
                check_bfs(comm, vg, g, A_hops, ids, s, what, cache)
                check_sssp(comm, vg, g, A, ids, s, what, deltas=(None,), cache=cache)
                check_cc(comm, vg, g, A_hops, ids, what, cache)
                check_pagerank(comm, vg, g, what, cache)
