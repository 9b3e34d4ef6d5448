"""What a task needs (:class:`Requirements`) and what a worker offers (:class:`Capabilities`).

Pure data and arithmetic: no MPI. Memory sizes are binary (``"2G"`` is 2 GiB), as in
Slurm's ``--mem``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

from hpcdist.runtime.errors import InputError

__all__ = ["Requirements", "Capabilities", "parse_memory", "format_bytes"]

_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40, "P": 2**50}
_MEMORY = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([KMGTP]?)(I?B?)\s*$", re.IGNORECASE)


def parse_memory(value: int | float | str | None) -> int | None:
    """Bytes in a memory size such as ``"2G"``, ``"512MiB"``, ``"1.5 GB"`` or ``4096``.

    Units are binary (K = 1024). ``None`` stays ``None`` (no requirement).

    Raises
    ------
    InputError
        A negative number or a string that is not a size.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise InputError(f"memory must be a size such as '2G', got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise InputError(f"memory must be >= 0, got {value!r}")
        return int(value)
    match = _MEMORY.match(str(value))
    if match is None:
        raise InputError(f"cannot read memory size {value!r}; use a number of bytes or e.g. '512M', '2G', '1.5GiB'")
    number, unit, _ = match.groups()
    return int(float(number) * _UNITS[unit.upper()])


def format_bytes(n: int | None) -> str:
    """``2147483648`` -> ``"2.0G"``; ``None`` -> ``"?"``."""
    if n is None:
        return "?"
    for unit in ("P", "T", "G", "M", "K"):
        if n >= _UNITS[unit]:
            return f"{n / _UNITS[unit]:.1f}{unit}"
    return f"{n}B"


@dataclass(frozen=True)
class Requirements:
    """What a task needs from the worker that runs it.

    Parameters
    ----------
    cpus : int
        Cores (compared with the worker's ``cores``).
    memory : int or str, optional
        Memory, e.g. ``"2G"``; compared with the worker's ``memory``.
    gpu : int
        GPUs the task needs on the worker.
    labels : iterable of str
        Labels the worker must hold (e.g. ``"model:a"``). Under the ``affinity``
        strategy they are a preference, not a requirement.
    """

    cpus: int = 1
    memory: int | str | None = None
    gpu: int = 0
    labels: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        object.__setattr__(self, "memory", parse_memory(self.memory))
        labels = self.labels
        if isinstance(labels, str):
            labels = {labels}
        object.__setattr__(self, "labels", frozenset(labels))
        if int(self.cpus) < 0 or int(self.gpu) < 0:
            raise InputError(f"cpus and gpu must be >= 0, got cpus={self.cpus}, gpu={self.gpu}")

    @property
    def memory_bytes(self) -> int | None:
        return self.memory  # type: ignore[return-value]

    def unmet(self, caps: "Capabilities", *, labels: bool = True) -> list[str]:
        """The requirements ``caps`` does not meet, in words (empty when it fits)."""
        missing = []
        if self.cpus > caps.cores:
            missing.append(f"cpus={self.cpus} > {caps.cores}")
        if self.memory_bytes is not None and (caps.memory is None or self.memory_bytes > caps.memory):
            missing.append(f"memory={format_bytes(self.memory_bytes)} > {format_bytes(caps.memory)}")
        if self.gpu > caps.gpus:
            missing.append(f"gpu={self.gpu} > {caps.gpus}")
        if labels and not self.labels <= caps.labels:
            missing.append(f"labels {sorted(self.labels - caps.labels)} missing")
        return missing

    def satisfied_by(self, caps: "Capabilities", *, labels: bool = True) -> bool:
        """True when ``caps`` meets every requirement (labels only when ``labels``)."""
        return (
            self.cpus <= caps.cores
            and (self.memory_bytes is None or (caps.memory is not None and self.memory_bytes <= caps.memory))
            and self.gpu <= caps.gpus
            and (not labels or self.labels <= caps.labels)
        )

    def describe(self) -> str:
        parts = [f"cpus={self.cpus}"]
        if self.memory_bytes is not None:
            parts.append(f"memory={format_bytes(self.memory_bytes)}")
        if self.gpu:
            parts.append(f"gpu={self.gpu}")
        if self.labels:
            parts.append(f"labels={sorted(self.labels)}")
        return "Requirements(" + ", ".join(parts) + ")"


NO_REQUIREMENTS = Requirements()


@dataclass(frozen=True)
class Capabilities:
    """What a worker announces when it joins.

    Attributes
    ----------
    rank : int
        The worker's rank in the farm's communicator.
    host : str
    node : int
        Node index (ranks on one node share it).
    pid : int
        Process id, used to tell a busy worker from a dead one on the coordinator's node.
    cores : int
        Cores this worker may use.
    memory : int or None
        Bytes of memory this worker may use.
    gpus : int
    gpu_model : str
    gpu_memory : int or None
    labels : frozenset of str
    """

    rank: int
    host: str = "localhost"
    node: int = 0
    pid: int = 0
    cores: int = 1
    memory: int | None = None
    gpus: int = 0
    gpu_model: str = ""
    gpu_memory: int | None = None
    labels: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", frozenset(self.labels))

    def describe(self) -> str:
        gpu = f", gpu={self.gpus} {self.gpu_model}".rstrip() if self.gpus else ", gpu=0"
        labels = f", labels={sorted(self.labels)}" if self.labels else ""
        return f"rank {self.rank} on {self.host}: cpus={self.cores}, memory={format_bytes(self.memory)}{gpu}{labels}"


def as_labels(labels: Iterable[str] | str | None) -> frozenset[str]:
    """Normalise a label argument (one string, an iterable, or None)."""
    if labels is None:
        return frozenset()
    if isinstance(labels, str):
        return frozenset({labels})
    return frozenset(labels)
