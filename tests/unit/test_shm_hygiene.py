"""The clean-up of the shared-memory segments that killed MPI jobs leave."""

import mmap
import os
import time

from tests.shm_hygiene import remove_stale_mpich_segments, stale_mpich_segments


def test_only_old_unmapped_mpich_segments_are_stale(tmp_path):
    old = time.time() - 3600
    for name in ("mpich_shm_dead_0", "mpich_shm_live_0", "mpich_shm_young_0", "other_0"):
        (tmp_path / name).write_bytes(b"\0" * mmap.PAGESIZE)
        if name != "mpich_shm_young_0":
            os.utime(tmp_path / name, (old, old))
    with open(tmp_path / "mpich_shm_live_0", "r+b") as f, mmap.mmap(f.fileno(), 0):
        # a running job maps its segment: this process stands for it
        assert stale_mpich_segments(tmp_path) == [tmp_path / "mpich_shm_dead_0"]
        assert remove_stale_mpich_segments(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mpich_shm_live_0", "mpich_shm_young_0", "other_0"]
    assert stale_mpich_segments(tmp_path / "missing") == []
