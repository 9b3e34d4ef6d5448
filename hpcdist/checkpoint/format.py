"""The on-disk format of a checkpoint directory, and reading it without MPI.

Layout
------
::

    DIR/
      ckpt-000007-step-000000120/      one checkpoint (sequence number 7, step 120)
        rank-00000.h5                  rank 0's slice of every array (HDF5)
        rank-00001.h5
        ...
        manifest.json                  written last by rank 0: its presence is the commit
      ckpt-000008-step-000000130/      a save that never committed (no manifest.json)
        rank-00000.h5.tmp

The sequence number counts saves in this directory, so "newest" means "committed
last", whatever the step (a run restarted from scratch writes newer checkpoints with
smaller steps). Directory and file names inside a manifest are relative, so a
checkpoint directory can be moved or copied as a whole.

Rank file (``rank-NNNNN.h5``): root attributes ``hpcdist_format = "hpcdist-checkpoint"``,
``version``, ``rank``, ``n_ranks``, ``offset``, ``length``, ``step``, ``seq``; one 1-D
contiguous dataset per array holding the global items ``[offset, offset + length)``.

Manifest (``manifest.json``, UTF-8 JSON)::

    {"format": "hpcdist-checkpoint", "version": 1, "seq": 7, "step": 120,
     "ranks": 4, "total": 1000000, "created": 1795600000.123,
     "checksum": {"algorithm": "crc32", "block_bytes": 4194304},
     "arrays": {"rank": "<f8", ...},                       # name -> numpy dtype string
     "files": [{"rank": 0, "path": "rank-00000.h5", "offset": 0, "length": 250000,
                "size": 2002144, "checksums": {"rank": [3735928559, ...], ...}}, ...],
     "meta": {...}}                                         # the caller's JSON-able dict

``checksums[name][k]`` is the CRC-32 of bytes ``[k * block_bytes, (k + 1) * block_bytes)``
of that file's dataset ``name`` (see :mod:`hpcdist.checkpoint.atomic`).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hpcdist.checkpoint.atomic import CHECKSUM_ALGORITHM, verify_blocks
from hpcdist.runtime.errors import HpcdistError

__all__ = [
    "FORMAT",
    "VERSION",
    "MANIFEST",
    "CheckpointError",
    "CheckpointInfo",
    "RankFile",
    "checkpoint_name",
    "parse_manifest",
    "read_manifest",
    "list_checkpoints",
    "quick_check",
    "verify_checkpoint",
]

#: Marker in manifests and rank files.
FORMAT = "hpcdist-checkpoint"
#: Layout version; a newer manifest is refused rather than misread.
VERSION = 1
#: File name of the commit record inside a checkpoint directory.
MANIFEST = "manifest.json"
#: dtype kinds a checkpoint stores (bool, integers, floats, complex).
DTYPE_KINDS = frozenset("biufc")

_NAME_RE = re.compile(r"^ckpt-(\d{6,})-step-(-?\d+)$")


class CheckpointError(HpcdistError):
    """A checkpoint cannot be written, found, trusted or used; the message names the file.

    Parameters
    ----------
    message : str
    path : str, optional
        The file or directory at fault (prefixed to the message).
    """

    def __init__(self, message: str, *, path: str | os.PathLike | None = None) -> None:
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)

    def __reduce__(self):  # keep type and path when agree() sends it to the other ranks
        return (_rebuild_checkpoint_error, (self.message, self.path))


def _rebuild_checkpoint_error(message: str, path: str | None) -> CheckpointError:
    err = CheckpointError.__new__(CheckpointError)
    HpcdistError.__init__(err, message)
    err.path = path
    return err


def checkpoint_name(seq: int, step: int) -> str:
    """The directory name of checkpoint number ``seq`` at ``step``."""
    return f"ckpt-{seq:06d}-step-{step:09d}"


@dataclass
class RankFile:
    """One rank file of a checkpoint, as the manifest records it.

    Attributes
    ----------
    rank : int
        The writing rank.
    path : pathlib.Path
        Absolute path of the file.
    offset, length : int
        The global items ``[offset, offset + length)`` it holds.
    size : int
        Its size in bytes when it was committed.
    checksums : dict of str to list of int
        Per dataset, the CRC-32 of each block.
    """

    rank: int
    path: Path
    offset: int
    length: int
    size: int
    checksums: dict[str, list[int]] = field(repr=False)

    @property
    def stop(self) -> int:
        return self.offset + self.length


@dataclass
class CheckpointInfo:
    """One checkpoint in a directory: what its manifest says, or why it has none.

    Attributes
    ----------
    directory : pathlib.Path
        The checkpoint's own directory (``DIR/ckpt-...``).
    name : str
        Its directory name.
    seq : int
        Sequence number: larger means committed later.
    step : int
        The caller's step (superstep, iteration).
    ranks : int
        How many ranks wrote it (its number of rank files).
    total : int
        Global length of every array.
    meta : dict
        The caller's metadata.
    created : float
        Unix time of the save.
    files : list of RankFile
    arrays : dict of str to str
        Array name -> numpy dtype string.
    block_bytes : int
        Bytes per checksum block.
    committed : bool
        Whether ``manifest.json`` exists (the save completed).
    problem : str or None
        Why the manifest cannot be used (unreadable, wrong format or version), else None.
    skipped : list of str
        Filled by :meth:`CheckpointStore.latest` / ``restore``: the newer checkpoints
        passed over, each with its problem.
    """

    directory: Path
    name: str
    seq: int
    step: int
    ranks: int = 0
    total: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0
    files: list[RankFile] = field(default_factory=list)
    arrays: dict[str, str] = field(default_factory=dict)
    block_bytes: int = 0
    version: int = VERSION
    committed: bool = False
    problem: str | None = None
    skipped: list[str] = field(default_factory=list)
    manifest: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def manifest_path(self) -> Path:
        return self.directory / MANIFEST

    @property
    def usable(self) -> bool:
        """Committed and with a manifest that parses (the data may still be damaged)."""
        return self.committed and self.problem is None

    @property
    def nbytes(self) -> int:
        """Bytes on disk of the rank files, as recorded (0 when unknown)."""
        return sum(f.size for f in self.files)


def _require(cond: bool, what: str) -> None:
    if not cond:
        raise ValueError(what)


def parse_manifest(data: dict[str, Any], directory: str | os.PathLike) -> CheckpointInfo:
    """Build a :class:`CheckpointInfo` from a manifest's parsed JSON.

    Raises
    ------
    CheckpointError
        Naming the manifest, when it is not an hpcdist checkpoint manifest, has a newer
        version, or lacks or mistypes a field.
    """
    directory = Path(directory)
    where = directory / MANIFEST
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"not an hpcdist checkpoint manifest (format is not {FORMAT!r})", path=where)
    version = data.get("version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"bad manifest version {version!r}", path=where)
    if version > VERSION:
        raise CheckpointError(f"manifest version {version} is newer than this hpcdist reads ({VERSION})", path=where)
    try:
        algo = data["checksum"]["algorithm"]
        _require(algo == CHECKSUM_ALGORITHM, f"unknown checksum algorithm {algo!r}")
        block_bytes = int(data["checksum"]["block_bytes"])
        _require(block_bytes > 0, "checksum block_bytes must be positive")
        arrays = {str(k): str(v) for k, v in data["arrays"].items()}
        for name, dt in arrays.items():
            _require(np.dtype(dt).kind in DTYPE_KINDS, f"array {name!r} has unsupported dtype {dt!r}")
            _require(block_bytes % np.dtype(dt).itemsize == 0, f"block_bytes is no multiple of {dt!r}'s size")
        files = []
        position = 0
        for i, entry in enumerate(data["files"]):
            rel = str(entry["path"])
            _require("/" not in rel and rel not in ("", ".", ".."), f"file entry {i} has a bad path {rel!r}")
            rf = RankFile(rank=int(entry["rank"]), path=directory / rel, offset=int(entry["offset"]),
                          length=int(entry["length"]), size=int(entry["size"]),
                          checksums={str(k): [int(c) for c in v] for k, v in entry["checksums"].items()})
            _require(rf.rank == i, f"file entry {i} is for rank {rf.rank}")
            _require(rf.offset == position and rf.length >= 0, f"file entry {i} does not continue at item {position}")
            _require(set(rf.checksums) == set(arrays), f"file entry {i} has checksums for other arrays")
            for name, dt in arrays.items():
                n_blocks = math.ceil(rf.length * np.dtype(dt).itemsize / block_bytes)
                _require(len(rf.checksums[name]) == n_blocks,
                         f"file entry {i} has {len(rf.checksums[name])} checksums for {name!r}, expected {n_blocks}")
            position = rf.stop
            files.append(rf)
        total = int(data["total"])
        ranks = int(data["ranks"])
        _require(ranks == len(files) and ranks >= 1, f"ranks is {ranks} but {len(files)} files are listed")
        _require(position == total, f"the files cover {position} items, total is {total}")
        meta = data["meta"]
        _require(isinstance(meta, dict), "meta is not an object")
        info = CheckpointInfo(directory=directory, name=directory.name, seq=int(data["seq"]), step=int(data["step"]),
                              ranks=ranks, total=total, meta=meta, created=float(data["created"]), files=files,
                              arrays=arrays, block_bytes=block_bytes, version=version, committed=True,
                              manifest=data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        what = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
        raise CheckpointError(f"damaged manifest: {what}", path=where) from None
    return info


def read_manifest(directory: str | os.PathLike) -> CheckpointInfo:
    """Read and parse ``directory/manifest.json``.

    Raises
    ------
    CheckpointError
        When it is missing, unreadable, not JSON or not a valid manifest.
    """
    where = Path(directory) / MANIFEST
    try:
        raw = where.read_bytes()
    except FileNotFoundError:
        raise CheckpointError("no manifest (the save did not complete)", path=where) from None
    except OSError as exc:
        raise CheckpointError(f"cannot read the manifest ({exc.strerror or exc})", path=where) from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"manifest is not valid JSON ({exc})", path=where) from None
    return parse_manifest(data, directory)


def list_checkpoints(directory: str | os.PathLike, *, uncommitted: bool = False) -> list[CheckpointInfo]:
    """The committed checkpoints in ``directory``, oldest first (by sequence number); no MPI.

    A committed checkpoint whose manifest cannot be used is included with its
    ``problem``. Data files are not read.

    Parameters
    ----------
    directory : str or os.PathLike
    uncommitted : bool
        Also list saves that never committed (no manifest: a crash mid-save), with
        ``committed=False``; the next successful save deletes them.

    Raises
    ------
    CheckpointError
        When ``directory`` does not exist or is not a directory.
    """
    root = Path(directory)
    if not root.exists():
        raise CheckpointError("no such checkpoint directory", path=root)
    if not root.is_dir():
        raise CheckpointError("not a directory", path=root)
    found = []
    try:
        entries = list(os.scandir(root))
    except OSError as exc:
        raise CheckpointError(f"cannot list the checkpoint directory ({exc.strerror or exc})", path=root) from None
    for entry in entries:
        m = _NAME_RE.match(entry.name)
        if not m or not entry.is_dir():
            continue
        sub = root / entry.name
        seq, step = int(m.group(1)), int(m.group(2))
        if not (sub / MANIFEST).exists():
            if not uncommitted:
                continue
            found.append(CheckpointInfo(directory=sub, name=entry.name, seq=seq, step=step, committed=False,
                                        problem="uncommitted: no manifest (a save that did not finish)"))
            continue
        try:
            info = read_manifest(sub)
        except CheckpointError as exc:
            found.append(CheckpointInfo(directory=sub, name=entry.name, seq=seq, step=step, committed=True,
                                        problem=str(exc)))
            continue
        if (info.seq, info.step) != (seq, step):
            info.problem = (f"{info.manifest_path}: manifest says checkpoint {info.seq} at step {info.step}, "
                            f"the directory name says {seq} at {step}")
        found.append(info)
    found.sort(key=lambda i: (i.seq, i.name))
    return found


def quick_check(info: CheckpointInfo) -> list[str]:
    """Problems findable without reading data: manifest, and every file present with its recorded size."""
    if not info.committed or info.problem is not None:
        return [info.problem or f"{info.directory}: not committed"]
    problems = []
    for rf in info.files:
        try:
            size = rf.path.stat().st_size
        except FileNotFoundError:
            problems.append(f"{rf.path}: missing")
            continue
        except OSError as exc:
            problems.append(f"{rf.path}: cannot stat ({exc.strerror or exc})")
            continue
        if size != rf.size:
            problems.append(f"{rf.path}: {size} bytes, the manifest recorded {rf.size} (truncated or replaced)")
    return problems


def open_rank_file(info: CheckpointInfo, rf: RankFile):
    """Open a rank file read-only and check its header against the manifest.

    Returns
    -------
    h5py.File
        The caller closes it.

    Raises
    ------
    CheckpointError
        Naming the file.
    """
    import h5py

    try:
        f = h5py.File(rf.path, "r", locking=False)
    except FileNotFoundError:
        raise CheckpointError("missing", path=rf.path) from None
    except OSError as exc:
        raise CheckpointError(f"not a readable HDF5 file ({exc})", path=rf.path) from None
    try:
        marker = f.attrs.get("hpcdist_format")
        if isinstance(marker, bytes):
            marker = marker.decode("utf-8", "replace")
        if marker != FORMAT:
            raise CheckpointError("not an hpcdist checkpoint rank file", path=rf.path)
        got = (int(f.attrs.get("rank", -1)), int(f.attrs.get("offset", -1)), int(f.attrs.get("length", -1)))
        if got != (rf.rank, rf.offset, rf.length):
            raise CheckpointError(f"header says rank {got[0]} items [{got[1]}, {got[1] + got[2]}), the manifest says "
                                  f"rank {rf.rank} items [{rf.offset}, {rf.stop})", path=rf.path)
        for name, dt in info.arrays.items():
            if name not in f:
                raise CheckpointError(f"dataset {name!r} is missing", path=rf.path)
            ds = f[name]
            if ds.shape != (rf.length,) or ds.dtype != np.dtype(dt):
                raise CheckpointError(f"dataset {name!r} is {ds.dtype}{list(ds.shape)}, the manifest says "
                                      f"{np.dtype(dt)}[{rf.length}]", path=rf.path)
    except CheckpointError:
        f.close()
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged header surfaces as assorted h5py errors
        f.close()
        raise CheckpointError(f"damaged rank file header ({type(exc).__name__}: {exc})", path=rf.path) from None
    return f


def verify_checkpoint(info: CheckpointInfo, chunk_bytes: int = 64 << 20) -> list[str]:
    """Read every file of a checkpoint fully and check every checksum; no MPI.

    Parameters
    ----------
    info : CheckpointInfo
        From :func:`list_checkpoints` or :meth:`CheckpointStore.latest`.
    chunk_bytes : int
        Read this much at a time (rounded to whole checksum blocks).

    Returns
    -------
    list of str
        Problems, each naming the file; empty when the checkpoint is good.
    """
    problems = quick_check(info)
    if problems:
        return problems
    for rf in info.files:
        try:
            f = open_rank_file(info, rf)
        except CheckpointError as exc:
            problems.append(str(exc))
            continue
        with f:
            for name, dt in info.arrays.items():
                problem = _verify_dataset(f[name], rf, name, np.dtype(dt), info.block_bytes, chunk_bytes)
                if problem:
                    problems.append(problem)
    return problems


def _verify_dataset(ds, rf: RankFile, name: str, dtype: np.dtype, block_bytes: int, chunk_bytes: int) -> str | None:
    block_items = block_bytes // dtype.itemsize
    step = max(1, chunk_bytes // block_bytes) * block_items
    buf = np.empty(min(step, rf.length), dtype=dtype)
    for start in range(0, rf.length, step):
        stop = min(start + step, rf.length)
        view = buf[: stop - start]
        try:
            ds.read_direct(view, source_sel=np.s_[start:stop])
        except Exception as exc:  # noqa: BLE001 - I/O errors of a damaged file
            return f"{rf.path}: dataset {name!r}: cannot read items {start}..{stop} ({exc})"
        bad = verify_blocks(view, rf.checksums[name], block_bytes, start // block_items)
        if bad is not None:
            return (f"{rf.path}: dataset {name!r}: checksum mismatch in block {bad} "
                    f"(items {bad * block_items}..{min((bad + 1) * block_items, rf.length)})")
    return None
