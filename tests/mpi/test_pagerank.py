"""PageRank against networkx on real and generated graphs, bit-identical over ranks, partitioners, backends."""

import hashlib

import networkx as nx
import numpy as np
import pytest

from hpcdist.graph import from_edges, pagerank
from hpcdist.runtime.errors import BackendError, InputError
from hpcdist.runtime.ranges import owned_range
from tests.conftest import SHARED

pytestmark = pytest.mark.mpi

GRAPHS = SHARED / "data" / "graphs"
TOL = 1e-13  # tight: both sides converge far below the 1e-10 comparison


def _snap(name, directed=True):
    return nx.read_edgelist(GRAPHS / name, create_using=nx.DiGraph if directed else nx.Graph, nodetype=int)


def _dimacs(name):
    g = nx.DiGraph()
    with open(GRAPHS / name) as f:
        for line in f:
            if line.startswith("p"):
                g.add_nodes_from(range(1, int(line.split()[2]) + 1))
            elif line.startswith("a"):
                _, u, v, w = line.split()
                u, v, w = int(u), int(v), float(w)
                if not g.has_edge(u, v) or g[u][v]["weight"] > w:  # parallel arcs: the lightest
                    g.add_edge(u, v, weight=w)
    return g


def _mtx(name):
    import scipy.io

    a = scipy.io.mmread(GRAPHS / name).tocoo()
    g = nx.DiGraph()
    g.add_nodes_from(range(1, a.shape[0] + 1))
    g.add_weighted_edges_from(zip((a.row + 1).tolist(), (a.col + 1).tolist(), a.data.astype(float).tolist()))
    return g


REAL = {
    "email-Eu-core": lambda: _snap("email-Eu-core.txt"),
    "p2p-Gnutella04": lambda: _snap("p2p-Gnutella04.txt"),
    "p2p-Gnutella08": lambda: _snap("p2p-Gnutella08.txt"),
    "p2p-Gnutella09": lambda: _snap("p2p-Gnutella09.txt"),
    "CA-GrQc": lambda: _snap("CA-GrQc.txt"),
    "facebook_combined": lambda: _snap("facebook_combined.txt", directed=False),
    "karate.gml": lambda: nx.read_gml(GRAPHS / "karate.gml", label="id"),
    "rome99.gr": lambda: _dimacs("rome99.gr"),
    "Lederberg.mtx": lambda: _mtx("Lederberg.mtx"),
}
BUILTIN = {
    "nx-karate": nx.karate_club_graph,  # weighted (meeting counts)
    "nx-les-miserables": nx.les_miserables_graph,  # weighted, string node names
}


def distribute(comm, G, partitioner, weighted=True):
    """Map G's nodes (sorted) to 0..n-1 and give each rank a strided slice of the arcs."""
    nodes = sorted(G.nodes())
    index = {v: i for i, v in enumerate(nodes)}
    arcs = list(G.edges(data="weight")) if weighted else list(G.edges(data=False))
    if not G.is_directed():
        arcs += [(v, u, *rest) for (u, v, *rest) in arcs]
    mine = arcs[comm.rank :: comm.size]
    src = np.array([index[a[0]] for a in mine], dtype=np.int64)
    dst = np.array([index[a[1]] for a in mine], dtype=np.int64)
    w = None
    if weighted and any(len(a) == 3 and a[2] is not None for a in arcs):
        w = np.array([1.0 if a[2] is None else float(a[2]) for a in mine])
    n = len(nodes)
    start, stop = owned_range(n, comm.size, comm.rank)
    ids = np.arange(start, stop, dtype=np.int64)  # original ids: the sorted positions (names are strings)
    g = from_edges(src, dst, w, n=n, comm=comm, partitioner=partitioner, vertex_ids=ids, directed=G.is_directed())
    return g, nodes


def gathered(comm, result):
    got = result.gather_arrays()
    return comm.bcast(None if got is None else got[1])


def digest(values):
    return hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest()


def on_rank0(comm, fn):
    """``fn()`` computed on rank 0 and broadcast. The others wait in a polled barrier with
    short sleeps: MPICH's blocking calls spin, and spinning ranks would take the test
    machine's few cores away from rank 0."""
    import time

    value = fn() if comm.rank == 0 else None
    req = comm.Ibarrier()
    while not req.Test():
        time.sleep(0.001)
    return comm.bcast(value)


def serial_reference(G, **kwargs):
    """The same computation on one rank (COMM_SELF, block, numpy)."""
    from mpi4py import MPI

    g, _ = distribute(MPI.COMM_SELF, G, "block")
    with g:
        return gathered(MPI.COMM_SELF, pagerank(g, backend="numpy", **kwargs))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", list(REAL) + list(BUILTIN))
