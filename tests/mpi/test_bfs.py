"""BFS against scipy on real and generated graphs: distances, the min-input-id parent tree,
Graph500 validation, every partitioner, both backends and directions, resume."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import shortest_path

from hpcdist.graph import bfs, from_edges, load
from hpcdist.graph.algorithms.bfs import harmonic_mean, random_roots, validate_bfs
from hpcdist.runtime.errors import InputError
from hpcdist.runtime.ranges import owned_range
from tests.conftest import SHARED

pytestmark = pytest.mark.mpi

GRAPHS = SHARED / "data" / "graphs"
PARTITIONERS = ("block", "hash", "metis")

# --------------------------------------------------------------------- shared test helpers
# (test_cc.py and test_sssp.py import these)

#: Real graphs read by hpcdist's own reader; the reference parses them independently.
FILES = ["email-Eu-core.txt", "p2p-Gnutella04.txt", "p2p-Gnutella08.txt", "p2p-Gnutella09.txt", "CA-GrQc.txt",
         "facebook_combined.txt", "rome99.gr", "Lederberg.mtx"]


@functools.lru_cache(maxsize=None)
def reference_graph(name: str):
    """``(A, ids)`` of a real graph: a CSR of the arcs in input ids (rows = sources, the
    smallest weight of parallel arcs, explicit zeros kept) and the original id of each
    input id, parsed without hpcdist (for karate.gml: networkx)."""
    path = GRAPHS / name
    w = None
    if name.endswith(".txt"):
        raw = np.loadtxt(path, comments="#", dtype=np.int64).reshape(-1, 2)
        ids, inv = np.unique(raw, return_inverse=True)
        src, dst = inv.reshape(-1, 2).T
    elif name.endswith(".gr"):
        rows = [line.split()[1:] for line in open(path) if line.startswith("a ")]
        arr = np.array(rows, dtype=np.float64)
        n = int(next(line.split()[2] for line in open(path) if line.startswith("p ")))
        ids = np.arange(1, n + 1)
        src, dst, w = arr[:, 0].astype(np.int64) - 1, arr[:, 1].astype(np.int64) - 1, arr[:, 2]
    elif name.endswith(".mtx"):
        import scipy.io

        a = scipy.io.mmread(path).tocoo()
        ids = np.arange(1, a.shape[0] + 1)
        src, dst, w = a.row.astype(np.int64), a.col.astype(np.int64), a.data.astype(np.float64)
    else:  # karate.gml, undirected
        import networkx as nx

        G = nx.read_gml(path, label="id")
        ids = np.array(sorted(G.nodes()))
        pos = {v: i for i, v in enumerate(ids.tolist())}
        e = np.array([(pos[u], pos[v]) for u, v in G.edges()], dtype=np.int64)
        src, dst = np.concatenate([e[:, 0], e[:, 1]]), np.concatenate([e[:, 1], e[:, 0]])
    n = ids.shape[0]
    if name == "facebook_combined.txt":  # undirected, each edge once
        src, dst = np.concatenate([src, dst]), np.concatenate([dst, src])
    return csr_min(src, dst, w, n), ids


def csr_min(src, dst, w, n) -> sp.csr_matrix:
    """A CSR of arcs with the smallest weight of parallel ones (1.0 when unweighted),
    explicit zero weights kept as edges."""
    w = np.ones(src.shape[0]) if w is None else np.asarray(w, dtype=np.float64)
    order = np.lexsort((w, dst, src))
    src, dst, w = src[order], dst[order], w[order]
    first = np.ones(src.shape[0], dtype=bool)
    first[1:] = (src[1:] != src[:-1]) | (dst[1:] != dst[:-1])
    src, dst, w = src[first], dst[first], w[first]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
    return sp.csr_matrix((w, dst, indptr), shape=(n, n))


def load_real(comm, name: str, partitioner: str, weighted=None):
    if name == "karate.gml":  # no reader for GML: hand the reference's arcs over
        A, ids = reference_graph(name)
        return distribute(comm, A, ids, partitioner, weighted=False)
    # facebook_combined lists each undirected edge once: read it symmetrised
    return load(str(GRAPHS / name), comm, partitioner=partitioner, weighted=weighted,
                undirected=name == "facebook_combined.txt")


def distribute(comm, A: sp.csr_matrix, ids: np.ndarray, partitioner: str, weighted: bool = True):
    """A DistGraph of the CSR's arcs, each rank passing a strided share, original ids ``ids``."""
    coo = A.tocoo()
    mine = slice(comm.rank, None, comm.size)
    n = A.shape[0]
    start, stop = owned_range(n, comm.size, comm.rank)
    return from_edges(coo.row[mine], coo.col[mine], coo.data[mine] if weighted else None, n=n, comm=comm,
                      partitioner=partitioner, vertex_ids=np.asarray(ids[start:stop], dtype=np.int64))


def needs_graphs():
    if not GRAPHS.is_dir():
        pytest.skip(f"{GRAPHS} not present")


