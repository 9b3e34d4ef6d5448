"""Durable-write primitives and checksums, shared by the checkpoint store (and later the farm journal).

Nothing here knows about MPI or HDF5: these are the small POSIX steps that make a
file either absent or complete after any crash.

* :func:`write_atomic` writes bytes to ``path + ".tmp"``, ``fsync``\\ s it, renames it
  over ``path`` (atomic on POSIX) and ``fsync``\\ s the directory, so the rename itself
  survives a power loss.
* :func:`commit_file` does the last two steps for a temporary file written elsewhere
  (e.g. by h5py).
* :func:`block_checksums` / :func:`verify_blocks`: CRC-32 (``zlib.crc32``) over fixed
  blocks of a buffer.

Why CRC-32 over blocks
----------------------
Measured on the 2-core VM this package is developed on (64 MiB buffer, medians):
``zlib.crc32`` 2.2 GiB/s, ``zlib.adler32`` 1.7-2.0 GiB/s, ``hashlib.sha1`` 1.1-1.4 GiB/s,
``hashlib.blake2b`` 0.95 GiB/s, ``md5`` 0.7 GiB/s; writing the same bytes with numpy
``tofile`` + ``fsync`` runs at 1.1-1.2 GiB/s. A checksum computed *in line* with the
write would cost a third of the bandwidth even with CRC-32, so the store computes it
in a helper thread (``zlib.crc32`` releases the GIL) during the ``fsync``, which only waits for the disk;
BLAKE2b would then still be the slowest step. CRC-32 detects every burst error of up
to 32 bits and random corruption with probability ``1 - 2**-32`` per block, which is
what a checkpoint needs (accidents: torn writes, bit rot, truncation, a wrong copy);
it is no defence against an attacker, and neither would a hash stored next to the data be.

Blocks (default 4 MiB) let a reader that needs only part of a dataset (an elastic
restore on another rank count) verify just the blocks it reads, and let the checksum
work be split and pipelined.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Sequence

__all__ = [
    "CHECKSUM_ALGORITHM",
    "DEFAULT_BLOCK_BYTES",
    "fsync_path",
    "fsync_dir",
    "write_atomic",
    "commit_file",
    "checksum",
    "block_checksums",
    "verify_blocks",
]

#: Name of the checksum recorded in manifests.
CHECKSUM_ALGORITHM = "crc32"
#: Bytes covered by one checksum.
DEFAULT_BLOCK_BYTES = 4 << 20


def fsync_path(path: str | os.PathLike) -> None:
    """``fsync`` a file by name (opened read-only, which is enough on Linux and macOS)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike) -> None:
    """``fsync`` a directory, so that the names created or renamed in it are durable.

    File systems that cannot sync a directory (some network ones answer ``EINVAL``)
    are tolerated: there the rename is as durable as the file system makes it.
    """
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (22, 95):  # EINVAL, EOPNOTSUPP
            raise
    finally:
        os.close(fd)


def commit_file(tmp: str | os.PathLike, final: str | os.PathLike, *, sync_file: bool = True,
                sync_dir: bool = True) -> None:
    """Make a completely written temporary file durable under its final name.

    Parameters
    ----------
    tmp, final : path
        Same directory (a rename across file systems is not atomic).
    sync_file : bool
        ``fsync`` ``tmp`` first (skip only when the caller already did).
    sync_dir : bool
        ``fsync`` the directory after the rename; a caller committing several files
        in one directory may do that once at the end instead.
    """
    if sync_file:
        fsync_path(tmp)
    os.replace(tmp, final)
    if sync_dir:
        fsync_dir(Path(final).parent)


def write_atomic(path: str | os.PathLike, data: bytes | bytearray | memoryview) -> None:
    """Write ``data`` to ``path`` so that after any crash it is either the old file or the new one.

    The bytes go to ``path + ".tmp"``, which is ``fsync``\\ ed, renamed over ``path`` and
    followed by an ``fsync`` of the directory.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data).cast("B")
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _bytes_view(buffer: object) -> memoryview:
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is a dependency
        np = None
    if np is not None and isinstance(buffer, np.ndarray):
        if not buffer.flags.c_contiguous:
            raise ValueError("checksums need a contiguous buffer")
        # through uint8: memoryview cannot cast every dtype's format (complex, for one)
        return memoryview(buffer.reshape(-1).view(np.uint8))
    view = memoryview(buffer)  # type: ignore[arg-type]
    if not view.c_contiguous:
        raise ValueError("checksums need a contiguous buffer")
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def checksum(buffer: object) -> int:
    """CRC-32 of a whole buffer (bytes, memoryview or contiguous numpy array)."""
    return zlib.crc32(_bytes_view(buffer)) & 0xFFFFFFFF


def block_checksums(buffer: object, block_bytes: int = DEFAULT_BLOCK_BYTES) -> list[int]:
    """CRC-32 of every ``block_bytes`` block of ``buffer`` (the last block may be shorter).

    An empty buffer has no blocks. ``zlib.crc32`` releases the GIL on large inputs,
    so this can run in a helper thread next to I/O.
    """
    if block_bytes <= 0:
        raise ValueError(f"block_bytes must be positive, got {block_bytes}")
    view = _bytes_view(buffer)
    return [zlib.crc32(view[i:i + block_bytes]) & 0xFFFFFFFF for i in range(0, len(view), block_bytes)]


def verify_blocks(buffer: object, expected: Sequence[int], block_bytes: int = DEFAULT_BLOCK_BYTES,
                  first_block: int = 0) -> int | None:
    """Check consecutive blocks of ``buffer`` against ``expected[first_block:]``.

    Returns
    -------
    int or None
        The index (counted in the whole dataset, i.e. including ``first_block``) of the
        first block whose checksum differs, or None when all match.
    """
    view = _bytes_view(buffer)
    for j, i in enumerate(range(0, len(view), block_bytes)):
        k = first_block + j
        if k >= len(expected) or (zlib.crc32(view[i:i + block_bytes]) & 0xFFFFFFFF) != int(expected[k]):
            return k
    return None
