"""Checkpoints of distributed arrays: atomic, verified, elastic, one file per rank.

>>> from hpcdist.checkpoint import CheckpointStore                      # doctest: +SKIP
>>> store = CheckpointStore("ckpt", comm, keep=2)
>>> store.save(step, {"rank": values}, offset, total, {"algorithm": "pagerank"})
>>> got = store.restore({"algorithm": "pagerank"}, start, stop)   # (info, arrays) or None

See :mod:`hpcdist.checkpoint.format` for the on-disk layout,
:mod:`hpcdist.checkpoint.store` for the save/commit protocol and
:mod:`hpcdist.checkpoint.atomic` for the durable-write primitives and the checksum.
"""

from hpcdist.checkpoint.format import (
    CheckpointError,
    CheckpointInfo,
    RankFile,
    list_checkpoints,
    quick_check,
    read_manifest,
    verify_checkpoint,
)
from hpcdist.checkpoint.store import CheckpointStore, read_range

__all__ = [
    "CheckpointStore",
    "CheckpointInfo",
    "CheckpointError",
    "RankFile",
    "list_checkpoints",
    "verify_checkpoint",
    "quick_check",
    "read_manifest",
    "read_range",
]
