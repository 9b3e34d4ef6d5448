"""Reference kernels in numpy/scipy: the definition the numba kernels must match bit for bit.

Every backend module exposes the same functions on raw arrays (no graph objects), so
the engine picks a module once and calls it without knowing which one it got.
Summation orders are fixed (row by row, in the stored order of each row), so the
numpy and numba results are identical, not merely close.
"""

from __future__ import annotations

import numpy as np

__all__ = ["NAME", "spmv_csr", "make_pull", "scale_by", "pagerank_update", "pagerank_step", "fixed_point_limbs",
           "max_abs", "transpose_csr", "nonzero_positions", "int64_full", "bfs_sort_rows", "bfs_bitmap", "bfs_flags",
           "bfs_owned_bits", "bfs_top_down_bits", "frontier_publish", "frontier_gather", "frontier_unpack",
           "value_publish", "value_unpack", "bfs_parent_ids", "bfs_top_down", "bfs_top_down_both", "bfs_bottom_up",
           "local_components", "unique_inverse", "cc_component_min", "edge_set_hashes", "cc_combine", "pending_bits",
           "sssp_buckets", "sssp_publish", "sssp_relax", "sssp_edge_kinds", "NO_BUCKET"]

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


# ----------------------------------------------------------------------------- traversals
# BFS, connected components and SSSP. Each kernel's result is defined without reference
# to an order of work (a minimum, a first hit in a sorted row), so the compiled kernels,
# which loop, give exactly what these vectorised ones give.

#: Bucket index of a vertex without a pending relaxation (larger than any real one).
NO_BUCKET = np.int64(2**62)


