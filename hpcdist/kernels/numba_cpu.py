"""numba CPU kernels: the same functions and signatures as :mod:`hpcdist.kernels.numpy_ref`.

Compiled on first use with ``cache=True`` (the on-disk cache makes later processes
start at once). Rows run in parallel with ``prange``; within a row the sum runs in
stored order, and no ``fastmath``, so results are bit-identical to the reference.

:func:`make_pull` repacks a large local CSR for the cache-blocked, eight-lane pull
(:func:`blocked_pull`), which keeps every row's summation order and so its bits.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

__all__ = ["NAME", "spmv_csr", "make_pull", "blocked_pull", "scale_by", "pagerank_update", "pagerank_step",
           "fixed_point_limbs", "max_abs", "transpose_csr", "nonzero_positions", "int64_full", "bfs_sort_rows",
           "bfs_bitmap", "bfs_flags", "bfs_owned_bits", "bfs_top_down_bits", "frontier_publish", "frontier_gather",
           "frontier_unpack", "value_publish", "value_unpack", "bfs_parent_ids", "bfs_top_down", "bfs_top_down_both",
           "bfs_bottom_up", "local_components", "unique_inverse", "cc_component_min", "edge_set_hashes", "cc_combine",
           "pending_bits", "sssp_buckets", "sssp_publish", "sssp_relax", "sssp_edge_kinds", "NO_BUCKET"]

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



# --- Cache-blocked, row-interleaved pull (same sums, bit for bit) ----------------------------
#
# The plain pull reads x[indices[j]] at random over all local columns: once x outgrows the
# L2 cache most reads wait on L3 or memory, and each row's sum is one serial chain of
# additions that ends in a mispredicted branch. Two layout changes remove both costs and
# leave every row's additions exactly as they were:
#
# * Column blocks. The columns are cut into blocks of consecutive *keys* (the summation key:
#   the source's input id; each row's edges are stored in increasing key order), with
#   BLOCK_COLS columns each, and y is accumulated block after block. A block holds a
#   contiguous run of each row's edges, so each y[i] still receives its terms in stored
#   order. x is gathered per call into block-contiguous order (``xb``), so one block's
#   reads stay in L2; within a block the caller's column order is kept (hot, high-degree
#   sources first, sharing cache lines).
# * Lanes. Within a block, the rows' runs are sorted by length and packed eight at a time,
#   column-major, padded with a column whose value is +0.0 (and weight +0.0): eight
#   independent sums advance together, so the additions overlap instead of waiting on each
#   other. Adding +0.0 leaves a sum unchanged (it starts at +0.0 and never becomes -0.0 in
#   round-to-nearest), so the padding is exact.
# * Row groups. The rows are cut into groups of equal edge counts, each of which walks all
#   blocks on its own, handed to the threads dynamically: one parallel region per pull.
#
# Measured on this 2-core VM (RMAT scale 20, one thread): plain 43 ms, column blocks alone
# 43 ms, lanes alone 40 ms, both together 29 ms per pull (see docs/graph.md).

#: Lanes per packed chunk (rows summed together).
LANES = 8
#: Doubles of x per column block: 1 MiB, half of one core's 2 MiB L2 here, which leaves
#: room for the streamed indices and the rows' partial sums.
BLOCK_COLS = 1 << 17
#: Size rule: the blocked pull is used for local graphs with at least this many edges;
#: below it the gather of x and the packing cost more than the cache misses they save.
BLOCKED_MIN_EDGES = 1 << 20
#: Row groups per thread: two balanced the load best here (scale 20, two threads: 20.7, 18.9,
#: 20.3, 22.9 ms per pull for 1, 2, 4, 8 groups per thread, on a quiet moment; beside an extra busy
#: process none won clearly). More groups re-read each x block more often.
GROUPS_PER_THREAD = 2


@njit(cache=True)
def _run_lengths(indptr, indices, pos, block_cols, n_blocks):  # pragma: no cover - compiled
    # Each row's run of edges in each block: (block, row, first edge, length), block-major.
    n_rows = indptr.shape[0] - 1
    count = np.zeros(n_blocks + 1, dtype=np.int64)
    for i in range(n_rows):
        last = -1
        for j in range(indptr[i], indptr[i + 1]):
            b = pos[indices[j]] // block_cols
            if b != last:
                count[b + 1] += 1
                last = b
    start = np.cumsum(count)
    nxt = start[:n_blocks].copy()
    run_row = np.empty(start[n_blocks], dtype=np.int64)
    run_first = np.empty(start[n_blocks], dtype=np.int64)
    run_len = np.zeros(start[n_blocks], dtype=np.int64)
    for i in range(n_rows):
        last = -1
        e = -1
        for j in range(indptr[i], indptr[i + 1]):
            b = pos[indices[j]] // block_cols
            if b != last:
                # Blocks are non-decreasing along a row (keys increase): this opens a new run.
                e = nxt[b]
                nxt[b] = e + 1
                run_row[e] = i
                run_first[e] = j
                last = b
            run_len[e] += 1
    return start, run_row, run_first, run_len


@njit(cache=True)
def _pack(indices, data, weighted, pos, pad, order, run_row, run_first, run_len, chunk_ptr, lane_row,
          pidx, pdata):  # pragma: no cover - compiled
    # Chunk k holds the runs order[k*L : k*L + L] (-1: no run), column-major; missing lanes get row -1.
    for k in range(chunk_ptr.shape[0] - 1):
        base = chunk_ptr[k]
        width = (chunk_ptr[k + 1] - base) // LANES
        for lane in range(LANES):
            r = k * LANES + lane
            first, length = 0, 0
            e = order[r]
            if e >= 0:
                first, length = run_first[e], run_len[e]
                lane_row[r] = run_row[e]
            else:
                lane_row[r] = -1
            for t in range(width):
                q = base + t * LANES + lane
                if t < length:
                    pidx[q] = pos[indices[first + t]]
                    if weighted:
                        pdata[q] = data[first + t]
                else:
                    pidx[q] = pad
                    if weighted:
                        pdata[q] = 0.0


def _make_blocked_spmv(weighted: bool):
    def spmv(row_groups, seg_chunks, chunk_ptr, lane_row, pidx, pdata, xb, out):  # pragma: no cover
        n_groups = row_groups.shape[0] - 1
        n_blocks = (seg_chunks.shape[0] - 1) // n_groups
        # Each group of rows walks the blocks on its own: one parallel region, no barrier
        # between blocks (a descheduled thread on a shared node stalls no other).
        for g in prange(n_groups):
            for i in range(row_groups[g], row_groups[g + 1]):
                out[i] = 0.0
            for k in range(seg_chunks[g * n_blocks], seg_chunks[(g + 1) * n_blocks]):
                base = chunk_ptr[k]
                width = (chunk_ptr[k + 1] - base) // 8
                r = k * 8
                if lane_row[r + 7] < 0:  # a segment's last, partly filled chunk
                    for lane in range(8):
                        i = lane_row[r + lane]
                        if i >= 0:
                            acc = out[i]
                            for s in range(width):
                                q = base + s * 8 + lane
                                if weighted:
                                    acc += pdata[q] * xb[pidx[q]]
                                else:
                                    acc += xb[pidx[q]]
                            out[i] = acc
                    continue
                i0, i1, i2, i3 = lane_row[r], lane_row[r + 1], lane_row[r + 2], lane_row[r + 3]
                i4, i5, i6, i7 = lane_row[r + 4], lane_row[r + 5], lane_row[r + 6], lane_row[r + 7]
                a0, a1, a2, a3 = out[i0], out[i1], out[i2], out[i3]
                a4, a5, a6, a7 = out[i4], out[i5], out[i6], out[i7]
                for s in range(width):
                    q = base + s * 8
                    if weighted:
                        a0 += pdata[q] * xb[pidx[q]]
                        a1 += pdata[q + 1] * xb[pidx[q + 1]]
                        a2 += pdata[q + 2] * xb[pidx[q + 2]]
                        a3 += pdata[q + 3] * xb[pidx[q + 3]]
                        a4 += pdata[q + 4] * xb[pidx[q + 4]]
                        a5 += pdata[q + 5] * xb[pidx[q + 5]]
                        a6 += pdata[q + 6] * xb[pidx[q + 6]]
                        a7 += pdata[q + 7] * xb[pidx[q + 7]]
                    else:
                        a0 += xb[pidx[q]]
                        a1 += xb[pidx[q + 1]]
                        a2 += xb[pidx[q + 2]]
                        a3 += xb[pidx[q + 3]]
                        a4 += xb[pidx[q + 4]]
                        a5 += xb[pidx[q + 5]]
                        a6 += xb[pidx[q + 6]]
                        a7 += xb[pidx[q + 7]]
                out[i0], out[i1], out[i2], out[i3] = a0, a1, a2, a3
                out[i4], out[i5], out[i6], out[i7] = a4, a5, a6, a7

    return njit(cache=True, parallel=True)(spmv)


_BLOCKED_SPMV = {w: _make_blocked_spmv(w) for w in (False, True)}


@njit(cache=True, parallel=True)
def _gather_padded(perm, x, xb):  # pragma: no cover - compiled
    n = perm.shape[0]
    for k in prange(n):
        xb[k] = x[perm[k]]
    xb[n] = 0.0  # the padding column


class BlockedPull:
    """A local CSR repacked into row groups, column blocks and eight-row lanes; ``plan(x, out)``.

    Built by :func:`blocked_pull`; ``plan(x, out)`` equals ``spmv_csr(indptr, indices, data,
    x, out)`` bit for bit.

    Attributes
    ----------
    perm : numpy.ndarray of int64
        ``xb[k] = x[perm[k]]``: the columns block after block.
    row_groups : numpy.ndarray of int64, shape (n_groups + 1,)
        Rows ``row_groups[g]:row_groups[g + 1]`` form group ``g`` (equal edge counts).
    seg_chunks : numpy.ndarray of int64, shape (n_groups * n_blocks + 1,)
        Chunks ``seg_chunks[s]:seg_chunks[s + 1]`` hold segment ``s = g * n_blocks + b``: group
        ``g``'s rows' runs of edges in column block ``b``, longest first.
    chunk_ptr : numpy.ndarray of int64
        Chunk ``k`` occupies ``pidx[chunk_ptr[k]:chunk_ptr[k + 1]]`` (width x 8, column-major).
    lane_row : numpy.ndarray of int64
        Row of each lane (``-1`` for a missing lane).
    pidx, pdata : numpy.ndarray
        Column (position in ``xb``; ``len(perm)`` is the +0.0 padding) and weight of each slot.
    """

    name = "blocked"

    def __init__(self, perm, row_groups, seg_chunks, chunk_ptr, lane_row, pidx, pdata, weighted, n_edges):
        self.perm, self.row_groups, self.seg_chunks = perm, row_groups, seg_chunks
        self.chunk_ptr, self.lane_row, self.pidx, self.pdata = chunk_ptr, lane_row, pidx, pdata
        self.weighted, self.n_edges = weighted, n_edges
        self.xb = np.empty(perm.shape[0] + 1)

    @property
    def n_groups(self) -> int:
        return int(self.row_groups.shape[0] - 1)

    @property
    def n_blocks(self) -> int:
        return int((self.seg_chunks.shape[0] - 1) // self.n_groups)

    def describe(self) -> str:
        padding = self.pidx.shape[0] / max(self.n_edges, 1)
        return (f"blocked: {self.n_blocks} column blocks, {self.n_groups} row groups, {LANES} lanes, "
                f"padding {padding:.3f}x")

    def __call__(self, x: np.ndarray, out: np.ndarray) -> None:
        import numba

        _gather_padded(self.perm, x, self.xb)
        # Row groups are handed out one at a time (dynamic schedule): on a shared node a
        # thread that loses its core leaves its remaining groups to the others.
        with numba.parallel_chunksize(1):
            _BLOCKED_SPMV[self.weighted](self.row_groups, self.seg_chunks, self.chunk_ptr, self.lane_row,
                                         self.pidx, self.pdata, self.xb, out)


def blocked_pull(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray | None, col_keys: np.ndarray,
                 block_cols: int = BLOCK_COLS, n_groups: int | None = None) -> BlockedPull:
    """Repack a CSR whose rows are sorted by ``col_keys[indices]`` for the blocked pull.

    Parameters
    ----------
    indptr, indices, data
        The CSR, as for :func:`spmv_csr`. Within each row the edges must be in increasing
        ``col_keys`` order; otherwise the blocked sum would add in another order.
    col_keys : numpy.ndarray of int64, shape (n_cols,)
        Distinct summation key of each column (the source's input id).
    block_cols : int
        Columns per block.
    n_groups : int, optional
        Row groups, handed to the threads one at a time (default: GROUPS_PER_THREAD times
        numba's current thread count).
    """
    import numba

    n_rows, n_cols = indptr.shape[0] - 1, col_keys.shape[0]
    nnz = int(indptr[-1])
    n_groups = max(1, GROUPS_PER_THREAD * numba.get_num_threads() if n_groups is None else int(n_groups))
    by_key = np.argsort(col_keys, kind="stable")
    block_of = np.empty(n_cols, dtype=np.int64)
    block_of[by_key] = np.arange(n_cols, dtype=np.int64) // block_cols
    # Within a block any column order keeps the sums; keep the caller's (hot sources first).
    perm = np.argsort(block_of, kind="stable").astype(np.int64)
    pos = np.empty(n_cols, dtype=np.int32 if n_cols < 2**31 - 1 else np.int64)
    pos[perm] = np.arange(n_cols, dtype=pos.dtype)
    n_blocks = max(1, -(-n_cols // block_cols))
    run_start, run_row, run_first, run_len = _run_lengths(indptr, indices, pos, block_cols, n_blocks)
    # Row groups of about equal edge counts.
    row_groups = np.searchsorted(indptr, np.linspace(0, nnz, n_groups + 1), side="left").astype(np.int64)
    row_groups = np.maximum.accumulate(np.clip(row_groups, 0, n_rows))
    row_groups[0], row_groups[-1] = 0, n_rows
    # Segments (group, block), group-major; within one, runs by decreasing length (stable).
    block_of_run = np.repeat(np.arange(n_blocks, dtype=np.int64), np.diff(run_start))
    group_of_run = np.searchsorted(row_groups, run_row, side="right") - 1
    seg_of_run = group_of_run * n_blocks + block_of_run
    order = np.lexsort((-run_len, seg_of_run))
    seg_runs = np.bincount(seg_of_run, minlength=n_groups * n_blocks)
    seg_run_start = np.concatenate([[0], np.cumsum(seg_runs)]).astype(np.int64)
    seg_chunks = np.concatenate([[0], np.cumsum(-(-seg_runs // LANES))]).astype(np.int64)
    # Lane slots: segment s's runs fill chunks seg_chunks[s]..; each segment padded to whole chunks.
    seg_sorted = seg_of_run[order]
    slot_order = np.full(LANES * int(seg_chunks[-1]), -1, dtype=np.int64)
    slot_order[np.arange(order.shape[0]) - seg_run_start[seg_sorted] + LANES * seg_chunks[seg_sorted]] = order
    lengths = np.where(slot_order >= 0, run_len[np.maximum(slot_order, 0)], 0)
    width = lengths.reshape(-1, LANES).max(axis=1) if lengths.size else np.zeros(0, dtype=np.int64)
    chunk_ptr = np.concatenate([[0], np.cumsum(width * LANES)]).astype(np.int64)
    lane_row = np.empty(slot_order.shape[0], dtype=np.int64)
    pidx = np.empty(int(chunk_ptr[-1]), dtype=pos.dtype)
    weighted = data is not None
    pdata = np.empty(pidx.shape[0] if weighted else 0)
    _pack(indices, data if weighted else pdata, weighted, pos, n_cols, slot_order, run_row, run_first, run_len,
          chunk_ptr, lane_row, pidx, pdata)
    return BlockedPull(perm, row_groups, seg_chunks, chunk_ptr, lane_row, pidx, pdata, weighted, nnz)


class PlainPull:
    """:func:`spmv_csr` on a fixed CSR, as a plan: ``plan(x, out)``."""

    name = "plain"

    def __init__(self, indptr, indices, data):
        self.indptr, self.indices, self.data = indptr, indices, data

    def describe(self) -> str:
        return "plain CSR pull"

    def __call__(self, x: np.ndarray, out: np.ndarray) -> None:
        spmv_csr(self.indptr, self.indices, self.data, x, out)


def make_pull(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray | None, col_keys: np.ndarray):
    """The pull ``out = A x`` of a fixed local CSR as a plan, ``plan(x, out)``, same sums as :func:`spmv_csr`.

    Size rule: the blocked layout (:func:`blocked_pull`) from :data:`BLOCKED_MIN_EDGES`
    edges on, the plain CSR below. Rows must be sorted by ``col_keys[indices]``.
    """
    if indices.shape[0] >= BLOCKED_MIN_EDGES:
        return blocked_pull(indptr, indices, data, col_keys, BLOCK_COLS)
    return PlainPull(indptr, indices, data)


# ----------------------------------------------------------------------------- traversals
# The same results as numpy_ref's vectorised definitions. Loops that write to arbitrary
# vertices (pushes, unions) run on one thread: their results are minima, so any order
# gives the same values, but races would not. Row-parallel pulls write only their row.

NO_BUCKET = np.int64(2**62)


@njit(cache=True)
def _transpose_csr(indptr, indices, n_cols, t_indptr, t_rows, weights, t_weights, weighted):  # pragma: no cover
    n_rows = indptr.shape[0] - 1
    for j in range(indices.shape[0]):
        t_indptr[indices[j] + 1] += 1
    for c in range(n_cols):
        t_indptr[c + 1] += t_indptr[c]
    fill = t_indptr[:-1].copy()
    for i in range(n_rows):  # rows in order: each column's list comes out increasing
        for j in range(indptr[i], indptr[i + 1]):
            c = indices[j]
            p = fill[c]
            t_rows[p] = i
            if weighted:
                t_weights[p] = weights[j]
            fill[c] = p + 1


def transpose_csr(indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray | None,
                  n_cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The transpose of a CSR (see :func:`hpcdist.kernels.numpy_ref.transpose_csr`)."""
    t_indptr = np.zeros(n_cols + 1, dtype=np.int64)
    t_rows = np.empty(indices.shape[0], dtype=indices.dtype)
    weighted = weights is not None
    t_weights = np.empty(indices.shape[0] if weighted else 0, dtype=np.float64)
    _transpose_csr(indptr, indices, n_cols, t_indptr, t_rows, weights if weighted else t_weights, t_weights, weighted)
    return t_indptr, t_rows, t_weights if weighted else None


@njit(cache=True)
def _nonzero_positions(flags):  # pragma: no cover - compiled
    count = 0
    for i in range(flags.shape[0]):
        if flags[i] != 0:
            count += 1
    out = np.empty(count, dtype=np.int64)
    k = 0
    for i in range(flags.shape[0]):
        if flags[i] != 0:
            out[k] = i
            k += 1
    return out


def nonzero_positions(flags: np.ndarray) -> np.ndarray:
    """Indices of the non-zero items of ``flags`` (int64, increasing)."""
    return _nonzero_positions(flags)


@njit(cache=True, parallel=True)
def _fill_parallel(out, value):  # pragma: no cover - compiled
    for i in prange(out.shape[0]):
        out[i] = value


def int64_full(n: int, value: int) -> np.ndarray:
    """``np.full(n, value, int64)``, filled on the rank's threads when it is large: a fill
    runs at one core's share of the memory bandwidth (RMAT 20, BFS's distances: 8 MiB,
    0.8 ms on one thread)."""
    import numba

    out = np.empty(n, dtype=np.int64)  # numpy's allocation: huge pages for large arrays
    if n >= PASS_PARALLEL_MIN and numba.get_num_threads() > 1:
        _fill_parallel(out, np.int64(value))
    elif value in (0, -1):
        # every byte the same: numpy fills a byte view with memset, 1.5-2x the speed of
        # its int64 loop on one thread (262 144 items: 0.029 against 0.067 ms)
        out.view(np.uint8).fill(value & 0xFF)
    else:
        out.fill(value)
    return out


@njit(cache=True)
def _bfs_sort_rows(indptr, indices, col_key, out):  # pragma: no cover - compiled
    for i in range(indptr.shape[0] - 1):
        lo = indptr[i]
        hi = indptr[i + 1]
        if hi - lo < 2:
            for j in range(lo, hi):
                out[j] = indices[j]
            continue
        row_keys = np.empty(hi - lo, dtype=np.int64)
        for j in range(lo, hi):
            row_keys[j - lo] = col_key[indices[j]]
        order = np.argsort(row_keys)  # keys are distinct: any sort gives this order
        for j in range(hi - lo):
            out[lo + j] = indices[lo + order[j]]


def bfs_sort_rows(indptr: np.ndarray, indices: np.ndarray, col_key: np.ndarray) -> np.ndarray:
    """Each row's columns in increasing ``col_key`` (see numpy_ref.bfs_sort_rows)."""
    out = np.empty_like(indices)
    _bfs_sort_rows(indptr, indices, col_key, out)
    return out


@njit(cache=True)
def _bfs_bitmap(bits, queue, n_queue, flags, n_owned):  # pragma: no cover - compiled
    one = np.uint64(1)
    if n_queue >= 0:
        bits[:] = 0
        for k in range(n_queue):
            c = queue[k]
            bits[c >> 6] |= one << np.uint64(c & 63)
    else:  # the owned bits stay; the ghosts' are rebuilt
        w = n_owned >> 6
        if w < bits.shape[0]:
            bits[w] &= (one << np.uint64(n_owned & 63)) - one
        bits[w + 1:] = 0
    for c in range(n_owned, flags.shape[0]):
        if flags[c] != 0:
            bits[c >> 6] |= one << np.uint64(c & 63)


def bfs_bitmap(bits: np.ndarray, queue: np.ndarray, n_queue: int, flags: np.ndarray, n_owned: int) -> None:
    """The frontier as bits (see numpy_ref.bfs_bitmap)."""
    _bfs_bitmap(bits, queue, np.int64(n_queue), flags, np.int64(n_owned))


@njit(cache=True)
def _bfs_flags(flags, old, n_old, new, n_new):  # pragma: no cover - compiled
    for k in range(n_old):
        flags[old[k]] = 0
    for k in range(n_new):
        flags[new[k]] = 1


def bfs_flags(flags: np.ndarray, old: np.ndarray, n_old: int, new: np.ndarray, n_new: int) -> None:
    """``flags[old[:n_old]] = 0``, then ``flags[new[:n_new]] = 1``."""
    _bfs_flags(flags, old, np.int64(n_old), new, np.int64(n_new))


@njit(cache=True)
def _bfs_owned_bits(bits, queue, n_queue, n_owned):  # pragma: no cover - compiled
    one = np.uint64(1)
    w = n_owned >> 6
    bits[:w] = 0
    if w < bits.shape[0]:  # the word shared with the first ghosts keeps their bits
        bits[w] &= ~((one << np.uint64(n_owned & 63)) - one)
    for k in range(n_queue):
        c = queue[k]
        bits[c >> 6] |= one << np.uint64(c & 63)


def bfs_owned_bits(bits: np.ndarray, queue: np.ndarray, n_queue: int, n_owned: int) -> None:
    """The owned bits rebuilt from the queue, the ghosts' kept (see numpy_ref.bfs_owned_bits)."""
    _bfs_owned_bits(bits, queue, np.int64(n_queue), np.int64(n_owned))


#: the kernels' stand-in for an optional int64 array that is not given
_NO_INT = np.zeros(0, dtype=np.int64)


@njit(cache=True, inline="always")
def _put_carry(send, carry_at, carry):  # pragma: no cover - compiled
    for k in range(carry_at.shape[0]):
        for j in range(carry.shape[0]):
            send[carry_at[k] + j] = np.uint64(carry[j])


@njit(cache=True)
def _frontier_publish(send, map_ptr, map_pos, queue, n_queue, carry_at, carry):  # pragma: no cover - compiled
    one = np.uint64(1)
    send[:] = 0
    _put_carry(send, carry_at, carry)
    for k in range(n_queue):
        v = queue[k]
        a = map_ptr[v]
        n = map_ptr[v + 1] - a
        # No branch for the usual 0 or 1 copies (a coin toss on whether the vertex is on
        # the boundary, which a branch would mispredict half the time): map_pos has one
        # spare item, and a vertex without copies ORs a zero.
        p = np.int64(map_pos[a])
        send[p >> 6] |= np.uint64(n != 0) << np.uint64(p & 63)
        for j in range(a + 1, a + n):
            p = np.int64(map_pos[j])
            send[p >> 6] |= one << np.uint64(p & 63)



def frontier_publish(send: np.ndarray, map_ptr: np.ndarray, map_pos: np.ndarray, queue: np.ndarray,
                     n_queue: int, carry_at: np.ndarray | None = None, carry: np.ndarray | None = None) -> None:
    """The new frontier into the neighbours' bitmaps (see numpy_ref.frontier_publish)."""
    _frontier_publish(send, map_ptr, map_pos, queue, np.int64(n_queue), _NO_INT if carry_at is None else carry_at,
                      _NO_INT if carry is None else carry)


@intrinsic
def _trailing_zeros(typingctx, x):  # pragma: no cover - compiled
    """The index of the lowest set bit of a non-zero integer (LLVM's ``cttz``)."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))

    return x(x), codegen


def _compiles_pext() -> bool:
    """Whether numba compiles for a CPU with BMI2's ``pext`` (one instruction that packs a
    word's masked bits): the host's features unless NUMBA_CPU_NAME names another target.
    Compiling the instruction for a CPU without it would stop the process in LLVM."""
    import numba
    from llvmlite import binding

    if numba.config.CPU_NAME is None:
        try:
            return bool(binding.get_host_cpu_features().get("bmi2", False))
        except RuntimeError:  # features not readable on this platform
            return False
    return "+bmi2" in (numba.config.CPU_FEATURES or "")


HAS_PEXT = _compiles_pext()


@intrinsic
def _pext_hw(typingctx, x, mask):  # pragma: no cover - compiled
    """BMI2 ``pext``: the bits of ``x`` under ``mask``, packed at the low end."""
    if x != types.uint64 or mask != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        fn = builder.module.declare_intrinsic("llvm.x86.bmi.pext.64", fnty=ir.FunctionType(i64, [i64, i64]))
        return builder.call(fn, args)

    return types.uint64(types.uint64, types.uint64), codegen


@njit(inline="always")
def _pext_sw(x, mask):  # pragma: no cover - compiled
    out = np.uint64(0)
    one = np.uint64(1)
    k = np.uint64(0)
    while mask:
        out |= ((x >> np.uint64(_trailing_zeros(mask))) & one) << k
        k += one
        mask &= mask - one
    return out


if HAS_PEXT:
    @njit(inline="always")
    def _pext(x, mask):  # pragma: no cover - compiled
        return _pext_hw(x, mask)
else:
    _pext = _pext_sw


@intrinsic
def _popcount(typingctx, x):  # pragma: no cover - compiled
    """The number of set bits (LLVM's ``ctpop``)."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return x(x), codegen


@njit(cache=True)
def _frontier_gather(send, send_word, pack_ptr, pack_word, pack_mask, bits, carry_at,
                     carry):  # pragma: no cover - compiled
    _put_carry(send, carry_at, carry)
    for j in range(send_word.shape[0]):
        out = send_word[j]
        acc = np.uint64(0)
        n = np.int64(0)  # bits waiting in acc, always < 64
        for t in range(pack_ptr[j], pack_ptr[j + 1]):
            m = pack_mask[t]
            v = _pext(bits[pack_word[t]], m)
            c = np.int64(_popcount(m))
            acc |= v << np.uint64(n)
            n += c
            if n >= 64:
                send[out] = acc
                out += 1
                n -= 64
                # the bits of v that did not fit: its top n (v's c bits began at 64 - c + n)
                acc = (v >> np.uint64(c - n)) if n > 0 else np.uint64(0)
        if n > 0:
            send[out] = acc


def frontier_gather(send: np.ndarray, send_word: np.ndarray, pack_ptr: np.ndarray, pack_word: np.ndarray,
                    pack_mask: np.ndarray, bits: np.ndarray, carry_at: np.ndarray | None = None,
                    carry: np.ndarray | None = None) -> None:
    """The neighbours' bitmaps packed from the owned bits (see numpy_ref.frontier_gather):
    one ``pext`` per owned word that holds a sent vertex, where the CPU has BMI2."""
    _frontier_gather(send, send_word, pack_ptr, pack_word, pack_mask, bits, _NO_INT if carry_at is None else carry_at,
                     _NO_INT if carry is None else carry)


@njit(cache=True)
def _frontier_unpack(recv, recv_word, recv_count, bits, n_owned, carry_at, total):  # pragma: no cover - compiled
    for k in range(carry_at.shape[0]):
        for j in range(total.shape[0]):
            total[j] += np.int64(recv[carry_at[k] + j])
    one = np.uint64(1)
    w0 = n_owned >> 6
    if w0 < bits.shape[0]:
        bits[w0] &= (one << np.uint64(n_owned & 63)) - one
        bits[w0 + 1:] = 0
    at = n_owned
    for k in range(recv_count.shape[0]):
        c = recv_count[k]
        base = recv_word[k]
        for w in range((c + 63) >> 6):
            x = recv[base + w]  # bits past c are never set by the sender
            if x == 0:
                continue
            b = at + (w << 6)
            sh = np.uint64(b & 63)
            bits[b >> 6] |= x << sh
            if sh != 0 and (b >> 6) + 1 < bits.shape[0]:
                bits[(b >> 6) + 1] |= x >> (np.uint64(64) - sh)
        at += c


def frontier_unpack(recv: np.ndarray, recv_word: np.ndarray, recv_count: np.ndarray, bits: np.ndarray,
                    n_owned: int, carry_at: np.ndarray | None = None, total: np.ndarray | None = None) -> None:
    """The neighbours' bitmaps into the ghost bits (see numpy_ref.frontier_unpack)."""
    _frontier_unpack(recv, recv_word, recv_count, bits, np.int64(n_owned), _NO_INT if carry_at is None else carry_at,
                     _NO_INT if total is None else total)


@njit(cache=True)
def _value_publish(send, counts, send_first, map_ptr, map_nb, map_place, bits, cols, n_cols):  # pragma: no cover
    counts[:] = 0
    for k in range(n_cols):
        v = cols[k]
        x = bits[v]
        for p in range(map_ptr[v], map_ptr[v + 1]):
            nb = map_nb[p]
            at = 2 * (send_first[nb] + counts[nb])
            send[at] = np.uint64(map_place[p])
            send[at + 1] = x
            counts[nb] += 1


def value_publish(send: np.ndarray, counts: np.ndarray, send_first: np.ndarray, map_ptr: np.ndarray,
                  map_nb: np.ndarray, map_place: np.ndarray, bits: np.ndarray, cols: np.ndarray,
                  n_cols: int) -> None:
    """The owned frontier's (place, value) pairs into the neighbours' parts (see numpy_ref.value_publish)."""
    _value_publish(send, counts, send_first, map_ptr, map_nb, map_place, bits, cols, np.int64(n_cols))


@njit(cache=True)
def _value_unpack(recv, rcounts, recv_first, bits, n_owned, blank, ghosts, n_ghosts):  # pragma: no cover
    for k in range(n_ghosts):
        bits[ghosts[k]] = blank
    n = 0
    for nb in range(rcounts.shape[0]):
        base = 2 * recv_first[nb]
        slot = n_owned + recv_first[nb]
        for j in range(rcounts[nb]):
            col = slot + np.int64(recv[base + 2 * j])
            bits[col] = recv[base + 2 * j + 1]
            ghosts[n] = col
            n += 1
    return n


def value_unpack(recv: np.ndarray, rcounts: np.ndarray, recv_first: np.ndarray, bits: np.ndarray, n_owned: int,
                 blank: np.uint64, ghosts: np.ndarray, n_ghosts: int) -> int:
    """The neighbours' pairs into the ghost slots, after blanking the previous ones (see
    numpy_ref.value_unpack)."""
    return int(_value_unpack(recv, rcounts, recv_first, bits, np.int64(n_owned), np.uint64(blank), ghosts,
                             np.int64(n_ghosts)))


def _make_parent_ids(parallel: bool):
    loop = prange if parallel else range

    def parent_ids(dist, parent, col_ids, out):  # pragma: no cover - compiled
        for i in loop(dist.shape[0]):
            out[i] = col_ids[parent[i]] if dist[i] > 0 else -1

    return njit(cache=True, parallel=parallel)(parent_ids)


_PARENT_IDS = {par: _make_parent_ids(par) for par in (False, True)}


def bfs_parent_ids(dist: np.ndarray, parent: np.ndarray, col_ids: np.ndarray) -> np.ndarray:
    """``col_ids[parent]`` where ``dist > 0``, else -1 (int64; see numpy_ref.bfs_parent_ids)."""
    import numba

    # numpy's allocation, not numba's: numpy asks for huge pages for large arrays (fewer page faults)
    out = np.empty(dist.shape[0], dtype=np.int64)
    # a pass at the memory's speed, which a second thread about halves (RMAT 18, one
    # rank: 0.24-0.31 ms on one thread, 0.14-0.16 on two)
    _PARENT_IDS[dist.shape[0] >= PASS_PARALLEL_MIN and numba.get_num_threads() > 1](dist, parent, col_ids, out)
    return out


@njit(cache=True, inline="always")
def _bfs_out_degree(out_degree, in_degree, i):  # pragma: no cover - compiled
    """An empty ``out_degree`` stands for ``in_degree`` (a symmetric graph): one stream less."""
    return in_degree[i] if out_degree.shape[0] == 0 else out_degree[i]


@njit(cache=True, inline="always")
def _push_column(c, t_indptr, t_rows, col_key, dist, parent, nxt, out_degree, in_degree, queue,
                 counts):  # pragma: no cover - compiled
    """Push frontier column ``c`` along its out-edges; ``counts``: reached, out-edges,
    in-edges, examined, queue length."""
    key = col_key[c]
    lo = t_indptr[c]
    hi = t_indptr[c + 1]
    counts[3] += hi - lo
    for j in range(lo, hi):
        v = t_rows[j]
        d = dist[v]
        if d < 0:
            dist[v] = nxt
            parent[v] = c
            queue[counts[4]] = v
            counts[4] += 1
            counts[0] += 1
            counts[1] += _bfs_out_degree(out_degree, in_degree, v)
            counts[2] += in_degree[v]
        elif d == nxt and key < col_key[parent[v]]:
            parent[v] = c  # several frontier in-neighbours: the smallest key wins


@njit(cache=True)
def _bfs_top_down(t_indptr, t_rows, cols, n_cols, col_key, dist, parent, level, out_degree, in_degree,
                  queue, n_queue):  # pragma: no cover - compiled
    counts = np.zeros(5, dtype=np.int64)
    counts[4] = n_queue
    for k in range(n_cols):
        _push_column(cols[k], t_indptr, t_rows, col_key, dist, parent, level + 1, out_degree, in_degree, queue,
                     counts)
    return counts


@njit(cache=True)
def _bfs_top_down_bits(t_indptr, t_rows, bits, lo, hi, col_key, dist, parent, level, out_degree, in_degree,
                       queue, before):  # pragma: no cover - compiled
    counts = before.copy()
    one = np.uint64(1)
    for w in range(lo >> 6, (hi + 63) >> 6):
        x = bits[w]
        while x:
            c = (w << 6) + np.int64(_trailing_zeros(x))
            x &= x - one
            if lo <= c < hi:
                _push_column(c, t_indptr, t_rows, col_key, dist, parent, level + 1, out_degree, in_degree, queue,
                             counts)
    return counts


@njit(cache=True)
def _bfs_top_down_both(t_indptr, t_rows, cols, n_cols, bits, lo, hi, col_key, dist, parent, level, out_degree,
                       in_degree, queue, n_queue):  # pragma: no cover - compiled
    counts = _bfs_top_down(t_indptr, t_rows, cols, n_cols, col_key, dist, parent, level, out_degree, in_degree,
                           queue, n_queue)
    return _bfs_top_down_bits(t_indptr, t_rows, bits, lo, hi, col_key, dist, parent, level, out_degree, in_degree,
                              queue, counts)


def bfs_top_down(t_indptr: np.ndarray, t_rows: np.ndarray, cols: np.ndarray, n_cols: int, col_key: np.ndarray,
                 dist: np.ndarray, parent: np.ndarray, level: int, out_degree: np.ndarray, in_degree: np.ndarray,
                 queue: np.ndarray, n_queue: int) -> np.ndarray:
    """Push one BFS level from the frontier columns (see numpy_ref.bfs_top_down)."""
    return _bfs_top_down(t_indptr, t_rows, cols, np.int64(n_cols), col_key, dist, parent, np.int64(level),
                         out_degree, in_degree, queue, np.int64(n_queue))


def bfs_top_down_both(t_indptr: np.ndarray, t_rows: np.ndarray, cols: np.ndarray, n_cols: int, bits: np.ndarray,
                      lo: int, hi: int, col_key: np.ndarray, dist: np.ndarray, parent: np.ndarray, level: int,
                      out_degree: np.ndarray, in_degree: np.ndarray, queue: np.ndarray, n_queue: int) -> np.ndarray:
    """:func:`bfs_top_down` then :func:`bfs_top_down_bits` in one call (see numpy_ref.bfs_top_down_both)."""
    return _bfs_top_down_both(t_indptr, t_rows, cols, np.int64(n_cols), bits, np.int64(lo), np.int64(hi), col_key,
                              dist, parent, np.int64(level), out_degree, in_degree, queue, np.int64(n_queue))


def bfs_top_down_bits(t_indptr: np.ndarray, t_rows: np.ndarray, bits: np.ndarray, lo: int, hi: int,
                      col_key: np.ndarray, dist: np.ndarray, parent: np.ndarray, level: int, out_degree: np.ndarray,
                      in_degree: np.ndarray, queue: np.ndarray, before: np.ndarray) -> np.ndarray:
    """Push on from the set columns of ``bits`` in ``[lo, hi)`` (see numpy_ref.bfs_top_down_bits)."""
    return _bfs_top_down_bits(t_indptr, t_rows, bits, np.int64(lo), np.int64(hi), col_key, dist, parent,
                              np.int64(level), out_degree, in_degree, queue, before)


#: Candidates per work item of the parallel bottom-up step.
BOTTOM_UP_CHUNK = 4096
#: Fewer candidates than this run on one thread: a parallel region costs more than the
#: work, and on a shared node a descheduled thread stalls the whole region.
BOTTOM_UP_PARALLEL_MIN = 1 << 16
#: A pass over fewer vertices than this runs on one thread (as above).
PASS_PARALLEL_MIN = 1 << 16


@njit(cache=True, inline="always")
def _bfs_rest_hit(indptr, indices, bits, i):  # pragma: no cover - compiled
    """The place in ``indices`` of row ``i``'s first column after the first that is in
    the frontier bitmap; -1 if none is."""
    one = np.uint64(1)
    for j in range(indptr[i] + 1, indptr[i + 1]):
        c = indices[j]
        if (bits[c >> 6] >> np.uint64(c & 63)) & one:
            return j
    return -1


@njit(cache=True, inline="always")
def _bottom_up_range(indptr, indices, first, bits, next_bits, dist, parent, nxt, out_degree, in_degree, src, lo, hi,
                     queue, q0, todo, t0, kept_to, k0, counts):  # pragma: no cover - compiled
    """The bottom-up level over the candidates ``src[lo:hi]``: a branch-free pass over
    their first columns, then the misses' rows.

    The reached go to ``queue[q0:]`` (the first-column hits, then the others, each in
    candidate order), the misses to ``todo[t0:]`` in between, and the still unreached
    to ``kept_to[k0:]``; ``src`` may be ``todo`` itself with ``t0 == k0 == lo`` (the
    writes never overtake the reads). ``counts`` gets: first-column hits, reached,
    kept, out-edges, in-edges, edges examined.
    """
    one = np.uint64(1)
    # 1. Every candidate's first column, without a branch: whether it hits is a coin
    # toss on a power-law graph, and a mispredicted branch per candidate was 40 % of
    # the first bottom-up level (RMAT 18: 0.78 -> 0.47 ms). Every candidate has
    # in-edges (cand lists those, todo keeps only them), so first[i] is a column; a
    # check for -1 here cost another 0.1 ms.
    reached = 0
    miss = 0
    for k in range(lo, hi):
        i = src[k]
        c = first[i]
        waiting = np.int64(dist[i] < 0)
        hit = np.int64((bits[c >> 6] >> np.uint64(c & 63)) & one) & waiting
        queue[q0 + reached] = i
        reached += hit
        todo[t0 + miss] = i
        miss += waiting - hit
    hits = reached
    out_e = 0
    in_e = 0
    for q in range(q0, q0 + reached):
        i = queue[q]
        dist[i] = nxt
        parent[i] = first[i]
        next_bits[i >> 6] |= one << np.uint64(i & 63)
        out_e += _bfs_out_degree(out_degree, in_degree, i)
        in_e += in_degree[i]
    examined = reached
    # 2. The misses' rows, from their second column; rows are sorted by key, so the
    # first hit is the parent.
    kept = 0
    for k in range(t0, t0 + miss):
        i = todo[k]
        hit = _bfs_rest_hit(indptr, indices, bits, i)
        if hit >= 0:
            dist[i] = nxt
            parent[i] = indices[hit]
            queue[q0 + reached] = i
            next_bits[i >> 6] |= one << np.uint64(i & 63)
            reached += 1
            out_e += _bfs_out_degree(out_degree, in_degree, i)
            in_e += in_degree[i]
            examined += hit - indptr[i] + 1
        else:
            examined += in_degree[i]
            kept_to[k0 + kept] = i
            kept += 1
    counts[0] = hits
    counts[1] = reached
    counts[2] = kept
    counts[3] = out_e
    counts[4] = in_e
    counts[5] = examined


def _make_bottom_up(parallel: bool):
    """The bottom-up level (:func:`_bottom_up_range`). Parallel: the same over chunks of
    the candidates, each into its own part of a scratch array, then the parts copied
    into place in parallel, so that both give the same arrays."""

    def serial(indptr, indices, first, bits, next_bits, col_key, dist, parent, level, out_degree, in_degree,
               queue, cand, todo, n_todo, chunk):  # pragma: no cover - compiled
        next_bits[:] = 0
        every = n_todo < 0  # the first bottom-up level: the candidates are all of cand
        n_cand = cand.shape[0] if every else n_todo
        c = np.empty(6, dtype=np.int64)
        _bottom_up_range(indptr, indices, first, bits, next_bits, dist, parent, level + 1, out_degree, in_degree,
                         cand if every else todo, 0, n_cand, queue, 0, todo, 0, todo, 0, c)
        out = np.empty(6, dtype=np.int64)
        out[0] = c[1]
        out[1] = c[3]
        out[2] = c[4]
        out[3] = c[5]
        out[4] = c[1]
        out[5] = c[2]
        return out

    def par(indptr, indices, first, bits, next_bits, col_key, dist, parent, level, out_degree, in_degree,
            queue, cand, todo, n_todo, chunk):  # pragma: no cover - compiled
        every = n_todo < 0
        n_cand = cand.shape[0] if every else n_todo
        src = cand if every else todo
        n_chunks = max(1, (n_cand + chunk - 1) // chunk)
        # Chunk bounds moved up to the next vertex whose bit is in another word than the
        # previous candidate's: candidates increase, so no two chunks set bits in one
        # word of next_bits.
        bound = np.empty(n_chunks + 1, dtype=np.int64)
        bound[0] = 0
        for b in range(1, n_chunks):
            k = max(b * chunk, bound[b - 1])
            while 0 < k < n_cand and (src[k] >> 6) == (src[k - 1] >> 6):
                k += 1
            bound[b] = min(k, n_cand)
        bound[n_chunks] = n_cand
        next_bits[:] = 0
        # each chunk's reached (then its kept) in its own slice of the scratch array
        scratch = np.empty(2 * n_cand, dtype=queue.dtype)
        counts = np.zeros((n_chunks, 6), dtype=np.int64)
        for b in prange(n_chunks):
            lo = bound[b]
            _bottom_up_range(indptr, indices, first, bits, next_bits, dist, parent, level + 1, out_degree,
                             in_degree, src, lo, bound[b + 1], scratch, lo, todo, lo, scratch, n_cand + lo,
                             counts[b])
        # where each chunk's parts go: all first-column hits, then the others; the kept in order
        at = np.zeros((n_chunks, 3), dtype=np.int64)
        hits = 0
        kept = 0
        for b in range(n_chunks):
            at[b, 0] = hits
            at[b, 2] = kept
            hits += counts[b, 0]
            kept += counts[b, 2]
        reached = hits
        for b in range(n_chunks):
            at[b, 1] = reached
            reached += counts[b, 1] - counts[b, 0]
        for b in prange(n_chunks):
            lo = bound[b]
            h = counts[b, 0]
            for j in range(h):
                queue[at[b, 0] + j] = scratch[lo + j]
            for j in range(counts[b, 1] - h):
                queue[at[b, 1] + j] = scratch[lo + h + j]
            for j in range(counts[b, 2]):
                todo[at[b, 2] + j] = scratch[n_cand + lo + j]
        out = np.zeros(6, dtype=np.int64)
        for b in range(n_chunks):
            out[0] += counts[b, 1]
            out[1] += counts[b, 3]
            out[2] += counts[b, 4]
            out[3] += counts[b, 5]
        out[4] = reached
        out[5] = kept
        return out

    return njit(cache=True, parallel=parallel)(par if parallel else serial)


_BOTTOM_UP = {par: _make_bottom_up(par) for par in (False, True)}


def bfs_bottom_up(indptr: np.ndarray, indices: np.ndarray, first: np.ndarray, bits: np.ndarray,
                  next_bits: np.ndarray, col_key: np.ndarray, dist: np.ndarray, parent: np.ndarray, level: int,
                  out_degree: np.ndarray, in_degree: np.ndarray, queue: np.ndarray, cand: np.ndarray,
                  todo: np.ndarray, n_todo: int) -> np.ndarray:
    """Pull one BFS level over the candidates and compact them (see numpy_ref.bfs_bottom_up)."""
    import numba

    args = (indptr, indices, first, bits, next_bits, col_key, dist, parent, np.int64(level), out_degree, in_degree,
            queue, cand, todo, np.int64(n_todo), np.int64(BOTTOM_UP_CHUNK))
    n_cand = cand.shape[0] if n_todo < 0 else n_todo
    if indices.shape[0] < PARALLEL_MIN_EDGES or n_cand < BOTTOM_UP_PARALLEL_MIN or numba.get_num_threads() == 1:
        return _BOTTOM_UP[False](*args)
    # numba's static schedule: a dynamic one (parallel_chunksize(1)) made the level 1.7x
    # slower under the OpenMP layer (RMAT 18, 2 threads)
    return _BOTTOM_UP[True](*args)


@njit(cache=True)
def _find(root, x):  # pragma: no cover - compiled
    r = x
    while root[r] != r:
        r = root[r]
    while root[x] != r:  # path compression
        nxt = root[x]
        root[x] = r
        x = nxt
    return r


@njit(cache=True, inline="always")
def _join(root, keys, a, c):  # pragma: no cover - compiled
    """Union root ``a``'s set with vertex ``c``'s; the root of the union (the member with
    the smaller key, so that roots are minima whatever the order of the unions)."""
    b = _find(root, c)
    if a == b:
        return a
    if keys[a] < keys[b]:
        root[b] = a
        return a
    root[a] = b
    return b


#: Afforest's sample: each vertex joined with this many out-neighbours first.
AFFOREST_ROUNDS = 2
#: Vertices whose roots are compared to guess the largest component.
AFFOREST_SAMPLE = 1024


@njit(cache=True)
def _local_components(indptr, indices, t_indptr, t_rows, n_local, keys):  # pragma: no cover - compiled
    root = np.arange(n_local)
    out = np.empty(n_local, dtype=np.int64)
    if n_local == 0:
        return out
    # 1. A sample of the edges: each vertex with its first out-neighbours. On a graph with
    # a giant component this already puts nearly all of its members into one set.
    for r in range(AFFOREST_ROUNDS):
        for v in range(n_local):
            j = t_indptr[v] + r
            if j < t_indptr[v + 1]:
                _join(root, keys, _find(root, v), np.int64(t_rows[j]))
    # 2. The largest set, guessed from the roots of evenly spaced vertices.
    n_sample = min(n_local, AFFOREST_SAMPLE)
    sample = np.empty(n_sample, dtype=np.int64)
    for k in range(n_sample):
        sample[k] = _find(root, k * n_local // n_sample)
    sample.sort()
    big = sample[0]
    best = 0
    run = 0
    for k in range(n_sample):
        run = run + 1 if k > 0 and sample[k] == sample[k - 1] else 1
        if run > best:
            best = run
            big = sample[k]
    # 3. Every edge with an end outside that set, from that end: its in-edges (an owned
    # vertex's row) and its out-edges (its transposed row). An edge whose ends are both in
    # it joins nothing, and sets only grow, so skipping such vertices loses no union
    # (Sutton, Ben-Nun, Barak, "Optimizing parallel graph connectivity computation via
    # subgraph sampling", IPDPS 2018). On RMAT this leaves the small components' edges.
    n_rows = indptr.shape[0] - 1
    for v in range(n_local):
        a = _find(root, v)
        if a == _find(root, big):
            continue
        if v < n_rows:
            for j in range(indptr[v], indptr[v + 1]):
                a = _join(root, keys, a, np.int64(indices[j]))
        for j in range(t_indptr[v], t_indptr[v + 1]):
            a = _join(root, keys, a, np.int64(t_rows[j]))
    for x in range(n_local):
        out[x] = _find(root, x)
    return out


def local_components(indptr: np.ndarray, indices: np.ndarray, n_local: int, keys: np.ndarray,
                     t_indptr: np.ndarray, t_rows: np.ndarray) -> np.ndarray:
    """For each local vertex, the local id of the smallest-key member of its local
    component (see numpy_ref.local_components), by Afforest's sampling: the transposed CSR
    (``t_indptr``, ``t_rows``, :meth:`DistGraph.local_out`) gives every vertex, ghosts
    included, its out-edges, so that a vertex already in the largest set is skipped whole."""
    return _local_components(indptr, indices, t_indptr, t_rows, np.int64(n_local), keys)


@njit(cache=True)
def _unique_inverse(values, sort):  # pragma: no cover - compiled
    n = values.shape[0]
    bits = 4
    while (1 << bits) < 2 * n:
        bits += 1
    mask = (1 << bits) - 1
    shift = np.uint64(64 - bits)
    slot = np.full(1 << bits, -1, dtype=np.int64)  # the table: a value's first-seen number
    seen = np.empty(n, dtype=np.int64)  # the distinct values in first-seen order
    inv = np.empty(n, dtype=np.int64)
    k = 0
    for i in range(n):
        x = values[i]
        # Fibonacci hashing: the top bits of the product spread neighbouring ids
        h = np.int64((np.uint64(x) * np.uint64(0x9E3779B97F4A7C15)) >> shift)
        while True:
            j = slot[h]
            if j < 0:
                slot[h] = k
                seen[k] = x
                inv[i] = k
                k += 1
                break
            if seen[j] == x:
                inv[i] = j
                break
            h = (h + 1) & mask
    if not sort:
        return seen[:k].copy(), inv
    order = np.argsort(seen[:k], kind="mergesort")
    place = np.empty(k, dtype=np.int64)
    for r in range(k):
        place[order[r]] = r
    for i in range(n):
        inv[i] = place[inv[i]]
    return seen[:k][order], inv


def unique_inverse(values: np.ndarray, sort: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values increasing (or, without ``sort``, in first-seen order) and each
    item's place among them, as numpy_ref.unique_inverse, by hashing: one pass, then a sort
    of the distinct values alone (FastSV's parents repeat a few roots: 5-6 ms for
    np.unique's sort of 131 000 of them)."""
    return _unique_inverse(np.asarray(values, dtype=np.int64), bool(sort))


@njit(cache=True)
def _cc_component_min(root, gkey, gptr, mkey, mptr):  # pragma: no cover - compiled
    n = root.shape[0]
    big = np.iinfo(np.int64).max
    for c in range(n):  # the roots' slots collect their components' minima
        if root[c] == c:
            mkey[c] = big
    for c in range(n):
        r = root[c]
        if gkey[c] < mkey[r]:
            mkey[r] = gkey[c]
            mptr[r] = gptr[c]
    for c in range(n):  # a root's slot is never written here: it holds the minimum throughout
        r = root[c]
        if r != c:
            mkey[c] = mkey[r]
            mptr[c] = mptr[r]


def cc_component_min(root: np.ndarray, gkey: np.ndarray, gptr: np.ndarray, mkey: np.ndarray,
                     mptr: np.ndarray) -> None:
    """Each local column's smallest ``(gkey, gptr)`` pair over its local component, into
    ``(mkey, mptr)`` (see numpy_ref.cc_component_min)."""
    _cc_component_min(root, gkey, gptr, mkey, mptr)


@njit(cache=True, inline="always")
def _mix64(x):  # pragma: no cover - compiled
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


#: An odd multiplier that spreads the pair's first id over the word before the second is added.
_PAIR_MUL = 0xD6E8FEB86659FD93


@njit(cache=True)
def _edge_set_hashes(indptr, indices, row_ids, col_ids, key):  # pragma: no cover - compiled
    out = np.zeros(2, dtype=np.uint64)
    mul = np.uint64(_PAIR_MUL)
    h0 = np.uint64(0)
    h1 = np.uint64(0)
    for i in range(indptr.shape[0] - 1):
        a = np.uint64(row_ids[i])
        ka = (a ^ key) * mul
        for j in range(indptr[i], indptr[i + 1]):
            b = np.uint64(col_ids[indices[j]])
            h0 ^= _mix64(((b ^ key) * mul) + a)  # the edge b -> a
            h1 ^= _mix64(ka + b)  # its reverse
    out[0] = h0
    out[1] = h1
    return out


def edge_set_hashes(indptr: np.ndarray, indices: np.ndarray, row_ids: np.ndarray, col_ids: np.ndarray,
                    key: int) -> np.ndarray:
    """Keyed hashes of the local edges and of their reverses, XORed (see numpy_ref.edge_set_hashes)."""
    return _edge_set_hashes(indptr, indices, row_ids, col_ids, np.uint64(key))


@njit(cache=True)
def _cc_combine(index, key, ptr, fkey, fptr):  # pragma: no cover - compiled
    for i in range(index.shape[0]):
        j = index[i]
        if key[i] < fkey[j]:
            fkey[j] = key[i]
            fptr[j] = ptr[i]


def cc_combine(index: np.ndarray, key: np.ndarray, ptr: np.ndarray, fkey: np.ndarray, fptr: np.ndarray) -> None:
    """``(fkey, fptr)[index[i]] = min-by-key of itself and (key, ptr)[i]`` for every ``i``."""
    _cc_combine(index, key, ptr, fkey, fptr)


@njit(cache=True, inline="always")
def _bucket_of(d, delta):  # pragma: no cover - compiled
    q = np.floor(d / delta)
    if q < 4611686018427387904.0:  # 2^62 = NO_BUCKET
        return np.int64(q)
    return np.int64(4611686018427387904)


@njit(cache=True)
def _pending_bits(pending, out):  # pragma: no cover - compiled
    for i in range(pending.shape[0]):
        if pending[i] != 0:
            out[i >> 6] |= np.uint64(1) << np.uint64(i & 63)


def pending_bits(pending: np.ndarray) -> np.ndarray:
    """The bitmap of the vertices with pending bits (see numpy_ref.pending_bits)."""
    out = np.zeros((pending.shape[0] + 63) // 64, dtype=np.uint64)
    _pending_bits(pending, out)
    return out


@njit(cache=True)
def _sssp_buckets(dist, pending, delta, pbits):  # pragma: no cover - compiled
    out = np.empty(2, dtype=np.int64)
    out[0] = 4611686018427387904
    out[1] = 4611686018427387904
    one = np.uint64(1)
    for w in range(pbits.shape[0]):
        x = pbits[w]
        while x:
            i = (w << 6) + np.int64(_trailing_zeros(x))
            x &= x - one
            p = pending[i]
            b = _bucket_of(dist[i], delta)
            if (p & 1) != 0 and b < out[0]:
                out[0] = b
            if (p & 2) != 0 and b < out[1]:
                out[1] = b
    return out


def sssp_buckets(dist: np.ndarray, pending: np.ndarray, delta: float, pbits: np.ndarray) -> np.ndarray:
    """Smallest bucket with a pending light / heavy relaxation (int64[2], NO_BUCKET where
    none), over the vertices the bitmap ``pbits`` marks (see numpy_ref.sssp_buckets)."""
    return _sssp_buckets(dist, pending, float(delta), pbits)


@njit(cache=True)
def _sssp_publish(dist, pending, delta, bucket, bit, pub, cols, n_prev, pbits):  # pragma: no cover - compiled
    for k in range(n_prev):
        pub[cols[k]] = np.inf
    count = 0
    one = np.uint64(1)
    clear = np.uint8(255 - bit)
    for w in range(pbits.shape[0]):
        x = pbits[w]
        left = x
        while x:
            b = _trailing_zeros(x)
            x &= x - one
            i = (w << 6) + np.int64(b)
            p = pending[i]
            if (p & bit) != 0 and _bucket_of(dist[i], delta) <= bucket:
                pub[i] = dist[i]
                p &= clear
                pending[i] = p
                cols[count] = i
                count += 1
                if p == 0:
                    left &= ~(one << b)
        pbits[w] = left
    return count


def sssp_publish(dist: np.ndarray, pending: np.ndarray, delta: float, bucket: int, bit: int, pub: np.ndarray,
                 cols: np.ndarray, n_prev: int, pbits: np.ndarray) -> int:
    """Select a delta-stepping phase's frontier into ``pub`` and ``cols`` and clear its
    pending ``bit`` (see numpy_ref.sssp_publish)."""
    return int(_sssp_publish(dist, pending, float(delta), np.int64(bucket), np.uint8(bit), pub, cols,
                             np.int64(n_prev), pbits))


@njit(cache=True)
def _sssp_edge_kinds(t_indptr, t_weights, delta):  # pragma: no cover - compiled
    n = t_indptr.shape[0] - 1
    out = np.zeros(n, dtype=np.uint8)
    for c in range(n):
        k = 0
        for j in range(t_indptr[c], t_indptr[c + 1]):
            k |= 1 if t_weights[j] <= delta else 2
        out[c] = k
    return out


def sssp_edge_kinds(t_indptr: np.ndarray, t_weights: np.ndarray, delta: float) -> np.ndarray:
    """Per row: bit 1 if it has a light edge, bit 2 if a heavy one (uint8)."""
    return _sssp_edge_kinds(t_indptr, t_weights, float(delta))


@njit(cache=True, inline="always")
def _improve(v, nd, dist, pending, kinds, pbits):  # pragma: no cover - compiled
    """``dist[v] = nd`` where that is lower, with ``v``'s pending bits (and their bitmap)
    back; returns those bits, or -1 where ``nd`` did not improve."""
    if nd < dist[v]:
        dist[v] = nd
        p = pending[v] | kinds[v]
        pending[v] = p
        pbits[v >> 6] |= np.uint64(p != 0) << np.uint64(v & 63)
        return np.int64(p)
    return np.int64(-1)


@njit(cache=True)
def _sssp_relax(t_indptr, t_rows, t_weights, pub, cols, dist, delta, light, pending, kinds, pbits, remote, ring,
                queued, ring_n, bucket):  # pragma: no cover - compiled
    relaxed = 0
    seeding = ring.shape[0] > 0
    for k in range(cols.shape[0]):
        c = cols[k]
        x = pub[c]
        for j in range(t_indptr[c], t_indptr[c + 1]):
            w = t_weights[j]
            if (w <= delta) == light:
                relaxed += 1
                v = t_rows[j]
                nd = x + w
                p = _improve(v, nd, dist, pending, kinds, pbits)
                if seeding and p > 0 and (p & 1) != 0 and remote[v] == 0 and queued[v] == 0 and \
                        _bucket_of(nd, delta) <= bucket:
                    ring[ring_n[0]] = v
                    queued[v] = 1
                    ring_n[0] += 1
    return relaxed


_NO_SEEDS = (np.zeros(0, dtype=np.uint8), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint8),
             np.zeros(1, dtype=np.int64), -1)


def sssp_relax(t_indptr: np.ndarray, t_rows: np.ndarray, t_weights: np.ndarray, pub: np.ndarray,
               cols: np.ndarray, dist: np.ndarray, delta: float, light: bool, pending: np.ndarray,
               kinds: np.ndarray, pbits: np.ndarray, seeds: tuple | None = None) -> int:
    """Relax the light or heavy out-edges of the columns ``cols``; returns edges relaxed
    (see numpy_ref.sssp_relax)."""
    remote, ring, queued, ring_n, bucket = _NO_SEEDS if seeds is None else seeds
    return int(_sssp_relax(t_indptr, t_rows, t_weights, pub, cols, dist, float(delta), bool(light), pending, kinds,
                           pbits, remote, ring, queued, ring_n, np.int64(bucket)))


@njit(cache=True)
def _sssp_light_closure(t_indptr, t_rows, t_weights, dist, delta, bucket, pending, kinds, pbits, remote, ring,
                        queued, n_seeds):  # pragma: no cover - compiled
    n = dist.shape[0]
    one = np.uint64(1)
    head = 0
    size = n_seeds  # the seeds are ring[:n_seeds], queued
    relaxed = 0
    while size > 0:
        u = ring[head]
        head = head + 1 if head + 1 < n else 0
        size -= 1
        queued[u] = 0
        x = dist[u]
        for j in range(t_indptr[u], t_indptr[u + 1]):
            wt = t_weights[j]
            if wt <= delta:
                relaxed += 1
                v = t_rows[j]
                nd = x + wt
                p = _improve(v, nd, dist, pending, kinds, pbits)
                if p > 0 and (p & 1) != 0 and queued[v] == 0 and remote[v] == 0 and _bucket_of(nd, delta) <= bucket:
                    at = head + size
                    ring[at if at < n else at - n] = v
                    queued[v] = 1
                    size += 1
        p = pending[u] & np.uint8(254)  # its light edges are all here, relaxed from its distance now
        pending[u] = p
        if p == 0:
            pbits[u >> 6] &= ~(one << np.uint64(u & 63))
    return relaxed


def sssp_light_closure(t_indptr: np.ndarray, t_rows: np.ndarray, t_weights: np.ndarray, dist: np.ndarray,
                       delta: float, bucket: int, pending: np.ndarray, kinds: np.ndarray, pbits: np.ndarray,
                       remote: np.ndarray, ring: np.ndarray, queued: np.ndarray, n_seeds: int) -> int:
    """Settle a bucket's light work between owned vertices, here, to its fixed point (see
    numpy_ref.sssp_light_closure); returns the edges relaxed."""
    return int(_sssp_light_closure(t_indptr, t_rows, t_weights, dist, float(delta), np.int64(bucket), pending, kinds,
                                   pbits, remote, ring, queued, np.int64(n_seeds)))


# ----------------------------------------------------------------------------- halo messages
# The encodings of hpcdist.graph.halo_codec, fused with the gather from the send index
# and the update of what the receiver holds. Values arrive as unsigned views of their
# bits (uint8 .. uint64); every payload byte equals the numpy codec's.

_U8 = np.uint64(8)
_FF = np.uint64(255)


@njit(cache=True, inline="always")
def _byte_width(d):  # pragma: no cover - compiled
    """Significant bytes of a uint64 (0 for 0), by halving instead of a loop over bytes."""
    w = 0
    if d >> np.uint64(32):
        w += 4
        d = d >> np.uint64(32)
    if d >> np.uint64(16):
        w += 2
        d = d >> np.uint64(16)
    if d >> np.uint64(8):
        w += 1
        d = d >> np.uint64(8)
    if d:
        w += 1
    return w


@njit(cache=True)
def _halo_scan(vals, index, sent, lo, hi):  # pragma: no cover - compiled
    k = 0
    last = 0
    max_gap = 0
    xor_bytes = 0
    binary = 1
    one = np.uint64(1)
    for i in range(lo, hi):
        v = np.uint64(vals[index[i]])
        p = np.uint64(sent[i])
        if v > one or p > one:
            binary = 0
        d = v ^ p
        if d != 0:
            pos = i - lo
            gap = pos - last
            if gap > max_gap:
                max_gap = gap
            last = pos
            k += 1
            xor_bytes += _byte_width(d)
    out = np.empty(4, dtype=np.int64)
    out[0] = k
    out[1] = max_gap
    out[2] = xor_bytes
    out[3] = binary
    return out


def halo_scan(vals: np.ndarray, index: np.ndarray, sent: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """One message's measurements: changed values, largest position gap, XOR bytes, 0/1 flag (int64[4])."""
    return _halo_scan(vals, index, sent, np.int64(lo), np.int64(hi))


@njit(cache=True)
def _put(out, o, x, nbytes):  # pragma: no cover - compiled
    for b in range(nbytes):
        out[o + b] = np.uint8((x >> np.uint64(8 * b)) & _FF)


@njit(cache=True)
def _halo_write(mode, width, vals, index, sent, lo, hi, out, out_vals):  # pragma: no cover - compiled
    # mode: 0 dense, 1 sparse, 2 xor, 3 bitmap, 4 flips (halo_codec's numbers)
    n = hi - lo
    s = sent.itemsize
    if mode == 0:
        for i in range(lo, hi):
            v = vals[index[i]]
            out_vals[i - lo] = v
            sent[i] = v
        return n * s
    if mode == 3:
        nb = (n + 7) // 8
        for j in range(nb):
            out[j] = 0
        for i in range(lo, hi):
            v = vals[index[i]]
            j = i - lo
            if v != 0:
                out[j >> 3] |= np.uint8(128 >> (j & 7))  # numpy.packbits: big bit order
            sent[i] = v
        return nb
    if mode == 2:
        nib = (n + 1) // 2
        for j in range(nib):
            out[j] = 0
        o = nib
        for i in range(lo, hi):
            v = vals[index[i]]
            d = np.uint64(v) ^ np.uint64(sent[i])
            w = 0
            while d != 0:
                out[o] = np.uint8(d & _FF)
                o += 1
                d = d >> _U8
                w += 1
            j = i - lo
            out[j >> 1] |= np.uint8(w << (4 * (j & 1)))
            sent[i] = v
        return o
    # sparse (values then gaps) and flips (gaps only)
    k = 0
    for i in range(lo, hi):
        if vals[index[i]] != sent[i]:
            k += 1
    o = k * s if mode == 1 else 0
    c = 0
    last = 0
    for i in range(lo, hi):
        v = vals[index[i]]
        if v != sent[i]:
            pos = i - lo
            _put(out, o, np.uint64(pos - last), width)
            o += width
            last = pos
            if mode == 1:
                out_vals[c] = v
            c += 1
            sent[i] = v
    return o


def halo_write(mode: int, width: int, vals: np.ndarray, index: np.ndarray, sent: np.ndarray, lo: int, hi: int,
               out: np.ndarray) -> int:
    """Write one message into ``out`` (uint8, 8-byte aligned) and update ``sent``; returns its bytes.

    ``out`` must hold the message's dense size (``(hi - lo) * itemsize``).
    """
    s = sent.itemsize
    cap = out.shape[0] - out.shape[0] % s
    out_vals = out[:cap].view(sent.dtype)
    return int(_halo_write(np.int64(mode), np.int64(width), vals, index, sent, np.int64(lo), np.int64(hi), out,
                           out_vals))


@njit(cache=True)
def _halo_read(mode, width, payload, payload_vals, held):  # pragma: no cover - compiled
    n = held.shape[0]
    s = held.itemsize
    if mode == 0:
        for j in range(n):
            held[j] = payload_vals[j]
    elif mode == 3:
        for j in range(n):
            held[j] = (payload[j >> 3] >> (7 - (j & 7))) & 1
    elif mode == 2:
        nib = (n + 1) // 2
        o = nib
        for j in range(n):
            w = (payload[j >> 1] >> (4 * (j & 1))) & 15
            d = np.uint64(0)
            for b in range(w):
                d |= np.uint64(payload[o + b]) << np.uint64(8 * b)
            o += w
            held[j] = held[j] ^ d
    else:
        if mode == 1:
            k = payload.shape[0] // (width + s)
            o = k * s
        else:
            k = payload.shape[0] // width
            o = 0
        pos = 0
        for c in range(k):
            gap = 0
            for b in range(width):
                gap |= np.int64(payload[o + b]) << (8 * b)
            o += width
            pos += gap
            if mode == 1:
                held[pos] = payload_vals[c]
            else:
                held[pos] ^= 1


def halo_read(mode: int, width: int, payload: np.ndarray, held: np.ndarray) -> None:
    """Apply one message (``payload``: its bytes, 8-byte aligned) to ``held`` (unsigned view)."""
    s = held.itemsize
    cap = payload.shape[0] - payload.shape[0] % s
    _halo_read(np.int64(mode), np.int64(width), payload, payload[:cap].view(held.dtype), held)
