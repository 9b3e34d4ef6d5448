"""Peak memory of loading a graph, estimated before loading, and the refusal when it does not fit.

The model counts the arrays a rank holds at the peak of :func:`hpcdist.graph.io.read_edges`
followed by the engine's first redistribution (which the loader's estimate must leave
room for): per edge, ``src``/``dst`` (16 B), the send and receive copies of one
redistribution and the sort of the id mapping (about 3x that), and the weights with their
copies; per vertex, its original id and the mapping's temporaries. Formats read on rank 0
(Matrix Market through scipy, ``.gz`` text) add the whole input there.

The memory available to a rank is ``MemAvailable`` of ``/proc/meminfo`` divided by the
ranks on the node (``Context.topology.local_size``), or the limit forced by the
``memory_limit`` argument or setting (bytes per rank; tests use it to force a refusal).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hpcdist.runtime.errors import InputError, collective

if TYPE_CHECKING:
    from mpi4py import MPI

__all__ = [
    "LoadCost",
    "BYTES_PER_EDGE",
    "BYTES_PER_WEIGHT",
    "BYTES_PER_VERTEX",
    "peak_bytes_per_rank",
    "mem_available_bytes",
    "format_bytes",
    "parse_bytes",
    "check_memory",
    "ranks_that_fit",
]

#: Bytes per edge on the rank that holds it at the loader's peak (ids, redistribution, sort).
BYTES_PER_EDGE = 64
#: Extra bytes per edge for a weight and its copies.
BYTES_PER_WEIGHT = 24
#: Bytes per vertex (original id, global id, id-mapping temporaries).
BYTES_PER_VERTEX = 40
#: Fixed cost of a rank (interpreter, numpy, numba, h5py, MPI buffers).
BASE_BYTES = 200 * 2**20


@dataclass(frozen=True)
class LoadCost:
    """What loading one input costs, before knowing the rank count.

    Attributes
    ----------
    n_vertices, n_edges : int
        Vertices and edges (directed arcs after ``--undirected``), exact or estimated.
    weighted : bool
    per_rank_bytes_of_input : int
        Input bytes every rank holds its share of (a text file's bytes, split by ranks).
    rank0_bytes : int
        Bytes rank 0 alone holds (a decompressed ``.gz``, a Matrix Market file parsed by scipy).
    """

    n_vertices: int
    n_edges: int
    weighted: bool
    per_rank_bytes_of_input: int = 0
    rank0_bytes: int = 0


def peak_bytes_per_rank(cost: LoadCost, size: int) -> int:
    """Estimated peak bytes of the busiest rank when ``size`` ranks load ``cost``'s input."""
    per_edge = BYTES_PER_EDGE + (BYTES_PER_WEIGHT if cost.weighted else 0)
    shared = per_edge * cost.n_edges + BYTES_PER_VERTEX * cost.n_vertices + cost.per_rank_bytes_of_input
    return int(BASE_BYTES + math.ceil(shared / size) + cost.rank0_bytes)


def ranks_that_fit(cost: LoadCost, available_per_rank: int, limit: int = 1 << 20) -> int | None:
    """The smallest rank count whose peak per rank fits ``available_per_rank`` (None if none)."""
    if peak_bytes_per_rank(cost, limit) > available_per_rank:
        return None
    lo, hi = 1, 1
    while peak_bytes_per_rank(cost, hi) > available_per_rank:
        lo, hi = hi, hi * 2
    while lo < hi:
        mid = (lo + hi) // 2
        if peak_bytes_per_rank(cost, mid) <= available_per_rank:
            hi = mid
        else:
            lo = mid + 1
    return hi


def mem_available_bytes() -> int | None:
    """``MemAvailable`` of this node in bytes, or None where ``/proc/meminfo`` does not say."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def format_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def parse_bytes(value: int | float | str) -> int:
    """``'512M'``, ``'4GiB'``, ``'1e9'`` or ``123`` -> bytes."""
    if isinstance(value, (int, float)):
        return int(value)
    text = value.strip().upper().removesuffix("B").removesuffix("I")
    scale = 1
    for suffix, mult in (("K", 2**10), ("M", 2**20), ("G", 2**30), ("T", 2**40)):
        if text.endswith(suffix):
            text, scale = text[:-1], mult
            break
    try:
        number = float(text) * scale
    except ValueError:
        raise InputError(f"not a memory size: {value!r} (use e.g. 512M or 4G)") from None
    if not (number >= 0 and number != float("inf")):  # NaN fails the first test
        raise InputError(f"a memory size must be finite and non-negative, got {value!r}")
    return int(number)


def _limit_from_settings() -> int | None:
    from hpcdist.runtime.settings import load_settings

    value = load_settings().memory_limit  # HPCDIST_MEMORY_LIMIT or the config file
    return None if value is None else parse_bytes(value)


def check_memory(
    comm: "MPI.Intracomm",
    cost: LoadCost,
    name: str,
    *,
    memory_limit: int | str | None = None,
    local_size: int | None = None,
    advice: str = "",
) -> int:
    """Refuse to load an input whose estimated peak per rank exceeds the memory per rank.

    Collective over ``comm`` (the node's rank count comes from the topology unless
    given). Every rank computes the same numbers, so every rank raises together.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
    cost : LoadCost
        The same on every rank.
    name : str
        The input, for the message.
    memory_limit : int or str, optional
        Bytes per rank to assume instead of ``MemAvailable / ranks on the node``;
        the ``memory_limit`` setting when None.
    local_size : int, optional
        Ranks on this node (``Context.topology.local_size``); discovered when None.
    advice : str
        Appended to the message (what to do instead, e.g. convert first).

    Returns
    -------
    int
        The estimated peak bytes per rank.

    Raises
    ------
    InputError
        When the estimate does not fit; names the estimate, the memory per rank and
        the rank count that would fit.
    """
    size = comm.Get_size()
    peak = peak_bytes_per_rank(cost, size)
    limit = parse_bytes(memory_limit) if memory_limit is not None else _limit_from_settings()
    if limit is not None:
        available, source = limit, "the memory limit"
    else:
        if local_size is None:
            from hpcdist.runtime.topology import discover_topology

            local_size = discover_topology(comm).local_size
        # the node's ranks may disagree on MemAvailable by a little: take the smallest
        mem = comm.allreduce(mem_available_bytes() or 0, op=_min_op())
        if mem == 0:
            return peak
        available = mem // max(local_size, 1)
        source = f"MemAvailable {format_bytes(mem)} / {local_size} ranks on this node"
    if peak <= available:
        return peak
    fit = ranks_that_fit(cost, available)
    if fit is None:
        where = "no rank count fits, because rank 0 alone needs " + format_bytes(cost.rank0_bytes + BASE_BYTES)
    else:
        where = f"{fit} ranks with as much memory each would fit"
    msg = (
        f"loading needs an estimated {format_bytes(peak)} per rank at its peak on {size} ranks "
        f"({cost.n_vertices} vertices, {cost.n_edges} edges), but {format_bytes(available)} is available "
        f"per rank ({source}); {where}"
    )
    with collective(comm):  # every rank computed the same numbers; raise as one
        raise InputError(msg + (f"; {advice}" if advice else ""), path=name)
    return peak  # not reached


def _min_op():
    from hpcdist.runtime.comm import MPI

    return MPI.MIN
