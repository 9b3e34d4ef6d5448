"""Exact encodings of one halo message, chosen per message by its measured size (no MPI here).

A message is the segment of the send buffer that goes to one neighbour: the values of
``send_counts[r]`` owned vertices. Sender and receiver both keep the values of the
previous exchange (the sender what it sent, the receiver what it got), so a message
only has to say how the new values differ from those. :func:`encode` measures the
exact size of every encoding that applies and picks the smallest (Gemini's per-superstep
choice between sparse and dense, made on measured bytes rather than a density
threshold); the receiver learns the choice from a two-number header, so both sides
agree without another round.

Encodings (``mode``):

``DENSE``
    The raw values (``n * itemsize`` bytes): the plain exchange.
``SPARSE``
    The raw values of the ``k`` changed entries, then their positions, delta-encoded
    (the gaps between sorted positions, the first from 0, each in ``width`` = 1, 2, 4 or
    8 bytes: the fewest that hold the largest gap): ``k * (itemsize + width)`` bytes.
``XOR``
    Per value the exclusive-or of its bits with the previous value's, with its leading
    zero bytes dropped: a 4-bit byte count per value (two per byte), then the
    significant low bytes. Unchanged values cost half a byte; values that change only in
    their low mantissa bits (an iteration near convergence) a few bytes.
    4- and 8-byte types only.
``BITMAP``
    For 0/1 byte arrays (BFS frontiers): one bit per value, ``ceil(n / 8)`` bytes.
``FLIPS``
    For 0/1 byte arrays: the delta-encoded positions of the values that flipped, no
    values (a flip is a flip): ``k * width`` bytes.

Comparisons are on the bits, so ``-0.0``, NaNs and infinities travel exactly; every
encoding reproduces the sender's values bit for bit.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DENSE", "SPARSE", "XOR", "BITMAP", "FLIPS", "MODE_NAMES", "HEADER_BYTES", "encode", "decode",
           "index_width", "encode_positions", "decode_positions", "is_binary", "xor_widths", "choose", "bits"]

DENSE, SPARSE, XOR, BITMAP, FLIPS = 0, 1, 2, 3, 4
MODE_NAMES = ("dense", "sparse", "xor", "bitmap", "flips")
#: The header of one message: (mode | width << 8, payload bytes) as two int64.
HEADER_BYTES = 16

_UNSIGNED = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def bits(values: np.ndarray) -> np.ndarray:
    """The values' bit patterns as little-endian unsigned integers of the same size."""
    u = np.dtype(_UNSIGNED[values.dtype.itemsize]).newbyteorder("<")
    if values.dtype.byteorder == ">":
        values = values.astype(values.dtype.newbyteorder("<"))
    return values.view(u)


def is_binary(values: np.ndarray) -> bool:
    """True for a 1-byte array of 0s and 1s, which a bitmap carries exactly."""
    return values.dtype.itemsize == 1 and values.dtype.kind in "ub" and (
        values.shape[0] == 0 or int(values.view(np.uint8).max()) <= 1)


def index_width(max_gap: int) -> int:
    """Bytes per delta-encoded position: the fewest of 1, 2, 4, 8 that hold ``max_gap``."""
    for w in (1, 2, 4):
        if max_gap < 1 << (8 * w):
            return w
    return 8


def encode_positions(pos: np.ndarray) -> tuple[int, np.ndarray]:
    """Delta-encode strictly increasing positions: ``(width, bytes)``, first item the first position."""
    pos = np.asarray(pos, dtype=np.int64)
    if pos.shape[0] == 0:
        return 1, np.empty(0, dtype=np.uint8)
    gaps = np.empty_like(pos)
    gaps[0] = pos[0]
    np.subtract(pos[1:], pos[:-1], out=gaps[1:])
    w = index_width(int(gaps.max()))
    return w, gaps.astype(np.dtype(_UNSIGNED[w]).newbyteorder("<")).view(np.uint8)


