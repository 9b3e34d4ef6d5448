"""Original vertex ids <-> global ids 0..n-1, without any rank holding all ids.

Edge lists name vertices by arbitrary non-negative 64-bit ids. The global id of a
vertex is its position in the sorted set of all ids that occur, so the ``vertex_ids``
slice that each rank keeps (for ``owned_range(n, size, rank)``) is sorted and a
lookup is a binary search. The sorted set is built by a sample sort: ranks send their
distinct ids to the rank that owns their value range, which sorts them and numbers
them after an exclusive scan, and answers back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from hpcdist.graph.edgelist import EdgeList
from hpcdist.graph.exchange import rank_order, redistribute
from hpcdist.graph.partition import block_owner
from hpcdist.runtime.errors import InputError, collective
from hpcdist.runtime.ranges import owned_range

if TYPE_CHECKING:
    from mpi4py import MPI

__all__ = ["map_to_global_ids", "lookup_global_ids", "range_starts"]

#: Samples per rank for the splitters of the sample sort: O(P) state in all, and
#: enough for buckets within a few per cent of each other.
SAMPLES_PER_RANK = 256


def range_starts(n: int, size: int) -> np.ndarray:
    """First index owned by each rank under :func:`owned_range` (int64, shape (size,))."""
    return np.array([owned_range(n, size, r)[0] for r in range(size)], dtype=np.int64)


@njit(cache=True)
def _positions_in(keys, queries):
    """Index of each query in ``keys`` (distinct, non-negative; every query present).

    An open-addressing hash table: O(1) per query where a binary search over a large
    ``keys`` costs a cache miss per step (10x slower measured on 8 M queries).
    """
    cap = 1
    while cap < 2 * keys.shape[0]:
        cap *= 2
    shift = np.uint64(64 - max(1, int(np.log2(cap))))
    mult = np.uint64(0x9E3779B97F4A7C15)
    mask = cap - 1
    table_keys = np.full(cap, -1, dtype=np.int64)
    table_vals = np.empty(cap, dtype=np.int64)
    for i in range(keys.shape[0]):
        h = np.int64((np.uint64(keys[i]) * mult) >> shift) & mask
        while table_keys[h] != -1:
            h = (h + 1) & mask
        table_keys[h] = keys[i]
        table_vals[h] = i
    out = np.empty(queries.shape[0], dtype=np.int64)
    for j in range(queries.shape[0]):
        q = queries[j]
        h = np.int64((np.uint64(q) * mult) >> shift) & mask
        while table_keys[h] != q:
            if table_keys[h] == -1:
                out[j] = -1
                break
            h = (h + 1) & mask
        else:
            out[j] = table_vals[h]
    return out


def unique_and_positions(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``numpy.unique(ids, return_inverse=True)`` for non-negative int64, faster on large inputs."""
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if ids.shape[0] == 0:
        return ids.copy(), np.empty(0, dtype=np.int64)
    s = np.sort(ids)
    keep = np.empty(s.shape[0], dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    unique = s[keep]
    return unique, _positions_in(unique, ids)


def _splitters(comm: "MPI.Intracomm", local_sorted: np.ndarray) -> np.ndarray:
    """size-1 ascending values that cut the union of the ranks' sorted ids into similar parts."""
    size = comm.Get_size()
    k = min(SAMPLES_PER_RANK, local_sorted.shape[0])
    if k:
        picks = local_sorted[(np.arange(k, dtype=np.int64) * local_sorted.shape[0]) // k]
        weight = np.full(k, local_sorted.shape[0] / k)
    else:
        picks, weight = np.empty(0, np.int64), np.empty(0, np.float64)
    all_picks = np.concatenate(comm.allgather(picks))
    all_weight = np.concatenate(comm.allgather(weight))
    if all_picks.shape[0] == 0:
        return np.zeros(size - 1, dtype=np.int64)
    order = np.argsort(all_picks, kind="stable")
    all_picks, cum = all_picks[order], np.cumsum(all_weight[order])
    targets = cum[-1] * np.arange(1, size) / size
    return all_picks[np.minimum(np.searchsorted(cum, targets), all_picks.shape[0] - 1)]


def map_to_global_ids(
    comm: "MPI.Intracomm", src: np.ndarray, dst: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """Renumber the ids that occur in the edges to 0..n-1 in increasing id order.

    Collective over ``comm``. Memory per rank is O(its edges + its share of the ids).

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
    src, dst : numpy.ndarray of int64
        This rank's edges in original ids (non-negative).

    Returns
    -------
    src, dst : numpy.ndarray of int64
        The same edges in global ids.
    n : int
        Number of distinct ids over all ranks.
    vertex_ids : numpy.ndarray of int64
        The original ids of the vertices in ``owned_range(n, size, rank)``, sorted.
    """
    from hpcdist.runtime.comm import MPI

    rank, size = comm.Get_rank(), comm.Get_size()
    local_ids, inverse = unique_and_positions(np.concatenate([src, dst]))
    splitters = _splitters(comm, local_ids)
    bucket = np.searchsorted(splitters, local_ids, side="right").astype(np.int64)
    (received,) = redistribute(comm, bucket, local_ids)
    sender = np.repeat(
        np.arange(size, dtype=np.int64), _recv_counts(comm, bucket, size)
    )  # redistribute groups items by source rank
    mine, back = unique_and_positions(received)
    offset = comm.exscan(int(mine.shape[0]), op=MPI.SUM)
    offset = int(offset) if rank else 0  # exscan leaves rank 0 undefined
    n = int(comm.allreduce(int(mine.shape[0]), op=MPI.SUM))
    (answers,) = redistribute(comm, sender, offset + back)
    # answers arrive grouped by the answering rank, in the order this rank sent them
    gid = np.empty(local_ids.shape[0], dtype=np.int64)
    gid[rank_order(bucket, size)] = answers
    m = src.shape[0]
    new_src, new_dst = gid[inverse[:m]], gid[inverse[m:]]
    # move the sorted ids from value buckets to the owners of their global ids
    global_of_mine = offset + np.arange(mine.shape[0], dtype=np.int64)
    (vertex_ids,) = redistribute(comm, block_owner(global_of_mine, n, size), mine) if n else (mine,)
    return new_src, new_dst, n, vertex_ids


def _recv_counts(comm: "MPI.Intracomm", dest: np.ndarray, size: int) -> np.ndarray:
    from hpcdist.graph.exchange import exchange_counts

    return exchange_counts(comm, np.bincount(dest, minlength=size).astype(np.int64))


def lookup_global_ids(
    original_ids,
    edgelist_or_vertex_ids_slice: EdgeList | np.ndarray | None,
    n: int | None,
    comm: "MPI.Intracomm",
    *,
    name: str | None = None,
) -> np.ndarray:
    """Global ids of original vertex ids (``--source``, personalization).

    Collective over ``comm``. Each rank may ask for different ids (or the same); each
    gets the answers to its own questions.

    Parameters
    ----------
    original_ids : int or array_like of int
        Ids as they appear in the input file.
    edgelist_or_vertex_ids_slice : EdgeList, numpy.ndarray or None
        An :class:`EdgeList` (its ``vertex_ids``, ``n_vertices`` and ``name`` are
        used) or this rank's sorted slice of original ids for ``owned_range(n, size,
        rank)``; None (or an EdgeList without ids) when ids are 0..n-1.
    n : int or None
        Number of vertices; may be None when an EdgeList is given.
    comm : mpi4py.MPI.Intracomm
    name : str, optional
        The input's name for the message (an EdgeList's ``name`` by default).

    Returns
    -------
    numpy.ndarray of int64
        One global id per requested id, in the order asked.

    Raises
    ------
    InputError
        On every rank, "vertex 123 does not exist in <name>", for the first unknown id.
    """
    if isinstance(edgelist_or_vertex_ids_slice, EdgeList):
        el = edgelist_or_vertex_ids_slice
        ids_slice, n, name = el.vertex_ids, el.n_vertices if n is None else n, name or el.name
    else:
        ids_slice = edgelist_or_vertex_ids_slice
    if n is None:
        raise ValueError("lookup_global_ids: n is needed when no EdgeList is given")
    where = name or "the graph"
    query = np.atleast_1d(np.asarray(original_ids)).astype(np.int64, copy=False).ravel()
    identity = comm.allreduce(ids_slice is None)
    if identity:
        with collective(comm):
            bad = np.flatnonzero((query < 0) | (query >= n))
            if bad.shape[0]:
                raise InputError(f"vertex {int(query[bad[0]])} does not exist in {where}")
        return query.copy()
    size, rank = comm.Get_size(), comm.Get_rank()
    ids_slice = np.asarray(ids_slice, dtype=np.int64)
    # first id of each rank's slice; an empty slice inherits the next one's so that it never matches
    firsts = np.array(comm.allgather(int(ids_slice[0]) if ids_slice.shape[0] else None), dtype=object)
    starts = range_starts(n, size)
    nonempty = [r for r in range(size) if firsts[r] is not None]
    keys = np.array([firsts[r] for r in nonempty], dtype=np.int64)
    dest = np.array(nonempty, dtype=np.int64)[np.maximum(np.searchsorted(keys, query, side="right") - 1, 0)]
    (asked,) = redistribute(comm, dest, query)
    sender = np.repeat(np.arange(size, dtype=np.int64), _recv_counts(comm, dest, size))
    pos = np.searchsorted(ids_slice, asked)
    found = pos < ids_slice.shape[0]
    found[found] = ids_slice[pos[found]] == asked[found]
    answer = np.where(found, starts[rank] + pos, -1).astype(np.int64)
    (answers,) = redistribute(comm, sender, answer)
    result = np.empty(query.shape[0], dtype=np.int64)
    result[rank_order(dest, size)] = answers
    with collective(comm):
        bad = np.flatnonzero(result < 0)
        if bad.shape[0]:
            raise InputError(f"vertex {int(query[bad[0]])} does not exist in {where}")
    return result
