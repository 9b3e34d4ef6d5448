"""Reference kernels in numpy/scipy: the definition the numba kernels must match bit for bit.

Every backend module exposes the same functions on raw arrays (no graph objects), so
the engine picks a module once and calls it without knowing which one it got.
Summation orders are fixed (row by row, in the stored order of each row), so the
numpy and numba results are identical, not merely close.
"""

from __future__ import annotations

import numpy as np

__all__ = ["NAME", "spmv_csr", "make_pull", "scale_by", "pagerank_update", "pagerank_step", "fixed_point_limbs",
           "max_abs"]

NAME = "numpy"

#: Bits per fixed-point limb of :func:`fixed_point_limbs`.
LIMB_BITS = 32


def spmv_csr(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray | None, x: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = sum_j data[j] * x[indices[j]]`` over row ``i``, summed in stored order.

    ``data`` None means every entry is 1 (a pattern matrix: no multiplication at all).
    """
    n_rows = indptr.shape[0] - 1
    if n_rows == 0:
        return
    if data is None:
        import scipy.sparse as sp

        # scipy's csr_matvec accumulates each row left to right from 0.0, as the numba kernel does.
        ones = np.ones(indices.shape[0], dtype=np.float64)
        m = sp.csr_matrix((ones, indices, indptr), shape=(n_rows, x.shape[0]))
    else:
        import scipy.sparse as sp

        m = sp.csr_matrix((data, indices, indptr), shape=(n_rows, x.shape[0]))
    out[:] = m @ x


class PlainPull:
    """:func:`spmv_csr` on a fixed CSR, as a plan: ``plan(x, out)``."""

    name = "plain"

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray | None) -> None:
        self.indptr, self.indices, self.data = indptr, indices, data

    def describe(self) -> str:
        return "plain CSR pull"

    def __call__(self, x: np.ndarray, out: np.ndarray) -> None:
        spmv_csr(self.indptr, self.indices, self.data, x, out)


def make_pull(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray | None, col_keys: np.ndarray) -> PlainPull:
    """The pull ``out = A x`` of a fixed local CSR as a plan, ``plan(x, out)``.

    Backends may repack the CSR for speed (the numba one blocks the columns by
    ``col_keys``, the summation key of each column) but never change a row's summation
    order; the reference keeps the CSR as it is.
    """
    return PlainPull(indptr, indices, data)


def scale_by(x: np.ndarray, factor: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = x[i] * factor[i]`` for the first ``len(x)`` items of ``out``."""
    np.multiply(x, factor, out=out[: x.shape[0]])


def pagerank_update(
    y: np.ndarray,
    dangling_weights: np.ndarray,
    dangling_mass: float,
    personalization: np.ndarray,
    alpha: float,
    x_old: np.ndarray,
    x_new: np.ndarray,
    diff: np.ndarray,
) -> None:
    """``x_new = alpha * (y + dangling_mass * dangling_weights) + (1 - alpha) * p``; ``diff = |x_new - x_old|``.

    The operations and their order are those of ``networkx.pagerank``'s update.
    """
    t = dangling_mass * dangling_weights
    t += y
    t *= alpha
    t += (1.0 - alpha) * personalization
    x_new[:] = t
    np.subtract(x_new, x_old, out=diff)
    np.abs(diff, out=diff)


def max_abs(values: np.ndarray) -> float:
    """The largest ``|v|`` (0.0 for an empty array; NaN if any value is NaN)."""
    if values.shape[0] == 0:
        return 0.0
    return float(np.max(np.abs(values)))


def fixed_point_limbs(values: np.ndarray, scale: float) -> np.ndarray:
    """Exact integer sums of the three 32-bit fixed-point limbs of ``values * scale``.

    Each value ``v`` (with ``|v * scale| < 1``) is cut, exactly and independently of
    every other value, into ``l0 * 2^-32 + l1 * 2^-64 + l2 * 2^-96`` plus a remainder
    below ``2^-96`` that is dropped (truncation toward zero). The limb sums are
    integers, so adding them in any order, over any partition, gives the same total.

    Returns
    -------
    numpy.ndarray of int64, shape (3,)
        Sums of ``l0``, ``l1``, ``l2``; exact while ``len(values) < 2^31``.
    """
    out = np.zeros(3, dtype=np.int64)
    if values.shape[0] == 0:
        return out
    r = values * scale
    for k in range(3):
        r = r * 4294967296.0
        limb = np.trunc(r)
        r = r - limb
        out[k] = int(limb.astype(np.int64).sum(dtype=np.int64))
    return out


def _limbs_checked(values: np.ndarray, scale: float) -> tuple[np.ndarray, int]:
    """:func:`fixed_point_limbs` plus the number of values with ``|v * scale| >= 1`` (or NaN)."""
    r = values * scale
    bad = int(np.count_nonzero(~(np.abs(r) < 1.0)))
    if bad:
        return np.zeros(3, dtype=np.int64), bad
    return fixed_point_limbs(values, scale), 0


def pagerank_step(
    y: np.ndarray,
    dangling_weights: np.ndarray,
    dangling_mass: float,
    personalization: np.ndarray,
    alpha: float,
    inv_out: np.ndarray,
    is_dangling: np.ndarray,
    x_old: np.ndarray,
    x_new: np.ndarray,
    contrib: np.ndarray,
    scale: float,
) -> np.ndarray:
    """One fused PageRank update over owned vertices.

    ``x_new`` as :func:`pagerank_update`; ``contrib[i] = x_new[i] * inv_out[i]`` (what the
    next superstep publishes); and the fixed-point limbs (see :func:`fixed_point_limbs`,
    at ``scale``) of the L1 change ``|x_new - x_old|`` and of the dangling mass
    ``x_new[is_dangling]``, so that no second pass over the vectors is needed.

    Returns
    -------
    numpy.ndarray of int64, shape (7,)
        Limbs of the change (3), limbs of the dangling mass (3), and the number of
        terms that did not fit below 1 after scaling (then the limbs are invalid and the
        caller reduces another way).
    """
    n = y.shape[0]
    diff = np.empty(n)
    pagerank_update(y, dangling_weights, dangling_mass, personalization, alpha, x_old, x_new, diff)
    np.multiply(x_new, inv_out, out=contrib[:n])
    out = np.zeros(7, dtype=np.int64)
    out[0:3], bad1 = _limbs_checked(diff, scale)
    out[3:6], bad2 = _limbs_checked(x_new[is_dangling.astype(bool)], scale)
    out[6] = bad1 + bad2
    return out
