"""The halo message encodings (no MPI): exact round trips, the sizes the choice rests on,
and the numba kernels writing the numpy codec's very bytes."""

import numpy as np
import pytest

from hpcdist.graph import halo_codec as codec
from hpcdist.kernels import numba_cpu

DTYPES = [np.float64, np.int64, np.float32, np.int32, np.int16, np.uint8]


def changed_copy(rng, prev, frac):
    """``prev`` with a fraction of its entries changed (small float changes: low bits only)."""
    cur = prev.copy()
    m = rng.random(prev.shape[0]) < frac
    if cur.dtype.kind == "f":
        cur[m] = cur[m] * (1 + 1e-9) + 1e-300
    else:
        cur[m] = cur[m] + 1
    return cur


def roundtrip(cur, prev):
    mode, width, payload = codec.encode(cur, prev)
    held = np.zeros_like(cur) if prev is None else prev.copy()
    codec.decode(mode, width, payload, held)
    assert np.array_equal(held.view(np.uint8), cur.view(np.uint8))
    return mode, width, payload


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("frac", [0.0, 0.001, 0.05, 0.3, 1.0])
@pytest.mark.parametrize("n", [0, 1, 7, 1000])
def test_round_trip_is_exact(dtype, frac, n):
    rng = np.random.default_rng(n)
    prev = (rng.random(n) * 1000).astype(dtype)
    cur = changed_copy(rng, prev, frac)
    roundtrip(cur, None)
    mode, _, payload = roundtrip(cur, prev)
    # never more than the plain exchange
    assert payload.nbytes <= cur.nbytes
    if frac == 0.0:
        assert payload.nbytes == 0 and (n == 0 or mode == codec.SPARSE)


def test_special_floats_travel_bit_for_bit():
    a = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1.0, 5e-324])
    b = np.array([-0.0, 0.0, np.inf, np.nan, 1.0, -np.inf, -5e-324])
    for cur, prev in ((b, a), (a, b), (a, None)):
        roundtrip(cur, prev)
    # a NaN with another payload is another value
    odd = a.copy()
    odd.view(np.uint64)[2] ^= 1
    mode, _, payload = roundtrip(odd, a)
    assert payload.nbytes < a.nbytes


def test_sparse_size_is_values_plus_delta_encoded_positions():
    n = 100_000
    prev = np.arange(n, dtype=np.float64)
    cur = prev.copy()
    pos = np.array([3, 10, 200, 250, 60_000])  # largest gap 59_750 -> two bytes per position
    cur[pos] += 0.5
    mode, width, payload = codec.encode(cur, prev)
    assert (mode, width) == (codec.SPARSE, 2)
    assert payload.nbytes == pos.size * (8 + 2)
    assert np.array_equal(codec.decode_positions(width, payload[pos.size * 8:], pos.size), pos)


@pytest.mark.parametrize("gaps,width", [([0, 255], 1), ([1, 256], 2), ([5, 65_536], 4), ([2**32], 8)])
def test_position_width_is_the_fewest_bytes_for_the_largest_gap(gaps, width):
    pos = np.cumsum(gaps)
    w, payload = codec.encode_positions(pos)
    assert w == width and payload.nbytes == width * len(gaps)
    assert np.array_equal(codec.decode_positions(w, payload, len(gaps)), pos)


def test_frontier_flags_go_as_a_bitmap_or_as_flips():
    rng = np.random.default_rng(1)
    n = 10_000
    prev = (rng.random(n) < 0.01).astype(np.uint8)
    mode, _, payload = roundtrip(prev, None)  # first exchange: a bitmap of n/8 bytes
    assert mode == codec.BITMAP and payload.nbytes == (n + 7) // 8
    cur = prev.copy()
    cur[[5, 9000]] ^= 1
    mode, width, payload = roundtrip(cur, prev)  # two flips: two positions, no values
    assert mode == codec.FLIPS and payload.nbytes == 2 * width
    dense_change = (rng.random(n) < 0.5).astype(np.uint8)
    mode, _, payload = roundtrip(dense_change, prev)
    assert mode == codec.BITMAP and payload.nbytes == (n + 7) // 8
    # not 0/1: no bitmap
    other = prev.copy()
    other[0] = 2
    assert codec.encode(other, None)[0] == codec.DENSE


