"""BFS, connected components, SSSP and PageRank by gather-apply-scatter on edge partitions
(vertex-cut, dbh, hybrid): equal to the edge-cut runs and to scipy / networkx, on
generated graphs with the awkward cases and on real graphs, at every rank count."""

from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI
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
from tests.graph_helpers import (
    GRAPHS,
    bfs_reference,
    cc_reference,
    csr_min,
    distribute,
    gathered,
    generated,
    needs_graphs,
    on_rank0,
    reference_graph,
    strided_share,
    weighted_generated,
)

pytestmark = pytest.mark.mpi

#: Small enough that hybrid spreads the in-edges of the generated graphs' hubs.
THRESHOLD = 4


def vertex_cut(comm, A, ids, method: str, weighted: bool = True, name: str = "test"):
    """A VertexCutGraph of the CSR's arcs, each rank passing a strided share."""
    src, dst, w, block_ids = strided_share(comm, A, ids, weighted)
    return build_vertex_cut(EdgeList(A.shape[0], src, dst, w, True, block_ids, name), comm, method,
                            threshold=THRESHOLD)


def edge_cut(cache, key, fn):
    """The edge-cut run ``fn()``, once per test and key (several edge partitions compare with it)."""
    if key not in cache:
        cache[key] = fn()
    return cache[key]


def check_bfs(comm, vg, g, A, ids, source_in, what, cache=None):
    cache = {} if cache is None else cache
    exp_dist, exp_parent = on_rank0(comm, lambda: bfs_reference(A, source_in))
    exp_parent_orig = np.where(exp_parent >= 0, ids[np.maximum(exp_parent, 0)], -1)
    e = edge_cut(cache, ("bfs", source_in), lambda: bfs(g, int(ids[source_in]), backend="numpy"))
    for direction in ("auto", "top-down", "bottom-up"):
        r = bfs_gas(vg, int(ids[source_in]), direction=direction)
        how = f"{what}, {direction}"
        assert r.values.dtype == np.int64 and r.converged
        assert np.array_equal(gathered(comm, r), exp_dist), how
        assert np.array_equal(gathered(comm, r, "parent"), exp_parent_orig), how
        assert np.array_equal(gathered(comm, r), gathered(comm, e)), how
        assert np.array_equal(gathered(comm, r, "parent"), gathered(comm, e, "parent")), how
        for key in ("levels", "reached", "edges_traversed"):
            assert r.params[key] == e.params[key], (how, key)
        if direction != "auto":
            assert set(r.params["directions"]) == {direction[0].upper()}, how
        assert validate_bfs_gas(r) == [], how


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
    e = edge_cut(cache, ("sssp", source_in), lambda: sssp(g, int(ids[source_in]), backend="numpy"))
    assert np.array_equal(gathered(comm, e), expected), what
    for delta in deltas:
        r = sssp_gas(vg, int(ids[source_in]), delta=delta)
        got = gathered(comm, r)
        # the same bits as Dijkstra, inf where unreachable
        assert got.dtype == np.float64 and np.array_equal(got, expected), f"{what}, delta {delta}"
        assert r.params["reached"] == int(np.isfinite(expected).sum())
        # no delta: the edge-cut's automatic width, to the bit
        assert r.params["delta"] == (e.params["delta"] if delta is None else delta), (what, r.params["delta"])


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


def test_auto_direction_switches_like_the_edge_cut(comm):
    """On a power-law graph from its hub, auto goes bottom-up for the wide middle levels
    and chooses the same direction per level as the edge-cut BFS (Beamer's rule on the
    same global counts)."""
    n, src, dst = generated("rmat")
    A = csr_min(src, dst, None, n)
    s = int(np.argmax(np.diff(A.indptr)))
    with distribute(comm, A, np.arange(n), "block", weighted=False) as g, \
            vertex_cut(comm, A, np.arange(n), "hybrid", weighted=False) as vg:
        e = bfs(g, s, backend="numpy")
        r = bfs_gas(vg, s)
    assert "B" in r.params["directions"] and r.params["directions"].startswith("T")
    assert r.params["directions"] == e.params["directions"]
    with pytest.raises(InputError, match="direction must be auto, top-down or bottom-up"):
        with vertex_cut(comm, A, np.arange(n), "dbh", weighted=False) as vg:
            bfs_gas(vg, s, direction="sideways")


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
        # break the tree at one vertex two or more levels down, on the lowest rank that has one
        far = np.flatnonzero(r.values >= 2)
        first = comm.allreduce(comm.rank if far.shape[0] else comm.size, op=MPI.MIN)
        assert first < comm.size, "the graph has no vertex at distance >= 2: nothing to break"
        if comm.rank == first:
            r.values[far[0]] += 5
        problems = validate_bfs_gas(r)
        assert any("one level up" in p for p in problems), problems
        assert any("more than one level down" in p for p in problems), problems


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


