"""Compute backend selection, decided in one place and passed down.

``numpy`` is the reference, ``numba`` the CPU default, ``cupy`` the GPU backend.
``auto`` picks CuPy when every rank has a GPU, else numba when it imports, else numpy.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Callable

from hpcdist.runtime.devices import CPU, Device
from hpcdist.runtime.errors import BackendError

if TYPE_CHECKING:
    from mpi4py import MPI

__all__ = ["Backend", "resolve_backend", "BACKENDS"]

BACKENDS = ("numpy", "numba", "cupy", "auto")


@dataclass(frozen=True)
class Backend:
    """A resolved backend: its name, its array module and its device.

    Attributes
    ----------
    name : {"numpy", "numba", "cupy"}
    xp : module
        The array module (``numpy`` or ``cupy``).
    device : Device
    """

    name: str
    xp: ModuleType
    device: Device

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, device={self.device.describe()!r})"


def _importable(name: str, importer: Callable[[str], ModuleType]) -> bool:
    try:
        importer(name)
    except Exception:  # noqa: BLE001
        return False
    return True


def resolve_backend(
    requested: str = "auto",
    device: Device = CPU,
    comm: "MPI.Intracomm | None" = None,
    *,
    importer: Callable[[str], ModuleType] = importlib.import_module,
) -> Backend:
    """Turn a backend request into a :class:`Backend` for this rank.

    With ``comm`` given, ``auto`` is decided collectively: CuPy only when every rank
    has a GPU, so that all ranks run the same kernels. Collective over ``comm`` when
    ``comm`` is given.

    Parameters
    ----------
    requested : {"numpy", "numba", "cupy", "auto"}
    device : Device
        This rank's device from :func:`hpcdist.runtime.devices.discover_device`.
    comm : mpi4py.MPI.Intracomm, optional
        Ranks that must agree on ``auto``.
    importer : callable
        Imports a module by name (tests pass a fake).

    Returns
    -------
    Backend

    Raises
    ------
    BackendError
        An unknown name, ``cupy`` without a GPU, or ``numba`` that does not import.
    """
    import numpy

    name = (requested or "auto").lower()
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {requested!r}; choose one of {', '.join(BACKENDS)}")
    if name == "auto":
        all_gpu = device.is_gpu
        if comm is not None:
            from hpcdist.runtime.comm import MPI

            all_gpu = bool(comm.allreduce(int(device.is_gpu), op=MPI.MIN))
        if all_gpu:
            name = "cupy"
        elif _importable("numba", importer):
            name = "numba"
        else:
            name = "numpy"
        if name != "cupy" and device.is_gpu:
            device = CPU
    if name == "cupy":
        if not device.is_gpu:
            raise BackendError(f"backend 'cupy' needs a GPU on every rank; this rank has none ({device.reason or 'cpu'})")
        return Backend("cupy", importer("cupy"), device)
    if name == "numba" and not _importable("numba", importer):
        raise BackendError("backend 'numba' requested but numba does not import; use --backend numpy")
    return Backend(name, numpy, device)
