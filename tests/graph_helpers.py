"""Shared helpers of the graph-algorithm tests: independent references (scipy, networkx),
small generated graphs with the awkward cases, and the ways a test distributes a graph
and collects a result.

Test modules import these from here (``from tests.graph_helpers import ...``), never
from one another, so that a test module's tests are collected only from its own file.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import scipy.sparse as sp

from tests.conftest import SHARED

GRAPHS = SHARED / "data" / "graphs"
PARTITIONERS = ("block", "hash", "metis")

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


def strided_share(comm, A: sp.csr_matrix, ids: np.ndarray, weighted: bool = True):
    """This rank's strided share of the CSR's arcs ``(src, dst, weights or None)`` and
    the original ids of its directory block."""
    from hpcdist.runtime.ranges import owned_range

    coo = A.tocoo()
    mine = slice(comm.rank, None, comm.size)
    start, stop = owned_range(A.shape[0], comm.size, comm.rank)
    return (coo.row[mine], coo.col[mine], coo.data[mine] if weighted else None,
            np.asarray(ids[start:stop], dtype=np.int64))


def distribute(comm, A: sp.csr_matrix, ids: np.ndarray, partitioner: str, weighted: bool = True):
    """A DistGraph of the CSR's arcs, each rank passing a strided share, original ids ``ids``."""
    from hpcdist.graph import from_edges

    src, dst, w, block_ids = strided_share(comm, A, ids, weighted)
    return from_edges(src, dst, w, n=A.shape[0], comm=comm, partitioner=partitioner, vertex_ids=block_ids)


def load_real(comm, name: str, partitioner: str, weighted=None):
    """A real graph of :data:`FILES` (or karate.gml) read by hpcdist's own reader."""
    from hpcdist.graph import load

    if name == "karate.gml":  # no reader for GML: hand the reference's arcs over
        A, ids = reference_graph(name)
        return distribute(comm, A, ids, partitioner, weighted=False)
    # facebook_combined lists each undirected edge once: read it symmetrised
    return load(str(GRAPHS / name), comm, partitioner=partitioner, weighted=weighted,
                undirected=name == "facebook_combined.txt")


def partitioners_for(name: str, n: int) -> tuple[str, ...]:
    """Every partitioner on graphs of the size of those in the shared data; on larger ones
    one, rotating over the graphs, so that each partitioner meets them and tests stay fast."""
    if n <= 12000:
        return PARTITIONERS
    return (PARTITIONERS[sum(map(ord, name)) % 3],)


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


def bfs_reference(A: sp.csr_matrix, source: int) -> tuple[np.ndarray, np.ndarray]:
    """Hop distances (-1 unreachable) and parents (input ids, -1 for root and unreachable)
    from scipy. The parent is the in-neighbour on the previous level of highest
    out-degree (stored edges, rows of ``A`` = sources), the smallest input id among equals."""
    from scipy.sparse.csgraph import shortest_path

    d = shortest_path(A, unweighted=True, indices=source)
    dist = np.where(np.isinf(d), -1, d).astype(np.int64)
    coo = A.tocoo()
    u, v = coo.row.astype(np.int64), coo.col.astype(np.int64)
    tree = (dist[u] >= 0) & (dist[v] == dist[u] + 1)
    u, v = u[tree], v[tree]
    out_degree = np.diff(A.indptr)
    best = np.lexsort((u, -out_degree[u], v))  # by child, then degree down, then id up
    first = np.ones(best.shape[0], dtype=bool)
    first[1:] = v[best][1:] != v[best][:-1]
    parent = np.full(A.shape[0], -1, dtype=np.int64)
    parent[v[best][first]] = u[best][first]
    return dist, parent


def cc_reference(A, ids):
    """Per vertex the smallest original id of its weakly connected component, and the sizes."""
    from scipy.sparse.csgraph import connected_components as scipy_cc

    count, label = scipy_cc(A, directed=True, connection="weak")
    smallest = np.full(count, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(smallest, label, np.asarray(ids, dtype=np.int64))
    return smallest[label], np.bincount(label)


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


def weighted_generated(kind: str):
    """:func:`generated` with weights in [0, 10): about 10 % zeros and some ties."""
    n, src, dst = generated(kind)
    rng = np.random.default_rng(11)
    w = rng.random(src.shape[0]) * 10.0
    w[rng.random(src.shape[0]) < 0.1] = 0.0  # zero weights
    w[::7] = np.round(w[::7])  # ties
    return n, src, dst, w


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
