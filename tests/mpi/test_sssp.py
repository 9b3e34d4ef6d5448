"""SSSP by delta-stepping: bit-identical to scipy's Dijkstra on real and generated graphs,
every partitioner, backend and delta; zero weights, self-loops, unreachable vertices,
bad input, resume."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from scipy.sparse.csgraph import dijkstra

from hpcdist.graph import from_edges, sssp
from hpcdist.runtime.errors import InputError
from tests.graph_helpers import (
    FILES,
    PARTITIONERS,
    csr_min,
    distribute,
    gathered,
    load_real,
    needs_graphs,
    on_rank0,
    partitioners_for,
    reference_graph,
    resume_roundtrip,
    weighted_generated,
)

pytestmark = pytest.mark.mpi


def check_sssp(comm, g, A, source_in, ids, what, backends=("numba",), deltas=(None,)):
    expected = on_rank0(comm, lambda: dijkstra(A, indices=source_in))
    for backend in backends:
        for delta in deltas:
            r = sssp(g, int(ids[source_in]), backend=backend, delta=delta)
            got = gathered(comm, r)
            # exactly equal: the same bits, inf where unreachable
            assert np.array_equal(got, expected), f"{what}/{backend}/delta={delta} at {comm.size} ranks"
            assert r.converged and r.params["reached"] == int(np.isfinite(expected).sum())


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", FILES + ["karate.gml"])
def test_real_graphs_match_scipy_dijkstra(comm, name):
    """Weighted where the file has weights (rome99's metres, Lederberg's multiplicities),
    unit weights elsewhere."""
    needs_graphs()
    A, ids = on_rank0(comm, lambda: reference_graph(name))
    parts = partitioners_for(name, A.shape[0])
    sources = [int(np.argmax(np.diff(A.indptr))), 0]
    for part in parts:
        if part != parts[0]:
            sources = sources[:1]  # supersteps are many on a road network; keep the test quick
        with load_real(comm, name, part) as g:
            assert g.weighted == name.endswith((".gr", ".mtx"))
            for i, s in enumerate(sources):
                first = part == parts[0] and i == 0
                # a huge delta: one bucket, Bellman-Ford-like; each delta gives the same bits
                check_sssp(comm, g, A, s, ids, f"{name}/{part}", backends=("numba", "numpy") if first else ("numba",),
                      deltas=(None, 1e9) if first else (None,))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["rmat", "er", "grid2d", "disconnected"])
def test_generated_graphs_every_partitioner_backend_and_delta(comm, kind):
    n, src, dst, w = weighted_generated(kind)
    A = csr_min(src, dst, w, n)
    ids = np.arange(n) + 5
    sources = [0, 95] if kind == "disconnected" else [int(np.argmax(np.diff(A.indptr))), n - 1]
    for part in PARTITIONERS:
        with distribute(comm, A, ids, part) as g:
            for s in sources:
                # small deltas mean many supersteps: one of them, on the first partitioner
                first = part == PARTITIONERS[0] and s == sources[0]
                check_sssp(comm, g, A, s, ids, f"{kind}/{part}", backends=("numba", "numpy") if first else ("numba",),
                      deltas=(None, 0.7, 50.0) if first else (None, 50.0))


@pytest.mark.timeout(60)
def test_light_phases_scan_only_the_light_edges(comm):
    from hpcdist.graph.algorithms.sssp import light_edges

    n, src, dst, w = weighted_generated("rmat")
    A = csr_min(src, dst, w, n)
    with distribute(comm, A, np.arange(n), "block") as g:
        t_indptr, t_rows, t_w = g.local_out()
        indptr, rows, weights = light_edges(g, t_indptr, t_rows, t_w, 0.7, True)
        for c in range(t_indptr.shape[0] - 1):  # row by row: the light edges, in the row's order
            keep = t_w[t_indptr[c]:t_indptr[c + 1]] <= 0.7
            assert np.array_equal(rows[indptr[c]:indptr[c + 1]], t_rows[t_indptr[c]:t_indptr[c + 1]][keep])
            assert np.array_equal(weights[indptr[c]:indptr[c + 1]], t_w[t_indptr[c]:t_indptr[c + 1]][keep])
        # mostly light (every weight below 10): the light phases filter the full rows instead
        assert light_edges(g, t_indptr, t_rows, t_w, 50.0, True) is None


def test_zero_weights_self_loops_and_duplicates_match_networkx(comm):
    """networkx's Dijkstra adds the same doubles, so it must agree bit for bit too."""
    arcs = [(0, 1, 0.0), (1, 2, 0.1), (0, 2, 0.30000000000000004), (2, 2, 0.0), (2, 3, 0.2), (3, 1, 0.0),
            (1, 4, 0.7), (1, 4, 0.2), (4, 4, 5.0), (3, 5, 1e-300), (5, 6, 1e300), (7, 0, 1.0)]
    G = nx.DiGraph()
    G.add_nodes_from(range(8))
    for u, v, w in arcs:
        if not G.has_edge(u, v) or G[u][v]["weight"] > w:
            G.add_edge(u, v, weight=w)
    ref = nx.single_source_dijkstra_path_length(G, 0)
    expected = np.array([ref.get(v, np.inf) for v in range(8)])
    mine = arcs[comm.rank :: comm.size]
    for part in PARTITIONERS:
        with from_edges([a[0] for a in mine], [a[1] for a in mine], [a[2] for a in mine], n=8, comm=comm,
                        partitioner=part) as g:
            for delta in (None, 1e-9, 0.15, 1e301):
                got = gathered(comm, sssp(g, 0, delta=delta))
                assert np.array_equal(got, expected), (part, delta, got)
            assert gathered(comm, sssp(g, 0, weighted=False)).tolist() == [0, 1, 1, 2, 2, 3, 4, np.inf]


def test_bad_input_is_one_input_error(comm):
    with from_edges([0, 1] if comm.rank == 0 else [], [1, 2] if comm.rank == 0 else [], [1.0, 2.0] if comm.rank == 0
                    else [], n=3, comm=comm) as g:
        with pytest.raises(InputError, match="source vertex 3 is not a vertex"):
            sssp(g, 3)
        for bad in (0.0, -1.0, float("nan"), float("inf")):
            with pytest.raises(InputError, match="delta must be a positive number"):
                sssp(g, 0, delta=bad)
        assert gathered(comm, sssp(g, 2)).tolist() == [np.inf, np.inf, 0.0]
        # distance 3 in buckets of 1e-19 is past bucket 2^62, which reads as "none pending": refused, not cut short
        with pytest.raises(InputError, match=r"delta=1e-19 is too small .* at distance 1 .* at least 8.67e-19"):
            sssp(g, 0, delta=1e-19)
        assert gathered(comm, sssp(g, 0, delta=1e-17)).tolist() == [0.0, 1.0, 3.0]
    for bad in (-1.0, float("nan")):
        with pytest.raises(InputError, match="finite and non-negative"):
            from_edges([0], [1], [bad], n=2, comm=comm)


def test_resume_from_a_superstep_state_is_bit_identical(comm):
    n, src, dst, w = weighted_generated("grid2d")
    A = csr_min(src, dst, w, n)
    full = resume_roundtrip(comm, A, lambda g, **kw: sssp(g, 0, delta=0.5, **kw), lambda full, again: None)
    assert full.iterations > 10
