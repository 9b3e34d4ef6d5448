"""MPICH's shared-memory segments that killed jobs leave behind.

MPICH unlinks a job's ``/dev/shm/mpich_shm_*`` file at ``MPI_Finalize``; a job whose ranks
are killed (the fault tests kill some on purpose) leaves it, 3 MB each, for good: two days
of test runs on one machine left 8.7 GB of a 24 GB memory there.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["stale_mpich_segments", "remove_stale_mpich_segments"]


def _mapped(proc: Path) -> set[str]:
    """Paths that the live processes (those whose maps this user may read) have mapped."""
    seen: set[str] = set()
    for maps in proc.glob("[0-9]*/maps"):
        try:
            text = maps.read_text()
        except OSError:  # gone, or not ours to read
            continue
        for line in text.splitlines():
            parts = line.split(None, 5)
            if len(parts) == 6:
                seen.add(parts[5].removesuffix(" (deleted)"))
    return seen


def stale_mpich_segments(directory: Path = Path("/dev/shm"), min_age: float = 60.0,
                         proc: Path = Path("/proc")) -> list[Path]:
    """This user's MPICH segments in ``directory`` that no live process maps and that are
    older than ``min_age`` seconds (a job still in ``MPI_Init`` may not have mapped its own)."""
    if not directory.is_dir():
        return []
    mapped = _mapped(proc)
    now, me = time.time(), os.getuid()
    stale = []
    for path in directory.glob("mpich_shm_*"):
        try:
            st = path.stat()
        except OSError:
            continue
        if st.st_uid == me and now - st.st_mtime > min_age and str(path) not in mapped:
            stale.append(path)
    return stale


def remove_stale_mpich_segments(directory: Path = Path("/dev/shm"), min_age: float = 60.0) -> int:
    """Remove :func:`stale_mpich_segments`; how many went."""
    gone = 0
    for path in stale_mpich_segments(directory, min_age):
        try:
            path.unlink()
            gone += 1
        except OSError:
            pass
    return gone
