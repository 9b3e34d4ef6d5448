"""``distributed_apply``: SPMD map over the partitions of an array or sequence.

No coordinator: every rank (rank 0 included) applies ``func`` to the partitions it owns
(contiguous blocks, :func:`hpcdist.runtime.ranges.owned_range`), reading them from its
own view of ``data`` (a replicated array, a memory map, a lazily loaded dataset). Only
the per-partition results move, by an allgather, or by merging locally first when
``merge`` is given.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Sequence

from hpcdist.runtime.comm import as_comm
from hpcdist.runtime.errors import InputError, agree, collective
from hpcdist.runtime.ranges import owned_range

__all__ = ["distributed_apply", "partition_bounds"]


def partition_bounds(n: int, partition_size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of every partition of ``n`` items, ``partition_size`` each (the last may be short)."""
    return [(s, min(s + partition_size, n)) for s in range(0, n, partition_size)]


def distributed_apply(
    func: Callable[[Any], Any],
    data: Sequence[Any],
    partition_size: int = 10_000,
    merge: Callable[[list[Any]], Any] | None = None,
    comm: Any = None,
    progress: bool | None = None,
) -> Any:
    """Apply ``func`` to every ``partition_size`` slice of ``data``, spread over the ranks.

    Collective over ``comm``.

    Parameters
    ----------
    func : callable
        ``func(data[start:stop])`` -> one partition's result.
    data : array or sequence
        Sliceable, the same on every rank (or a view of the same data, e.g. a memmap).
    partition_size : int
        Items per partition.
    merge : callable, optional
        ``merge(list_of_results)`` -> one result; must be associative (applied to each
        rank's results, then to the ranks' merged results, in partition order).
    comm : mpi4py.MPI.Intracomm, optional
        The ranks that share the work (``COMM_WORLD`` when None).
    progress : bool, optional
        A tqdm bar on rank 0 (default: when stderr is a terminal).

    Returns
    -------
    list or object
        Every partition's result in order, on every rank; or the merged result when
        ``merge`` is given. The same whatever the number of ranks.

    Raises
    ------
    InputError
        On every rank, for a bad ``partition_size`` or unsliceable ``data``.
    CollectiveError
        On every rank, when ``func`` or ``merge`` raised on some rank (its text says which).
    """
    comm = as_comm(comm)
    try:
        rank, size = comm.Get_rank(), comm.Get_size()
        with collective(comm):
            if not isinstance(partition_size, int) or partition_size < 1:
                raise InputError(f"partition_size must be a positive integer, got {partition_size!r}")
            try:
                n = len(data)
                data[0:0]
            except TypeError as exc:
                raise InputError(f"distributed_apply needs a sliceable sequence or array ({exc})") from None
        bounds = partition_bounds(n, partition_size)
        first, last = owned_range(len(bounds), size, rank)
        show = (sys.stderr.isatty() if progress is None else progress) and rank == 0
        bar = None
        if show:
            from tqdm import tqdm

            bar = tqdm(total=len(bounds), unit="partition", desc=f"rank 0 of {size}")
        local: list[Any] = []
        error: BaseException | None = None
        try:
            for start, stop in bounds[first:last]:
                local.append(func(data[start:stop]))
                if bar is not None:
                    bar.update(size)  # every rank goes at about the same pace
            if merge is not None:
                local = [merge(local)] if local else []
        except Exception as exc:  # noqa: BLE001 - agreed over ranks below
            error = exc
        finally:
            if bar is not None:
                bar.close()
        agree(comm, error)
        gathered = comm.allgather(local)
        flat = [r for part in gathered for r in part]
        if merge is None:
            return flat
        error = None
        result = None
        try:
            result = merge(flat) if flat else merge([])
        except Exception as exc:  # noqa: BLE001
            error = exc
        agree(comm, error)
        return result
    finally:
        comm.Free()


