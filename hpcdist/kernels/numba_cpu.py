"""numba CPU kernels: the same functions and signatures as :mod:`hpcdist.kernels.numpy_ref`.

Compiled on first use with ``cache=True`` (the on-disk cache makes later processes
start at once). Rows run in parallel with ``prange``; within a row the sum runs in
stored order, and no ``fastmath``, so results are bit-identical to the reference.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["NAME", "spmv_csr", "scale_by", "pagerank_update", "pagerank_step", "fixed_point_limbs", "max_abs"]

NAME = "numba"


def _make_spmv(parallel: bool, weighted: bool):
    loop = prange if parallel else range

    if weighted:
        def spmv(indptr, indices, data, x, out):  # pragma: no cover - compiled
            for i in loop(indptr.shape[0] - 1):
                acc = 0.0
                for j in range(indptr[i], indptr[i + 1]):
                    acc += data[j] * x[indices[j]]
                out[i] = acc
    else:
        def spmv(indptr, indices, data, x, out):  # pragma: no cover - compiled
            for i in loop(indptr.shape[0] - 1):
                acc = 0.0
                for j in range(indptr[i], indptr[i + 1]):
                    acc += x[indices[j]]
                out[i] = acc

    return njit(cache=True, parallel=parallel)(spmv)


#: Local graphs with fewer edges than this run the pull on one thread (see PARALLEL_MIN).
PARALLEL_MIN_EDGES = 1 << 20
_SPMV = {(par, w): _make_spmv(par, w) for par in (False, True) for w in (False, True)}


def spmv_csr(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray | None, x: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = sum_j data[j] * x[indices[j]]`` over row ``i``, summed in stored order."""
    parallel = indices.shape[0] >= PARALLEL_MIN_EDGES
    if data is None:
        _SPMV[parallel, False](indptr, indices, indices, x, out)  # data unused: any array of the right kind
    else:
        _SPMV[parallel, True](indptr, indices, data, x, out)


@njit(cache=True, parallel=True)
def _scale_by(x, factor, out):  # pragma: no cover - compiled
    for i in prange(x.shape[0]):
        out[i] = x[i] * factor[i]


def scale_by(x: np.ndarray, factor: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = x[i] * factor[i]`` for the first ``len(x)`` items of ``out``."""
    _scale_by(x, factor, out)


@njit(cache=True, parallel=True)
def _pagerank_update(y, dw, dmass, p, alpha, x_old, x_new, diff):  # pragma: no cover - compiled
    beta = 1.0 - alpha
    for i in prange(y.shape[0]):
        t = dmass * dw[i]
        t += y[i]
        t *= alpha
        t += beta * p[i]
        x_new[i] = t
        diff[i] = abs(t - x_old[i])


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
    """``x_new = alpha * (y + dangling_mass * dangling_weights) + (1 - alpha) * p``; ``diff = |x_new - x_old|``."""
    _pagerank_update(y, dangling_weights, float(dangling_mass), personalization, float(alpha), x_old, x_new, diff)


@njit(cache=True)
def _max_abs(values):  # pragma: no cover - compiled
    m = 0.0
    for i in range(values.shape[0]):
        a = abs(values[i])
        if a > m or a != a:
            m = a
            if a != a:
                return a
    return m


def max_abs(values: np.ndarray) -> float:
    """The largest ``|v|`` (0.0 for an empty array; NaN if any value is NaN)."""
    return float(_max_abs(values))


@njit(cache=True, parallel=True)
def _fixed_point_limbs(values, scale):  # pragma: no cover - compiled
    s0 = 0
    s1 = 0
    s2 = 0
    # Integer sums are associative, so the parallel reduction is exact and order-free.
    for i in prange(values.shape[0]):
        r = values[i] * scale * 4294967296.0
        l0 = np.trunc(r)
        r = (r - l0) * 4294967296.0
        l1 = np.trunc(r)
        r = (r - l1) * 4294967296.0
        l2 = np.trunc(r)
        s0 += np.int64(l0)
        s1 += np.int64(l1)
        s2 += np.int64(l2)
    return s0, s1, s2


def fixed_point_limbs(values: np.ndarray, scale: float) -> np.ndarray:
    """Exact integer sums of the three 32-bit fixed-point limbs of ``values * scale``.

    See :func:`hpcdist.kernels.numpy_ref.fixed_point_limbs`.
    """
    if values.shape[0] == 0:
        return np.zeros(3, dtype=np.int64)
    return np.array(_fixed_point_limbs(values, float(scale)), dtype=np.int64)


#: Vectors shorter than this are updated on one thread: a parallel region costs more
#: than it saves there, and far more on a shared, oversubscribed node.
PARALLEL_MIN = 1 << 20


@njit(cache=True, inline="always")
def _limbs_of(v, scale):  # pragma: no cover - compiled
    r = v * scale
    if not abs(r) < 1.0:
        return np.int64(0), np.int64(0), np.int64(0), np.int64(1)
    r = r * 4294967296.0
    l0 = np.trunc(r)
    r = (r - l0) * 4294967296.0
    l1 = np.trunc(r)
    r = (r - l1) * 4294967296.0
    l2 = np.trunc(r)
    return np.int64(l0), np.int64(l1), np.int64(l2), np.int64(0)


def _make_step(parallel: bool):
    loop = prange if parallel else range

    def step(y, dw, dmass, p, alpha, inv_out, is_dangling, x_old, x_new, contrib, scale):  # pragma: no cover
        beta = 1.0 - alpha
        e0 = 0
        e1 = 0
        e2 = 0
        d0 = 0
        d1 = 0
        d2 = 0
        bad = 0
        for i in loop(y.shape[0]):
            t = dmass * dw[i]
            t += y[i]
            t *= alpha
            t += beta * p[i]
            x_new[i] = t
            contrib[i] = t * inv_out[i]
            a0, a1, a2, ab = _limbs_of(abs(t - x_old[i]), scale)
            e0 += a0
            e1 += a1
            e2 += a2
            bad += ab
            if is_dangling[i]:
                b0, b1, b2, bb = _limbs_of(t, scale)
                d0 += b0
                d1 += b1
                d2 += b2
                bad += bb
        return e0, e1, e2, d0, d1, d2, bad

    return njit(cache=True, parallel=parallel)(step)


_step_serial = _make_step(False)
_step_parallel = _make_step(True)


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
    """One fused PageRank update; see :func:`hpcdist.kernels.numpy_ref.pagerank_step`."""
    fn = _step_parallel if y.shape[0] >= PARALLEL_MIN else _step_serial
    out = fn(y, dangling_weights, float(dangling_mass), personalization, float(alpha), inv_out, is_dangling,
             x_old, x_new, contrib, float(scale))
    return np.array(out, dtype=np.int64)