def run_every_algorithm(c, A, ids, method, source_in):
    """Every algorithm on a vertex-cut of ``A`` over communicator ``c``: the gathered outputs."""
    with vertex_cut(c, A, ids, method) as vg:
        b = bfs_gas(vg, int(ids[source_in]))
        up = bfs_gas(vg, int(ids[source_in]), direction="bottom-up")
        return {
            "bfs_bottom_up": gathered(c, up),
            "parent_bottom_up": gathered(c, up, "parent"),
            "pagerank": gathered(c, pagerank_gas(vg, tol=1e-10)),
            "pagerank_unweighted": gathered(c, pagerank_gas(vg, tol=1e-10, weighted=False)),
            "bfs": gathered(c, b),
            "parent": gathered(c, b, "parent"),
            "cc": gathered(c, connected_components_gas(vg)),
            "sssp": gathered(c, sssp_gas(vg, int(ids[source_in]))),
            "sssp_delta": gathered(c, sssp_gas(vg, int(ids[source_in]), delta=0.7)),
        }


@pytest.mark.timeout(240)
@pytest.mark.parametrize("kind", ["rmat", "disconnected"])
def test_every_algorithm_is_bit_identical_to_a_one_rank_run(comm, kind):
    """PageRank (weighted and not), BFS distances and parents, CC and SSSP on vertex-cut,
    dbh and hybrid: the same bits as a COMM_SELF run on rank 0, and PageRank the same
    bits on all three edge partitioners (its split sums are added in fixed point)."""
    n, src, dst, w = weighted_generated(kind)
    A = csr_min(src, dst, w, n)
    ids = (np.arange(n) * 7919) % 10007
    s = 0 if kind == "disconnected" else int(np.argmax(np.diff(A.indptr)))
    pageranks = []
    for method in EDGE_METHODS:
        alone = on_rank0(comm, lambda: run_every_algorithm(MPI.COMM_SELF, A, ids, method, s))
        here = run_every_algorithm(comm, A, ids, method, s)
        for key, expected in alone.items():
            got = here[key]
            assert got.dtype == expected.dtype, (method, key)
            # compare the bits: float equality would let -0.0 pass for 0.0
            assert np.array_equal(got.view(np.int64), expected.view(np.int64)), \
                (method, key, comm.size, int(np.count_nonzero(got != expected)))
        pageranks.append((here["pagerank"], here["pagerank_unweighted"]))
    for weighted_pr, plain_pr in pageranks[1:]:
        assert np.array_equal(weighted_pr.view(np.int64), pageranks[0][0].view(np.int64))
        assert np.array_equal(plain_pr.view(np.int64), pageranks[0][1].view(np.int64))


