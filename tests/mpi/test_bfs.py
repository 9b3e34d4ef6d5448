"""BFS against scipy on real and generated graphs: distances, the min-input-id parent tree,
Graph500 validation, every partitioner, both backends and directions, resume."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from hpcdist.graph import bfs
from hpcdist.graph.algorithms.bfs import harmonic_mean, random_roots, validate_bfs
from hpcdist.runtime.errors import InputError
from tests.graph_helpers import (
    FILES,
    PARTITIONERS,
    bfs_reference,
    csr_min,
    distribute,
    gathered,
    generated,
    load_real,
    needs_graphs,
    on_rank0,
    partitioners_for,
    reference_graph,
    resume_roundtrip,
)

pytestmark = pytest.mark.mpi


def sources_of(A: sp.csr_matrix) -> list[int]:
    """Two roots (input ids): the vertex of highest out-degree and vertex 0."""
    return [int(np.argmax(np.diff(A.indptr))), 0]


def check_bfs(comm, g, A, ids, source_in, partitioner, backends=("numba",), directions=("auto",)):
    exp_dist, exp_parent = on_rank0(comm, lambda: bfs_reference(A, source_in))
    exp_parent_orig = np.where(exp_parent >= 0, ids[np.maximum(exp_parent, 0)], -1)
    for backend in backends:
        for direction in directions:
            r = bfs(g, int(ids[source_in]), backend=backend, direction=direction)
            what = f"{partitioner}/{backend}/{direction} at {comm.size} ranks, source {ids[source_in]}"
            assert np.array_equal(gathered(comm, r), exp_dist), what
            assert np.array_equal(gathered(comm, r, "parent"), exp_parent_orig), what
            assert validate_bfs(r) == [], what
            assert r.values.dtype == np.int64 and r.converged
            assert r.params["reached"] == int((exp_dist >= 0).sum())
            assert r.params["levels"] == int(exp_dist.max()) + 1


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", FILES + ["karate.gml"])
def test_real_graphs_match_scipy(comm, name):
    needs_graphs()
    A, ids = on_rank0(comm, lambda: reference_graph(name))
    parts = partitioners_for(name, A.shape[0])
    for part in parts:
        with load_real(comm, name, part, weighted=False) as g:
            for i, s in enumerate(sources_of(A)):
                first = part == parts[0] and i == 0
                check_bfs(comm, g, A, ids, s, part, backends=("numba", "numpy") if first else ("numba",),
                          directions=("auto", "top-down", "bottom-up") if first else ("auto",))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["rmat", "er", "grid2d", "disconnected"])
def test_generated_graphs_every_partitioner_direction_and_backend(comm, kind):
    n, src, dst = generated(kind)
    A = csr_min(src, dst, None, n)
    ids = np.arange(n) * 3 + 7  # original ids that differ from input ids
    sources = [0, 95] if kind == "disconnected" else [int(np.argmax(np.diff(A.indptr))), n - 1]
    for part in PARTITIONERS:
        with distribute(comm, A, ids, part, weighted=False) as g:
            for s in sources:
                check_bfs(comm, g, A, ids, s, part, backends=("numba", "numpy"),
                          directions=("auto", "top-down", "bottom-up"))


def test_unreachable_and_isolated_source(comm):
    n, src, dst = generated("disconnected")
    A = csr_min(src, dst, None, n)
    with distribute(comm, A, np.arange(n), "hash", weighted=False) as g:
        r = bfs(g, 95)  # isolated
        dist = gathered(comm, r)
        assert dist[95] == 0 and (np.delete(dist, 95) == -1).all()
        assert (gathered(comm, r, "parent") == -1).all()
        assert r.params["edges_traversed"] == 0 and r.params["levels"] == 1
        r = bfs(g, 89)  # end of the path: nothing leaves it
        assert gathered(comm, r)[60:90].tolist() == [-1] * 29 + [0]


def test_missing_source_is_one_input_error(comm):
    with distribute(comm, csr_min(np.array([0, 1]), np.array([1, 2]), None, 3), np.array([10, 20, 30]),
                    "block") as g:
        with pytest.raises(InputError, match="source vertex 7 is not a vertex"):
            bfs(g, 7)
        with pytest.raises(InputError, match="direction must be"):
            bfs(g, 10, direction="sideways")
        # one rank's bad argument: every rank raises its error, and nobody waits
        last = comm.Get_size() - 1
        with pytest.raises(InputError, match="exchange must be one of") as info:
            bfs(g, 10, exchange="carrier pigeon" if comm.rank == last else "auto")
        assert info.value.origin_rank == last
        assert gathered(comm, bfs(g, 10)).tolist() == [0, 1, 2]


def test_validation_finds_a_broken_tree(comm):
    n, src, dst = generated("er")
    A = csr_min(src, dst, None, n)
    with distribute(comm, A, np.arange(n), "hash", weighted=False) as g:
        r = bfs(g, 0)
        assert validate_bfs(r) == []
        # every rank corrupts one owned vertex at distance >= 2: its parent is then no
        # longer an in-neighbour one level up, or the distance skips a level
        far = np.flatnonzero(r.values >= 2)
        if far.shape[0]:
            r.values[far[0]] += 5
        problems = validate_bfs(r)
        if comm.allreduce(int(far.shape[0])):
            assert problems and any("one level" in p for p in problems), problems


def test_random_roots_are_deterministic_and_teps_are_positive(comm):
    n, src, dst = generated("rmat")
    A = csr_min(src, dst, None, n)
    ids = np.arange(n) + 1000
    seen = set()
    for part in PARTITIONERS:
        with distribute(comm, A, ids, part, weighted=False) as g:
            roots = random_roots(g, 5, seed=3)
            seen.add(tuple(roots))
            outdeg = np.diff(A.indptr)
            assert len(set(roots)) == 5 and all(outdeg[r - 1000] > 0 for r in roots)
            rates = [bfs(g, r).params["teps"] for r in roots]
            assert all(x > 0 for x in rates)
            assert min(rates) <= harmonic_mean(rates) <= max(rates)
            with pytest.raises(InputError, match="roots"):
                random_roots(g, n + 1)
    assert len(seen) == 1


def test_resume_from_a_superstep_state_is_bit_identical(comm):
    n, src, dst = generated("grid2d")
    A = csr_min(src, dst, None, n)

    def check(full, again):
        assert np.array_equal(again.extras["parent"], full.extras["parent"])

    full = resume_roundtrip(comm, A, lambda g, **kw: bfs(g, 0, **kw), check)
    assert full.iterations == 39  # the grid's diameter + 1


@pytest.mark.timeout(60)
def test_a_slow_kernel_warm_up_on_one_rank_stays_out_of_the_supersteps(comm, monkeypatch):
    # The last rank loads its kernels 0.3 s later than the others (a slower cache read, say):
    # the search's set-up absorbs that, not the first superstep's exchange or the TEPS.
    import time

    from hpcdist.graph.algorithms.bfs import BFSProgram

    warm_up = BFSProgram._warm_up

    def slow(self):
        if comm.rank == comm.size - 1:
            time.sleep(0.3)
        warm_up(self)

    monkeypatch.setattr(BFSProgram, "_warm_up", slow)
    n, src, dst = generated("rmat")
    A = csr_min(src, dst, None, n)
    with distribute(comm, A, np.arange(n), "block", weighted=False) as g:  # a fresh graph: a fresh plan
        r = bfs(g, sources_of(A)[0])
        assert r.params["warm_up_seconds"] >= (0.3 if comm.rank == comm.size - 1 else 0.0)
        # the 0.3 s would land in one superstep; an oversubscribed one takes milliseconds
        assert all(m.exchange_s + m.compute_s < 0.2 for m in r.run.metrics), [
            (m.compute_s, m.exchange_s) for m in r.run.metrics]
