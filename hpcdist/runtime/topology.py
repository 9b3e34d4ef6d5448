"""Node topology: which ranks share a node, and where each rank sits on it."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mpi4py import MPI

__all__ = ["Topology", "discover_topology"]


@dataclass(frozen=True)
class Topology:
    """Where one rank runs.

    Attributes
    ----------
    hostname : str
        The node's host name.
    node_index : int
        Index of this rank's node, 0..n_nodes-1, in the order of the nodes' lowest ranks.
    n_nodes : int
        Number of nodes in the communicator.
    local_rank : int
        Rank among the ranks of the same node (binds GPUs: ``local_rank % n_gpus``).
    local_size : int
        Number of ranks on this node.
    """

    hostname: str
    node_index: int
    n_nodes: int
    local_rank: int
    local_size: int


def discover_topology(comm: "MPI.Intracomm") -> Topology:
    """Find this rank's node, its rank on the node and the number of nodes.

    Uses ``Split_type(COMM_TYPE_SHARED)``, so ranks that share memory count as one
    node whatever their host names say. Collective over ``comm``; O(1) state per rank.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        The communicator to describe.

    Returns
    -------
    Topology
    """
    from hpcdist.runtime.comm import MPI

    node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
    try:
        local_rank, local_size = node.Get_rank(), node.Get_size()
        leaders = comm.Split(0 if local_rank == 0 else MPI.UNDEFINED, key=comm.Get_rank())
        placement = None
        if leaders != MPI.COMM_NULL:
            placement = (leaders.Get_rank(), leaders.Get_size())
            leaders.Free()
        node_index, n_nodes = node.bcast(placement, root=0)
    finally:
        node.Free()
    return Topology(
        hostname=socket.gethostname(),
        node_index=node_index,
        n_nodes=n_nodes,
        local_rank=local_rank,
        local_size=local_size,
    )
