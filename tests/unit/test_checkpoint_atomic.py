"""Durable-write primitives and block checksums of hpcdist.checkpoint.atomic (no MPI)."""

from __future__ import annotations

import os
import zlib

import numpy as np
import pytest

from hpcdist.checkpoint.atomic import (
    block_checksums,
    checksum,
    commit_file,
    fsync_dir,
    fsync_path,
    verify_blocks,
    write_atomic,
)


def test_write_atomic_creates_and_replaces_without_leaving_a_temporary(tmp_path):
    path = tmp_path / "m.json"
    write_atomic(path, b"first")
    assert path.read_bytes() == b"first"
    write_atomic(path, memoryview(b"second, longer"))
    assert path.read_bytes() == b"second, longer"
    assert sorted(os.listdir(tmp_path)) == ["m.json"]


def test_write_atomic_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "m.json"
    write_atomic(path, b"old")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space"):
        write_atomic(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"  # the rename never happened


def test_commit_file_renames_a_synced_temporary(tmp_path):
    tmp, final = tmp_path / "f.tmp", tmp_path / "f"
    tmp.write_bytes(b"x" * 1000)
    commit_file(tmp, final)
    assert final.read_bytes() == b"x" * 1000 and not tmp.exists()
    fsync_path(final)
    fsync_dir(tmp_path)


def test_block_checksums_are_crc32_of_each_block():
    data = np.arange(1000, dtype=np.float64)  # 8000 bytes
    raw = data.tobytes()
    sums = block_checksums(data, 1024)
    assert len(sums) == 8  # 7 full blocks and a short one
    assert sums == [zlib.crc32(raw[i:i + 1024]) for i in range(0, len(raw), 1024)]
    assert checksum(data) == zlib.crc32(raw)
    assert block_checksums(np.empty(0), 1024) == []
    with pytest.raises(ValueError):
        block_checksums(data, 0)
    with pytest.raises(ValueError, match="contiguous"):
        block_checksums(np.arange(10.0)[::2], 16)


def test_verify_blocks_finds_the_first_bad_block_counted_from_first_block():
    data = np.arange(4096, dtype=np.int32)  # 16 KiB = 4 blocks of 4 KiB
    sums = block_checksums(data, 4096)
    assert verify_blocks(data, sums, 4096) is None
    assert verify_blocks(data[1024:], sums, 4096, first_block=1) is None
    damaged = data.copy()
    damaged[2500] ^= 1 << 7  # one bit in block 2
    assert verify_blocks(damaged, sums, 4096) == 2
    assert verify_blocks(damaged[2048:], sums, 4096, first_block=2) == 2
    assert verify_blocks(data, sums[:2], 4096) == 2  # more blocks than checksums
