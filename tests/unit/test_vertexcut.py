"""Edge placements (vertex-cut, dbh, hybrid) and replication arithmetic, without MPI."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hpcdist.graph.partition import HYBRID_THRESHOLD, PartitionReport, hash_parts, resolve_method
from hpcdist.graph.vertexcut import (
    EdgePartitionReport,
    dbh_edge_parts,
    grid_edge_parts,
    grid_shape,
    hybrid_edge_parts,
    master_parts,
    place_edges,
    replica_counts,
    row_from_vertex_report,
)
from hpcdist.runtime.errors import InputError


def power_law(n=600, seed=1):
    """Deduplicated directed edges with a few hubs of in-degree far above 100."""
    rng = np.random.default_rng(seed)
    deg = np.minimum(rng.zipf(1.7, n), 400)
    dst = np.repeat(np.arange(n), deg)
    src = rng.integers(0, n, dst.size)
    e = np.unique(np.stack([src, dst], 1), axis=0)
    return e[:, 0].astype(np.int64), e[:, 1].astype(np.int64)


def degrees(src, dst, n):
    indeg = np.bincount(dst, minlength=n)
    return indeg, indeg + np.bincount(src, minlength=n)


def brute_replicas(src, dst, part, n, parts):
    """{vertex: set of parts holding a copy} by plain Python sets, master included."""
    master = master_parts(np.arange(n), parts)
    reps = {v: {int(master[v])} for v in range(n)}
    for s, d, p in zip(src.tolist(), dst.tolist(), part.tolist()):
        reps[s].add(p)
        reps[d].add(p)
    return reps


def all_placements(src, dst, n, parts, threshold=HYBRID_THRESHOLD):
    indeg, deg = degrees(src, dst, n)
    return {
        "vertex-cut": place_edges("vertex-cut", src, dst, parts),
        "dbh": place_edges("dbh", src, dst, parts, deg_src=deg[src], deg_dst=deg[dst]),
        "hybrid": place_edges("hybrid", src, dst, parts, in_deg_dst=indeg[dst], threshold=threshold),
    }


@pytest.mark.parametrize("parts", range(1, 65))
def test_grid_shape_is_the_most_square_factorisation(parts):
    pr, pc = grid_shape(parts)
    assert pr * pc == parts and 1 <= pr <= pc
    assert not any(parts % d == 0 for d in range(pr + 1, int(np.sqrt(parts)) + 1))


def test_grid_shape_examples():
    assert [grid_shape(k) for k in (1, 4, 6, 7, 12, 16)] == [(1, 1), (2, 2), (2, 3), (1, 7), (3, 4), (4, 4)]
    with pytest.raises(ValueError):
        grid_shape(0)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 60), m=st.integers(0, 300), parts=st.integers(1, 9), seed=st.integers(0, 2**16))
def test_every_edge_placed_exactly_once(n, m, parts, seed):
    rng = np.random.default_rng(seed)
    src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
    for method, part in all_placements(src, dst, n, parts, threshold=3).items():
        assert part.shape == (m,) and part.dtype == np.int64, method
        assert m == 0 or (part.min() >= 0 and part.max() < parts), method
        # Splitting by part and joining the pieces gives back exactly the edge multiset.
        pieces = [np.stack([src[part == p], dst[part == p]], 1) for p in range(parts)]
        joined = np.concatenate(pieces) if pieces else np.empty((0, 2), dtype=np.int64)
        assert sorted(map(tuple, joined.tolist())) == sorted(zip(src.tolist(), dst.tolist())), method


@pytest.mark.parametrize("parts", [4, 6, 9, 16])
def test_grid_bounds_replication_by_rows_plus_columns(parts):
    n = 600
    src, dst = power_law(n)
    pr, pc = grid_shape(parts)
    part = grid_edge_parts(src, dst, parts)
    reps = brute_replicas(src, dst, part, n, parts)
    worst = max(len(r) for r in reps.values())
    assert worst <= pr + pc - 1
    # Hubs touch every column of their row and every row of their column: the bound is met.
    assert worst == pr + pc - 1
    # Out-edges stay in the source's grid row, in-edges in the destination's column.
    master = master_parts(np.arange(n), parts)
    assert np.array_equal(part // pc, master[src] // pc)
    assert np.array_equal(part % pc, master[dst] % pc)
    # Without the grid (hash of the edge), the hubs are replicated on every part.
    assert worst < parts


def test_hybrid_keeps_low_degree_in_edges_on_the_master_and_spreads_hubs():
    n = 600
    src, dst = power_law(n)
    indeg, _ = degrees(src, dst, n)
    assert indeg.max() > HYBRID_THRESHOLD  # the graph has high-degree vertices
    parts = 4
    part = hybrid_edge_parts(src, dst, indeg[dst], parts)
    master = master_parts(np.arange(n), parts)
    for v in np.unique(dst):
        mine = part[dst == v]
        if indeg[v] <= HYBRID_THRESHOLD:
            assert set(mine.tolist()) == {int(master[v])}  # all in-edges together, at the master
        else:
            assert np.array_equal(mine, master[src[dst == v]])  # spread by source
            assert len(set(mine.tolist())) == parts


def test_hybrid_threshold_boundary():
    # Vertex 9 has in-degree 3; the threshold is inclusive for low degree.
    src = np.array([0, 1, 2, 3], dtype=np.int64)
    dst = np.array([9, 9, 9, 4], dtype=np.int64)
    indeg = np.bincount(dst, minlength=10)[dst]
    parts = 4
    m = master_parts(np.arange(10), parts)
    low = hybrid_edge_parts(src, dst, indeg, parts, threshold=3)
    high = hybrid_edge_parts(src, dst, indeg, parts, threshold=2)
    assert low.tolist() == [m[9], m[9], m[9], m[4]]
    assert high.tolist() == [m[0], m[1], m[2], m[4]]  # vertex 4 (in-degree 1) stays low


def test_hybrid_limits_are_edge_cut_and_source_cut():
    n = 600
    src, dst = power_law(n)
    indeg, _ = degrees(src, dst, n)
    parts = 5
    everything_low = hybrid_edge_parts(src, dst, indeg[dst], parts, threshold=10**9)
    assert np.array_equal(everything_low, hash_parts(dst, parts))  # = the hash vertex partition
    everything_high = hybrid_edge_parts(src, dst, indeg[dst], parts, threshold=0)
    assert np.array_equal(everything_high, hash_parts(src, parts))


def test_dbh_hashes_the_lower_degree_endpoint_ties_to_lower_id():
    src = np.array([0, 1, 5, 7], dtype=np.int64)
    dst = np.array([1, 0, 6, 2], dtype=np.int64)
    dsrc = np.array([1, 5, 3, 3])
    ddst = np.array([5, 1, 3, 3])
    part = dbh_edge_parts(src, dst, dsrc, ddst, 8)
    m = master_parts(np.arange(8), 8)
    assert part.tolist() == [m[0], m[0], m[5], m[2]]  # (0,1) and (1,0) land together


def test_place_edges_needs_its_degrees():
    e = np.array([0, 1], dtype=np.int64)
    with pytest.raises(ValueError, match="dbh needs"):
        place_edges("dbh", e, e, 2)
    with pytest.raises(ValueError, match="hybrid needs"):
        place_edges("hybrid", e, e, 2)
    with pytest.raises(ValueError, match="unknown edge partitioner"):
        place_edges("block", e, e, 2)


def test_replica_counts_on_a_hand_made_graph():
    # With 2 parts the masters of 0..5 are parts [1, 1, 0, 1, 0, 0].
    assert master_parts(np.arange(6), 2).tolist() == [1, 1, 0, 1, 0, 0]
    src = np.array([0, 0, 3, 1, 4], dtype=np.int64)
    dst = np.array([1, 2, 2, 2, 4], dtype=np.int64)
    part = np.array([1, 0, 1, 1, 1], dtype=np.int64)
    c = replica_counts(src, dst, part, 6, 2)
    # Mirrors: 0 on part 0 (a source), 2 on part 1 (a destination, twice), 4 on part 1
    # (a self-loop: both). Vertex 5 is isolated and has its master only.
    assert c["edges"].tolist() == [1, 4]
    assert c["masters"].tolist() == [3, 3]
    assert c["mirrors"].tolist() == [1, 2]
    assert (c["n_mirrors"], c["gather"], c["scatter"], c["cut_vertices"]) == (3, 2, 2, 3)
    r = EdgePartitionReport("hand", 2, c["edges"], c["masters"], c["mirrors"], 6, 5, c["gather"], c["scatter"],
                            c["cut_vertices"])
    assert r.replication_factor == pytest.approx(9 / 6)
    assert r.sync_bytes == 32
    assert r.replicas.tolist() == [4, 5]
    assert r.vertex_balance == pytest.approx(5 / 4.5)
    assert r.edge_balance == pytest.approx(4 / 2.5)
    d = r.as_dict()
    assert d["n_mirrors"] == 3 and d["sync_bytes"] == 32 and "hybrid_threshold" not in d
    assert any("replication factor 1.500" in line for line in r.lines())


@pytest.mark.parametrize("parts", [1, 3, 4])
def test_replica_counts_match_brute_force(parts):
    n = 600
    src, dst = power_law(n, seed=3)
    for method, part in all_placements(src, dst, n, parts).items():
        reps = brute_replicas(src, dst, part, n, parts)
        c = replica_counts(src, dst, part, n, parts)
        assert c["n_mirrors"] == sum(len(r) - 1 for r in reps.values()), method
        per_part = np.zeros(parts, dtype=np.int64)
        for r in reps.values():
            for p in r:
                per_part[p] += 1
        assert (c["masters"] + c["mirrors"]).tolist() == per_part.tolist(), method
        assert c["cut_vertices"] == sum(len(r) > 1 for r in reps.values()), method
        if parts == 1:
            assert c["n_mirrors"] == 0


def test_hash_hybrid_equivalence_in_replication():
    # Hybrid with no high-degree vertex stores each edge at its destination's hash owner:
    # its mirrors are exactly the hash vertex partition's ghosts, its gather is empty.
    n = 600
    src, dst = power_law(n, seed=4)
    parts = 4
    owner = hash_parts(np.arange(n), parts)
    part = hybrid_edge_parts(src, dst, np.zeros(src.shape[0]), parts)
    c = replica_counts(src, dst, part, n, parts)
    cut = owner[src] != owner[dst]
    ghosts = len({(int(owner[d]), int(s)) for s, d in zip(src[cut], dst[cut])})
    assert c["n_mirrors"] == c["scatter"] == ghosts and c["gather"] == 0


def test_vertex_report_row_replication_and_bytes():
    r = PartitionReport("block", 2, np.array([5, 5]), np.array([10, 30]), np.array([3, 2]), 10, 40, 7)
    row = row_from_vertex_report(r)
    assert row.replication == pytest.approx(1.5)
    assert row.sync_bytes == 40
    assert row.cut == pytest.approx(7 / 40)
    assert row.edge_balance == pytest.approx(1.5) and row.vertex_balance == 1.0
    assert row.kind == "edge-cut" and row.as_dict()["method"] == "block"


def test_engine_refuses_edge_partitioners_with_a_clear_message():
    with pytest.raises(InputError, match="'hybrid' is an edge partitioner"):
        resolve_method("hybrid", 4, 10)
    with pytest.raises(InputError, match="unknown partitioner 'kway'"):
        resolve_method("kway", 2, 10)


def test_skipped_row_is_valid_json():
    import json

    from hpcdist.graph.vertexcut import ComparisonRow

    nan = float("nan")
    row = ComparisonRow("metis", "edge-cut", 4, nan, nan, nan, nan, 0, skipped="too big")
    d = json.loads(json.dumps(row.as_dict(), allow_nan=False))
    assert d["cut"] is None and d["skipped"] == "too big"