def transpose_csr(indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray | None,
                  n_cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The transpose of a CSR with ``n_cols`` columns: row ``c`` lists the rows that hold
    column ``c``, in increasing order, with their weights.

    Returns
    -------
    indptr : numpy.ndarray of int64, shape (n_cols + 1,)
    rows : numpy.ndarray, ``indices``' dtype
    weights : numpy.ndarray of float64 or None
    """
    n_rows = indptr.shape[0] - 1
    row_of = np.repeat(np.arange(n_rows, dtype=indices.dtype), np.diff(indptr))
    order = np.argsort(indices, kind="stable")  # stable: rows stay increasing within a column
    t_indptr = np.zeros(n_cols + 1, dtype=np.int64)
    np.cumsum(np.bincount(indices, minlength=n_cols), out=t_indptr[1:])
    return t_indptr, row_of[order], None if weights is None else weights[order]


def nonzero_positions(flags: np.ndarray) -> np.ndarray:
    """Indices of the non-zero items of ``flags`` (int64, increasing)."""
    return np.flatnonzero(flags).astype(np.int64, copy=False)


def int64_full(n: int, value: int) -> np.ndarray:
    """A new int64 array of ``n`` items, each ``value`` (``np.full``; the compiled kernel
    fills large arrays on the rank's threads)."""
    return np.full(n, value, dtype=np.int64)


def bfs_sort_rows(indptr: np.ndarray, indices: np.ndarray, col_key: np.ndarray) -> np.ndarray:
    """Each row's columns in increasing ``col_key`` (keys distinct), the indices' dtype.

    BFS sorts the in-edge rows by its parent key, so that a bottom-up scan's first
    frontier column is the parent.
    """
    row = np.repeat(np.arange(indptr.shape[0] - 1, dtype=np.int64), np.diff(indptr))
    return indices[np.lexsort((col_key[indices], row))]


def _bit_set(bits: np.ndarray, c: np.ndarray) -> np.ndarray:
    c = c.astype(np.uint64)
    return ((bits[(c >> np.uint64(6)).astype(np.int64)] >> (c & np.uint64(63))) & np.uint64(1)) != 0


def bfs_bitmap(bits: np.ndarray, queue: np.ndarray, n_queue: int, flags: np.ndarray, n_owned: int) -> None:
    """The frontier as bits (uint64 words, bit ``c % 64`` of word ``c // 64`` for column
    ``c``). The owned columns' bits are rebuilt from ``queue[:n_queue]`` (every other one
    cleared), or kept as they are when ``n_queue < 0`` (a bottom-up level wrote them);
    the ghost columns ``c >= n_owned`` get ``flags[c] != 0``."""
    dense = np.unpackbits(bits.view(np.uint8), bitorder="little")
    if n_queue >= 0:
        dense[:n_owned] = 0
        dense[queue[:n_queue]] = 1
    dense[n_owned:] = 0
    dense[n_owned + np.flatnonzero(flags[n_owned:])] = 1
    bits[:] = np.packbits(dense, bitorder="little").view(np.uint64)


def bfs_flags(flags: np.ndarray, old: np.ndarray, n_old: int, new: np.ndarray, n_new: int) -> None:
    """``flags[old[:n_old]] = 0``, then ``flags[new[:n_new]] = 1``."""
    flags[old[:n_old]] = 0
    flags[new[:n_new]] = 1


def bfs_owned_bits(bits: np.ndarray, queue: np.ndarray, n_queue: int, n_owned: int) -> None:
    """The owned columns' bits rebuilt from ``queue[:n_queue]`` (every other owned bit
    cleared); the ghost columns' bits (``c >= n_owned``) are left as they are."""
    dense = np.unpackbits(bits.view(np.uint8), bitorder="little")
    dense[:n_owned] = 0
    dense[queue[:n_queue]] = 1
    bits[:] = np.packbits(dense, bitorder="little").view(np.uint64)


def _bit_positions(bits: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """The columns ``lo <= c < hi`` whose bit is set (int64, increasing)."""
    dense = np.unpackbits(bits.view(np.uint8), bitorder="little")
    return (lo + np.flatnonzero(dense[lo:hi])).astype(np.int64)


def _put_carry(send: np.ndarray, carry_at: np.ndarray | None, carry: np.ndarray | None) -> None:
    """``carry`` (int64) as uint64 words from each ``send[carry_at[k]]`` on."""
    if carry_at is not None and carry is not None and carry_at.shape[0]:
        words = np.asarray(carry, dtype=np.int64).view(np.uint64)
        send[np.asarray(carry_at)[:, None] + np.arange(carry.shape[0])] = words


def frontier_publish(send: np.ndarray, map_ptr: np.ndarray, map_pos: np.ndarray, queue: np.ndarray,
                     n_queue: int, carry_at: np.ndarray | None = None, carry: np.ndarray | None = None) -> None:
    """Clear the send bitmap (uint64 words), then set the bits ``map_pos[map_ptr[v]:map_ptr[v + 1]]``
    of every owned vertex ``v`` in ``queue[:n_queue]``: its places in the neighbours' bitmaps.
    ``carry`` (int64), when given, goes to the words from each ``carry_at[k]`` on."""
    send[:] = 0
    _put_carry(send, carry_at, carry)
    q = np.asarray(queue[:n_queue], dtype=np.int64)
    starts, counts = map_ptr[q], map_ptr[q + 1] - map_ptr[q]
    if not counts.sum():
        return
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    pos = map_pos[np.arange(int(counts.sum())) + offsets].astype(np.uint64)
    np.bitwise_or.at(send, (pos >> np.uint64(6)).astype(np.int64), np.uint64(1) << (pos & np.uint64(63)))


def frontier_gather(send: np.ndarray, send_word: np.ndarray, pack_ptr: np.ndarray, pack_word: np.ndarray,
                    pack_mask: np.ndarray, bits: np.ndarray, carry_at: np.ndarray | None = None,
                    carry: np.ndarray | None = None) -> None:
    """The send bitmaps from the owned frontier's bits: neighbour ``k``'s bitmap (from word
    ``send_word[k]``) is the concatenation, for ``t`` in ``pack_ptr[k]:pack_ptr[k + 1]``, of
    the bits of ``bits[pack_word[t]]`` under ``pack_mask[t]``, low to high (its send list,
    in order: see :func:`hpcdist.graph.frontier_exchange.pack_masks`), zero-padded to whole
    words; the same words :func:`frontier_publish` builds from the frontier's queue (and
    ``carry`` as it does)."""
    _put_carry(send, carry_at, carry)
    for k in range(send_word.shape[0]):
        a, b = int(pack_ptr[k]), int(pack_ptr[k + 1])
        words = np.ascontiguousarray(bits[pack_word[a:b]], dtype=np.uint64)
        under = np.unpackbits(np.ascontiguousarray(pack_mask[a:b], dtype=np.uint64).view(np.uint8),
                              bitorder="little").astype(bool)
        stream = np.unpackbits(words.view(np.uint8), bitorder="little")[under]
        n_words = (stream.shape[0] + 63) // 64
        out = np.zeros(64 * n_words, dtype=np.uint8)
        out[: stream.shape[0]] = stream
        w = int(send_word[k])
        send[w:w + n_words] = np.packbits(out, bitorder="little").view(np.uint64)


def frontier_unpack(recv: np.ndarray, recv_word: np.ndarray, recv_count: np.ndarray, bits: np.ndarray,
                    n_owned: int, carry_at: np.ndarray | None = None, total: np.ndarray | None = None) -> None:
    """Each neighbour's bitmap (``recv_count[k]`` bits from word ``recv_word[k]`` of
    ``recv``) into ``bits`` at the ghost columns, neighbour after neighbour from
    ``n_owned`` on; every ghost bit is overwritten, the owned ones are kept. ``total``
    (int64), when given, gets added the words from each ``carry_at[k]`` on, as int64."""
    if carry_at is not None and total is not None and carry_at.shape[0]:
        words = recv[np.asarray(carry_at)[:, None] + np.arange(total.shape[0])]
        total += words.view(np.int64).sum(axis=0)
    dense = np.unpackbits(bits.view(np.uint8), bitorder="little")
    got = np.unpackbits(recv.view(np.uint8), bitorder="little")
    at = n_owned
    for k in range(recv_count.shape[0]):
        c = int(recv_count[k])
        dense[at:at + c] = got[64 * int(recv_word[k]):64 * int(recv_word[k]) + c]
        at += c
    dense[at:] = 0
    bits[:] = np.packbits(dense, bitorder="little").view(np.uint64)


def value_publish(send: np.ndarray, counts: np.ndarray, send_first: np.ndarray, map_ptr: np.ndarray,
                  map_nb: np.ndarray, map_place: np.ndarray, bits: np.ndarray, cols: np.ndarray,
                  n_cols: int) -> None:
    """The owned frontier ``cols[:n_cols]`` as (place, value) pairs for the neighbours
    (:mod:`hpcdist.graph.value_frontier`).

    ``map_ptr``/``map_nb``/``map_place``: for each owned vertex, the neighbours whose send
    lists hold it and its place there. Neighbour ``nb``'s pairs go to
    ``send[2 * send_first[nb]:]`` as (place, ``bits[v]``) in uint64 (``bits``: the values'
    bit patterns), in frontier order; ``counts[nb]`` gets their number.
    """
    cols = cols[:n_cols].astype(np.int64)
    lengths = map_ptr[cols + 1] - map_ptr[cols]
    at = np.repeat(map_ptr[cols], lengths) + np.arange(int(lengths.sum())) - np.repeat(
        np.cumsum(lengths) - lengths, lengths)
    vertex = np.repeat(cols, lengths)
    nb = map_nb[at]
    order = np.argsort(nb, kind="stable")
    nb, at, vertex = nb[order], at[order], vertex[order]
    counts[:] = np.bincount(nb, minlength=counts.shape[0])
    rank_in = np.arange(nb.shape[0]) - (np.cumsum(counts) - counts)[nb]
    where = 2 * (send_first[nb] + rank_in)
    send[where] = map_place[at].astype(np.uint64)
    send[where + 1] = bits[vertex]


def value_unpack(recv: np.ndarray, rcounts: np.ndarray, recv_first: np.ndarray, bits: np.ndarray, n_owned: int,
                 blank: np.uint64, ghosts: np.ndarray, n_ghosts: int) -> int:
    """The neighbours' (place, value) pairs into the ghost slots of ``bits``.

    The slots ``ghosts[:n_ghosts]`` (local columns) first get ``blank``; neighbour ``nb``'s
    ``rcounts[nb]`` pairs, at ``recv[2 * recv_first[nb]:]``, go to the local columns
    ``n_owned + recv_first[nb] + place``, which are written to ``ghosts`` in the order
    received. Returns their number.
    """
    bits[ghosts[:n_ghosts]] = blank
    nb = np.repeat(np.arange(rcounts.shape[0]), rcounts)
    j = np.arange(nb.shape[0]) - np.repeat(np.cumsum(rcounts) - rcounts, rcounts)
    base = 2 * (recv_first[nb] + j)
    col = n_owned + recv_first[nb] + recv[base].astype(np.int64)
    bits[col] = recv[base + 1]
    ghosts[: col.shape[0]] = col
    return int(col.shape[0])


def bfs_parent_ids(dist: np.ndarray, parent: np.ndarray, col_ids: np.ndarray) -> np.ndarray:
    """``col_ids[parent]`` where ``dist > 0`` (the parent's local column turned into an
    id), else -1 (the root and the unreached, whose ``parent`` is not read). int64."""
    out = np.full(dist.shape[0], -1, dtype=np.int64)
    tree = dist > 0
    out[tree] = col_ids[parent[tree]]
    return out


def _level_counts(reached: np.ndarray, examined: int, out_degree: np.ndarray, in_degree: np.ndarray,
                  n_queue: int) -> np.ndarray:
    # an empty out_degree stands for in_degree (a symmetric graph)
    out_degree = in_degree if out_degree.shape[0] == 0 else out_degree
    return np.array([reached.shape[0], int(out_degree[reached].sum()), int(in_degree[reached].sum()), examined,
                     n_queue], dtype=np.int64)


def bfs_top_down(t_indptr: np.ndarray, t_rows: np.ndarray, cols: np.ndarray, n_cols: int, col_key: np.ndarray,
                 dist: np.ndarray, parent: np.ndarray, level: int, out_degree: np.ndarray, in_degree: np.ndarray,
                 queue: np.ndarray, n_queue: int) -> np.ndarray:
    """Push one BFS level from the frontier columns ``cols[:n_cols]`` along the transposed CSR.

    Every unreached owned vertex with an edge from a frontier column gets distance
    ``level + 1`` and as parent the local column with the smallest ``col_key`` among
    those columns; it is appended to ``queue`` (after ``queue[:n_queue]``) in the order
    the pushes first reach it. A vertex already at ``level + 1`` (a level pushed in two
    calls, owned columns then ghosts) keeps the smaller key of its parent and these.
    An empty ``out_degree`` stands for ``in_degree`` (a symmetric graph).

    Returns
    -------
    numpy.ndarray of int64, shape (5,)
        Vertices reached, their out-edges, their in-edges, the edges examined, and the
        new length of ``queue``.
    """
    cols = cols[:n_cols].astype(np.int64)
    starts, stops = t_indptr[cols], t_indptr[cols + 1]
    counts = stops - starts
    examined = int(counts.sum())
    if examined == 0:
        return _level_counts(np.empty(0, dtype=np.int64), 0, out_degree, in_degree, n_queue)
    edge = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(examined)
    v = t_rows[edge].astype(np.int64)
    c = np.repeat(cols, counts)
    nxt = level + 1
    fresh = dist[v] < 0
    _, first = np.unique(v[fresh], return_index=True)
    reached = v[fresh][np.sort(first)]
    take = fresh | (dist[v] == nxt)
    v, c = v[take], c[take]
    best = np.full(dist.shape[0], np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best, v, col_key[c])
    earlier = np.unique(v[dist[v] == nxt])
    best[earlier] = np.minimum(best[earlier], col_key[parent[earlier]])
    win = col_key[c] == best[v]
    parent[v[win]] = c[win]
    dist[reached] = nxt
    queue[n_queue: n_queue + reached.shape[0]] = reached
    return _level_counts(reached, examined, out_degree, in_degree, n_queue + reached.shape[0])



def bfs_top_down_bits(t_indptr: np.ndarray, t_rows: np.ndarray, bits: np.ndarray, lo: int, hi: int,
                      col_key: np.ndarray, dist: np.ndarray, parent: np.ndarray, level: int, out_degree: np.ndarray,
                      in_degree: np.ndarray, queue: np.ndarray, before: np.ndarray) -> np.ndarray:
    """:func:`bfs_top_down` from the columns ``lo <= c < hi`` whose bit is set (increasing),
    continuing a level that an earlier push left at ``before`` (its five counts): the
    counts returned include those, and the queue goes on from ``before[4]``."""
    cols = _bit_positions(bits, lo, hi)
    more = bfs_top_down(t_indptr, t_rows, cols, cols.shape[0], col_key, dist, parent, level, out_degree,
                        in_degree, queue, int(before[4]))
    return np.concatenate([before[:4] + more[:4], more[4:]])


def bfs_top_down_both(t_indptr: np.ndarray, t_rows: np.ndarray, cols: np.ndarray, n_cols: int, bits: np.ndarray,
                      lo: int, hi: int, col_key: np.ndarray, dist: np.ndarray, parent: np.ndarray, level: int,
                      out_degree: np.ndarray, in_degree: np.ndarray, queue: np.ndarray, n_queue: int) -> np.ndarray:
    """A whole top-down level in one call: :func:`bfs_top_down` from the owned frontier
    ``cols[:n_cols]``, then :func:`bfs_top_down_bits` from the set columns in ``[lo, hi)``
    (the ghosts); the counts of both. Where nothing overlaps the exchange, one call a level
    instead of two (a compiled call costs microseconds, as much as a small level's work)."""
    counts = bfs_top_down(t_indptr, t_rows, cols, n_cols, col_key, dist, parent, level, out_degree, in_degree,
                          queue, n_queue)
    return bfs_top_down_bits(t_indptr, t_rows, bits, lo, hi, col_key, dist, parent, level, out_degree, in_degree,
                             queue, counts)


def bfs_bottom_up(indptr: np.ndarray, indices: np.ndarray, first: np.ndarray, bits: np.ndarray,
                  next_bits: np.ndarray, col_key: np.ndarray, dist: np.ndarray, parent: np.ndarray, level: int,
                  out_degree: np.ndarray, in_degree: np.ndarray, queue: np.ndarray, cand: np.ndarray,
                  todo: np.ndarray, n_todo: int) -> np.ndarray:
    """Pull one BFS level: every unreached owned vertex among the candidates looks for an
    in-neighbour in the frontier bitmap ``bits``.

    The candidates are ``todo[:n_todo]``, or all of ``cand`` when ``n_todo < 0`` (the
    first bottom-up level: the graph's vertices with in-edges, increasing); an unreached
    candidate must have in-edges (the compiled kernels probe ``first[i]`` unchecked). A
    vertex that finds some gets distance ``level + 1``, as parent the frontier column
    with the smallest ``col_key``, a place in ``queue`` (from 0: those whose first column
    ``first[i]`` is in the frontier, then the others, each in candidate order) and its
    bit in ``next_bits`` (cleared first; laid out as :func:`bfs_bitmap` does, for the next
    bottom-up level); ``todo`` then keeps, in order, the candidates still unreached that
    have in-edges, so that later levels skip the reached ones. Rows are sorted by key,
    so a scan's first hit is the parent; this reference takes the minimum over all hits
    and counts the edges a scan that stops at the first one examines. ``first[i]`` is row ``i``'s first column (-1 for an empty row), which the
    compiled kernels probe before the row; ``in_degree`` is the rows' lengths.

    Returns
    -------
    numpy.ndarray of int64, shape (6,)
        As :func:`bfs_top_down` (the queue's length), then the new length of ``todo``.
    """
    cand = (cand if n_todo < 0 else todo[:n_todo]).astype(np.int64)
    cand = cand[dist[cand] < 0]
    lengths = (indptr[cand + 1] - indptr[cand]).astype(np.int64)
    total = int(lengths.sum())
    owner = np.repeat(np.arange(cand.shape[0], dtype=np.int64), lengths)
    pos = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    cols = indices[np.repeat(indptr[cand], lengths) + pos].astype(np.int64)
    hit = _bit_set(bits, cols)
    big = np.iinfo(np.int64).max
    best = np.full(cand.shape[0], big, dtype=np.int64)
    np.minimum.at(best, owner[hit], col_key[cols[hit]])
    first_hit = np.full(cand.shape[0], big, dtype=np.int64)
    np.minimum.at(first_hit, owner[hit], pos[hit])
    found = best != big
    # a scan stops at its first hit: count the edges up to and including it
    examined = int(lengths[~found].sum()) + int((first_hit[found] + 1).sum())
    win = hit & (col_key[cols] == best[owner])
    # the queue's order: the first-column hits, then the others (as the compiled kernels fill it)
    reached = np.concatenate([cand[found & (first_hit == 0)], cand[found & (first_hit > 0)]])
    dist[reached] = level + 1
    parent[cand[owner[win]]] = cols[win]
    queue[: reached.shape[0]] = reached
    dense = np.zeros(next_bits.shape[0] * 64, dtype=np.uint8)
    dense[reached] = 1
    next_bits[:] = np.packbits(dense, bitorder="little").view(np.uint64)
    rest = cand[~found & (lengths > 0)]
    todo[: rest.shape[0]] = rest
    out = _level_counts(reached, examined, out_degree, in_degree, reached.shape[0])
    return np.concatenate([out, [rest.shape[0]]]).astype(np.int64)


def unique_inverse(values: np.ndarray, sort: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` of a 1-D int64 array: the distinct
    values increasing, and for each item the place of its value among them (int64).

    Without ``sort`` the distinct values come in the order of their first appearance,
    for a caller that needs them distinct, not ordered (the sort of many distinct values
    is most of the work).
    """
    uniq, first, inv = np.unique(np.asarray(values, dtype=np.int64), return_index=True, return_inverse=True)
    inv = inv.astype(np.int64).reshape(-1)
    if sort:
        return uniq, inv
    order = np.argsort(first, kind="stable")
    place = np.empty(order.shape[0], dtype=np.int64)
    place[order] = np.arange(order.shape[0], dtype=np.int64)
    return uniq[order], place[inv]


def local_components(indptr: np.ndarray, indices: np.ndarray, n_local: int, keys: np.ndarray,
                     t_indptr: np.ndarray | None = None, t_rows: np.ndarray | None = None) -> np.ndarray:
    """Components of the local graph (rows = owned vertices, columns = owned or ghost
    vertices, edges in either direction): for each local vertex, the local id of the
    member with the smallest key. ``t_indptr``, ``t_rows``: the transposed CSR, which the
    compiled kernel samples first (Afforest); the same components either way, unused here."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    n_rows = indptr.shape[0] - 1
    row = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(indptr))
    a = sp.coo_matrix((np.ones(row.shape[0], dtype=np.int8), (row, indices.astype(np.int64))),
                      shape=(n_local, n_local)).tocsr()
    _, label = connected_components(a, directed=True, connection="weak")
    best = np.full(label.max() + 1 if n_local else 0, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best, label, keys)
    # key -> local id of the member holding it (keys are distinct)
    order = np.argsort(keys, kind="stable")
    pos = np.searchsorted(keys[order], best[label])
    return order[pos].astype(np.int64)


def cc_component_min(root: np.ndarray, gkey: np.ndarray, gptr: np.ndarray, mkey: np.ndarray,
                     mptr: np.ndarray) -> None:
    """For every local column ``c``, the smallest ``gkey`` over the members of its local
    component (the columns ``d`` with ``root[d] == root[c]``, ``root`` as
    :func:`local_components` gives it: every root is its own) into ``mkey[c]``, and the
    ``gptr`` that goes with it into ``mptr[c]`` (a pair moves as one: the key names the
    vertex the pointer points to, so equal keys carry equal pointers).

    FastSV's minimum over a vertex's neighbours, taken over its whole local component: a
    pass over the columns instead of the edges, and never larger, as the component holds
    the neighbours (the union-find joined each row with its columns)."""
    root = np.asarray(root, dtype=np.int64)
    best = np.full(root.shape[0], np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best, root, gkey)
    won = gkey == best[root]
    at = np.zeros(root.shape[0], dtype=np.int64)
    at[root[won]] = gptr[won]
    mkey[:] = best[root]
    mptr[:] = at[root]


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, on uint64 (wrapping)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def edge_set_hashes(indptr: np.ndarray, indices: np.ndarray, row_ids: np.ndarray, col_ids: np.ndarray,
                    key: int) -> np.ndarray:
    """The XOR over the local edges ``c -> i`` (row ``i``, column ``c``, named by ``row_ids[i]``
    and ``col_ids[c]``) of a keyed hash of the pair, and of the reversed pair (uint64[2]).
    Over all ranks the two are equal when the edge set is symmetric, and differ with
    probability 1 - 2^-64 otherwise (a set: no edge twice)."""
    with np.errstate(over="ignore"):
        n_rows = indptr.shape[0] - 1
        a = np.repeat(np.asarray(row_ids[:n_rows], dtype=np.int64), np.diff(indptr)).view(np.uint64)
        b = np.asarray(col_ids, dtype=np.int64)[indices].view(np.uint64)
        k, mul = np.uint64(key), np.uint64(0xD6E8FEB86659FD93)
        out = np.zeros(2, dtype=np.uint64)
        # the hash of an edge x -> y is mix64((x ^ key) * mul + y)
        out[0] = np.bitwise_xor.reduce(_mix64((b ^ k) * mul + a), initial=np.uint64(0))
        out[1] = np.bitwise_xor.reduce(_mix64((a ^ k) * mul + b), initial=np.uint64(0))
    return out


def cc_combine(index: np.ndarray, key: np.ndarray, ptr: np.ndarray, fkey: np.ndarray, fptr: np.ndarray) -> None:
    """``(fkey, fptr)[index[i]] = min-by-key of itself and (key, ptr)[i]`` for every ``i``."""
    if index.shape[0] == 0:
        return
    np.minimum.at(fkey, index, key)
    won = key == fkey[index]
    fptr[index[won]] = ptr[won]


def _bucket(dist: np.ndarray, delta: float) -> np.ndarray:
    q = np.floor(dist / delta)
    out = np.full(dist.shape[0], NO_BUCKET, dtype=np.int64)
    ok = q < float(NO_BUCKET)
    out[ok] = q[ok].astype(np.int64)
    return out


def pending_bits(pending: np.ndarray) -> np.ndarray:
    """The bitmap of the vertices with pending bits (uint64 words, bit ``i % 64`` of word
    ``i // 64`` for vertex ``i``), which the delta-stepping kernels keep up to date."""
    dense = np.zeros(((pending.shape[0] + 63) // 64) * 64, dtype=np.uint8)
    dense[: pending.shape[0]] = pending != 0
    return np.packbits(dense, bitorder="little").view(np.uint64)


def sssp_buckets(dist: np.ndarray, pending: np.ndarray, delta: float, pbits: np.ndarray) -> np.ndarray:
    """Smallest bucket ``floor(dist / delta)`` among vertices with a pending light (bit 1)
    and a pending heavy (bit 2) relaxation; :data:`NO_BUCKET` where none.

    ``pbits`` (:func:`pending_bits`) marks exactly the vertices with pending bits; the
    compiled kernel visits only those, so that a phase costs the pending vertices (on
    RMAT, a sixth of them on average) and not a pass over all.

    Returns
    -------
    numpy.ndarray of int64, shape (2,)
    """
    b = _bucket(dist, delta)
    out = np.full(2, NO_BUCKET, dtype=np.int64)
    for i, bit in enumerate((1, 2)):
        sel = (pending & bit) != 0
        if sel.any():
            out[i] = b[sel].min()
    return out


def sssp_publish(dist: np.ndarray, pending: np.ndarray, delta: float, bucket: int, bit: int,
                 pub: np.ndarray, cols: np.ndarray, n_prev: int, pbits: np.ndarray) -> int:
    """Select the frontier of a delta-stepping phase and clear its pending ``bit``.

    The previous phase's frontier ``cols[:n_prev]`` goes back to ``inf`` in ``pub``;
    then ``pub[i] = dist[i]`` for owned vertices with ``bit`` pending and bucket at most
    ``bucket``, which go, increasing, into ``cols`` (the relaxation's columns without
    another pass). The owned part of ``pub`` is then ``inf`` except at the frontier.
    ``pbits`` is kept equal to :func:`pending_bits` of the updated ``pending``. Returns
    the frontier's size.
    """
    pub[cols[:n_prev]] = np.inf
    sel = ((pending & bit) != 0) & (_bucket(dist, delta) <= bucket)
    chosen = np.flatnonzero(sel)
    pub[chosen] = dist[chosen]
    pending[sel] &= np.uint8(~bit & 0xFF)
    pbits[:] = pending_bits(pending)
    cols[: chosen.shape[0]] = chosen
    return int(chosen.shape[0])


def sssp_light_closure(t_indptr: np.ndarray, t_rows: np.ndarray, t_weights: np.ndarray, dist: np.ndarray,
                       delta: float, bucket: int, pending: np.ndarray, kinds: np.ndarray, pbits: np.ndarray,
                       remote: np.ndarray, ring: np.ndarray, queued: np.ndarray, n_seeds: int) -> int:
    """Settle the light work of bucket ``bucket`` between owned vertices to its fixed point.

    The work starts with ``ring[:n_seeds]`` (owned vertices, marked in ``queued``, as
    :func:`sssp_relax` appends them). In queue order, each relaxes its local light
    out-edges (``weight <= delta``; row ``u`` of the transposed CSR is owned column ``u``)
    from its distance and clears its light bit; an improved vertex gets its pending bits
    (``kinds``) and, if it has light work in the bucket and ``remote[v]`` is 0, a turn at
    the queue's end (``ring`` is a ring of one slot per owned vertex, each vertex in it at
    most once). Vertices with ``remote`` set (other ranks store some of their out-edges)
    take no turn: they keep their light bit, and the next light phase publishes them to
    those ranks and relaxes their edges here too. ``queued`` is all zero on return, and
    ``pbits`` follows ``pending``. Returns the edges relaxed.
    """
    from collections import deque

    work = deque(int(u) for u in ring[:n_seeds])
    relaxed = 0
    while work:
        u = work.popleft()
        queued[u] = 0
        for j in range(int(t_indptr[u]), int(t_indptr[u + 1])):
            w = float(t_weights[j])
            if w <= delta:
                relaxed += 1
                v = int(t_rows[j])
                nd = dist[u] + w
                if nd < dist[v]:
                    dist[v] = nd
                    pending[v] |= kinds[v]
                    turn = pending[v] & 1 and not queued[v] and not remote[v]
                    if turn and np.floor(nd / delta) <= bucket:  # its bucket (bucket < NO_BUCKET)
                        work.append(v)
                        queued[v] = 1
        pending[u] &= np.uint8(254)
    pbits[:] = pending_bits(pending)
    return relaxed


def sssp_edge_kinds(t_indptr: np.ndarray, t_weights: np.ndarray, delta: float) -> np.ndarray:
    """Per row of the transposed CSR: bit 1 if it has a light edge (``weight <= delta``),
    bit 2 if it has a heavy one (uint8)."""
    n = t_indptr.shape[0] - 1
    row = np.repeat(np.arange(n, dtype=np.int64), np.diff(t_indptr))
    out = np.zeros(n, dtype=np.uint8)
    light = t_weights <= delta
    out[row[light]] |= np.uint8(1)
    out[row[~light]] |= np.uint8(2)
    return out


def sssp_relax(t_indptr: np.ndarray, t_rows: np.ndarray, t_weights: np.ndarray, pub: np.ndarray,
               cols: np.ndarray, dist: np.ndarray, delta: float, light: bool, pending: np.ndarray,
               kinds: np.ndarray, pbits: np.ndarray, seeds: tuple | None = None) -> int:
    """Relax the light (``weight <= delta``) or heavy out-edges of the columns ``cols``.

    ``dist[v] = min(dist[v], pub[c] + w)``; an improved vertex gets the pending bits of
    the kinds of out-edges it has anywhere (``kinds[v]``, see :func:`sssp_edge_kinds`):
    a phase with nothing to relax would cost a superstep for nothing. ``pbits`` is kept
    equal to :func:`pending_bits` of the updated ``pending``. Returns the number of
    edges relaxed.

    ``seeds``, when given, is ``(remote, ring, queued, ring_n, bucket)``: every improved
    vertex with its light bit pending, bucket at most ``bucket`` and ``remote`` 0 that is
    not ``queued`` yet is appended to ``ring`` at ``ring_n[0]`` (which grows) and marked
    ``queued``, in the order of the edges: :func:`sssp_light_closure`'s starting work.
    """
    starts, stops = t_indptr[cols], t_indptr[cols + 1]
    counts = stops - starts
    total = int(counts.sum())
    if total == 0:
        return 0
    edge = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(total)
    w = t_weights[edge]
    keep = (w <= delta) if light else (w > delta)
    v = t_rows[edge[keep]].astype(np.int64)
    cand = np.repeat(pub[cols], counts)[keep] + w[keep]
    best = dist.copy()
    np.minimum.at(best, v, cand)
    improved = best < dist
    if seeds is not None:
        remote, ring, queued, ring_n, bucket = seeds
        # The compiled kernel appends a vertex at the edge that improves it to a value in
        # range (bucket at most ``bucket``). A vertex's improvements decrease, and so do their
        # buckets, so that edge is its first edge whose value beats ``dist`` and is in range:
        # an earlier edge with a value as small would be in range and earlier. The same
        # vertices in the same order, without a loop over the edges.
        fit = (cand < dist[v]) & (_bucket(cand, delta) <= bucket)
        x = v[fit]
        fit_x = ((pending[x] | kinds[x]) & 1).astype(bool) & (remote[x] == 0) & (queued[x] == 0)
        x = x[fit_x]
        _, first = np.unique(x, return_index=True)
        new = x[np.sort(first)]
        ring[ring_n[0]: ring_n[0] + new.shape[0]] = new
        queued[new] = 1
        ring_n[0] += new.shape[0]
    dist[improved] = best[improved]
    pending[improved] |= kinds[: dist.shape[0]][improved]
    pbits[:] = pending_bits(pending)
    return int(keep.sum())