def test_matches_networkx_and_is_bit_identical(comm, name):
    if name in REAL and not GRAPHS.is_dir():
        pytest.skip(f"{GRAPHS} not present")
    G = REAL[name]() if name in REAL else BUILTIN[name]()
    kwargs = dict(tol=TOL, max_iter=1000)
    ref_bits = digest(on_rank0(comm, lambda: serial_reference(G, **kwargs)))

    def networkx_values():
        nxr = nx.pagerank(G, **kwargs)
        return np.array([nxr[v] for v in sorted(G.nodes())])

    expected = on_rank0(comm, networkx_values)
    partitioners = ["block", "hash", "metis"] if G.number_of_nodes() < 6000 else ["hash"]
    for part in partitioners:
        g, _ = distribute(comm, G, part)
        with g:
            # numba everywhere; the numpy reference once per graph (the kernel tests compare both)
            for backend in ("numba", "numpy") if part == partitioners[0] else ("numba",):
                r = pagerank(g, backend=backend, **kwargs)
                assert r.converged and r.iterations < 1000
                values = gathered(comm, r)
                assert np.abs(values - expected).sum() < 1e-10, (part, backend)
                assert digest(values) == ref_bits, f"{part}/{backend} at {comm.size} ranks differs from 1 rank"


def special_graph():
    """Isolated vertices, self-loops, duplicate arcs, dangling vertices, several components, weights."""
    G = nx.MultiDiGraph()
    G.add_nodes_from(range(40))  # 30..39 isolated
    rng = np.random.default_rng(7)
    for _ in range(120):
        u, v = rng.integers(0, 15, 2)
        G.add_edge(int(u), int(v))  # duplicates and self-loops happen
    G.add_edges_from([(15, 16), (16, 17), (17, 15), (17, 17), (18, 19), (20, 21), (21, 20)])  # more components
    for u in range(22, 30):
        G.add_edge(u, 0)  # sources that nobody points to
    D = nx.DiGraph(G)  # networkx's view of a graph whose duplicates collapse
    assert any(D.out_degree(v) == 0 for v in range(30)) and any(D.has_edge(v, v) for v in D)
    return G, D


@pytest.mark.timeout(60)
@pytest.mark.parametrize("params", [
    {},
    {"alpha": 0.5},
    {"personalization": {0: 1.0, 5: 3.0, 33: 0.5, 999: 7.0}},
    {"personalization": {1: 1.0}, "dangling": {2: 1.0, 3: 1.0}},
    {"nstart": {v: float(v + 1) for v in range(40)}},
])
def test_special_graph_with_networkx_options(comm, params):
    G, D = special_graph()
    multi_arcs = list(G.edges())
    mine = multi_arcs[comm.rank :: comm.size]
    src = np.array([a for a, _ in mine], dtype=np.int64)
    dst = np.array([b for _, b in mine], dtype=np.int64)
    nx_params = dict(params)
    if "personalization" in params:
        nx_params["personalization"] = {k: v for k, v in params["personalization"].items() if k in D}
    bits = set()
    expected = nx.pagerank(D, tol=TOL, max_iter=1000, **nx_params)
    for part in ("block", "hash", "metis"):
        with from_edges(src, dst, n=40, comm=comm, partitioner=part) as g:
            assert g.n_edges == D.number_of_edges()
            r = pagerank(g, tol=TOL, max_iter=1000, **params)
            values = gathered(comm, r)
            assert np.abs(values - np.array([expected[v] for v in range(40)])).sum() < 1e-10
            bits.add(digest(values))
    assert len(bits) == 1


def test_weights_follow_networkx_and_can_be_ignored(comm):
    G = nx.DiGraph()
    G.add_weighted_edges_from([(0, 1, 2.0), (0, 2, 0.5), (1, 2, 1.0), (2, 0, 3.0), (3, 0, 0.0), (3, 1, 0.0)])
    for weighted in (True, False):
        arcs = list(G.edges(data="weight"))[comm.rank :: comm.size]
        src = np.array([a[0] for a in arcs], dtype=np.int64)
        dst = np.array([a[1] for a in arcs], dtype=np.int64)
        w = np.array([a[2] for a in arcs])
        with from_edges(src, dst, w, n=4, comm=comm) as g:
            values = gathered(comm, pagerank(g, tol=TOL, weighted=weighted))
        ref = nx.pagerank(G, tol=TOL, weight="weight" if weighted else None)
        assert np.abs(values - np.array([ref[v] for v in range(4)])).sum() < 1e-12


