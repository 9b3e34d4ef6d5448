"""The ground floor: MPI, roles, topology, devices, backends, errors, logging, messages.

Nothing in ``runtime`` imports from the layers above it (farm, graph, kernels, cli).
"""

from hpcdist.runtime.backend import Backend, resolve_backend
from hpcdist.runtime.comm import MPI, as_comm
from hpcdist.runtime.context import Context
from hpcdist.runtime.devices import Device, discover_device
from hpcdist.runtime.topology import Topology, discover_topology

__all__ = [
    "MPI",
    "as_comm",
    "Context",
    "Topology",
    "discover_topology",
    "Device",
    "discover_device",
    "Backend",
    "resolve_backend",
]
