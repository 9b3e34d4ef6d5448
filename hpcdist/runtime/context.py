"""The SPMD context: a private communicator, roles, topology, device and backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpcdist.runtime.backend import Backend, resolve_backend
from hpcdist.runtime.comm import as_comm
from hpcdist.runtime.devices import Device, discover_device
from hpcdist.runtime.errors import collective
from hpcdist.runtime.topology import Topology, discover_topology

if TYPE_CHECKING:
    from mpi4py import MPI

__all__ = ["Context", "COORDINATOR"]

#: The rank that coordinates (the farm's scheduler, the graph engine's console output).
COORDINATOR = 0


class Context:
    """Everything a rank knows about the job it runs in.

    Built collectively from a communicator that is passed in; nothing deeper in
    hpcdist reaches for ``COMM_WORLD``. The context owns a private duplicate of
    that communicator and frees it in :meth:`close` (or on leaving a ``with``).

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm, optional
        The communicator to run on; ``MPI.COMM_WORLD`` when None.
    backend : {"auto", "numpy", "numba", "cupy"}
        The compute backend; ``auto`` is agreed over all ranks.
    discover_gpus : bool
        Look for CuPy GPUs (False skips the CuPy import entirely).

    Attributes
    ----------
    comm : mpi4py.MPI.Intracomm
        The private duplicate.
    rank, size : int
    topology : Topology
    device : Device
    backend : Backend

    Notes
    -----
    Collective over ``comm`` (duplication, topology, backend agreement).
    """

    def __init__(
        self,
        comm: "MPI.Intracomm | None" = None,
        *,
        backend: str = "auto",
        discover_gpus: bool = True,
    ) -> None:
        self.comm = as_comm(comm)
        try:
            self.rank = self.comm.Get_rank()
            self.size = self.comm.Get_size()
            self.topology: Topology = discover_topology(self.comm)
            if discover_gpus:
                self.device: Device = discover_device(self.topology.local_rank)
            else:
                self.device = Device(kind="cpu", reason="GPU discovery off")
            with collective(self.comm):  # a bad --backend stops every rank with one message
                self.backend: Backend = resolve_backend(backend, self.device, self.comm)
        except BaseException:
            self.comm.Free()
            raise

    @property
    def coordinator(self) -> int:
        """The coordinating rank (0)."""
        return COORDINATOR

    @property
    def is_coordinator(self) -> bool:
        return self.rank == COORDINATOR

    @property
    def worker_ranks(self) -> range:
        """The ranks that work for the coordinator; empty on a single rank."""
        return range(1, self.size)

    @property
    def is_worker(self) -> bool:
        return self.rank != COORDINATOR

    def close(self) -> None:
        """Free the private communicator. Collective; idempotent."""
        from hpcdist.runtime.comm import MPI

        if self.comm != MPI.COMM_NULL and not MPI.Is_finalized():
            self.comm.Free()

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        t = self.topology
        return (
            f"Context(rank={self.rank}, size={self.size}, node={t.node_index}/{t.n_nodes}, "
            f"local_rank={t.local_rank}, backend={self.backend.name})"
        )
