"""Reproducible global sums: the same bits whatever the rank count or partition.

A floating-point sum depends on the order of its terms, so a plain ``Allreduce`` of
per-rank partial sums changes in the last bits when the partition changes. Here each
term is cut, exactly and on its own, into three 32-bit fixed-point limbs relative to
the global maximum (a power of two found with an exact ``MAX`` reduction); limb sums
are integers, integer addition is associative, and the total is converted to a double
once. Terms below ``2^-96`` of the largest are dropped — identically on every
partition — so the result is also more accurate than a naive sum.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from mpi4py import MPI

__all__ = ["reproducible_sums", "reduce_fixed", "limbs_to_float", "split_carry", "join_carry", "scale_exponent", "N_WIRE_LIMBS"]

LIMB_BITS = 32
#: Limbs per value on the wire: after a local carry, three limbs of [0, 2^32) plus a
#: signed top limb, so that adding over many ranks never overflows int64.
N_WIRE_LIMBS = 4


def scale_exponent(max_abs: float) -> int:
    """The exponent ``e`` with ``max_abs < 2^e`` (so ``|v| * 2^-e < 1`` for every term).

    Clamped at -1022 so that the scale ``2^-e`` stays a finite double for subnormal
    inputs; the quantum ``2^(e-96)`` is then still finer than the smallest subnormal.
    """
    return max(math.frexp(max_abs)[1], -1022)


def limbs_value(limbs: Sequence[int]) -> int:
    """The integer ``l0 * 2^64 + l1 * 2^32 + l2`` (Python int, exact)."""
    return (int(limbs[0]) << 64) + (int(limbs[1]) << 32) + int(limbs[2])


def split_carry(total: int) -> list[int]:
    """Split an integer into :data:`N_WIRE_LIMBS` limbs: three in ``[0, 2^32)``, the top one signed."""
    mask = (1 << LIMB_BITS) - 1
    low = [(total >> (LIMB_BITS * k)) & mask for k in range(N_WIRE_LIMBS - 1)]
    top = total >> (LIMB_BITS * (N_WIRE_LIMBS - 1))  # arithmetic shift keeps the sign
    return [top] + low[::-1]


def join_carry(limbs: Sequence[int]) -> int:
    """Inverse of :func:`split_carry` (also for limb-wise sums of several splits)."""
    total = 0
    for limb in limbs:
        total = (total << LIMB_BITS) + int(limb)
    return total


def limbs_to_float(total: int, exponent: int) -> float:
    """``total * 2^(exponent - 96)`` correctly rounded to a double."""
    if total == 0:
        return 0.0
    # Shift into a range where int -> float cannot overflow, then rescale exactly.
    shift = max(total.bit_length() - 1000, 0)
    return math.ldexp(float(total >> shift if total > 0 else -((-total) >> shift)), exponent - 96 + shift)


def reproducible_sums(
    comm: "MPI.Intracomm",
    arrays: Sequence[np.ndarray],
    kernels: ModuleType | None = None,
    counts: Sequence[int] = (),
) -> tuple[list[float], list[int]]:
    """Global sums of several float arrays, bit-identical for any partition of their items.

    Collective over ``comm``: two small allreduces (one ``MAX``, one ``SUM`` that also
    carries the integer ``counts``).

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
    arrays : sequence of numpy.ndarray of float64
        This rank's terms of each sum (1-D; any length, also 0).
    kernels : module, optional
        A kernel module (:mod:`hpcdist.kernels.numpy_ref` by default).
    counts : sequence of int
        Integers to sum exactly alongside (active vertices, ...).

    Returns
    -------
    sums : list of float
        One per array. NaN when any term is NaN, inf when any is infinite.
    count_sums : list of int
    """
    from hpcdist.runtime.comm import MPI

    if not arrays:  # counts alone (BFS's levels): one allreduce, none of the float machinery
        if comm.Get_size() == 1:  # nothing to add, and the call costs a few microseconds a level
            return [], [int(c) for c in counts]
        ints = np.array(counts, dtype=np.int64)
        total = np.empty_like(ints)
        comm.Allreduce(ints, total, op=MPI.SUM)
        return [], total.tolist()
    if kernels is None:
        from hpcdist.kernels import numpy_ref as kernels
    k = len(arrays)
    local_max = np.array([kernels.max_abs(a) for a in arrays], dtype=np.float64)
    global_max = np.empty_like(local_max)
    if k:
        comm.Allreduce(local_max, global_max, op=MPI.MAX)
    exps = [scale_exponent(m) if math.isfinite(m) and m > 0 else 0 for m in global_max]
    wire = np.zeros(k * N_WIRE_LIMBS + len(counts), dtype=np.int64)
    for i, (a, m, e) in enumerate(zip(arrays, global_max, exps)):
        if math.isfinite(m) and m > 0:
            limbs = kernels.fixed_point_limbs(a, math.ldexp(1.0, -e))
            wire[i * N_WIRE_LIMBS : (i + 1) * N_WIRE_LIMBS] = split_carry(limbs_value(limbs))
    wire[k * N_WIRE_LIMBS :] = np.asarray(counts, dtype=np.int64)
    total = np.empty_like(wire)
    comm.Allreduce(wire, total, op=MPI.SUM)
    sums = []
    for i, (m, e) in enumerate(zip(global_max, exps)):
        if not math.isfinite(m):
            sums.append(float("nan") if math.isnan(m) else _sum_nonfinite(comm, arrays[i]))
        elif m == 0:
            sums.append(0.0)
        else:
            sums.append(limbs_to_float(join_carry(total[i * N_WIRE_LIMBS : (i + 1) * N_WIRE_LIMBS]), e))
    return sums, [int(c) for c in total[k * N_WIRE_LIMBS :]]


def _sum_nonfinite(comm: "MPI.Intracomm", a: np.ndarray) -> float:
    """+inf, -inf or NaN (both signs present): the sum of terms of which some are infinite."""
    from hpcdist.runtime.comm import MPI

    flags = np.array([np.any(a == np.inf), np.any(a == -np.inf)], dtype=np.int64)
    comm.Allreduce(MPI.IN_PLACE, flags, op=MPI.MAX)
    if flags[0] and flags[1]:
        return float("nan")
    return float("inf") if flags[0] else float("-inf")


def reduce_fixed(
    comm: "MPI.Intracomm",
    limbs: Sequence[np.ndarray],
    exponents: Sequence[int],
    counts: Sequence[int] = (),
    overflow: int = 0,
) -> tuple[list[float], list[int], bool]:
    """Global sums from limbs a kernel already computed at a scale agreed in advance.

    The one-collective fast path of :func:`reproducible_sums`: when every term is known
    to lie below ``2^exponent`` (PageRank values below 2), the ``MAX`` reduction is not
    needed. Kernels count the terms that broke the bound (``overflow``); if any rank saw
    one, the third result is True on every rank and the sums must be redone with
    :func:`reproducible_sums`.

    Collective over ``comm`` (one ``SUM`` allreduce of int64).

    Parameters
    ----------
    limbs : sequence of numpy.ndarray of int64, shape (3,)
        This rank's limb sums of each value, at scale ``2^-exponent``.
    exponents : sequence of int
    counts : sequence of int
        Integers summed exactly alongside.
    overflow : int
        Terms of this rank that did not fit.
    """
    from hpcdist.runtime.comm import MPI

    k = len(limbs)
    wire = np.zeros(k * N_WIRE_LIMBS + len(counts) + 1, dtype=np.int64)
    for i, lm in enumerate(limbs):
        wire[i * N_WIRE_LIMBS : (i + 1) * N_WIRE_LIMBS] = split_carry(limbs_value(lm))
    wire[k * N_WIRE_LIMBS : -1] = np.asarray(counts, dtype=np.int64)
    wire[-1] = int(overflow)
    total = np.empty_like(wire)
    comm.Allreduce(wire, total, op=MPI.SUM)
    sums = [limbs_to_float(join_carry(total[i * N_WIRE_LIMBS : (i + 1) * N_WIRE_LIMBS]), e) for i, e in enumerate(exponents)]
    return sums, [int(c) for c in total[k * N_WIRE_LIMBS : -1]], bool(total[-1])
