"""Synthetic graphs generated in slices, the same whatever the rank count.

Edges are produced in fixed-size blocks of :data:`BLOCK_EDGES`, each rank generating
the blocks in ``owned_range(n_blocks, size, rank)``, from counter-based randomness: ``er``
draws block ``b`` from ``Philox`` keyed by the seed with ``b`` in the counter's high word;
``rmat`` (which needs SCALE uniforms per edge) evaluates the SplitMix64 stream at the
edge's own position, in numba. The multiset of edges therefore does not depend on the
rank count, and no rank holds more than its share.

Specs
-----
``rmat:SCALE[:EDGEFACTOR[:SEED]]``
    Graph500 Kronecker generator: n = 2^SCALE, m = EDGEFACTOR * n (default 16),
    initiator A=0.57, B=0.19, C=0.19 (D=0.05), then the Graph500 vertex permutation.
    Self-loops and duplicate edges are kept, as Graph500 generates them.
``er:N:AVGDEG[:SEED]``
    Directed Erdős–Rényi with round(N * AVGDEG) edges, endpoints uniform over 0..N-1
    (drawn with replacement: duplicates collapse when the graph is built).
``grid2d:N``
    N x N grid, vertex ``i * N + j``, each of the 4 neighbours both ways:
    4 N (N - 1) arcs.

The vertex permutation is a keyed Feistel network on ``2 * ceil(SCALE / 2)`` bits with
cycle walking back into 0..2^SCALE-1: a bijection computed per vertex in O(1) memory
(Graph500's reference shuffles an O(n) table instead; the distribution of the graph
is the same, the labels differ).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from hpcdist.runtime.errors import InputError
from hpcdist.runtime.ranges import owned_range

if TYPE_CHECKING:
    from mpi4py import MPI

__all__ = ["GeneratorSpec", "parse_generator_spec", "generate_edges", "feistel_permute", "feistel_permute_reference",
           "is_generator_spec",
           "GENERATORS", "BLOCK_EDGES", "DEFAULT_SEED"]

#: Edges per random block: fixed, so that the graph does not depend on the rank count.
BLOCK_EDGES = 1 << 16
DEFAULT_SEED = 1
RMAT_A, RMAT_B, RMAT_C = 0.57, 0.19, 0.19
FEISTEL_ROUNDS = 4
GENERATORS = ("rmat", "er", "grid2d")
MAX_SCALE = 62
#: Seeds key 64-bit generators (SplitMix64, the Feistel keys, Philox's first key word).
MAX_SEED = 2**64 - 1
#: Vertex ids and edge positions are int64; above this the generators' arithmetic overflows.
MAX_COUNT = 2**MAX_SCALE

_SPEC = re.compile(r"^([A-Za-z][A-Za-z0-9_]*):(.*)$")
_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass(frozen=True)
class GeneratorSpec:
    """A parsed generator spec: kind, vertex and edge counts, seed and the parameters."""

    kind: str
    n_vertices: int
    n_edges: int
    seed: int
    scale: int = 0
    side: int = 0
    text: str = ""


def is_generator_spec(spec: str) -> bool:
    """True when ``spec`` looks like ``name:params`` rather than a file name."""
    return bool(_SPEC.match(spec)) and "/" not in spec.split(":", 1)[0]


def _ints(spec: str, parts: list[str], names: list[str], n_required: int) -> list[str]:
    if not n_required <= len(parts) <= len(names):
        usage = ":".join(names[:n_required]) + "".join(f"[:{p}" for p in names[n_required:]) + "]" * (
            len(names) - n_required
        )
        raise InputError(f"generator spec {spec!r}: expected {spec.split(':')[0]}:{usage}")
    return parts


def parse_generator_spec(spec: str) -> GeneratorSpec:
    """Parse ``rmat:…``, ``er:…`` or ``grid2d:…``; InputError for anything else."""
    m = _SPEC.match(spec)
    if not m:
        raise InputError(f"not a generator spec: {spec!r}")
    kind, params = m.group(1).lower(), m.group(2).split(":")
    if kind not in GENERATORS:
        raise InputError(f"unknown generator {kind!r} in {spec!r} (known: rmat:SCALE[:EDGEFACTOR[:SEED]], "
                         "er:N:AVGDEG[:SEED], grid2d:N)")

    def num(text: str, what: str, cast=int, low=0, high=MAX_COUNT):
        try:
            value = cast(text)
        except ValueError:
            raise InputError(f"generator spec {spec!r}: {what} must be a number, got {text!r}") from None
        if not (isinstance(value, float) and math.isfinite(value) or isinstance(value, int)) or value < low:
            raise InputError(f"generator spec {spec!r}: {what} must be >= {low}, got {text!r}")
        if value > high:
            raise InputError(f"generator spec {spec!r}: {what} must be at most {_power_of_two(high)}, got {text!r}")
        return value

    def counted(gen: GeneratorSpec) -> GeneratorSpec:
        if gen.n_edges > MAX_COUNT:
            raise InputError(f"generator spec {spec!r}: {gen.n_edges:.3g} edges, more than the "
                             f"{_power_of_two(MAX_COUNT)} a generator can number")
        return gen

    if kind == "rmat":
        _ints(spec, params, ["SCALE", "EDGEFACTOR", "SEED"], 1)
        scale = num(params[0], "SCALE", low=1)
        if scale > MAX_SCALE:
            raise InputError(f"generator spec {spec!r}: SCALE must be at most {MAX_SCALE}")
        ef = num(params[1], "EDGEFACTOR", low=1) if len(params) > 1 else 16
        seed = num(params[2], "SEED", high=MAX_SEED) if len(params) > 2 else DEFAULT_SEED
        n = 1 << scale
        return counted(GeneratorSpec("rmat", n, ef * n, seed, scale=scale, text=spec))
    if kind == "er":
        _ints(spec, params, ["N", "AVGDEG", "SEED"], 2)
        n = num(params[0], "N", low=1)
        deg = num(params[1], "AVGDEG", cast=float, high=float(MAX_COUNT))
        seed = num(params[2], "SEED", high=MAX_SEED) if len(params) > 2 else DEFAULT_SEED
        # n * deg <= 2^124 here: finite, so round() cannot overflow
        return counted(GeneratorSpec("er", n, int(round(n * deg)), seed, text=spec))
    _ints(spec, params, ["N"], 1)
    side = num(params[0], "N", low=1, high=2 ** (MAX_SCALE // 2))
    return counted(GeneratorSpec("grid2d", side * side, 4 * side * (side - 1), 0, side=side, text=spec))


def _power_of_two(value: int | float) -> str:
    """``2^62`` for 2**62, ``2^64-1`` for 2**64 - 1: the limits read better so."""
    value = int(value)
    if value & (value + 1) == 0:
        return f"2^{(value + 1).bit_length() - 1}-1"
    if value & (value - 1) == 0:
        return f"2^{value.bit_length() - 1}"
    return f"{value:,}"


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijective 64-bit mixer, vectorised over uint64."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _feistel_keys(seed: int) -> np.ndarray:
    return _mix64(np.arange(1, FEISTEL_ROUNDS + 1, dtype=np.uint64) + _mix64(np.array([seed], dtype=np.uint64)))


def feistel_permute_reference(v: np.ndarray, scale: int, seed: int) -> np.ndarray:
    """:func:`feistel_permute` in plain numpy (the reference the numba kernel is tested against)."""
    half = (scale + 1) // 2
    mask = np.uint64((1 << half) - 1)
    n = np.uint64(1) << np.uint64(scale)
    keys = _feistel_keys(seed)
    out = np.asarray(v, dtype=np.int64).astype(np.uint64)
    if out.shape[0] and out.max() >= n:
        raise ValueError(f"feistel_permute_reference: values outside 0..2^{scale}-1")
    todo = np.ones(out.shape[0], dtype=bool)
    while todo.any():
        y = out[todo]
        left, right = y >> np.uint64(half), y & mask
        for k in keys:
            left, right = right, left ^ (_mix64(right ^ k) & mask)
        y = (left << np.uint64(half)) | right
        out[todo] = y
        todo[todo] = y >= n
    return out.astype(np.int64)


@njit(cache=True)
def _mix64_scalar(x):
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@njit(cache=True)
def _feistel_inplace(values, scale, keys):
    half = np.uint64((scale + 1) // 2)
    mask = (np.uint64(1) << half) - np.uint64(1)
    n = np.uint64(1) << np.uint64(scale)
    for i in range(values.shape[0]):
        y = np.uint64(values[i])
        while True:  # cycle walking: at most a few rounds, as the domain is under 2n
            left = y >> half
            right = y & mask
            for k in keys:
                left, right = right, left ^ (_mix64_scalar(right ^ k) & mask)
            y = (left << half) | right
            if y < n:
                break
        values[i] = np.int64(y)


def feistel_permute(v: np.ndarray, scale: int, seed: int) -> np.ndarray:
    """A keyed pseudo-random bijection of 0..2^scale-1, evaluated per vertex.

    Balanced Feistel rounds on ``2 * ceil(scale / 2)`` bits; values that land outside
    the range are encrypted again (cycle walking), which keeps it a bijection.
    """
    out = np.array(v, dtype=np.int64, copy=True)
    if out.shape[0] and (out.min() < 0 or out.max() >= 1 << scale):
        raise ValueError(f"feistel_permute: values outside 0..2^{scale}-1")  # would cycle forever
    _feistel_inplace(out, scale, _feistel_keys(seed))
    return out


#: Quadrant thresholds of the initiator on 32 bits: A, A+B, A+B+C.
_RMAT_CUTS = np.array([round(x * 2**32) for x in (RMAT_A, RMAT_A + RMAT_B, RMAT_A + RMAT_B + RMAT_C)],
                      dtype=np.uint64)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True)
def _rmat_edges(first_edge, key, scale, cuts, src, dst):
    """Kronecker edges ``first_edge ..`` from a counter-based stream (SplitMix64 at position c).

    Word ``c = edge * words + w`` of the stream is ``mix64(key + (c + 1) * golden)``: the
    SplitMix64 sequence evaluated at any position, so any block of edges is generated
    without generating the ones before it. Each 64-bit word gives two 32-bit uniforms,
    one per level; a uniform picks quadrant A, B, C or D.
    """
    words = (scale + 1) // 2
    c0, c1, c2 = cuts[0], cuts[1], cuts[2]
    for e in range(src.shape[0]):
        base = np.uint64(first_edge + e) * np.uint64(words)
        s = np.int64(0)
        d = np.int64(0)
        word = np.uint64(0)
        for level in range(scale):
            if (level & 1) == 0:
                word = _mix64_scalar(key + (base + np.uint64(level >> 1) + np.uint64(1)) * _GOLDEN)
                u = word & np.uint64(0xFFFFFFFF)
            else:
                u = word >> np.uint64(32)
            # branch-free (the quadrant is random, so branches would mispredict):
            # row bit for C, D; column bit for B, D
            row = np.int64(u >= c1)
            col = np.int64(u >= c2) | (np.int64(u >= c0) & (1 - row))
            s |= row << level
            d |= col << level
        src[e] = s
        dst[e] = d


def _rmat_block(spec: GeneratorSpec, block: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    # One 32-bit uniform per level picks the quadrant with probabilities A, B, C, D: the
    # same distribution as Graph500's two draws (row bit, then column bit given the row).
    src = np.empty(count, dtype=np.int64)
    dst = np.empty(count, dtype=np.int64)
    key = _mix64(np.array([spec.seed], dtype=np.uint64) ^ np.uint64(0x5851F42D4C957F2D))[0]
    _rmat_edges(block * BLOCK_EDGES, key, spec.scale, _RMAT_CUTS, src, dst)
    keys = _feistel_keys(spec.seed)
    _feistel_inplace(src, spec.scale, keys)
    _feistel_inplace(dst, spec.scale, keys)
    return src, dst


def _block_rng(seed: int, block: int) -> np.random.Generator:
    return np.random.Generator(np.random.Philox(key=seed, counter=[0, 0, 0, block]))


def _er_block(spec: GeneratorSpec, block: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    rng = _block_rng(spec.seed, block)
    return rng.integers(0, spec.n_vertices, count, dtype=np.int64), rng.integers(0, spec.n_vertices, count, dtype=np.int64)


def _grid_edges(side: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    v = np.arange(start, stop, dtype=np.int64)
    i, j = v // side, v % side
    srcs, dsts = [], []
    for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        ok = (i + di >= 0) & (i + di < side) & (j + dj >= 0) & (j + dj < side)
        srcs.append(v[ok])
        dsts.append((i[ok] + di) * side + j[ok] + dj)
    return np.concatenate(srcs), np.concatenate(dsts)


def generate_edges(spec: GeneratorSpec, comm: "MPI.Intracomm") -> tuple[np.ndarray, np.ndarray]:
    """This rank's slice of the generated edges (global ids).

    Local computation only: each rank takes its blocks (``rmat``, ``er``) or the out-edges
    of its vertex range (``grid2d``), so together the ranks hold every edge once.

    Parameters
    ----------
    spec : GeneratorSpec
    comm : mpi4py.MPI.Intracomm
        Only its rank and size are used.

    Returns
    -------
    src, dst : numpy.ndarray of int64
    """
    rank, size = comm.Get_rank(), comm.Get_size()
    if spec.kind == "grid2d":
        return _grid_edges(spec.side, *owned_range(spec.n_vertices, size, rank))
    block_fn = _rmat_block if spec.kind == "rmat" else _er_block
    n_blocks = -(-spec.n_edges // BLOCK_EDGES)
    first, last = owned_range(n_blocks, size, rank)
    lo, hi = first * BLOCK_EDGES, min(last * BLOCK_EDGES, spec.n_edges)
    src = np.empty(max(hi - lo, 0), dtype=np.int64)
    dst = np.empty_like(src)
    for b in range(first, last):
        count = min(BLOCK_EDGES, spec.n_edges - b * BLOCK_EDGES)
        at = b * BLOCK_EDGES - lo
        src[at : at + count], dst[at : at + count] = block_fn(spec, b, count)
    return src, dst
