"""Ownership arithmetic: which contiguous slice of n items each rank owns.

Pure functions, valid for any rank, testable without MPI (as Heat's ``comm.chunk``).
"""

from __future__ import annotations

__all__ = ["owned_range", "owner_of"]


def owned_range(n: int, size: int, rank: int) -> tuple[int, int]:
    """The half-open range ``[start, stop)`` of ``n`` items that ``rank`` owns.

    The first ``n % size`` ranks own one item more than the others.

    Parameters
    ----------
    n : int
        Number of items (>= 0).
    size : int
        Number of ranks (>= 1).
    rank : int
        0 <= rank < size.

    Returns
    -------
    tuple of int
    """
    if n < 0 or size < 1 or not 0 <= rank < size:
        raise ValueError(f"owned_range: need n >= 0 and 0 <= rank < size, got n={n}, size={size}, rank={rank}")
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def owner_of(index: int, n: int, size: int) -> int:
    """The rank that owns item ``index`` under :func:`owned_range`."""
    if not 0 <= index < n:
        raise ValueError(f"owner_of: index {index} outside 0..{n - 1}")
    base, extra = divmod(n, size)
    cut = extra * (base + 1)
    if index < cut:
        return index // (base + 1)
    return extra + (index - cut) // base
