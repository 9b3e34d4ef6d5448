"""The farm's durable journal of completed results, and stable task keys.

``Farm(journal="run.h5")`` records each completed result here, so that a rerun of the
same script after a crash, ``SIGKILL`` or ``scancel`` skips the tasks already done and
returns identical results. Only the coordinator opens a journal.

On-disk layout
--------------
::

    run.h5            the consolidated store (HDF5)
    run.h5.d/         one segment per record_many batch, and the lock file
        seg-00000001.h5
        seg-00000002.h5
        lock

Every HDF5 file of a journal, store or segment, has the same layout (a *batch*): the
root attribute ``hpcdist_format = "hpcdist-journal"`` and ``version``, then the
datasets ``keys`` (UTF-8 strings), ``kinds`` (``0`` pickle, ``1`` array), ``offsets``
and ``lengths`` (of each pickle in ``blob``), ``digests`` (``n x 32`` bytes, BLAKE2b
over the key and the payload), ``blob`` (the concatenated pickles) and the group
``arrays`` holding one dataset per array result, named by its record number.

Why nothing completed is lost at any instant
--------------------------------------------
HDF5 files are not crash-safe when a writer dies mid-write, so no HDF5 file that holds
committed records is ever modified in place:

* :meth:`Journal.record_many` builds its segment as an HDF5 image in memory, writes it
  to ``seg-N.h5.tmp``, ``fsync``\\ s it, renames it to ``seg-N.h5`` (atomic on POSIX)
  and ``fsync``\\ s the directory before it returns. A kill before the rename leaves a
  ``.tmp`` file that the next open deletes; after it, the batch is durable.
* Consolidation (on a clean :meth:`Journal.close`, and on opening a journal that has
  segments, i.e. after a crash) writes a new store to ``run.h5.tmp``, ``fsync``\\ s it,
  renames it over ``run.h5``, ``fsync``\\ s the directory and only then deletes the
  segments. A kill before the rename leaves the old store and all segments; a kill
  after it leaves segments whose records the new store already holds (identical
  duplicates, harmless).

A long run does not leave one file per batch: every 256 small segments (under 1 MB)
are merged into one new segment by the same write-fsync-rename protocol, before the
merged ones are deleted; only records not recorded again later are copied, so a merge
never revives an older result.

A segment that is no valid HDF5 file (truncated by a disk fault or a bad copy; a kill
cannot produce one) is set aside as ``seg-N.h5.damaged`` with a warning, and its tasks
run again. A file that is not an hpcdist journal, or a record whose checksum fails, is
refused with an :class:`~hpcdist.runtime.errors.InputError` naming the file: nothing is
ever unpickled before its checksum is verified.

The checksum detects corruption and foreign files; it is not a signature. Whoever can
write the journal can also edit the script that reads it, so it guards against
accidents, not against an attacker with write access to your files.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import io
import os
import pickle
import threading
import time
import types
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from hpcdist.checkpoint.atomic import fsync_dir, fsync_path, write_atomic
from hpcdist.runtime.errors import InputError
from hpcdist.runtime.logs import get_logger

__all__ = ["Journal", "task_key", "TaskKeyError", "FORMAT", "VERSION"]

log = get_logger(__name__)

#: Marker in the root attributes of every journal file.
FORMAT = "hpcdist-journal"
#: Layout version; a newer file is refused rather than misread.
VERSION = 1

_PICKLE, _ARRAY = 0, 1
#: dtype kinds stored as plain HDF5 datasets (native byte order only); the rest is pickled.
_DATASET_KINDS = frozenset("biufc")
#: A store's blob up to this size is read into memory once instead of slice by slice.
_BLOB_CACHE_BYTES = 64 << 20
#: Seconds to wait for the lock of a journal that another (maybe dying) process holds.
LOCK_WAIT_S = 3.0
#: Open segment files kept for reads of records written in this session.
_OPEN_SEGMENTS = 8
#: Consolidation writes the new blob in pieces of this size.
_FLUSH_BYTES = 16 << 20
#: Segments smaller than this count as small; this many small ones are merged into one,
#: so that a long run does not leave one file per batch (millions of files).
_SMALL_SEGMENT_BYTES = 1 << 20
_MERGE_AT = 256


def _digest(key: str, kind: int, payload: bytes | memoryview | np.ndarray) -> bytes:
    """BLAKE2b-256 over the key, the record kind and the payload (an array by dtype, shape, bytes)."""
    h = hashlib.blake2b(digest_size=32, person=b"hpcdist-journal")
    kb = key.encode("utf-8")
    h.update(len(kb).to_bytes(8, "little"))
    h.update(kb)
    h.update(bytes((kind,)))
    if kind == _ARRAY:
        assert isinstance(payload, np.ndarray)
        h.update(f"{payload.dtype.str}|{','.join(map(str, payload.shape))}|".encode())
        h.update(np.ascontiguousarray(payload).reshape(-1).view(np.uint8).data)
    else:
        h.update(payload)
    return h.digest()


def _storable_as_dataset(value: object) -> bool:
    return (
        type(value) is np.ndarray
        and value.dtype.kind in _DATASET_KINDS
        and value.dtype.isnative
        and value.dtype.fields is None
    )


def _write_meta(f: Any, keys: list[str], kinds: np.ndarray, offsets: np.ndarray, lengths: np.ndarray,
                digests: np.ndarray) -> None:
    import h5py

    f.attrs["hpcdist_format"] = FORMAT
    f.attrs["version"] = VERSION
    f.attrs["n"] = len(keys)
    f.create_dataset("keys", data=np.array(keys, dtype=object), dtype=h5py.string_dtype("utf-8"))
    f.create_dataset("kinds", data=kinds)
    f.create_dataset("offsets", data=offsets)
    f.create_dataset("lengths", data=lengths)
    f.create_dataset("digests", data=digests.reshape(len(keys), 32))


def _encode_records(records: list[tuple[str, int, bytes | np.ndarray, bytes]]) -> bytes:
    """The HDF5 image of one batch of ``(key, kind, payload, digest)`` records, built in memory."""
    import h5py

    n = len(records)
    kinds = np.zeros(n, np.uint8)
    offsets = np.zeros(n, np.int64)
    lengths = np.zeros(n, np.int64)
    digests = np.zeros((n, 32), np.uint8)
    pickles: list[bytes] = []
    arrays: dict[int, np.ndarray] = {}
    position = 0
    for i, (_, kind, payload, digest) in enumerate(records):
        kinds[i] = kind
        digests[i] = np.frombuffer(digest, np.uint8)
        if kind == _ARRAY:
            assert isinstance(payload, np.ndarray)
            arrays[i] = payload
        else:
            assert isinstance(payload, bytes)
            offsets[i], lengths[i] = position, len(payload)
            position += len(payload)
            pickles.append(payload)
    buffer = io.BytesIO()
    with h5py.File(buffer, "w", libver="latest") as f:
        _write_meta(f, [r[0] for r in records], kinds, offsets, lengths, digests)
        f.create_dataset("blob", data=np.frombuffer(b"".join(pickles), np.uint8))
        group = f.create_group("arrays")
        for i, value in arrays.items():
            group.create_dataset(str(i), data=value)
    return buffer.getvalue()


def _encode_segment(items: list[tuple[str, object]]) -> bytes:
    """The HDF5 image of one batch of ``(key, result)`` items: arrays as datasets, the rest pickled."""
    records: list[tuple[str, int, bytes | np.ndarray, bytes]] = []
    for key, value in items:
        if _storable_as_dataset(value):
            assert isinstance(value, np.ndarray)
            records.append((key, _ARRAY, value, _digest(key, _ARRAY, value)))
        else:
            data = pickle.dumps(value, protocol=5)
            records.append((key, _PICKLE, data, _digest(key, _PICKLE, data)))
    return _encode_records(records)


class _Batch:
    """Read access to one journal file (store or segment); checks the marker on open."""

    def __init__(self, path: Path) -> None:
        import h5py

        self.path = path
        try:
            self.file = h5py.File(path, "r", locking=False)  # the journal's own flock guards it
        except OSError as exc:
            raise _Unreadable(str(exc)) from None
        try:
            marker = self.file.attrs.get("hpcdist_format")
            if isinstance(marker, bytes):
                marker = marker.decode("utf-8", "replace")
            if marker != FORMAT:
                raise InputError("not an hpcdist journal (an HDF5 file without the hpcdist-journal marker)",
                                 path=str(path))
            version = int(self.file.attrs.get("version", -1))
            if version > VERSION:
                raise InputError(f"journal layout version {version} is newer than this hpcdist reads ({VERSION})",
                                 path=str(path))
            try:
                self.keys: list[str] = list(self.file["keys"].asstr()[...]) if int(self.file.attrs["n"]) else []
                self.kinds = np.asarray(self.file["kinds"][...])
                self.offsets = np.asarray(self.file["offsets"][...])
                self.lengths = np.asarray(self.file["lengths"][...])
                self.digests = np.asarray(self.file["digests"][...])
                self.blob_ds = self.file["blob"]
                self.arrays = self.file["arrays"]
            except (KeyError, OSError, ValueError) as exc:
                raise InputError(f"damaged hpcdist journal: {exc}", path=str(path)) from None
            n = len(self.keys)
            if not (len(self.kinds) == len(self.offsets) == len(self.lengths) == len(self.digests) == n):
                raise InputError("damaged hpcdist journal: its index datasets disagree in length", path=str(path))
        except BaseException:
            self.file.close()
            raise
        self._blob: np.ndarray | None = None

    def _pickle_bytes(self, i: int) -> bytes:
        start, length = int(self.offsets[i]), int(self.lengths[i])
        if self._blob is None and self.blob_ds.shape[0] <= _BLOB_CACHE_BYTES:
            self._blob = np.asarray(self.blob_ds[...])
        if self._blob is not None:
            data = self._blob[start : start + length].tobytes()
        else:
            data = np.asarray(self.blob_ds[start : start + length]).tobytes()
        if len(data) != length:
            raise InputError(f"damaged hpcdist journal: record {self.keys[i]!r} runs past the data",
                             path=str(self.path))
        return data

    def payload(self, i: int) -> tuple[int, bytes | np.ndarray]:
        """The verified payload of record ``i``: pickle bytes or an array."""
        key, kind = self.keys[i], int(self.kinds[i])
        try:
            if kind == _ARRAY:
                payload: bytes | np.ndarray = np.asarray(self.arrays[str(i)][...])
            elif kind == _PICKLE:
                payload = self._pickle_bytes(i)
            else:
                raise InputError(f"damaged hpcdist journal: record {key!r} has unknown kind {kind}",
                                 path=str(self.path))
        except (KeyError, OSError) as exc:
            raise InputError(f"damaged hpcdist journal: record {key!r} cannot be read ({exc})",
                             path=str(self.path)) from None
        if _digest(key, kind, payload) != self.digests[i].tobytes():
            raise InputError(f"record {key!r} fails its checksum: the journal is corrupted", path=str(self.path))
        return kind, payload

    def value(self, i: int) -> object:
        kind, payload = self.payload(i)
        if kind == _ARRAY:
            return payload
        assert isinstance(payload, bytes)
        return pickle.loads(payload)  # checksum verified by payload()

    def close(self) -> None:
        self._blob = None
        self.file.close()


class _Unreadable(Exception):
    """A file h5py cannot open at all (truncated, empty, not HDF5)."""


#: The journals open in this process, by real path: a second open takes over (below).
_OPEN_HERE: dict[str, "weakref.ref[Journal]"] = {}
_OPEN_HERE_LOCK = threading.RLock()  # re-entrant: a finaliser may run while it is held


class Journal:
    """A durable record of completed task results, keyed by task key.

    Used on the coordinator only; not collective. Safe to call from several threads.

    Parameters
    ----------
    path : str
        The store, e.g. ``"run.h5"``; created when missing. Segments live beside it in
        ``<path>.d/``. Opening a journal left by a crash consolidates its segments first.

    Raises
    ------
    InputError
        When ``path`` is not an hpcdist journal, one of its records fails its checksum,
        or another process has the journal open.

    Notes
    -----
    Opening a journal that another ``Journal`` object of this same process still holds
    takes it over: the earlier object is closed without consolidation, exactly as if
    its process had been killed, so that there is never more than one writer.

    The coordinator keeps an index of the completed keys in memory (about 100 bytes a
    key); results stay on disk until :meth:`get` reads them. See the module docstring
    for the layout and for why a kill at any instant loses nothing that
    :meth:`record_many` has returned from.

    Examples
    --------
    >>> with Journal("run.h5") as journal:                    # doctest: +SKIP
    ...     if "sample-17" not in journal:
    ...         journal.record_many([("sample-17", run(17))])
    ...     value = journal.get("sample-17")
    """

    def __init__(self, path: str) -> None:
        self.path = Path(os.fspath(path))
        self.segment_dir = self.path.with_name(self.path.name + ".d")
        self._mutex = threading.RLock()
        self._closed = False
        self._lock_fd: int | None = None
        self._store: _Batch | None = None
        self._segments: dict[int, Path] = {}
        self._small: list[int] = []  # small segments of this session, oldest first
        self._open_segments: OrderedDict[int, _Batch] = OrderedDict()
        #: key -> (source, record number); source 0 is the store, n > 0 the segment seg-n.
        self._index: dict[str, tuple[int, int]] = {}
        self._next_seq = 1
        if self.path.is_dir():
            raise InputError("is a directory, not an hpcdist journal", path=str(self.path))
        if self.path.exists() and not self.segment_dir.exists():
            self._check_foreign_before_touching()
        try:
            self.segment_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the journal's segment folder ({exc.strerror})",
                             path=str(self.segment_dir)) from None
        self._real_path = os.path.realpath(self.path)
        with _OPEN_HERE_LOCK:
            earlier_ref = _OPEN_HERE.get(self._real_path)
            earlier = earlier_ref() if earlier_ref is not None else None
            if earlier is not None and not earlier._closed:
                log.warning("journal %s opened again in this process: the earlier Journal object is closed "
                            "without consolidation, as after a crash", self.path)
                earlier._abandon()
            self._lock()
            _OPEN_HERE[self._real_path] = weakref.ref(self)
        try:
            self._recover()
        except BaseException:
            self._close_sources()
            self._release()
            self._closed = True
            raise

    # -- opening -------------------------------------------------------------------

    def _check_foreign_before_touching(self) -> None:
        """Refuse a foreign file before creating anything beside it."""
        try:
            _Batch(self.path).close()
        except _Unreadable:
            raise InputError("not an hpcdist journal (not an HDF5 file, or truncated)", path=str(self.path)) from None

    def _lock(self) -> None:
        import fcntl

        self._lock_fd = os.open(self.segment_dir / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        # A job requeued right after a kill may start while the killed ranks are still
        # being reaped and hold the lock for a moment: wait a little before refusing.
        deadline = time.monotonic() + LOCK_WAIT_S
        try:
            while True:
                try:
                    fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise
                    time.sleep(0.05)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise InputError("the journal is open in another process", path=str(self.path)) from None
        except OSError as exc:  # file systems without flock: go on, unprotected
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            log.warning("journal %s: file locks unsupported here (%s); do not open it twice", self.path, exc)

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None
        real_path = getattr(self, "_real_path", None)
        with _OPEN_HERE_LOCK:
            ref = _OPEN_HERE.get(real_path) if real_path is not None else None
            if ref is not None and ref() in (self, None):
                del _OPEN_HERE[real_path]

    def _abandon(self) -> None:
        """Let go of the files without consolidating, as a killed process would."""
        with self._mutex:
            self._close_sources()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
            self._closed = True

    def _recover(self) -> None:
        for leftover in [self.path.with_name(self.path.name + ".tmp"), *self.segment_dir.glob("seg-*.h5.tmp")]:
            if leftover.exists():  # an interrupted write: never committed
                leftover.unlink()
        if self.path.exists():
            try:
                self._store = _Batch(self.path)
            except _Unreadable:
                raise InputError("not an hpcdist journal (not an HDF5 file, or truncated)",
                                 path=str(self.path)) from None
            for i, key in enumerate(self._store.keys):
                self._index[key] = (0, i)
        for seq, seg_path in sorted(self._existing_segments().items()):
            try:
                batch = _Batch(seg_path)
            except _Unreadable as exc:
                damaged = seg_path.with_name(seg_path.name + ".damaged")
                log.warning("journal segment %s cannot be read (%s); set aside as %s, its tasks will run again",
                            seg_path, exc, damaged.name)
                os.replace(seg_path, damaged)
                continue
            self._segments[seq] = seg_path
            self._remember(seq, batch)
            for i, key in enumerate(batch.keys):
                self._index[key] = (seq, i)
            self._next_seq = seq + 1
        if self._segments:
            self._consolidate()

    def _existing_segments(self) -> dict[int, Path]:
        found = {}
        for p in self.segment_dir.glob("seg-*.h5"):
            stem = p.name[len("seg-") : -len(".h5")]
            if stem.isdigit():
                found[int(stem)] = p
        return found

    # -- the mapping -----------------------------------------------------------------

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def __len__(self) -> int:
        return len(self._index)

    def keys(self) -> list[str]:
        """The keys of all recorded results, in the order they were first recorded."""
        with self._mutex:
            return list(self._index)

    def get(self, key: str) -> object:
        """The recorded result of ``key``; numpy arrays come back as arrays.

        Raises
        ------
        KeyError
            When ``key`` was never recorded.
        InputError
            When the record fails its checksum (the file is named).
        """
        with self._mutex:
            self._check_open()
            source, i = self._index[key]
            return self._batch(source).value(i)

    def record_many(self, items: Iterable[tuple[str, object]]) -> None:
        """Record results durably: when this returns, a kill at any instant keeps them.

        Parameters
        ----------
        items : list of (str, object)
            Task keys and their results. Arrays of numeric and boolean dtypes in native
            byte order become HDF5 datasets; anything else is pickled (protocol 5) and
            checksummed. A key recorded again takes the newer result.

        Notes
        -----
        One segment file per call (write, ``fsync``, rename, ``fsync`` of the folder):
        record results in batches, not one by one. Measured on a 2-core VM with a
        virtual disk (medians, quiet machine): 1 result 1.9 ms, 100 results 2.1 ms,
        10,000 small results 27 ms, one 1 MB array 3.7 ms; the bare durable-write floor
        (8 KiB write + fsync + rename + fsync of the folder) is 0.4-2 ms there.
        """
        items = list(items)
        if not items:
            return
        for key, _ in items:
            if not isinstance(key, str):
                raise TypeError(f"journal keys are str, got {type(key).__name__} {key!r}")
        image = _encode_segment(items)
        with self._mutex:
            self._check_open()
            seq = self._next_seq
            seg_path = self.segment_dir / f"seg-{seq:08d}.h5"
            write_atomic(seg_path, image)
            self._next_seq = seq + 1
            self._segments[seq] = seg_path
            for i, (key, _) in enumerate(items):
                self._index[key] = (seq, i)
            if len(image) < _SMALL_SEGMENT_BYTES:
                self._small.append(seq)
                if len(self._small) >= _MERGE_AT:
                    self._merge_small()

    def _merge_small(self) -> None:
        """Merge the small segments into one new segment, durably, then delete them.

        Only records still live (not recorded again in a later segment) are copied, so
        the merged segment, which sorts after every segment, never revives an old
        result. A kill before the deletions leaves identical duplicates; a kill before
        the merged segment's rename leaves the small segments as they were.
        """
        merged = list(self._small)
        records: list[tuple[str, int, bytes | np.ndarray, bytes]] = []
        for seq in merged:
            batch = self._batch(seq)
            for i, key in enumerate(batch.keys):
                if self._index.get(key) == (seq, i):
                    kind, payload = batch.payload(i)  # verifies the checksum
                    records.append((key, kind, payload, batch.digests[i].tobytes()))
        image = _encode_records(records)
        seq = self._next_seq
        seg_path = self.segment_dir / f"seg-{seq:08d}.h5"
        write_atomic(seg_path, image)
        self._next_seq = seq + 1
        self._segments[seq] = seg_path
        for j, (key, *_) in enumerate(records):
            self._index[key] = (seq, j)
        for old in merged:
            batch = self._open_segments.pop(old, None)
            if batch is not None:
                batch.close()
            self._segments.pop(old).unlink(missing_ok=True)
        fsync_dir(self.segment_dir)
        self._small = [seq] if len(image) < _SMALL_SEGMENT_BYTES else []

    # -- reading sources -------------------------------------------------------------

    def _batch(self, source: int) -> _Batch:
        if source == 0:
            assert self._store is not None
            return self._store
        batch = self._open_segments.get(source)
        if batch is None:
            try:
                batch = _Batch(self._segments[source])
            except _Unreadable as exc:
                raise InputError(f"journal segment cannot be read ({exc})", path=str(self._segments[source])) from None
            self._remember(source, batch)
        else:
            self._open_segments.move_to_end(source)
        return batch

    def _remember(self, source: int, batch: _Batch) -> None:
        self._open_segments[source] = batch
        while len(self._open_segments) > _OPEN_SEGMENTS:
            _, old = self._open_segments.popitem(last=False)
            old.close()

    # -- consolidation ---------------------------------------------------------------

    def _consolidate(self) -> None:
        """Rewrite store + segments as one new store, atomically; then drop the segments."""
        import h5py

        order = list(self._index.items())
        n = len(order)
        new_position = {key: j for j, (key, _) in enumerate(order)}
        kinds = np.zeros(n, np.uint8)
        offsets = np.zeros(n, np.int64)
        lengths = np.zeros(n, np.int64)
        digests = np.zeros((n, 32), np.uint8)
        by_source: dict[int, list[tuple[str, int]]] = {}
        blob_total = 0
        for key, (source, i) in order:
            by_source.setdefault(source, []).append((key, i))
        for source, records in by_source.items():  # each source opened once, not once a record
            batch = self._batch(source)
            picks = np.fromiter((i for _, i in records), np.int64, len(records))
            blob_total += int(batch.lengths[picks][batch.kinds[picks] == _PICKLE].sum())
        tmp = self.path.with_name(self.path.name + ".tmp")
        with h5py.File(tmp, "w", libver="latest", locking=False) as f:
            blob_ds = f.create_dataset("blob", shape=(blob_total,), dtype=np.uint8)
            group = f.create_group("arrays")
            pending: list[bytes] = []
            pending_start = written = 0
            for source in sorted(by_source):
                batch = self._batch(source)
                for key, i in by_source[source]:
                    j = new_position[key]
                    kind, payload = batch.payload(i)  # verifies the checksum
                    kinds[j] = kind
                    digests[j] = batch.digests[i]
                    if kind == _ARRAY:
                        group.create_dataset(str(j), data=payload)
                        continue
                    assert isinstance(payload, bytes)
                    offsets[j], lengths[j] = written, len(payload)
                    written += len(payload)
                    pending.append(payload)
                    if written - pending_start >= _FLUSH_BYTES:
                        blob_ds[pending_start:written] = np.frombuffer(b"".join(pending), np.uint8)
                        pending, pending_start = [], written
            if pending:
                blob_ds[pending_start:written] = np.frombuffer(b"".join(pending), np.uint8)
            _write_meta(f, [key for key, _ in order], kinds, offsets, lengths, digests)
        fsync_path(tmp)
        self._close_sources()
        os.replace(tmp, self.path)
        fsync_dir(self.path.parent)
        for seg_path in self._segments.values():
            seg_path.unlink(missing_ok=True)
        fsync_dir(self.segment_dir)
        self._segments.clear()
        self._small.clear()
        self._next_seq = 1
        self._store = _Batch(self.path)
        self._index = {key: (0, j) for j, (key, _) in enumerate(order)}

    def _close_sources(self) -> None:
        for batch in self._open_segments.values():
            batch.close()
        self._open_segments.clear()
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- closing ---------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"journal {self.path} is closed")

    def close(self) -> None:
        """Consolidate the segments into the store and release the journal.

        A second call does nothing. Results recorded before a crash that skipped
        ``close`` are consolidated on the next open instead.
        """
        with self._mutex:
            if self._closed:
                return
            try:
                if self._segments:
                    self._consolidate()
                elif not self.path.exists():  # an empty journal still leaves a valid store
                    write_atomic(self.path, _encode_segment([]))
            finally:
                self._close_sources()
                self._release()
                self._closed = True

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # never consolidate from a finaliser; just let go of the lock
        try:
            if not self._closed:
                self._close_sources()
                self._release()
        except Exception:  # noqa: BLE001 - finalisers must not raise
            pass

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._index)} results"
        return f"Journal({str(self.path)!r}, {state})"


# -- task keys -------------------------------------------------------------------------


class TaskKeyError(InputError, TypeError, ValueError):
    """A task's arguments cannot be pickled deterministically, so it has no stable key."""


