"""The C allocator keeps what the process frees, so that large temporaries come back without page faults.

glibc hands out every block of 128 KiB or more with ``mmap`` at first and returns it to
the kernel when it is freed, raising that threshold only as blocks are freed; freed
memory at the top of the heap above a trim threshold goes back too. Each traversal
allocates and frees megabytes (BFS's distances and parents, the hash tables of CC's
union-find roots): measured on one rank at RMAT 18, a BFS search took 800 page faults
(4.0 against 2.4 ms a search without them) and a CC call 6 200 (30 against 17 ms), as
soon as a caller kept some results, which changed where the next blocks landed. With two
ranks under MPICH the transport's memory hooks already keep freed memory, so the same
searches took none: the cost depended on the rank count. A farm worker runs its tasks in
a thread, whose glibc arena hands freed memory back at once: about 2,200 page faults
(8.5 MB) per 45 ms batch of an MLP's ``predict``, 5-10 % of the task; 20 such tasks took
30,000 faults without these thresholds and 2,100 with them.

:func:`keep_freed_memory` sets the two thresholds once (blocks under 256 MiB come from the
heap; up to 512 MiB of freed memory stays with the process). A process that sets glibc's
own variables (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_TOP_PAD_``,
``MALLOC_MMAP_MAX_``) keeps its choice; elsewhere than glibc nothing is done.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["keep_freed_memory", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

#: Blocks smaller than this come from the heap (glibc's mallopt M_MMAP_THRESHOLD).
MMAP_THRESHOLD = 256 << 20
#: Freed memory at the top of the heap kept up to this (M_TRIM_THRESHOLD).
TRIM_THRESHOLD = 512 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_GLIBC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")
_result: bool | None = None


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds for this process, once.

    Returns
    -------
    bool
        Whether the thresholds are this module's: False where the environment sets
        glibc's own variables, or the C library is not glibc.
    """
    global _result
    if _result is None:
        _result = _set_thresholds()
    return _result


def _set_thresholds() -> bool:
    if not sys.platform.startswith("linux") or any(name in os.environ for name in _GLIBC_VARIABLES):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl has no libc.so.6)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 when it took the value
    return mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