def on_rank0(comm, fn):
    """``fn()`` on rank 0, broadcast; the others wait in a polled barrier (MPICH's
    blocking calls spin and would take the few cores away from rank 0)."""
    import time

    value = fn() if comm.rank == 0 else None
    req = comm.Ibarrier()
    while not req.Test():
        time.sleep(0.001)
    return comm.bcast(value)


def gathered(comm, result, extra: str | None = None):
    """Values (or an extra array) of every vertex in input order, on every rank."""
    if extra is None:
        got = result.gather_arrays()
        return comm.bcast(None if got is None else got[1])
    parts = comm.gather(result.graph.to_input_layout(result.extras[extra]))
    return comm.bcast(None if parts is None else np.concatenate(parts))


def partitioners_for(name: str, n: int) -> tuple[str, ...]:
    """Every partitioner on graphs of the size of those in the shared data; on larger ones
    one, rotating over the graphs, so that each partitioner meets them and tests stay fast."""
    if n <= 12000:
        return PARTITIONERS
    return (PARTITIONERS[sum(map(ord, name)) % 3],)


# --------------------------------------------------------------------- BFS reference


def bfs_reference(A: sp.csr_matrix, source: int) -> tuple[np.ndarray, np.ndarray]:
    """Hop distances (-1 unreachable) and parents (input ids: the smallest in-neighbour on
    the previous level, -1 for root and unreachable) from scipy."""
    d = shortest_path(A, unweighted=True, indices=source)
    dist = np.where(np.isinf(d), -1, d).astype(np.int64)
    coo = A.tocoo()
    u, v = coo.row.astype(np.int64), coo.col.astype(np.int64)
    tree = (dist[u] >= 0) & (dist[v] == dist[u] + 1)
    parent = np.full(A.shape[0], np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(parent, v[tree], u[tree])
    parent[parent == np.iinfo(np.int64).max] = -1
    return dist, parent


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


def generated(kind: str, seed: int = 0):
    """Arcs (src, dst) of small generated graphs with the awkward cases."""
    rng = np.random.default_rng(seed)
    if kind == "rmat":
        n = 1 << 10
        src, dst = rng.integers(0, n, 8 * n), rng.integers(0, n, 8 * n)
        # skew like R-MAT: most edges among low ids
        src, dst = (src * src) // n, (dst * dst * dst) // (n * n)
        return n, src, dst
    if kind == "er":
        n = 600
        return n, rng.integers(0, n, 1500), rng.integers(0, n, 1500)
    if kind == "grid2d":
        side = 20
        v = np.arange(side * side).reshape(side, side)
        a = np.concatenate([v[:, :-1].ravel(), v[:-1, :].ravel()])
        b = np.concatenate([v[:, 1:].ravel(), v[1:, :].ravel()])
        return side * side, np.concatenate([a, b]), np.concatenate([b, a])
    if kind == "disconnected":  # two cycles, a path, self-loops, duplicates, isolated vertices 90..99
        src = np.concatenate([np.arange(0, 30), np.arange(30, 60), np.arange(60, 89), [5, 5, 5, 70]])
        dst = np.concatenate([(np.arange(0, 30) + 1) % 30, 30 + (np.arange(30, 60) - 29) % 30, np.arange(61, 90),
                              [5, 6, 6, 70]])
        return 100, src, dst
    raise ValueError(kind)


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


def resume_roundtrip(comm, A, run, check):
    """Run ``run(g, on_superstep=..., resume=...)`` on a hash partition keeping every
    superstep's state; resume from the state after superstep ``min(4, last - 1)`` there
    and, moved through the input layout, on a block partition; ``check(full, again)``.
    The engine calls no hook after the superstep that converged (a resume from there
    would run one superstep too many), so a run that converged in its first superstep
    leaves nothing to resume from."""
    from hpcdist.graph.bsp import Resume

    n = A.shape[0]
    saved = {}

    def keep(step, prog):
        saved[step] = Resume(step, {k: v.copy() for k, v in prog.state().items()}, dict(prog.scalars()))

    with distribute(comm, A, np.arange(n), "hash") as g:
        full = run(g, on_superstep=keep, resume=None)
        assert not full.converged or full.iterations - 1 not in saved
        if not saved:
            return full
        at = min(4, max(saved))
        again = run(g, on_superstep=None, resume=saved[at])
        assert again.run.resumed_from == at
        assert again.iterations == full.iterations
        assert np.array_equal(again.values, full.values)
        check(full, again)
        expected = gathered(comm, full)
        moved = {k: g.to_input_layout(v) for k, v in saved[at].state.items()}
    with distribute(comm, A, np.arange(n), "block") as g:
        state = {k: g.from_input_layout(v) for k, v in moved.items()}
        other = run(g, on_superstep=None, resume=Resume(at, state, saved[at].scalars))
        assert np.array_equal(gathered(comm, other), expected)
    return full


def test_resume_from_a_superstep_state_is_bit_identical(comm):
    n, src, dst = generated("grid2d")
    A = csr_min(src, dst, None, n)

    def check(full, again):
        assert np.array_equal(again.extras["parent"], full.extras["parent"])

    full = resume_roundtrip(comm, A, lambda g, **kw: bfs(g, 0, **kw), check)
    assert full.iterations == 39  # the grid's diameter + 1