def _array_token(dtype: str, shape: tuple[int, ...], digest: str) -> None:
    """Stands for an array in a task key's pickle; never called."""


def _object_array_token(shape: tuple[int, ...], items: list) -> None:
    """Stands for an object array in a task key's pickle; never called."""


def _set_token(kind: str, items: tuple[bytes, ...]) -> None:
    """Stands for a set in a task key's pickle (elements sorted by their pickles); never called."""


def _reduce_for_key(obj: object) -> Any:
    """``reducer_override`` of the key picklers: arrays by content digest, sets sorted."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            return _object_array_token, (tuple(obj.shape), obj.tolist())
        contiguous = np.ascontiguousarray(obj).reshape(-1).view(np.uint8)
        digest = hashlib.blake2b(contiguous.data, digest_size=20).hexdigest()
        return _array_token, (obj.dtype.str, tuple(obj.shape), digest)
    if isinstance(obj, (set, frozenset)):
        return _set_token, (type(obj).__qualname__, tuple(sorted(_canonical_pickle(x) for x in obj)))
    return NotImplemented


class _FastKeyPickler(pickle.Pickler):
    """The C pickler without memo, so that ``f(a, a)`` and ``f(a, a.copy())`` agree."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=5)
        self.fast = True

    def reducer_override(self, obj: object) -> Any:
        return _reduce_for_key(obj)


