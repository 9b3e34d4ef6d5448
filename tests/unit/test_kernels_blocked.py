"""The blocked pull (column blocks x eight-row lanes) equals the plain CSR pull bit for bit."""

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hpcdist.kernels import numba_cpu, numpy_ref


def keyed_csr(n_rows, n_cols, mean_degree, seed, weighted):
    """A random CSR with power-law-ish row lengths, rows sorted by distinct column keys.

    As the engine stores it: no repeated column in a row, each row's columns in increasing
    key order, and the keys a permutation (with gaps) unrelated to the column numbering.
    """
    rng = np.random.default_rng(seed)
    lengths = np.minimum(rng.zipf(1.8, n_rows) - 1 + rng.poisson(mean_degree, n_rows) // 2, n_cols)
    lengths[rng.random(n_rows) < 0.2] = 0  # rows without in-edges
    keys = rng.permutation(n_cols * 3)[:n_cols].astype(np.int64)
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    indices = np.empty(indptr[-1], dtype=np.int32)
    for i in range(n_rows):
        cols = rng.choice(n_cols, lengths[i], replace=False)
        indices[indptr[i]:indptr[i + 1]] = cols[np.argsort(keys[cols])]
    data = rng.random(indices.shape[0]) * 10.0 ** rng.uniform(-3, 3, indices.shape[0]) if weighted else None
    # Magnitudes over many decades: any change of summation order would show in the last bits.
    x = (rng.random(n_cols) - 0.2) * 10.0 ** rng.uniform(-12, 12, n_cols)
    return indptr, indices, data, keys, x


def bits(a):
    return a.view(np.int64)


def reference(indptr, indices, data, x):
    out = np.full(indptr.shape[0] - 1, np.nan)
    numba_cpu.spmv_csr(indptr, indices, data, x, out)
    return out


@settings(max_examples=60, deadline=None)
@given(
    n_rows=st.integers(0, 300),
    n_cols=st.integers(1, 400),
    mean_degree=st.integers(0, 40),
    block_cols=st.sampled_from([1, 2, 3, 7, 16, 61, 128, 10_000]),
    weighted=st.booleans(),
    threads=st.integers(1, 2),
    groups=st.integers(1, 5),
    seed=st.integers(0, 2**31),
)
def test_blocked_pull_is_bit_identical_to_plain(n_rows, n_cols, mean_degree, block_cols, weighted, threads, groups,
                                                seed):
    indptr, indices, data, keys, x = keyed_csr(n_rows, n_cols, mean_degree, seed, weighted)
    expected = reference(indptr, indices, data, x)
    plan = numba_cpu.blocked_pull(indptr, indices, data, keys, block_cols, n_groups=groups)
    assert plan.n_blocks == max(1, -(-n_cols // block_cols)) and plan.n_groups == groups
    out = np.full(n_rows, np.nan)
    previous = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        plan(x, out)
        plan(x, out)  # a plan is reusable: the second call starts from scratch, not from the first's sums
    finally:
        numba.set_num_threads(previous)
    assert np.array_equal(bits(out), bits(expected))
    ref = np.empty(n_rows)
    numpy_ref.spmv_csr(indptr, indices, data, x, ref)
    assert np.array_equal(bits(out), bits(ref))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("weighted", [False, True])
def test_blocked_pull_on_larger_graphs_and_the_order_matters(seed, weighted):
    indptr, indices, data, keys, x = keyed_csr(3000, 5000, 30, seed, weighted)
    expected = reference(indptr, indices, data, x)
    out = np.empty(3000)
    numba_cpu.blocked_pull(indptr, indices, data, keys, 700, n_groups=3)(x, out)
    assert np.array_equal(bits(out), bits(expected))
    # The test can tell orders apart: summing each block apart and adding the partial sums
    # (what a naive blocked kernel would do) changes some results in the last bits.
    rank = np.argsort(np.argsort(keys))
    naive = np.zeros(3000)
    for b in range(-(-5000 // 700)):
        sel = (rank[indices] // 700) == b
        part = np.zeros(3000)
        for i in range(3000):
            acc = 0.0
            for j in range(indptr[i], indptr[i + 1]):
                if sel[j]:
                    acc += (1.0 if data is None else data[j]) * x[indices[j]]
            part[i] = acc
        naive += part
    assert not np.array_equal(bits(naive), bits(expected))


def test_special_values_and_padding_keep_sums():
    # inf, -inf, NaN and signed zeros pass through the +0.0 padding unchanged.
    indptr = np.array([0, 1, 3, 4, 6, 6, 7, 9], dtype=np.int64)
    indices = np.array([0, 1, 2, 3, 4, 5, 1, 0, 5], dtype=np.int32)
    keys = np.arange(6, dtype=np.int64)
    x = np.array([-0.0, np.inf, -np.inf, np.nan, 1e300, 1e300])
    expected = reference(indptr, indices, None, x)
    for block_cols in (1, 2, 6):
        out = np.empty(7)
        numba_cpu.blocked_pull(indptr, indices, None, keys, block_cols)(x, out)
        assert np.array_equal(bits(out), bits(expected)), block_cols


def test_make_pull_size_rule(monkeypatch):
    indptr, indices, data, keys, x = keyed_csr(200, 200, 10, 1, False)
    assert numba_cpu.make_pull(indptr, indices, None, keys).name == "plain"
    assert numpy_ref.make_pull(indptr, indices, None, keys).name == "plain"
    monkeypatch.setattr(numba_cpu, "BLOCKED_MIN_EDGES", 0)
    monkeypatch.setattr(numba_cpu, "BLOCK_COLS", 32)
    plan = numba_cpu.make_pull(indptr, indices, None, keys)
    assert plan.name == "blocked" and plan.n_blocks == 7 and "7 column blocks" in plan.describe()
    out = np.empty(200)
    plan(x, out)
    assert np.array_equal(bits(out), bits(reference(indptr, indices, None, x)))
