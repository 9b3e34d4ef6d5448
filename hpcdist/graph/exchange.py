"""All-to-all redistribution of array items by destination rank.

The one primitive that moves edges and vertex data between ranks while a graph is
loaded, partitioned or written: no rank ever gathers the whole graph.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mpi4py import MPI

__all__ = ["redistribute", "exchange_counts"]


def exchange_counts(comm: "MPI.Intracomm", send_counts: np.ndarray) -> np.ndarray:
    """Tell every rank how many items each other rank will send it.

    Collective over ``comm``.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
    send_counts : numpy.ndarray of int64, shape (size,)
        Items this rank sends to each rank.

    Returns
    -------
    numpy.ndarray of int64, shape (size,)
        Items this rank receives from each rank.
    """
    send_counts = np.ascontiguousarray(send_counts, dtype=np.int64)
    recv_counts = np.empty_like(send_counts)
    comm.Alltoall(send_counts, recv_counts)
    return recv_counts


def _displacements(counts: np.ndarray) -> np.ndarray:
    displs = np.zeros_like(counts)
    np.cumsum(counts[:-1], out=displs[1:])
    return displs


def rank_order(dest: np.ndarray, size: int) -> np.ndarray:
    """``np.argsort(dest, kind="stable")`` for ranks ``0 <= dest < size``: the order that
    groups items by rank, keeping their order within a rank (as :func:`redistribute` sends).

    Ranks fit 16 bits in all but the largest jobs, and numpy sorts 16-bit keys by radix,
    in linear time: 1.5x faster than the merge sort of int64 keys at 2 ranks, 4.7x at 64
    (131 072 items).
    """
    dest = np.asarray(dest)
    if size <= np.iinfo(np.int16).max:
        dest = dest.astype(np.int16, copy=False)
    return np.argsort(dest, kind="stable")


def redistribute(comm: "MPI.Intracomm", dest: np.ndarray, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Send item ``i`` of every array to rank ``dest[i]``.

    Received items are grouped by source rank in rank order, and keep their relative
    order within one source, so the result is deterministic. Counts and
    displacements are 64-bit: mpi4py uses MPI-4's large-count calls for more than
    2^31 - 1 items per pair.

    Collective over ``comm``.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
    dest : numpy.ndarray of int
        Destination rank of each item, 0 <= dest < size.
    *arrays : numpy.ndarray
        1-D arrays of the same length as ``dest`` (any numeric dtype).

    Returns
    -------
    tuple of numpy.ndarray
        The received arrays, in the order given.
    """
    from mpi4py.util.dtlib import from_numpy_dtype

    size = comm.Get_size()
    dest = np.asarray(dest)
    n = dest.shape[0]
    for a in arrays:
        if a.shape != (n,):
            raise ValueError("redistribute: every array must be 1-D with one item per destination")
    if n and (dest.min() < 0 or dest.max() >= size):
        raise ValueError(f"redistribute: destination ranks must lie in 0..{size - 1}")
    if size == 1:  # every item stays, in its order: the sort and the collective would move nothing
        return tuple(np.array(a) for a in arrays)
    send_counts = np.bincount(dest, minlength=size).astype(np.int64)
    recv_counts = exchange_counts(comm, send_counts)
    sdispl, rdispl = _displacements(send_counts), _displacements(recv_counts)
    order = rank_order(dest, size)
    total = int(recv_counts.sum())
    out = []
    for a in arrays:
        send = np.ascontiguousarray(a[order])
        recv = np.empty(total, dtype=a.dtype)
        mpitype = from_numpy_dtype(send.dtype)
        comm.Alltoallv([send, (send_counts, sdispl), mpitype], [recv, (recv_counts, rdispl), mpitype])
        out.append(recv)
    return tuple(out)