class _KeyPickler(pickle._Pickler):  # type: ignore[name-defined,misc]
    """The pure-Python pickler, which (unlike the C one) shows sets to ``reducer_override``."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=5)
        self.fast = True

    def reducer_override(self, obj: object) -> Any:
        return _reduce_for_key(obj)


#: Opcodes of exact sets and frozensets in protocol 4+ (EMPTY_SET, FROZENSET).
_SET_OPCODES = (pickle.EMPTY_SET, pickle.FROZENSET)


def _canonical_pickle(obj: object) -> bytes:
    """Pickle bytes that depend only on the values: C pickler, or the Python one when sets may occur.

    A set's iteration order (of strings) changes with ``PYTHONHASHSEED``. The C
    pickler writes exact sets without asking ``reducer_override``; when its output may
    hold one (a set opcode byte anywhere, false alarms included), the slower pure-Python
    pickler redoes it with sorted sets. The choice depends only on the C pickler's bytes
    for set-free values, so it is itself deterministic.
    """
    buffer = io.BytesIO()
    _FastKeyPickler(buffer).dump(obj)
    data = buffer.getvalue()
    if any(op in data for op in _SET_OPCODES):
        buffer = io.BytesIO()
        _KeyPickler(buffer).dump(obj)
        data = buffer.getvalue()
    return data


def _callable_name(fn: object) -> tuple[str, tuple]:
    """``module.qualname`` of ``fn``, and what else identifies it (partial arguments, bound self)."""
    extra: tuple = ()
    if isinstance(fn, functools.partial):
        inner, inner_extra = _callable_name(fn.func)
        return inner, (*inner_extra, "partial", fn.args, sorted((fn.keywords or {}).items()))
    if isinstance(fn, (types.MethodType, types.BuiltinMethodType)) and not isinstance(
        getattr(fn, "__self__", None), types.ModuleType
    ):
        owner = fn.__self__
        target = getattr(fn, "__func__", fn)
        module = getattr(target, "__module__", None) or type(owner).__module__
        return f"{module}.{target.__qualname__}", ("self", owner)
    if isinstance(fn, (types.FunctionType, types.BuiltinFunctionType, type)):
        return f"{fn.__module__}.{fn.__qualname__}", extra
    cls = type(fn)  # a callable instance: its state is part of its identity
    return f"{cls.__module__}.{cls.__qualname__}", ("instance", fn)


def task_key(fn: Any, args: tuple = (), kwargs: dict | None = None, key: str | None = None) -> str:
    """A task's journal key: the user's ``key``, else a stable hash of ``fn`` and its arguments.

    Stable across processes, runs and ``PYTHONHASHSEED`` (Python's ``hash`` is not):
    ``"<module>.<qualname>:<40 hex digits>"``, the digits a BLAKE2b digest of the
    arguments pickled with protocol 5, where numpy arrays count by dtype, shape and
    bytes, sets by their sorted elements and keyword arguments by name.

    Parameters
    ----------
    fn : callable
        The task's function (a ``functools.partial``, bound method or callable
        instance includes its bound arguments or state in the digest).
    args : tuple
        Positional arguments.
    kwargs : dict, optional
        Keyword arguments.
    key : str, optional
        The user's own key; returned unchanged.

    Returns
    -------
    str

    Raises
    ------
    TaskKeyError
        (an ``InputError``, ``TypeError`` and ``ValueError``) when the arguments cannot be pickled
        deterministically: unpicklable objects (lambdas, open files, locks) or cyclic
        structures. Pass ``key=`` for such tasks.

    Notes
    -----
    Equal arguments give equal keys only when they pickle equally: ``1`` and ``1.0``
    differ, and so do dicts with the same items in a different order. Objects whose
    pickles embed memory addresses or random state have no stable key.
    """
    if key is not None:
        if not isinstance(key, str):
            raise TypeError(f"a task key must be a str, got {type(key).__name__} {key!r}")
        return key
    name, extra = _callable_name(fn)
    payload = (extra, tuple(args), sorted((kwargs or {}).items()))
    try:
        data = _canonical_pickle(payload)
    except RecursionError:
        raise TaskKeyError(f"the arguments of {name} cannot be pickled deterministically "
                           "(a cyclic or very deep structure); pass key= to give the task a key") from None
    except Exception as exc:  # noqa: BLE001 - any pickling failure means: no stable key
        raise TaskKeyError(f"the arguments of {name} cannot be pickled deterministically "
                           f"({type(exc).__name__}: {exc}); pass key= to give the task a key") from None
    return f"{name}:{hashlib.blake2b(data, digest_size=20, person=b'hpcdist-taskkey').hexdigest()}"
