"""Graph checkpoints: fingerprints, the superstep hook, elastic resume, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from hpcdist.graph import from_edges, pagerank
from hpcdist.graph.recovery import CheckpointPolicy, Checkpointer, graph_fingerprint

pytestmark = pytest.mark.mpi

N = 400


def _edges(rank, size, n=N, salt=0):
    src = np.arange(rank, n, size, dtype=np.int64)
    src = np.concatenate([src, src, src])
    dst = np.concatenate([(src[: src.size // 3] * 7 + 3) % n, (src[: src.size // 3] ** 2 + salt) % (n - 3),
                          (src[: src.size // 3] // 2)])
    return src, dst


def _graph(comm, partitioner="block", salt=0):
    src, dst = _edges(comm.rank, comm.size, salt=salt)
    return from_edges(src, dst, n=N, comm=comm, partitioner=partitioner)


def test_fingerprint_ignores_partitioner_and_rank_count(comm):
    prints = set()
    for part in ("block", "hash", "metis"):
        with _graph(comm, part) as g:
            prints.add(graph_fingerprint(g))
    solo = comm.Split(comm.rank, 0)  # every rank alone holds the whole graph
    try:
        src = np.concatenate([_edges(r, comm.size)[0] for r in range(comm.size)])
        dst = np.concatenate([_edges(r, comm.size)[1] for r in range(comm.size)])
        with from_edges(src, dst, n=N, comm=solo) as g:
            prints.add(graph_fingerprint(g))
    finally:
        solo.Free()
    assert len(prints) == 1, prints
    (fp,) = prints
    assert fp.startswith(f"n={N},") and ",directed,unweighted,h=" in fp


def test_fingerprint_sees_another_graph(comm):
    with _graph(comm) as a, _graph(comm, salt=1) as b:
        assert graph_fingerprint(a) != graph_fingerprint(b)


def test_checkpointer_without_store_only_agrees(comm):
    """No store, no signal: the hook writes nothing and never stops the run."""
    with _graph(comm) as g:
        hook = Checkpointer(g, None, "pagerank", {"alpha": 0.85}, CheckpointPolicy(every=1))
        r = pagerank(g, tol=1e-12, on_superstep=hook)
        assert r.converged and hook.written == []
