"""The halo plan: which owned values go to which rank, built once, exchanged every superstep.

The layout (:class:`HaloLayout`) is plain data: for each neighbour rank, the local
indices of owned vertices it needs (send side) and how many ghosts come from each
owner (receive side). Ghosts are numbered by global id, and owners hold contiguous
id ranges, so the ghosts of one owner are contiguous: the receive buffer needs no
scatter. :class:`HaloPlan` wraps the layout in a distributed-graph communicator
(``Create_dist_graph_adjacent``) and one persistent neighbourhood collective per dtype
(MPI-4 ``Neighbor_alltoallv_init``), so :meth:`HaloPlan.exchange` is a gather into the
send buffer, ``Start``/``Wait`` and a copy out: one collective, never a loop of
point-to-point messages.

The reverse direction (:meth:`HaloPlan.reverse_exchange`) sends the ghost slots back to
their owners, where the values of every holder are combined into the owned value with a
commutative operation (``min`` by default): what a push-style algorithm writes into a
ghost reaches its owner. It runs on a second neighbourhood communicator with the
sources and destinations swapped, built with the plan (lazily, on first use, on every
rank at once) and kept, with persistent requests per dtype, like the forward one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mpi4py import MPI

    from hpcdist.graph.frontier_exchange import FrontierExchange
    from hpcdist.graph.value_frontier import ValueFrontier

__all__ = ["HaloLayout", "HaloPlan", "build_layout"]


@dataclass
class HaloLayout:
    """Who sends what to whom in one halo exchange (this rank's view).

    Attributes
    ----------
    n_owned : int
    recv_ranks : numpy.ndarray of int32
        Owners this rank receives ghost values from, ascending.
    recv_counts : numpy.ndarray of int64
        Ghosts received from each of ``recv_ranks``; ghosts are stored in this order.
    send_ranks : numpy.ndarray of int32
        Ranks that hold ghosts of this rank's vertices, ascending.
    send_counts : numpy.ndarray of int64
        Values sent to each of ``send_ranks``.
    send_index : numpy.ndarray of int64
        Local indices (0..n_owned-1) of the values sent, grouped by ``send_ranks``.
    """

    n_owned: int
    recv_ranks: np.ndarray
    recv_counts: np.ndarray
    send_ranks: np.ndarray
    send_counts: np.ndarray
    send_index: np.ndarray

    @property
    def n_ghost(self) -> int:
        return int(self.recv_counts.sum())

    @property
    def n_send(self) -> int:
        return int(self.send_counts.sum())

    @staticmethod
    def displacements(counts: np.ndarray) -> np.ndarray:
        d = np.zeros(counts.shape[0], dtype=np.int64)
        np.cumsum(counts[:-1], out=d[1:])
        return d


def build_layout(comm: "MPI.Intracomm", ghost_global: np.ndarray, bounds: np.ndarray) -> HaloLayout:
    """Build the exchange layout from the ghosts each rank needs.

    Collective over ``comm`` (one all-to-all of the ghost ids).

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
    ghost_global : numpy.ndarray of int64
        Global ids of this rank's ghosts, strictly increasing, none owned by this rank.
    bounds : numpy.ndarray of int64, shape (size + 1,)
        Rank ``r`` owns global ids ``bounds[r]:bounds[r+1]``.
    """
    from hpcdist.graph.exchange import redistribute

    rank, size = comm.Get_rank(), comm.Get_size()
    ghost_global = np.ascontiguousarray(ghost_global, dtype=np.int64)
    owners = (np.searchsorted(bounds, ghost_global, side="right") - 1).astype(np.int64)
    if ghost_global.size and (np.any(np.diff(ghost_global) <= 0) or np.any(owners == rank)):
        raise ValueError("build_layout: ghosts must be strictly increasing and owned by other ranks")
    recv_all = np.bincount(owners, minlength=size).astype(np.int64)
    requesters = np.full(ghost_global.shape[0], rank, dtype=np.int64)
    wanted, who = redistribute(comm, owners, ghost_global, requesters)
    send_all = np.bincount(who, minlength=size).astype(np.int64)
    recv_ranks = np.flatnonzero(recv_all).astype(np.int32)
    send_ranks = np.flatnonzero(send_all).astype(np.int32)
    return HaloLayout(
        n_owned=int(bounds[rank + 1] - bounds[rank]),
        recv_ranks=recv_ranks,
        recv_counts=recv_all[recv_ranks],
        send_ranks=send_ranks,
        send_counts=send_all[send_ranks],
        send_index=wanted - bounds[rank],  # redistribute groups by requester rank, ascending
    )


class HaloPlan:
    """A built halo exchange: neighbourhood communicator, counts, persistent buffers.

    Collective over ``comm`` to build and to :meth:`close`; :meth:`exchange` is
    collective over the neighbourhood (every rank of ``comm`` calls it).

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
    layout : HaloLayout
    persistent : bool
        Use MPI-4 persistent ``Neighbor_alltoallv_init`` when the MPI library has it.

    Attributes
    ----------
    layout : HaloLayout
    neighbour_comm : mpi4py.MPI.Distgraphcomm
    bytes_sent : int
        Bytes this rank sent in the last exchange.
    """

    def __init__(self, comm: "MPI.Intracomm", layout: HaloLayout, *, persistent: bool = True) -> None:
        self.layout = layout
        self.neighbour_comm = comm.Create_dist_graph_adjacent(
            layout.recv_ranks.tolist(),
            layout.send_ranks.tolist(),
            sourceweights=layout.recv_counts.tolist(),
            destweights=layout.send_counts.tolist(),
            reorder=False,
        )
        self._persistent = persistent and hasattr(self.neighbour_comm, "Neighbor_alltoallv_init")
        self._alone = comm.Get_size() == 1
        self._send_displs = HaloLayout.displacements(layout.send_counts)
        self._recv_displs = HaloLayout.displacements(layout.recv_counts)
        self._channels: dict[np.dtype, tuple[np.ndarray, np.ndarray, Any]] = {}
        self._reverse_comm: Any = None
        self._reverse_channels: dict[np.dtype, tuple[np.ndarray, np.ndarray, Any]] = {}
        self._frontier: Any = None
        self._value_frontier: Any = None
        self.bytes_sent = 0

    @property
    def n_owned(self) -> int:
        return self.layout.n_owned

    @property
    def n_ghost(self) -> int:
        return self.layout.n_ghost

    def _channel(self, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, Any]:
        ch = self._channels.get(dtype)
        if ch is None:
            from mpi4py.util.dtlib import from_numpy_dtype

            send = np.empty(self.layout.n_send, dtype=dtype)
            recv = np.empty(self.layout.n_ghost, dtype=dtype)
            mpitype = from_numpy_dtype(dtype)
            sendspec = [send, (self.layout.send_counts, self._send_displs), mpitype]
            recvspec = [recv, (self.layout.recv_counts, self._recv_displs), mpitype]
            if self._persistent:
                request = self.neighbour_comm.Neighbor_alltoallv_init(sendspec, recvspec)
            else:
                request = (sendspec, recvspec)
            ch = (send, recv, request)
            self._channels[dtype] = ch
        return ch

    def exchange(self, values: np.ndarray) -> np.ndarray:
        """Fill the ghost part of ``values`` with the owners' values.

        Parameters
        ----------
        values : numpy.ndarray, shape (n_owned + n_ghost,)
            Owned values first, then the ghost slots (overwritten).

        Returns
        -------
        numpy.ndarray
            ``values`` itself.
        """
        n_owned = self.layout.n_owned
        if values.shape[0] != n_owned + self.layout.n_ghost:
            raise ValueError(f"exchange: expected {n_owned + self.layout.n_ghost} values, got {values.shape[0]}")
        send, recv, request = self._channel(values.dtype)
        np.take(values, self.layout.send_index, out=send)
        if self._alone:
            pass  # a single rank has no neighbours, and MPI's progress engine costs time even so
        elif self._persistent:
            request.Start()
            request.Wait()
        else:
            self.neighbour_comm.Neighbor_alltoallv(*request)
        values[n_owned:] = recv
        self.bytes_sent = send.nbytes
        return values

    def frontier(self) -> "FrontierExchange":
        """The plan's frontier-bitmap channel (:mod:`hpcdist.graph.frontier_exchange`),
        built on first use (collective: every rank asks at the same point) and kept."""
        if self._frontier is None:
            from hpcdist.graph.frontier_exchange import FrontierExchange

            self._frontier = FrontierExchange(self)
        return self._frontier

    def value_frontier(self) -> "ValueFrontier":
        """The plan's frontier-values channel (:mod:`hpcdist.graph.value_frontier`), built
        on first use (collective: every rank asks at the same point) and kept."""
        if self._value_frontier is None:
            from hpcdist.graph.value_frontier import ValueFrontier

            self._value_frontier = ValueFrontier(self)
        return self._value_frontier

    # -- reverse direction: ghost slots -> owners ----------------------------------------
    def _reverse_channel(self, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, Any]:
        ch = self._reverse_channels.get(dtype)
        if ch is None:
            from mpi4py.util.dtlib import from_numpy_dtype

            lay = self.layout
            if self._reverse_comm is None:
                # Collective over the plan's ranks: every rank reaches its first reverse
                # exchange at the same point of the same algorithm.
                self._reverse_comm = self.neighbour_comm.Create_dist_graph_adjacent(
                    lay.send_ranks.tolist(),
                    lay.recv_ranks.tolist(),
                    sourceweights=lay.send_counts.tolist(),
                    destweights=lay.recv_counts.tolist(),
                    reorder=False,
                )
            send = np.empty(lay.n_ghost, dtype=dtype)
            recv = np.empty(lay.n_send, dtype=dtype)
            mpitype = from_numpy_dtype(dtype)
            sendspec = [send, (lay.recv_counts, self._recv_displs), mpitype]
            recvspec = [recv, (lay.send_counts, self._send_displs), mpitype]
            if self._persistent:
                request = self._reverse_comm.Neighbor_alltoallv_init(sendspec, recvspec)
            else:
                request = (sendspec, recvspec)
            ch = (send, recv, request)
            self._reverse_channels[dtype] = ch
        return ch

    def reverse_gather(self, values: np.ndarray) -> np.ndarray:
        """Send the ghost slots of ``values`` to their owners; return what this rank received.

        Collective over the neighbourhood. The returned array (length ``n_send``, a buffer
        reused by the next call with the same dtype) is aligned with
        ``layout.send_index``: item ``i`` is a holder's value for owned vertex
        ``send_index[i]``. For combinations that are not a ufunc (an arg-min over a pair
        of arrays, ...); :meth:`reverse_exchange` covers the rest.

        Parameters
        ----------
        values : numpy.ndarray, shape (n_owned + n_ghost,)
        """
        n_owned = self.layout.n_owned
        if values.shape[0] != n_owned + self.layout.n_ghost:
            raise ValueError(f"reverse_gather: expected {n_owned + self.layout.n_ghost} values, got {values.shape[0]}")
        if self._alone:
            return np.empty(0, dtype=values.dtype)  # no ghosts, nothing to send or receive
        send, recv, request = self._reverse_channel(values.dtype)
        send[:] = values[n_owned:]
        if self._persistent:
            request.Start()
            request.Wait()
        else:
            self._reverse_comm.Neighbor_alltoallv(*request)
        self.bytes_sent = send.nbytes
        return recv

    def reverse_exchange(self, values: np.ndarray, op: np.ufunc = np.minimum) -> np.ndarray:
        """Combine every holder's ghost value of each owned vertex into the owner's value.

        ``values[i] = op(values[i], g)`` for each ghost copy ``g`` of owned vertex ``i``
        on any rank; ``op`` must be commutative and associative (``numpy.minimum``,
        ``numpy.maximum``, ``numpy.add`` on integers), so the result does not depend on
        the order the copies arrive in. The ghost slots are left as they were.
        Collective over the neighbourhood.

        Returns
        -------
        numpy.ndarray
            ``values`` itself.
        """
        recv = self.reverse_gather(values)
        if recv.shape[0]:
            op.at(values, self.layout.send_index, recv)
        return values

    def close(self) -> None:
        """Free the persistent requests and the neighbourhood communicators. Idempotent."""
        from hpcdist.runtime.comm import MPI

        if MPI.Is_finalized():
            return
        if self._frontier is not None:
            self._frontier.close()
            self._frontier = None
        if self._value_frontier is not None:
            self._value_frontier.close()
            self._value_frontier = None
        for _, _, request in self._channels.values():
            if self._persistent:
                request.Free()
        self._channels.clear()
        for _, _, request in self._reverse_channels.values():
            if self._persistent:
                request.Free()
        self._reverse_channels.clear()
        if self._reverse_comm is not None and self._reverse_comm != MPI.COMM_NULL:
            self._reverse_comm.Free()
        self._reverse_comm = None
        if self.neighbour_comm != MPI.COMM_NULL:
            self.neighbour_comm.Free()

    def __enter__(self) -> "HaloPlan":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