def decode_positions(width: int, payload: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` positions that :func:`encode_positions` wrote into ``payload``."""
    gaps = np.frombuffer(np.ascontiguousarray(payload[: k * width]).tobytes(),
                         dtype=np.dtype(_UNSIGNED[width]).newbyteorder("<"))
    return np.cumsum(gaps, dtype=np.int64)


def xor_widths(diff: np.ndarray) -> np.ndarray:
    """Significant bytes of each XOR difference (0 for an unchanged value), as uint8."""
    w = np.zeros(diff.shape[0], dtype=np.uint8)
    for b in range(diff.dtype.itemsize):
        w += diff >= diff.dtype.type(1) << diff.dtype.type(8 * b)
    return w


def choose(n: int, itemsize: int, k: int, width: int, binary: bool, primed: bool,
           xor_bytes: int | None) -> int:
    """The encoding of a message from its measurements (the smallest; ties to the simpler).

    Parameters
    ----------
    n, itemsize : int
        Values in the message and their size.
    k, width : int
        Changed values and the bytes per delta-encoded position of theirs.
    binary : bool
        All values, now and before, are 0 or 1 bytes.
    primed : bool
        The receiver holds the previous values (False on the first exchange).
    xor_bytes : int or None
        Significant bytes of the XOR differences, None when XOR does not apply.
    """
    if not primed:
        return BITMAP if binary and (n + 7) // 8 < n else DENSE
    best, best_cost = DENSE, _cost(DENSE, n, k, 0, itemsize)
    for mode in ((BITMAP, FLIPS) if binary else (SPARSE,)):
        c = _cost(mode, n, k, width, itemsize)
        if c < best_cost:
            best, best_cost = mode, c
    if xor_bytes is not None and not binary and itemsize in (4, 8):
        c = _cost(XOR, n, k, 0, itemsize, xor_bytes)
        if c < best_cost:
            best = XOR
    return best


def _cost(mode: int, n: int, k: int, width: int, itemsize: int, xor_bytes: int = 0) -> int:
    if mode == DENSE:
        return n * itemsize
    if mode == SPARSE:
        return k * (width + itemsize)
    if mode == XOR:
        return (n + 1) // 2 + xor_bytes
    if mode == BITMAP:
        return (n + 7) // 8
    return k * width  # FLIPS


def encode(cur: np.ndarray, prev: np.ndarray | None, *, allow_xor: bool = True) -> tuple[int, int, np.ndarray]:
    """Encode one message: the smallest exact encoding of ``cur`` given the receiver has ``prev``.

    Parameters
    ----------
    cur : numpy.ndarray, 1-D
        The values to deliver.
    prev : numpy.ndarray or None
        What the receiver holds from the previous exchange (same shape and dtype), or
        None when it holds nothing (the first exchange): then only ``DENSE`` or
        ``BITMAP`` apply.
    allow_xor : bool
        Consider the ``XOR`` encoding.

    Returns
    -------
    mode : int
    width : int
        Bytes per delta-encoded position (``SPARSE``, ``FLIPS``), else 0.
    payload : numpy.ndarray of uint8
        The message; ``payload.nbytes`` is the cost that won. Ties go to the simpler
        encoding (dense first).
    """
    n, s = cur.shape[0], cur.dtype.itemsize
    binary = is_binary(cur) and (prev is None or is_binary(prev))
    cb = bits(cur)
    if prev is None:
        best = choose(n, s, 0, 0, binary, False, None)
        return (BITMAP, 0, np.packbits(cur.view(np.uint8))) if best == BITMAP else (DENSE, 0, cb.view(np.uint8).copy())
    diff = cb ^ bits(prev)
    pos = np.flatnonzero(diff)
    k = pos.shape[0]
    width, idx = encode_positions(pos)
    widths = xor_widths(diff) if allow_xor and not binary and s in (4, 8) else None
    best = choose(n, s, k, width, binary, True, None if widths is None else int(widths.sum(dtype=np.int64)))
    if best == DENSE:
        return DENSE, 0, cb.view(np.uint8).copy()
    if best == SPARSE:
        return SPARSE, width, np.concatenate([cb[pos].view(np.uint8), idx])
    if best == FLIPS:
        return FLIPS, width, idx
    if best == BITMAP:
        return BITMAP, 0, np.packbits(cur.view(np.uint8))
    assert widths is not None
    codes = np.zeros(n + (n & 1), dtype=np.uint8)
    codes[:n] = widths
    nibbles = codes[0::2] | (codes[1::2] << 4)
    keep = np.arange(s, dtype=np.uint8)[None, :] < widths[:, None]
    return XOR, 0, np.concatenate([nibbles, diff.view(np.uint8).reshape(n, s)[keep]])


def decode(mode: int, width: int, payload: np.ndarray, held: np.ndarray) -> None:
    """Apply one message to what the receiver holds: ``held`` becomes the sender's values.

    Parameters
    ----------
    mode, width : int
        From the message's header (see :func:`encode`).
    payload : numpy.ndarray of uint8
        The message, exactly its bytes.
    held : numpy.ndarray, 1-D
        The previous values (overwritten in place).
    """
    n, s = held.shape[0], held.dtype.itemsize
    hb = bits(held) if held.dtype.byteorder != ">" else None
    if hb is None:
        raise ValueError("decode: big-endian receive buffers are not supported")
    if mode == DENSE:
        if payload.shape[0] != n * s:
            raise ValueError(f"decode: dense message of {payload.shape[0]} bytes for {n} values of {s} bytes")
        hb[:] = np.frombuffer(payload.tobytes(), dtype=hb.dtype)
    elif mode == SPARSE:
        k = payload.shape[0] // (width + s)
        pos = decode_positions(width, payload[k * s:], k)
        hb[pos] = np.frombuffer(payload[: k * s].tobytes(), dtype=hb.dtype)
    elif mode == FLIPS:
        pos = decode_positions(width, payload, payload.shape[0] // width)
        hb[pos] ^= 1
    elif mode == BITMAP:
        hb[:] = np.unpackbits(payload, count=n)
    elif mode == XOR:
        codes = np.empty(2 * ((n + 1) // 2), dtype=np.uint8)
        nib = payload[: (n + 1) // 2]
        codes[0::2] = nib & 0x0F
        codes[1::2] = nib >> 4
        widths = codes[:n]
        keep = np.arange(s, dtype=np.uint8)[None, :] < widths[:, None]
        diff = np.zeros((n, s), dtype=np.uint8)
        diff[keep] = payload[(n + 1) // 2:]
        hb ^= diff.view(hb.dtype).reshape(n)
    else:
        raise ValueError(f"decode: unknown mode {mode}")
