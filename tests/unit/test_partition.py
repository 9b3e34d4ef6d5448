"""Pure partition arithmetic (no MPI), with hypothesis."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hpcdist.graph.partition import (
    AUTO_METIS_MAX_EDGES,
    PartitionReport,
    _metis_serial,
    balance,
    block_owner,
    block_parts,
    hash_parts,
    part_of,
    renumber,
    resolve_method,
)
from hpcdist.runtime.errors import InputError
from hpcdist.runtime.ranges import owner_of

weights_st = st.lists(st.integers(0, 50), min_size=1, max_size=200)


@given(n=st.integers(1, 500), size=st.integers(1, 9))
def test_block_owner_matches_owner_of(n, size):
    ids = np.arange(n)
    assert block_owner(ids, n, size).tolist() == [owner_of(i, n, size) for i in range(n)]


@given(w=weights_st, parts=st.integers(1, 12))
def test_block_parts_contiguous_and_within_one_vertex_of_perfect(w, parts):
    w = np.array(w, dtype=np.int64)
    total = int(w.sum())
    p = block_parts(w, 0, total, parts)
    assert np.all(np.diff(p) >= 0) and p.min() >= 0 and p.max() < parts
    loads = np.bincount(p, weights=w, minlength=parts)
    if total:
        # The midpoint rule misses a perfect share by at most the heaviest vertex.
        assert np.all(np.abs(loads - total / parts) <= w.max() + 1e-9)


@given(w=weights_st, parts=st.integers(1, 8), cuts=st.lists(st.integers(0, 200), max_size=5))
def test_block_parts_same_in_slices(w, parts, cuts):
    w = np.array(w, dtype=np.int64)
    total = int(w.sum())
    whole = block_parts(w, 0, total, parts)
    edges = sorted({0, len(w), *(c % (len(w) + 1) for c in cuts)})
    pieces = [block_parts(w[a:b], int(w[:a].sum()), total, parts) for a, b in zip(edges[:-1], edges[1:])]
    assert np.array_equal(np.concatenate(pieces), whole)


def test_block_parts_balance_edges_plus_vertices_on_power_law():
    rng = np.random.default_rng(3)
    deg = np.minimum(rng.zipf(2.1, 200_000), 2000).astype(np.int64)
    w = deg + 1
    for parts in (2, 3, 4, 16):
        p = block_parts(w, 0, int(w.sum()), parts)
        assert balance(np.bincount(p, weights=deg, minlength=parts)) <= 1.03


@given(ids=st.lists(st.integers(0, 2**62), max_size=100), parts=st.integers(1, 17))
def test_hash_parts_in_range_and_deterministic(ids, parts):
    a = np.array(ids, dtype=np.int64)
    p = hash_parts(a, parts)
    assert p.shape == a.shape and (p.size == 0 or (p.min() >= 0 and p.max() < parts))
    assert np.array_equal(p, hash_parts(a.copy(), parts))


def test_hash_parts_spread_evenly():
    p = hash_parts(np.arange(100_000), 7)
    assert balance(np.bincount(p, minlength=7)) < 1.035  # 4 sigma of a fair split


@given(parts_list=st.lists(st.integers(0, 5), min_size=0, max_size=120), nblocks=st.integers(1, 5),
       keyed=st.booleans(), seed=st.integers(0, 100))
def test_renumber_is_a_bijection_with_contiguous_parts(parts_list, nblocks, keyed, seed):
    parts = 6
    assignment = np.array(parts_list, dtype=np.int64)
    n = assignment.shape[0]
    cuts = np.linspace(0, n, nblocks + 1).astype(int)
    blocks = [assignment[a:b] for a, b in zip(cuts[:-1], cuts[1:])]
    counts = np.array([np.bincount(b, minlength=parts) for b in blocks]).reshape(nblocks, parts)
    before = np.vstack([np.zeros(parts, dtype=np.int64), np.cumsum(counts, axis=0)[:-1]])
    bounds = np.concatenate([[0], np.cumsum(counts.sum(axis=0))])
    key = np.random.default_rng(seed).integers(0, 4, n) if keyed else None
    keys = [None if key is None else key[a:b] for a, b in zip(cuts[:-1], cuts[1:])]
    new = np.concatenate([renumber(b, parts, before[i], bounds, keys[i]) for i, b in enumerate(blocks)]
                         or [np.empty(0, int)])
    assert sorted(new.tolist()) == list(range(n))
    assert np.array_equal(part_of(new, bounds), assignment)
    block_of = np.repeat(np.arange(nblocks), np.diff(cuts))
    for q in range(parts):
        sel = assignment == q
        assert np.all(np.diff(block_of[sel][np.argsort(new[sel])]) >= 0)  # earlier blocks first
        for b in range(nblocks):  # within a block: by key, then input order
            seg = np.flatnonzero(sel & (block_of == b))
            order = seg[np.argsort(new[seg])]
            expect = seg if key is None else seg[np.lexsort((seg, key[seg]))]
            assert np.array_equal(order, expect)


def test_part_of_boundaries():
    bounds = np.array([0, 3, 3, 7])
    assert part_of(np.array([0, 2, 3, 6]), bounds).tolist() == [0, 0, 2, 2]


def test_resolve_method_rule_and_unknown_name():
    assert resolve_method("auto", 1, 10) == "block"
    assert resolve_method("auto", 4, AUTO_METIS_MAX_EDGES) == "metis"
    assert resolve_method("auto", 4, AUTO_METIS_MAX_EDGES + 1) == "block"
    assert resolve_method("HASH", 4, 10) == "hash"
    with pytest.raises(InputError, match="unknown partitioner 'kway'"):
        resolve_method("kway", 2, 10)


def test_metis_with_vertex_weights_balances_edges_on_power_law():
    import networkx as nx

    g = nx.barabasi_albert_graph(3000, 3, seed=1)
    e = np.array(g.edges(), dtype=np.int64)
    src, dst = np.concatenate([e[:, 0], e[:, 1]]), np.concatenate([e[:, 1], e[:, 0]])
    deg = np.bincount(dst, minlength=3000)
    parts = _metis_serial(3000, 4, src, dst, np.maximum(deg, 1))
    assert balance(np.bincount(parts, weights=deg, minlength=4)) <= 1.05
    cut = np.mean(parts[src] != parts[dst])
    assert cut < 0.75 * (1 - 1 / 4)  # clearly better than a random split


def test_report_arithmetic():
    r = PartitionReport("block", 2, np.array([3, 1]), np.array([6, 2]), np.array([1, 2]), 4, 8, 2)
    assert r.vertex_balance == 1.5 and r.edge_balance == 1.5
    assert r.edge_cut_fraction == 0.25 and r.n_ghosts == 3 and r.exchange_bytes == 24
    assert "edge cut: 2 edges (25.00 %)" in "\n".join(r.lines())
    assert r.as_dict()["edges"] == [6, 2]