def test_not_converging_is_reported_and_bad_parameters_raise(comm):
    with from_edges(np.array([0, 1, 2]) if comm.rank == 0 else [], np.array([1, 2, 0]) if comm.rank == 0 else [],
                    n=3, comm=comm) as g:
        r = pagerank(g, max_iter=3, tol=1e-300, alpha=0.99, nstart={0: 1.0})
        assert not r.converged and r.iterations == 3 and len(r.run.metrics) == 3
        assert all(m.active == 3 for m in r.run.metrics)
        with pytest.raises(InputError, match="alpha must lie in"):
            pagerank(g, alpha=1.5)
        with pytest.raises(InputError, match="personalization values sum to zero"):
            pagerank(g, personalization={0: 0.0})
        with pytest.raises(BackendError, match="unknown backend 'fortran'"):
            pagerank(g, backend="fortran")


def test_superstep_hook_and_metrics(comm):
    seen = []
    src = np.arange(comm.rank, 50, comm.size)
    with from_edges(src, (src * 7 + 1) % 50, n=50, comm=comm, partitioner="hash") as g:
        r = pagerank(g, tol=1e-12, on_superstep=lambda step, prog: seen.append((step, prog.state()["x"].copy())))
        assert r.converged and [s for s, _ in seen] == list(range(r.iterations - 1))  # not the converged one
        total_ghosts = comm.allreduce(g.n_ghost)
        assert all(m.bytes_sent == 8 * total_ghosts for m in r.run.metrics)
        assert all(m.compute_s >= 0 and m.exchange_s >= 0 for m in r.run.metrics)


def test_resume_from_a_superstep_state_is_bit_identical(comm):
    """A run restored from the state after superstep 4 ends with the same bits as one that never stopped."""
    from hpcdist.graph.bsp import Resume

    saved = {}

    def keep(step, prog):
        if step == 4:
            saved["resume"] = Resume(step, {k: v.copy() for k, v in prog.state().items()}, dict(prog.scalars()))

    src = np.arange(comm.rank, 300, comm.size)
    src, dst = np.concatenate([src, src]), np.concatenate([(src * 13 + 5) % 300, (src * src) % 297])
    with from_edges(src, dst, n=300, comm=comm, partitioner="hash") as g:
        full = pagerank(g, tol=1e-13, on_superstep=keep)
        again = pagerank(g, tol=1e-13, resume=saved["resume"])
        assert full.iterations > 6
        assert again.iterations == full.iterations and again.run.resumed_from == 4
        assert np.array_equal(again.values, full.values)


def test_values_past_the_fixed_point_bound_fall_back_and_stay_identical(comm):
    """A signed personalization (networkx accepts it) pushes ranks past 2: the engine's
    one-collective reduction flags it and every rank redoes the sums at a measured scale."""
    G, D = special_graph()
    arcs = list(D.edges())[comm.rank :: comm.size]
    src = np.array([a for a, _ in arcs], dtype=np.int64)
    dst = np.array([b for _, b in arcs], dtype=np.int64)
    personalization = {0: 30.0, 1: -29.5, 7: 0.5}
    expected = nx.pagerank(D, tol=TOL, max_iter=1000, personalization=personalization)
    bits = set()
    for part in ("block", "hash"):
        with from_edges(src, dst, n=40, comm=comm, partitioner=part) as g:
            r = pagerank(g, tol=TOL, max_iter=1000, personalization=personalization)
            values = gathered(comm, r)
            assert values.max() > 2.0
            assert np.abs(values - np.array([expected[v] for v in range(40)])).sum() < 1e-10
            bits.add(digest(values))
    assert len(bits) == 1


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", ["p2p-Gnutella08", "nx-les-miserables"])
def test_blocked_pull_is_bit_identical_on_every_rank_count(comm, name, monkeypatch):
    """The numba backend's blocked pull (forced on here, with many small column blocks)
    gives the 1-rank numpy reference's bits on every partitioner and rank count."""
    from hpcdist.kernels import numba_cpu

    if name in REAL and not GRAPHS.is_dir():
        pytest.skip(f"{GRAPHS} not present")
    G = REAL[name]() if name in REAL else BUILTIN[name]()
    kwargs = dict(tol=TOL, max_iter=1000)
    ref_bits = digest(on_rank0(comm, lambda: serial_reference(G, **kwargs)))
    monkeypatch.setattr(numba_cpu, "BLOCKED_MIN_EDGES", 0)
    for part, block_cols in (("block", 5), ("hash", 64), ("metis", 1000)):
        monkeypatch.setattr(numba_cpu, "BLOCK_COLS", block_cols)
        g, _ = distribute(comm, G, part)
        with g:
            r = pagerank(g, backend="numba", **kwargs)
            assert r.params["pull"].startswith("blocked"), r.params["pull"]
            assert r.converged
            assert digest(gathered(comm, r)) == ref_bits, f"blocked/{part} at {comm.size} ranks differs from 1 rank"
            again = pagerank(g, backend="numba", **kwargs)  # the plan is cached on the graph and reused
            assert again.params["pull_plan_seconds"] == 0.0
            assert digest(gathered(comm, again)) == ref_bits