class ByteMeter:
    """Bytes this rank really sends, step by step: every halo-plan exchange (the plan's
    own ``bytes_sent``) and every ``redistribute`` (items for other ranks plus the int64
    counts sent to each other rank first), snapshotted at each GAS superstep's start and end."""

    def __init__(self, monkeypatch, comm):
        import hpcdist.graph.exchange as exchange
        from hpcdist.graph import gas_algorithms
        from hpcdist.graph.halo import HaloPlan

        self.total, self.steps = 0, []
        meter = self
        for name in ("exchange", "reverse_gather"):
            original = getattr(HaloPlan, name)

            def counted(plan, values, *args, _original=original, **kw):
                out = _original(plan, values, *args, **kw)
                if comm.size > 1:  # alone, a plan sends nothing (and may not reset bytes_sent)
                    meter.total += plan.bytes_sent
                return out

            monkeypatch.setattr(HaloPlan, name, counted)
        redistribute = exchange.redistribute

        def counted_redistribute(c, dest, *arrays):
            size, rank = c.Get_size(), c.Get_rank()
            if size > 1:
                off = int(np.count_nonzero(np.asarray(dest) != rank))
                meter.total += sum(off * a.dtype.itemsize for a in arrays) + 8 * (size - 1)
            return redistribute(c, dest, *arrays)

        monkeypatch.setattr(exchange, "redistribute", counted_redistribute)
        begin, end = gas_algorithms._Steps.begin, gas_algorithms._Steps.end

        def counted_begin(steps):
            meter.start = meter.total
            begin(steps)

        def counted_end(steps, step, bytes_sent, active):
            meter.steps.append(meter.total - meter.start)
            end(steps, step, bytes_sent, active)

        monkeypatch.setattr(gas_algorithms._Steps, "begin", counted_begin)
        monkeypatch.setattr(gas_algorithms._Steps, "end", counted_end)

    def per_step(self, comm) -> list[int]:
        return [int(b) for b in comm.allreduce(np.array(self.steps, dtype=np.int64))]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", EDGE_METHODS)
def test_reported_bytes_per_superstep_are_the_bytes_sent(comm, monkeypatch, method):
    """CC counts its all-to-alls (parents' lookups, hooks) besides the four halo phases;
    PageRank its 16-byte fixed-point gather; BFS and SSSP their halo phases."""
    n, src, dst, w = weighted_generated("rmat")
    A = csr_min(src, dst, w, n)
    s = int(np.argmax(np.diff(A.indptr)))
    with vertex_cut(comm, A, np.arange(n), method) as vg:
        for run in (lambda: connected_components_gas(vg), lambda: pagerank_gas(vg, tol=1e-8),
                    lambda: bfs_gas(vg, s), lambda: sssp_gas(vg, s)):
            with monkeypatch.context() as m:
                meter = ByteMeter(m, comm)
                r = run()
            reported = [x.bytes_sent for x in r.run.metrics]
            assert reported == meter.per_step(comm), (r.algorithm, reported[:4], meter.per_step(comm)[:4])
            if comm.size > 1:
                assert min(reported) > 0, r.algorithm


@pytest.mark.parametrize("method", EDGE_METHODS)
def test_gather_fixed_sum_is_the_correctly_rounded_exact_sum(comm, method):
    """Terms of widely different magnitudes (2^-40 .. 2^-12, so that no bit falls below
    the 2^-92 quantum) summed over parts: the result is math.fsum's, the correctly
    rounded exact sum, for every vertex, at every rank count."""
    import math

    n, src, dst = generated("rmat")
    A = csr_min(src, dst, None, n)

    def term(s, d):
        s, d = np.asarray(s, dtype=np.int64), np.asarray(d, dtype=np.int64)
        mantissa = ((s * 7919 + d * 104729) % 1000003 + 1) / 1000004.0
        return np.ldexp(mantissa, -12 - ((s * 31 + d) % 29).astype(np.int32))

    def reference():
        coo = A.tocoo()
        t = term(coo.row, coo.col)
        out = np.zeros(n)
        order = np.argsort(coo.col, kind="stable")
        cols, t = coo.col[order], t[order]
        starts = np.flatnonzero(np.r_[True, cols[1:] != cols[:-1]])
        for lo, hi in zip(starts, np.r_[starts[1:], cols.shape[0]]):
            out[cols[lo]] = math.fsum(t[lo:hi].tolist())
        # the terms are awkward enough that a plain float sum misses the exact one somewhere
        assert np.count_nonzero(np.bincount(cols, weights=t, minlength=n) != out) > 0
        return out

    expected = on_rank0(comm, reference)
    with vertex_cut(comm, A, np.arange(n), method, weighted=False) as vg:
        src_in = vg.scatter_input_ids()[vg.src_local]
        dst_ids = np.zeros(vg.n_gather, dtype=np.int64)
        dst_ids[: vg.n_owned] = vg.owned_input_ids
        vg.scatter_dst(dst_ids)
        got = vg.gather_fixed_sum(term(src_in, dst_ids[vg.dst_local]))
        parts = comm.gather(vg.to_block_values(got))
    total = comm.bcast(None if parts is None else np.concatenate(parts))
    assert np.array_equal(total.view(np.int64), expected.view(np.int64)), int(np.count_nonzero(total != expected))
