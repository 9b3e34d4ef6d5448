"""The values of a frontier over the halo plan: only the owned vertices in this superstep's
frontier travel, as (place, value) pairs.

SSSP's delta-stepping publishes the distances of a phase's frontier and ``inf`` everywhere
else, so from one phase to the next a ghost's value changes only where it joins or leaves a
frontier. The plain exchange still sends every ghost value every phase (on RMAT 18 at two
ranks, 0.36 ms a phase, a third of a search), and the generic optimizer
(:mod:`hpcdist.graph.sparse_exchange`) finds the changes with a pass over the whole send
list (92 % fewer bytes, but twice the time). Here the owner walks its frontier list through
a map built once (owned vertex -> its places in the neighbours' send lists), so a phase
costs O(frontier copies): one neighbourhood all-to-all of the counts, one of the pairs. The
receiver writes each value at its ghost slot (ghosts are grouped by owner in the owner's
send order) and puts the slots it wrote in the previous phase back to the blank value.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from hpcdist.graph.halo import HaloPlan

__all__ = ["ValueFrontier"]


class ValueFrontier:
    """Frontier values over one halo plan (built once per plan; see the module notes).

    Collective over the plan's ranks to build and to :meth:`close`; :meth:`exchange` is
    collective over the neighbourhood.

    Parameters
    ----------
    plan : HaloPlan

    Attributes
    ----------
    bytes_sent : int
        Bytes this rank sent in the last exchange (8 per count, 16 per pair).
    dense_bytes : int
        Bytes the plain exchange sends: 8 per ghost copy.
    """

    def __init__(self, plan: "HaloPlan") -> None:
        from hpcdist.graph.halo import HaloLayout
        from hpcdist.runtime.comm import MPI

        lay = plan.layout
        self.plan = plan
        self.n_owned = lay.n_owned
        send_counts = np.asarray(lay.send_counts, dtype=np.int64)
        recv_counts = np.asarray(lay.recv_counts, dtype=np.int64)
        n_send = int(send_counts.sum())
        self.send_first = HaloLayout.displacements(send_counts).astype(np.int64)
        self.recv_first = HaloLayout.displacements(recv_counts).astype(np.int64)
        # each send-list entry's neighbour and place there, ordered by owned vertex
        nb = np.repeat(np.arange(send_counts.shape[0], dtype=np.int64), send_counts)
        place = np.arange(n_send, dtype=np.int64) - self.send_first[nb]
        order = np.argsort(lay.send_index, kind="stable")
        self.map_nb = nb[order]
        self.map_place = place[order]
        self.map_ptr = np.zeros(self.n_owned + 1, dtype=np.int64)
        np.cumsum(np.bincount(lay.send_index, minlength=self.n_owned), out=self.map_ptr[1:])
        # (place, value bits) pairs in each neighbour's part, which holds its whole send list
        self.send = np.empty(2 * n_send, dtype=np.uint64)
        self.recv = np.empty(2 * int(recv_counts.sum()), dtype=np.uint64)
        self.counts = np.zeros(send_counts.shape[0], dtype=np.int64)
        self.rcounts = np.zeros(recv_counts.shape[0], dtype=np.int64)
        self._comm = plan.neighbour_comm
        self._alone = plan._alone  # one rank: no neighbours, and MPI progress costs time even so
        count_spec = ([self.counts, MPI.INT64_T], [self.rcounts, MPI.INT64_T])
        self._count_request: Any = None
        if not self._alone and hasattr(self._comm, "Neighbor_alltoall_init"):
            self._count_request = self._comm.Neighbor_alltoall_init(*count_spec)
        self._count_spec = count_spec
        self.dense_bytes = 8 * n_send
        self.bytes_sent = 0

    def exchange(self, values: np.ndarray, cols: np.ndarray, n_cols: int, blank: float, ghosts: np.ndarray,
                 n_ghosts: int, kernels: ModuleType) -> int:
        """Send ``values`` (float64, one per local column) of the owned frontier
        ``cols[:n_cols]`` and write the neighbours' into the ghost slots of ``values``.

        The ghost slots written by the previous exchange, ``ghosts[:n_ghosts]`` (local
        columns), first get ``blank``; the slots written now go into ``ghosts`` (capacity:
        the ghost count). Returns their number. Collective over the neighbourhood.
        """
        from hpcdist.runtime.comm import MPI

        bits = values.view(np.uint64)
        kernels.value_publish(self.send, self.counts, self.send_first, self.map_ptr, self.map_nb, self.map_place,
                              bits, cols, n_cols)
        if not self._alone:
            if self._count_request is not None:
                self._count_request.Start()
                self._count_request.Wait()
            else:
                self._comm.Neighbor_alltoall(*self._count_spec)
            self._comm.Neighbor_alltoallv([self.send, (2 * self.counts, 2 * self.send_first), MPI.UINT64_T],
                                          [self.recv, (2 * self.rcounts, 2 * self.recv_first), MPI.UINT64_T])
        else:
            self.rcounts[:] = 0
        self.bytes_sent = 8 * self.counts.shape[0] + 16 * int(self.counts.sum())
        blank_bits = np.array([blank], dtype=np.float64).view(np.uint64)[0]
        return kernels.value_unpack(self.recv, self.rcounts, self.recv_first, bits, self.n_owned, blank_bits, ghosts,
                                    n_ghosts)

    def warm_up(self, values: np.ndarray, ghosts: np.ndarray, kernels: ModuleType) -> None:
        """Call both kernels with no work, so that numba compiles (or loads) them for these
        array types in the caller's set-up, not in its first exchange. Local."""
        bits = values.view(np.uint64)
        kernels.value_publish(self.send, self.counts[:0], self.send_first, self.map_ptr, self.map_nb,
                              self.map_place, bits, ghosts[:0], 0)
        kernels.value_unpack(self.recv, self.rcounts[:0], self.recv_first, bits, self.n_owned, np.uint64(0), ghosts,
                             0)

    def close(self) -> None:
        """Free the persistent request. Idempotent."""
        from hpcdist.runtime.comm import MPI

        if self._count_request is not None and not MPI.Is_finalized():
            self._count_request.Free()
        self._count_request = None
