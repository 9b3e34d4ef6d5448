"""Kernels: numba equals the numpy reference bit for bit, and both equal the definition."""

import numpy as np
import pytest
import scipy.sparse as sp

from hpcdist.kernels import kernels_for, numba_cpu, numpy_ref
from hpcdist.runtime.errors import BackendError

BACKENDS = [numpy_ref, numba_cpu]


def random_csr(rows, cols, density, seed, weighted):
    m = sp.random(rows, cols, density=density, random_state=seed, format="csr")
    data = m.data * 3 if weighted else None
    # Shuffle each row so the kernels are tested on unsorted columns (as the engine stores them).
    rng = np.random.default_rng(seed)
    idx = m.indices.copy()
    for i in range(rows):
        a, b = m.indptr[i], m.indptr[i + 1]
        perm = rng.permutation(b - a)
        idx[a:b] = idx[a:b][perm]
        if data is not None:
            data[a:b] = data[a:b][perm]
    return m.indptr.astype(np.int64), idx.astype(np.int32), data


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", [(0, 5), (1, 1), (200, 300), (1500, 1500)])
def test_spmv_identical_across_backends_and_correct(weighted, shape):
    indptr, indices, data = random_csr(*shape, 0.01 if shape[0] > 10 else 1.0, 4, weighted)
    x = np.random.default_rng(1).random(shape[1])
    outs = []
    for k in BACKENDS:
        out = np.full(shape[0], np.nan)
        k.spmv_csr(indptr, indices, data, x, out)
        outs.append(out)
    assert np.array_equal(outs[0], outs[1])
    expected = np.zeros(shape[0])
    for i in range(shape[0]):  # the definition: sequential sum in stored order
        acc = 0.0
        for j in range(indptr[i], indptr[i + 1]):
            acc += (1.0 if data is None else data[j]) * x[indices[j]]
        expected[i] = acc
    assert np.array_equal(outs[0], expected)


def test_pagerank_update_and_scale_identical():
    rng = np.random.default_rng(2)
    n = 5000
    y, dw, p, x_old = (rng.random(n) for _ in range(4))
    res = []
    for k in BACKENDS:
        x_new, diff, scaled = np.empty(n), np.empty(n), np.zeros(n + 3)
        k.pagerank_update(y, dw, 0.37, p, 0.85, x_old, x_new, diff)
        k.scale_by(x_old, dw, scaled)
        res.append((x_new, diff, scaled))
    for a, b in zip(*res):
        assert np.array_equal(a, b)
    x_new, diff, scaled = res[0]
    assert np.allclose(x_new, 0.85 * (y + 0.37 * dw) + 0.15 * p, rtol=1e-15)
    assert np.array_equal(diff, np.abs(x_new - x_old)) and np.array_equal(scaled[:n], x_old * dw)
    assert np.all(scaled[n:] == 0)


def test_kernels_for_names():
    assert kernels_for("numpy") is numpy_ref and kernels_for("numba") is numba_cpu
    with pytest.raises(BackendError, match="no graph kernels for backend 'cupy'"):
        kernels_for("cupy")


@pytest.mark.parametrize("parallel", [False, True])
def test_fused_pagerank_step_identical_serial_and_parallel(monkeypatch, parallel):
    if parallel:  # the prange versions, which large local graphs use
        monkeypatch.setattr(numba_cpu, "PARALLEL_MIN", 0)
        monkeypatch.setattr(numba_cpu, "PARALLEL_MIN_EDGES", 0)
    rng = np.random.default_rng(9)
    n = 20_000
    y, dw, p, x_old, inv = (rng.random(n) * 1e-4 for _ in range(5))
    dangling = (rng.random(n) < 0.3).astype(np.uint8)
    outs = []
    for k in BACKENDS:
        x_new, contrib = np.empty(n), np.zeros(n + 2)
        limbs = k.pagerank_step(y, dw, 0.25, p, 0.85, inv, dangling, x_old, x_new, contrib, 0.5)
        outs.append((limbs, x_new, contrib))
    for a, b in zip(*outs):
        assert np.array_equal(a, b)
    limbs, x_new, contrib = outs[0]
    assert np.array_equal(contrib[:n], x_new * inv) and limbs[6] == 0
    scale = 0.5
    assert np.array_equal(limbs[:3], numpy_ref.fixed_point_limbs(np.abs(x_new - x_old), scale))
    assert np.array_equal(limbs[3:6], numpy_ref.fixed_point_limbs(x_new[dangling == 1], scale))
    indptr, indices, data = random_csr(300, 300, 0.05, 3, True)
    x = rng.random(300)
    for d in (None, data):
        a, b = np.empty(300), np.empty(300)
        numpy_ref.spmv_csr(indptr, indices, d, x, a)
        numba_cpu.spmv_csr(indptr, indices, d, x, b)
        assert np.array_equal(a, b)
    # A term past the agreed bound is flagged, not silently wrapped.
    big = numba_cpu.pagerank_step(y * 1e6, dw, 0.25, p, 0.85, inv, dangling, x_old, np.empty(n), np.zeros(n), scale)
    assert big[6] > 0
