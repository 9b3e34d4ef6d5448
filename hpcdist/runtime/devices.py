"""Device discovery: a CuPy GPU when one answers, else a quiet CPU fallback."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from types import ModuleType
from typing import Callable

__all__ = ["Device", "discover_device", "CPU"]


@dataclass(frozen=True)
class Device:
    """The compute device bound to one rank.

    Attributes
    ----------
    kind : {"cpu", "gpu"}
    index : int or None
        The CUDA device index this rank uses (``local_rank % n_visible``).
    name : str
        The GPU model, or ``"cpu"``.
    memory_bytes : int or None
        The GPU's total memory.
    n_visible : int
        GPUs visible to this rank.
    reason : str
        Why this device was chosen (why there is no GPU, for instance).
    """

    kind: str
    index: int | None = None
    name: str = "cpu"
    memory_bytes: int | None = None
    n_visible: int = 0
    reason: str = ""

    @property
    def is_gpu(self) -> bool:
        return self.kind == "gpu"

    def describe(self) -> str:
        """One short phrase for tables: ``"gpu0 NVIDIA H100 (80 GiB)"`` or ``"none"``."""
        if not self.is_gpu:
            return "none"
        mem = f" ({self.memory_bytes / 2**30:.0f} GiB)" if self.memory_bytes else ""
        return f"gpu{self.index} {self.name}{mem}"


CPU = Device(kind="cpu", reason="no GPU requested")


def discover_device(
    local_rank: int,
    *,
    importer: Callable[[str], ModuleType] = importlib.import_module,
    environ: dict[str, str] | None = None,
) -> Device:
    """Bind this rank to a GPU when CuPy imports and a driver answers, else the CPU.

    Never raises: a missing CuPy, a missing driver or a failing device query all give
    a CPU device whose ``reason`` says why.

    Parameters
    ----------
    local_rank : int
        Rank on the node; the GPU is ``local_rank % n_visible``.
    importer : callable
        Imports a module by name (tests pass a fake).
    environ : mapping, optional
        Environment to read ``HPCDIST_DEVICE`` from (``cpu`` forces the CPU).

    Returns
    -------
    Device
    """
    env = os.environ if environ is None else environ
    if env.get("HPCDIST_DEVICE", "").lower() == "cpu":
        return Device(kind="cpu", reason="HPCDIST_DEVICE=cpu")
    try:
        cupy = importer("cupy")
    except Exception as exc:  # noqa: BLE001 - ImportError and broken installs alike
        return Device(kind="cpu", reason=f"cupy not importable ({type(exc).__name__})")
    try:
        n_visible = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:  # noqa: BLE001 - no driver, no device, CUDA error
        return Device(kind="cpu", reason=f"no CUDA driver answered ({exc})")
    if n_visible <= 0:
        return Device(kind="cpu", reason="no GPU visible")
    index = local_rank % n_visible
    try:
        props = cupy.cuda.runtime.getDeviceProperties(index)
        name = props.get("name", b"gpu")
        name = name.decode() if isinstance(name, bytes) else str(name)
        memory = int(props.get("totalGlobalMem", 0)) or None
        cupy.cuda.Device(index).use()
    except Exception as exc:  # noqa: BLE001
        return Device(kind="cpu", reason=f"GPU {index} unusable ({exc})")
    return Device(kind="gpu", index=index, name=name, memory_bytes=memory, n_visible=n_visible, reason="bound by local rank")
