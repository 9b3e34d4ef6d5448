"""numba kernels of the communication optimizer's fixed-size paths (one pass each, no temporaries).

:mod:`hpcdist.graph.sparse_exchange` calls these with the numba backend; its numpy code
does the same with whole-array operations. The bytes written are the same either way:
bitmaps in :func:`numpy.packbits`' bit order (first value in the high bit), float32 values
rounded to nearest-even as :meth:`numpy.ndarray.astype` rounds them.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["round_float32", "narrow_send", "gather_float32", "spread_float32", "pack_bits", "unpack_bits", "pack_all",
           "unpack_all"]


@njit(cache=True)
def round_float32(values, n, wire):  # pragma: no cover - compiled
    """``wire[i] = float32(values[i])`` and ``values[i] = wire[i]`` (rounded in place) for ``i < n``."""
    for i in range(n):
        f = np.float32(values[i])
        wire[i] = f
        values[i] = np.float64(f)


@njit(cache=True)
def narrow_send(values, n, wire, index, out):  # pragma: no cover - compiled
    """:func:`round_float32` then :func:`gather_float32`, in one call."""
    round_float32(values, n, wire)
    gather_float32(wire, index, out)


@njit(cache=True)
def gather_float32(wire, index, out):  # pragma: no cover - compiled
    """``out[j] = wire[index[j]]``: the float32 send buffer."""
    for j in range(index.shape[0]):
        out[j] = wire[index[j]]


@njit(cache=True)
def spread_float32(recv, values, start):  # pragma: no cover - compiled
    """``values[start + j] = float64(recv[j])``: received float32 ghosts into the float64 slots."""
    for j in range(recv.shape[0]):
        values[start + j] = np.float64(recv[j])


@njit(cache=True)
def pack_bits(flags, index, lo, hi, out, o):  # pragma: no cover - compiled
    """Pack ``flags[index[lo:hi]]`` (0/1 bytes) into ``out[o:]`` in numpy.packbits order.

    Returns the bytes written, or -1 when a value is neither 0 nor 1.
    """
    n = hi - lo
    full = n >> 3
    seen = np.uint8(0)  # OR of every value: above 1 when one of them is
    for jb in range(full):
        base = lo + 8 * jb
        byte = np.uint8(0)
        for t in range(8):  # a byte at a time in a register: one store per 8 values
            v = flags[index[base + t]]
            seen |= v
            byte = (byte << np.uint8(1)) | v
        out[o + jb] = byte
    rest = n - 8 * full
    if rest:
        byte = np.uint8(0)
        for t in range(8):
            v = flags[index[lo + 8 * full + t]] if t < rest else np.uint8(0)
            seen |= v
            byte = (byte << np.uint8(1)) | v
        out[o + full] = byte
    return -1 if seen > 1 else (n + 7) >> 3


@njit(cache=True)
def unpack_bits(payload, o, n, values, start):  # pragma: no cover - compiled
    """Unpack ``n`` bits from ``payload[o:]`` into ``values[start:start + n]`` (uint8)."""
    full = n >> 3
    for jb in range(full):
        byte = payload[o + jb]
        base = start + 8 * jb
        for t in range(8):
            values[base + t] = (byte >> np.uint8(7 - t)) & np.uint8(1)
    for j in range(8 * full, n):
        values[start + j] = (payload[o + (j >> 3)] >> np.uint8(7 - (j & 7))) & np.uint8(1)


@njit(cache=True)
def pack_all(flags, index, bounds, out, displs):  # pragma: no cover - compiled
    """:func:`pack_bits` for every message (``bounds``: the messages' ranges of ``index``; ``displs``:
    where each starts in ``out``). Returns -1 when a value is neither 0 nor 1, else 0."""
    for i in range(bounds.shape[0] - 1):
        if pack_bits(flags, index, bounds[i], bounds[i + 1], out, displs[i]) < 0:
            return -1
    return 0


@njit(cache=True)
def unpack_all(payload, displs, bounds, values, start):  # pragma: no cover - compiled
    """:func:`unpack_bits` for every message: message ``i`` fills ``values[start + bounds[i]:start + bounds[i + 1]]``."""
    for i in range(bounds.shape[0] - 1):
        unpack_bits(payload, displs[i], bounds[i + 1] - bounds[i], values, start + bounds[i])
