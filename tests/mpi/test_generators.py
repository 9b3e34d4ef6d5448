"""Generated graphs are the same multiset of edges whatever the rank count."""

import numpy as np
import pytest

from hpcdist.graph.generators import BLOCK_EDGES, generate_edges, parse_generator_spec
from hpcdist.graph.io import read_edges

pytestmark = pytest.mark.mpi


class _Solo:
    """Rank 0 of 1: what one rank alone generates (generate_edges only asks rank and size)."""

    def Get_rank(self):
        return 0

    def Get_size(self):
        return 1


def _sorted_edges(src, dst):
    order = np.lexsort((dst, src))
    return src[order], dst[order]


@pytest.mark.parametrize("spec", ["rmat:14", "rmat:11:8:7", "er:1000:150:3", "grid2d:9"])
def test_same_edges_at_every_rank_count(comm, spec):
    el = read_edges(spec, comm)
    assert el.vertex_ids is None and el.weights is None and el.directed
    gen = parse_generator_spec(spec)
    assert el.n_vertices == gen.n_vertices
    src = np.concatenate(comm.allgather(el.src))
    dst = np.concatenate(comm.allgather(el.dst))
    assert src.shape == (gen.n_edges,)
    ref = _sorted_edges(*generate_edges(gen, _Solo()))
    got = _sorted_edges(src, dst)
    assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1])
    assert src.min() >= 0 and max(src.max(), dst.max()) < gen.n_vertices
    if spec.startswith(("rmat", "er")):
        assert gen.n_edges > BLOCK_EDGES or spec.startswith("rmat:11")  # several blocks split over the ranks


def test_rmat_is_skewed_and_permuted(comm):
    el = read_edges("rmat:14", comm)
    n = el.n_vertices
    deg = np.zeros(n, dtype=np.int64)
    np.add.at(deg, el.src, 1)
    comm.Allreduce(np.copy(deg), deg)
    assert deg.sum() == 16 * n
    # Kronecker: a heavy tail (max degree far above the mean of 16) and many isolated out-degrees
    assert deg.max() > 30 * 16 and (deg == 0).sum() > n // 10
    # the permutation scatters the hubs: without it the top-degree vertex would be 0
    assert int(np.argmax(deg)) != 0
    low_half = deg[: n // 2].sum() / deg.sum()
    assert 0.3 < low_half < 0.7  # unpermuted, ids below n/2 would hold A+B = 76% of out-edges


def test_undirected_generated(comm):
    el = read_edges("er:200:2:5", comm, undirected=True)
    assert not el.directed
    src = np.concatenate(comm.allgather(el.src))
    dst = np.concatenate(comm.allgather(el.dst))
    assert src.shape == (800,)
    pairs = set(zip(src.tolist(), dst.tolist()))
    assert all((b, a) in pairs for a, b in pairs)
    grid = read_edges("grid2d:5", comm, undirected=True)  # already both ways: not doubled
    assert comm.allreduce(grid.n_local_edges) == 4 * 5 * 4 and not grid.directed
