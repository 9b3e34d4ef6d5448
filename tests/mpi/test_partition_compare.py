"""Edge partitions and the comparison at 1-4 ranks: the same numbers whatever the rank
count, and the replication factor equal to a brute-force count of (vertex, part) pairs."""

import numpy as np
import pytest
from mpi4py import MPI

from hpcdist.graph.edgelist import EdgeList
from hpcdist.graph.partition import EDGE_METHODS, HYBRID_THRESHOLD, hash_parts
from hpcdist.graph.vertexcut import (
    COMPARE_METHODS,
    compare_partitioners,
    evaluate_edge_partition,
    master_parts,
    place_edges,
)
from hpcdist.runtime.errors import InputError

pytestmark = pytest.mark.mpi

N = 2000


def power_law_edges(n=N, seed=7):
    """Zipf in-degrees (hubs far above the hybrid threshold), with duplicate edges."""
    rng = np.random.default_rng(seed)
    deg = 2 + np.minimum(rng.zipf(1.7, n), 500)
    dst = np.repeat(np.arange(n), deg)
    src = rng.integers(0, n, dst.size)
    dup = rng.integers(0, dst.size, dst.size // 10)  # the engine collapses duplicates
    return np.concatenate([src, src[dup]]).astype(np.int64), np.concatenate([dst, dst[dup]]).astype(np.int64)


def share(comm, src, dst, n, name="pl"):
    # A strided share: no rank holds edges in directory order.
    return EdgeList(n, src[comm.rank :: comm.size], dst[comm.rank :: comm.size], None, True, None, name)


def brute(src, dst, n, parts, method, threshold=HYBRID_THRESHOLD):
    """Serial reference: place the deduplicated edges, count replicas with Python sets."""
    e = np.unique(np.stack([src, dst], 1), axis=0)
    s, d = e[:, 0], e[:, 1]
    indeg = np.bincount(d, minlength=n)
    deg = indeg + np.bincount(s, minlength=n)
    part = place_edges(method, s, d, parts, in_deg_dst=indeg[d], deg_src=deg[s], deg_dst=deg[d],
                       threshold=threshold)
    master = master_parts(np.arange(n), parts)
    reps = {v: {int(master[v])} for v in range(n)}
    gather, scatter = set(), set()
    for u, v, p in zip(s.tolist(), d.tolist(), part.tolist()):
        reps[u].add(p)
        reps[v].add(p)
        if p != master[u]:
            scatter.add((u, p))
        if p != master[v]:
            gather.add((v, p))
    return {
        "edges": np.bincount(part, minlength=parts).tolist(),
        "replicas": sum(len(r) for r in reps.values()),
        "cut_vertices": sum(len(r) > 1 for r in reps.values()),
        "gather": len(gather),
        "scatter": len(scatter),
        "m": int(s.shape[0]),
    }


@pytest.mark.timeout(60)
@pytest.mark.parametrize("parts", [1, 3, 4])
@pytest.mark.parametrize("method", EDGE_METHODS)
def test_edge_partition_matches_brute_force(comm, method, parts):
    src, dst = power_law_edges()
    r = evaluate_edge_partition(share(comm, src, dst, N), comm, parts, method)
    b = brute(src, dst, N, parts, method)
    assert r.n_edges == b["m"] and r.edges.tolist() == b["edges"]
    assert r.n_vertices + r.n_mirrors == b["replicas"]
    assert r.replication_factor == pytest.approx(b["replicas"] / N, rel=0, abs=0)
    assert r.masters.tolist() == np.bincount(master_parts(np.arange(N), parts), minlength=parts).tolist()
    assert (r.gather_values, r.scatter_values, r.cut_vertices) == (b["gather"], b["scatter"], b["cut_vertices"])
    assert r.sync_bytes == 8 * (b["gather"] + b["scatter"])
    if parts == 1:
        assert r.n_mirrors == 0 and r.sync_bytes == 0


@pytest.mark.timeout(60)
def test_hybrid_threshold_changes_placement_and_is_validated(comm):
    src, dst = power_law_edges()
    el = share(comm, src, dst, N)
    low = evaluate_edge_partition(el, comm, 4, "hybrid", threshold=10**9)
    b = brute(src, dst, N, 4, "hybrid", threshold=10**9)
    assert low.n_vertices + low.n_mirrors == b["replicas"] and low.gather_values == 0
    spread = evaluate_edge_partition(el, comm, 4, "hybrid", threshold=20)
    b = brute(src, dst, N, 4, "hybrid", threshold=20)
    assert spread.n_vertices + spread.n_mirrors == b["replicas"] and spread.gather_values > 0
    assert spread.as_dict()["hybrid_threshold"] == 20
    with pytest.raises(InputError, match="hybrid-threshold"):
        evaluate_edge_partition(el, comm, 4, "hybrid", threshold=-1)
    with pytest.raises(InputError, match="unknown edge partitioner 'grid3d'"):
        evaluate_edge_partition(el, comm, 4, "grid3d")


@pytest.mark.timeout(60)
def test_comparison_rows_power_law_and_grid(comm):
    from hpcdist.graph.generators import parse_generator_spec, generate_edges

    src, dst = power_law_edges()
    rows = compare_partitioners(share(comm, src, dst, N), comm, 4)
    assert [r.method for r in rows] == list(COMPARE_METHODS)
    by = {r.method: r for r in rows}
    # The hash vertex partition's replication, by brute force: 1 + distinct (part, remote source) / n.
    e = np.unique(np.stack([src, dst], 1), axis=0)
    owner = hash_parts(np.arange(N), 4)
    cut = owner[e[:, 0]] != owner[e[:, 1]]
    ghosts = len(set(zip(owner[e[cut, 1]].tolist(), e[cut, 0].tolist())))
    assert by["hash"].replication == pytest.approx(1 + ghosts / N)
    assert by["hash"].sync_bytes == 8 * ghosts
    assert by["hash"].cut == pytest.approx(cut.mean())
    # Power law: spreading hubs (dbh, hybrid) replicates less than hashing vertices.
    assert by["dbh"].replication < by["hash"].replication
    assert by["hybrid"].replication < by["hash"].replication
    assert by["vertex-cut"].replication < by["hash"].replication
    assert by["metis"].cut < by["hash"].cut

    spec = parse_generator_spec("grid2d:40")
    gs, gd = generate_edges(spec, comm)
    grid = EdgeList(spec.n_vertices, gs, gd, None, False, None, "grid2d:40")
    g = {r.method: r for r in compare_partitioners(grid, comm, 4)}
    # A grid has a small separator: contiguous blocks and METIS beat every hash-based cut.
    for m in ("vertex-cut", "dbh", "hybrid", "hash"):
        assert g["block"].replication < g[m].replication and g["metis"].replication < g[m].replication
    assert g["block"].cut < 0.1 and g["hash"].cut > 0.5


@pytest.mark.timeout(60)
@pytest.mark.parametrize("method", EDGE_METHODS)
def test_gas_plans_move_what_the_report_counts(comm, method):
    from hpcdist.graph.gas import build_vertex_cut

    src, dst = power_law_edges()
    el = share(comm, src, dst, N)
    report = evaluate_edge_partition(el, comm, comm.size, method, threshold=20)
    with build_vertex_cut(el, comm, method, threshold=20) as g:
        assert comm.allreduce(g.src_local.shape[0]) == report.n_edges
        assert comm.allreduce(g.sync_bytes) == report.sync_bytes
        assert comm.allreduce(g.n_mirrors) == report.n_mirrors
        # Scatter: every source mirror receives its master's value (here its new global id).
        values = np.zeros(g.n_scatter)
        values[: g.n_owned] = g.bounds[comm.rank] + np.arange(g.n_owned)
        g.scatter(values)
        assert np.array_equal(values[g.n_owned :], g.scatter_plan_ghosts.astype(float))
        # Gather: each master adds one per destination mirror of it.
        total = g.gather_sum(np.ones(g.n_gather))
        assert comm.allreduce(int(total.sum()) - g.n_owned) == report.gather_values


@pytest.mark.timeout(60)
@pytest.mark.parametrize("method", EDGE_METHODS)
def test_pagerank_on_vertex_cut_equals_edge_cut(comm, method):
    from hpcdist.graph import pagerank
    from hpcdist.graph.distgraph import from_edgelist
    from hpcdist.graph.gas import build_vertex_cut, pagerank_vertex_cut

    src, dst = power_law_edges()
    el = share(comm, src, dst, N)
    g = from_edgelist(el, comm, "block")
    try:
        ref = pagerank(g, tol=1e-10, backend="numpy")
        expect = ref.block_values()
    finally:
        g.close()
    with build_vertex_cut(el, comm, method, threshold=20) as vg:
        r = pagerank_vertex_cut(vg, tol=1e-10)
    assert r.converged and r.iterations == ref.iterations
    # The per-vertex sums are split over parts, so only rounding may differ.
    assert comm.allreduce(float(np.abs(r.block_values - expect).max()), op=MPI.MAX) < 1e-12
    assert abs(comm.allreduce(float(r.values.sum())) - 1.0) < 1e-12
