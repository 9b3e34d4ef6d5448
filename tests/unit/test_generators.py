"""Generator specs, the Graph500 vertex permutation and the Kronecker initiator, without MPI."""

import numpy as np
import pytest

from hpcdist.graph.generators import (
    BLOCK_EDGES,
    _grid_edges,
    _rmat_block,
    feistel_permute,
    feistel_permute_reference,
    is_generator_spec,
    parse_generator_spec,
)
from hpcdist.runtime.errors import InputError


@pytest.mark.parametrize("scale", [1, 2, 3, 7, 10, 13])
def test_feistel_is_a_bijection(scale):
    n = 1 << scale
    p = feistel_permute(np.arange(n), scale, seed=11)
    assert np.array_equal(np.sort(p), np.arange(n))
    assert not np.array_equal(p, np.arange(n)) or scale == 1
    assert not np.array_equal(p, feistel_permute(np.arange(n), scale, seed=12)) or scale == 1


def test_feistel_rejects_values_outside_the_range():
    with pytest.raises(ValueError, match="outside"):
        feistel_permute(np.array([16]), 4, 1)


def test_feistel_large_scale_stays_in_range_and_is_injective_on_a_sample():
    v = np.arange(0, 2**40, 2**40 // 100_000, dtype=np.int64)
    p = feistel_permute(v, 40, seed=1)
    assert p.min() >= 0 and p.max() < 2**40 and np.unique(p).shape == v.shape


def test_specs():
    s = parse_generator_spec("rmat:12")
    assert (s.n_vertices, s.n_edges, s.scale) == (4096, 16 * 4096, 12)
    s = parse_generator_spec("rmat:10:4:9")
    assert (s.n_edges, s.seed) == (4096, 9)
    s = parse_generator_spec("er:1000:2.5")
    assert (s.n_vertices, s.n_edges) == (1000, 2500)
    s = parse_generator_spec("grid2d:3")
    assert (s.n_vertices, s.n_edges) == (9, 24)
    assert is_generator_spec("rmat:3") and not is_generator_spec("graph.txt") and not is_generator_spec("./a:b")


@pytest.mark.parametrize("spec,text", [("bogus:1", "unknown generator"), ("rmat:0", ">= 1"), ("rmat:63", "at most 62"),
                                       ("rmat:1:2:3:4", "expected rmat:SCALE"), ("er:5:x", "AVGDEG must be a number"),
                                       ("er:5:-1", ">= 0"), ("grid2d:", "must be a number")])
def test_bad_specs(spec, text):
    with pytest.raises(InputError, match=text):
        parse_generator_spec(spec)


def test_grid_edges_are_the_4_neighbours_both_ways():
    src, dst = _grid_edges(4, 0, 16)
    pairs = set(zip(src.tolist(), dst.tolist()))
    assert len(pairs) == src.shape[0] == 4 * 4 * 3
    assert all((b, a) in pairs for a, b in pairs)
    assert all(abs(a - b) in (1, 4) and not (abs(a - b) == 1 and min(a, b) % 4 == 3) for a, b in pairs)


def test_rmat_initiator_probabilities():
    spec = parse_generator_spec("rmat:1:100000")  # one level: the quadrant frequencies themselves
    src, dst = _rmat_block(spec, 0, BLOCK_EDGES)
    inv = np.argsort(feistel_permute(np.arange(2), 1, spec.seed))  # undo the permutation
    s, d = inv[src], inv[dst]
    freq = [np.mean((s == i) & (d == j)) for i, j in ((0, 0), (0, 1), (1, 0), (1, 1))]
    assert np.allclose(freq, [0.57, 0.19, 0.19, 0.05], atol=0.01)


def test_blocks_are_reproducible_and_distinct():
    spec = parse_generator_spec("rmat:10")
    a, b = _rmat_block(spec, 3, 1000), _rmat_block(spec, 3, 1000)
    c = _rmat_block(spec, 4, 1000)
    assert np.array_equal(a[0], b[0]) and not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("scale", [1, 4, 9, 18, 33, 62])
def test_numba_feistel_equals_numpy_reference(scale):
    v = np.unique(np.arange(5000, dtype=np.int64) * ((2**scale - 1) // 4999))
    assert v.max() < 2**scale
    assert np.array_equal(feistel_permute(v, scale, 5), feistel_permute_reference(v, scale, 5))