def test_xor_size_counts_the_significant_bytes():
    prev = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    cur = prev.copy()
    cur.view(np.uint64)[:3] ^= np.array([0x1, 0x1FF, 0x10000], dtype=np.uint64)  # 1, 2 and 3 bytes
    widths = codec.xor_widths(cur.view(np.uint64) ^ prev.view(np.uint64))
    assert widths.tolist() == [1, 2, 3, 0, 0]
    # 5 values: 3 bytes of width codes + 6 significant bytes = 9 < sparse 3 * (8 + 1) = 27 < dense 40
    mode, _, payload = roundtrip(cur, prev)
    assert mode == codec.XOR and payload.nbytes == 3 + 6


def test_choice_is_the_smallest_size_with_ties_to_dense():
    assert codec.choose(10, 8, 10, 1, False, True, None) == codec.DENSE  # sparse 90 > 80
    assert codec.choose(10, 8, 8, 1, False, True, None) == codec.SPARSE  # 72 < 80
    assert codec.choose(10, 4, 8, 1, False, True, None) == codec.DENSE  # tie: 40 = 40
    assert codec.choose(10, 8, 10, 1, False, True, 30) == codec.XOR  # 5 + 30 < 80
    assert codec.choose(16, 1, 1, 1, True, True, None) == codec.FLIPS
    assert codec.choose(16, 1, 0, 1, True, False, None) == codec.BITMAP
    assert codec.choose(16, 8, 0, 1, False, False, 0) == codec.DENSE


def kernel_message(mode_values, prev, dtype):
    """The numba kernels' message for a segment (via a send index), and the updated sent copy."""
    n = prev.shape[0]
    index = np.random.default_rng(3).permutation(n)
    vals = np.empty(n, dtype=dtype)
    vals[index] = mode_values
    vb, sent = codec.bits(vals), codec.bits(prev.copy())
    k, max_gap, xor_bytes, binary = numba_cpu.halo_scan(vb, index, sent, 0, n).tolist()
    s = np.dtype(dtype).itemsize
    binary = bool(binary) and s == 1
    width = codec.index_width(max_gap)
    mode = codec.choose(n, s, k, width, binary, True, xor_bytes if s in (4, 8) and not binary else None)
    if mode not in (codec.SPARSE, codec.FLIPS):
        width = 0
    out = np.zeros(n * s + 8, dtype=np.uint8)
    nbytes = numba_cpu.halo_write(mode, width, vb, index, sent, 0, n, out)
    assert np.array_equal(sent, codec.bits(mode_values))
    return mode, width, out[:nbytes]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("frac", [0.0, 0.002, 0.1, 0.6, 1.0])
def test_numba_kernels_write_and_read_the_codecs_bytes(dtype, frac):
    rng = np.random.default_rng(7)
    n = 3001
    if dtype is np.uint8:
        prev = (rng.random(n) < 0.2).astype(np.uint8)
        cur = prev.copy()
        cur[rng.random(n) < frac] ^= 1
    else:
        prev = (rng.random(n) * 1000).astype(dtype)
        cur = changed_copy(rng, prev, frac)
    expected = codec.encode(cur, prev)
    mode, width, payload = kernel_message(cur, prev, dtype)
    assert (mode, width) == expected[:2]
    assert np.array_equal(payload, expected[2])
    held = codec.bits(prev.copy())
    aligned = np.zeros(payload.shape[0] + 8, dtype=np.uint8)[: payload.shape[0]]
    aligned[:] = payload
    numba_cpu.halo_read(mode, width, aligned, held)
    assert np.array_equal(held, codec.bits(cur))


def test_unknown_mode_and_wrong_sizes_are_refused():
    with pytest.raises(ValueError):
        codec.decode(9, 0, np.zeros(0, dtype=np.uint8), np.zeros(3))
    with pytest.raises(ValueError):
        codec.decode(codec.DENSE, 0, np.zeros(5, dtype=np.uint8), np.zeros(3))
