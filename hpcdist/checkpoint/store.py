"""The collective checkpoint store: atomic, verified, elastic, file per rank.

Saving (collective)
-------------------
1. Every rank checks its arguments; the small descriptors (names, dtypes, offset,
   length) are all-gathered, so every rank reaches the same verdict on a bad layout.
2. Rank 0 picks the next sequence number and creates ``DIR/ckpt-SEQ-step-STEP/``.
3. Every rank writes its slice to ``rank-R.h5.tmp`` (h5py, one contiguous dataset per
   array), then ``fsync``\\ s it while a helper thread computes the block CRC-32s of the
   same memory, and renames it to ``rank-R.h5``. (``HPCDIST_FAULT`` phase ``checkpoint-write``
   fires after the first dataset is written.)
4. All ranks agree (:func:`~hpcdist.runtime.errors.agree`, an allreduce of success
   flags): a failure on any rank raises the same :class:`CheckpointError` everywhere
   and rank 0 removes the unfinished directory; the previous checkpoint is untouched.
5. The per-rank descriptors (file name, offset, length, size, checksums; never array
   data) are gathered to rank 0, which ``fsync``\\ s the checkpoint directory (the
   renames) and ``DIR`` (the new directory's entry), then writes ``manifest.json`` by
   temp + ``fsync`` + rename + ``fsync`` of the directory. That rename is the commit.
   (Phase ``checkpoint-commit`` fires just before it.)
6. Only then rank 0 deletes checkpoints older than the newest ``keep`` and unfinished
   directories left by crashed saves (before ``save`` returns, or in a background
   thread with ``background_prune=True``). Each loses its manifest first, so an
   interrupted deletion never leaves a committed checkpoint with missing files.

Reading
-------
:meth:`CheckpointStore.latest` (rank 0 scans the directory, the others receive the
answer) finds the newest committed checkpoint whose manifest parses and whose files
have their recorded sizes; :meth:`CheckpointStore.load` reads any global range from
whichever rank files cover it and verifies every checksum block it touches, so a
checkpoint written by 4 ranks restores on 1, 2 or 3; :meth:`CheckpointStore.restore`
combines both and falls back to older checkpoints when verification fails. Each rank
file's HDF5 header is opened with h5py and checked against the manifest; contiguous
datasets are then read with plain reads at their byte offset (h5py holds the GIL for a
whole read, which would stall the checksum threads), others through h5py.

File per rank always: the PyPI h5py has no MPI-IO, and where parallel HDF5 was built
against the same MPI, collective ``mpio`` writes measured 0.62-0.72 GiB/s, slower than
serial writes on the same disk.

One writer per directory: two jobs saving into the same directory at once would
prune each other's checkpoints.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import numpy as np

from hpcdist.checkpoint.atomic import (
    CHECKSUM_ALGORITHM,
    DEFAULT_BLOCK_BYTES,
    block_checksums,
    fsync_dir,
    fsync_path,
    verify_blocks,
    write_atomic,
)
from hpcdist.checkpoint.format import (
    DTYPE_KINDS,
    FORMAT,
    MANIFEST,
    VERSION,
    CheckpointError,
    CheckpointInfo,
    RankFile,
    checkpoint_name,
    list_checkpoints,
    open_rank_file,
    parse_manifest,
    quick_check,
)
from hpcdist.runtime.errors import HpcdistError, agree
from hpcdist.runtime.logs import get_logger

if TYPE_CHECKING:
    from mpi4py import MPI

    from hpcdist.runtime.faults import Faults

__all__ = ["CheckpointStore", "read_range"]

log = get_logger(__name__)

_SEQ_RE = re.compile(r"^ckpt-(\d{6,})-step-")
#: Blocks read per request on restore; the CRC of one request overlaps the read of the next.
_READ_BLOCKS = 8
_MISSING = object()
#: Checksum blocks per task of the checksum thread.
_CRC_PIECE_BLOCKS = 4


def _pieces(arr: np.ndarray, piece_bytes: int) -> list[np.ndarray]:
    """Consecutive byte views of ``arr`` of ``piece_bytes`` (a multiple of the block size)."""
    view = arr.reshape(-1).view(np.uint8)
    return [view[i:i + piece_bytes] for i in range(0, view.size, piece_bytes)]


def _describe(value: Any) -> str:
    if value is _MISSING:
        return "(missing)"
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 200 else text[:197] + "..."


def _as_json(value: Any, what: str) -> Any:
    """``value`` as it reads back from JSON (tuples become lists), or a CheckpointError."""
    try:
        return json.loads(json.dumps(value, allow_nan=True))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{what} is not JSON-able ({exc})") from None


class CheckpointStore:
    """Checkpoints of distributed 1-D arrays in one directory, one file per rank.

    Collective over ``comm``: every method except the properties must be called by
    every rank in the same order.

    Parameters
    ----------
    directory : str or os.PathLike
        Where checkpoints go; created by rank 0 when missing. Every rank must see the
        same directory (a shared or local file system).
    comm : mpi4py.MPI.Intracomm
        Used as given (not duplicated); only collectives are issued on it.
    keep : int
        How many committed checkpoints to keep (at least 1); older ones are deleted
        after each commit.
    faults : hpcdist.runtime.faults.Faults, optional
        Fault injection hooks (default: :func:`hpcdist.runtime.faults.faults`, i.e.
        ``HPCDIST_FAULT``).
    block_bytes : int
        Bytes per checksum block (default 4 MiB; a multiple of every dtype's size).
    background_prune : bool
        Delete old checkpoints in a background thread of rank 0 instead of before
        :meth:`save` returns (saves tens of ms per save for large files on a VM; the
        directory then briefly holds more than ``keep`` checkpoints). Default False.

    Raises
    ------
    CheckpointError
        On every rank, when the directory cannot be created or is not a directory.

    Examples
    --------
    >>> store = CheckpointStore("ckpt", comm, keep=2)                    # doctest: +SKIP
    >>> store.save(10, {"rank": ranks}, offset, n, {"algorithm": "pagerank"})
    >>> got = store.restore({"algorithm": "pagerank"}, offset, offset + ranks.size)
    """

    def __init__(self, directory: str | os.PathLike, comm: "MPI.Intracomm", keep: int = 2, *,
                 faults: "Faults | None" = None, block_bytes: int = DEFAULT_BLOCK_BYTES,
                 background_prune: bool = False) -> None:
        # Imported here, during set-up: its first import (~0.1-0.2 s on a busy node) would
        # otherwise land in the first checkpoint's measured cost and skew the adaptive interval.
        import h5py  # noqa: F401

        self.directory = Path(directory)
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        error: BaseException | None = None
        if faults is None:
            from hpcdist.runtime.faults import Faults
            from hpcdist.runtime.faults import faults as env_faults

            try:
                faults = env_faults()
            except HpcdistError as exc:  # a malformed HPCDIST_FAULT: one agreed message below
                error, faults = exc, Faults()
        self.faults = faults
        self._last_seq = 0
        self._pruner: threading.Thread | None = None
        # Checksum threads per rank: the cores this process may use, shared by the ranks
        # of the communicator (an upper bound of those on this node).
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self._crc_threads = max(1, min(4, cores // self.size))
        if error is None and (not isinstance(keep, int) or isinstance(keep, bool) or keep < 1):
            error = CheckpointError(f"keep must be a positive integer, got {keep!r}")
        if error is None and (block_bytes <= 0 or block_bytes % 16):
            error = CheckpointError(f"block_bytes must be a positive multiple of 16, got {block_bytes!r}")
        if error is None and self.rank == 0:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                fsync_dir(self.directory.parent if str(self.directory.parent) else ".")
            except FileExistsError:
                error = CheckpointError("exists and is not a directory", path=self.directory)
            except OSError as exc:
                error = CheckpointError(f"cannot create the checkpoint directory ({exc.strerror or exc})",
                                        path=self.directory)
        agree(comm, error)
        self.keep = keep
        self.block_bytes = block_bytes
        self.background_prune = bool(background_prune)

    def __repr__(self) -> str:
        return f"CheckpointStore({str(self.directory)!r}, ranks={self.size}, keep={self.keep})"

    # -- saving --------------------------------------------------------------------------

    def save(self, step: int, arrays: Mapping[str, np.ndarray], offset: int, total: int,
             meta: Mapping[str, Any] | None = None) -> CheckpointInfo:
        """Write a checkpoint of this rank's slices and commit it atomically. Collective.

        Parameters
        ----------
        step : int
            The caller's step (superstep, iteration), recorded and shown by ``ls``.
        arrays : mapping of str to numpy.ndarray
            This rank's slice ``[offset, offset + n)`` of each global 1-D array; the same
            names and dtypes (bool, integer, float, complex) on every rank, the same
            ``n`` for all arrays of a rank. Slices tile ``0..total`` in rank order; a
            rank's slice may be empty.
        offset : int
            Global index of this rank's first item.
        total : int
            Global length of every array (the same on every rank).
        meta : mapping, optional
            JSON-able metadata (the same on every rank; rank 0's is stored).

        Returns
        -------
        CheckpointInfo
            The committed checkpoint (identical on every rank).

        Raises
        ------
        CheckpointError
            On every rank when the layout is inconsistent or any rank failed to write;
            the previous checkpoints are then untouched.
        """
        comm, rank = self.comm, self.rank
        meta = dict(meta or {})
        problem: str | None = None
        names = sorted(arrays)
        items: list[tuple[str, np.ndarray]] = []
        length = 0
        try:
            if not isinstance(step, (int, np.integer)) or step < 0:
                raise ValueError(f"step must be a non-negative integer, got {step!r}")
            for i, name in enumerate(names):
                arr = np.asarray(arrays[name])
                if not isinstance(name, str) or not name or "/" in name:
                    raise ValueError(f"array names must be non-empty strings without '/', got {name!r}")
                if arr.ndim != 1:
                    raise ValueError(f"array {name!r} is {arr.ndim}-D; checkpoints hold 1-D slices")
                if arr.dtype.kind not in DTYPE_KINDS or arr.dtype.fields is not None:
                    raise ValueError(f"array {name!r} has dtype {arr.dtype}; use bool, integer, float or complex")
                if self.block_bytes % arr.dtype.itemsize:
                    raise ValueError(f"array {name!r}: {arr.dtype} items do not divide a checksum block")
                if i == 0:
                    length = arr.shape[0]
                elif arr.shape[0] != length:
                    raise ValueError(f"array {name!r} has {arr.shape[0]} items, {names[0]!r} has {length}")
                items.append((name, np.ascontiguousarray(arr)))
            if rank == 0:
                meta = _as_json(meta, "meta")
        except (ValueError, CheckpointError) as exc:
            problem = f"rank {rank}: {exc}"
        desc = (problem, [(n, a.dtype.str) for n, a in items], int(offset), int(length), int(total))
        everyone = comm.allgather(desc)
        layout_problem = _check_layout(everyone)
        if layout_problem is not None:
            err = CheckpointError(f"cannot save checkpoint of step {step} in {self.directory}: {layout_problem}")
            err.collective = True
            raise err

        # Rank 0 names and creates the checkpoint's directory.
        error: BaseException | None = None
        header = None
        if rank == 0:
            self.wait()  # the previous save's pruning must not race this listing
            try:
                seq = max(self._last_seq, _max_seq(self.directory)) + 1
                name = checkpoint_name(seq, int(step))
                (self.directory / name).mkdir()  # made durable by the fsync before the commit
                header = (seq, name, time.time())
            except OSError as exc:
                error = CheckpointError(f"cannot create a checkpoint directory ({exc.strerror or exc})",
                                        path=self.directory)
        agree(comm, error)
        seq, name, created = comm.bcast(header, root=0)
        self._last_seq = seq
        sub = self.directory / name

        # Every rank writes its file; all agree before anything is committed.
        entry: dict[str, Any] | None = None
        try:
            entry = self._write_rank_file(sub, int(step), seq, items, int(offset), int(length))
        except CheckpointError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001 - any failed write (ENOSPC, EIO, an injected fault) is agreed
            error = CheckpointError(f"rank {rank} could not write its checkpoint file "
                                    f"({type(exc).__name__}: {exc})", path=sub / f"rank-{rank:05d}.h5")
        try:
            agree(comm, error)
        except HpcdistError:
            if rank == 0:
                shutil.rmtree(sub, ignore_errors=True)
            raise
        entries = comm.gather(entry, root=0)

        # Rank 0 commits: the manifest's rename is the one atomic step.
        manifest = None
        if rank == 0:
            assert entries is not None
            try:
                # Every rank file's rename, and the new directory itself, are durable
                # before the manifest can be. (Syncing the parent while the data was
                # still being written cost 15-45 ms here; now it is 1-5 ms.)
                fsync_dir(sub)
                fsync_dir(self.directory)
            except OSError as exc:
                error = CheckpointError(f"cannot sync the checkpoint directory ({exc.strerror or exc})", path=sub)
            manifest = {
                "format": FORMAT, "version": VERSION, "seq": seq, "step": int(step), "ranks": self.size,
                "total": int(total), "created": created,
                "checksum": {"algorithm": CHECKSUM_ALGORITHM, "block_bytes": self.block_bytes},
                "arrays": {n: a.dtype.str for n, a in items}, "files": entries, "meta": meta,
            }
            if error is None:
                try:
                    self.faults.at_phase(rank, "checkpoint-commit", int(step))
                    write_atomic(sub / MANIFEST, json.dumps(manifest, indent=1).encode("utf-8"))
                except Exception as exc:  # noqa: BLE001 - a failed commit leaves the previous checkpoint
                    error = CheckpointError(f"cannot commit the checkpoint ({type(exc).__name__}: {exc})",
                                            path=sub / MANIFEST)
            if error is not None:
                shutil.rmtree(sub, ignore_errors=True)
        agree(comm, error)
        if rank == 0:
            if self.background_prune:
                # Off the critical path; the next save, latest() or restore() waits for
                # it. Not a daemon thread: the interpreter finishes it before exiting.
                self._pruner = threading.Thread(target=self._prune, args=(seq,), name="hpcdist-checkpoint-prune")
                self._pruner.start()
            else:
                self._prune(seq)
        manifest = comm.bcast(manifest, root=0)
        return parse_manifest(manifest, sub)

    def _write_rank_file(self, sub: Path, step: int, seq: int, items: list[tuple[str, np.ndarray]],
                         offset: int, length: int) -> dict[str, Any]:
        """Write, checksum, fsync and rename this rank's file; return its manifest entry."""
        import h5py

        rank = self.rank
        final = sub / f"rank-{rank:05d}.h5"
        tmp = sub / f"rank-{rank:05d}.h5.tmp"
        with ThreadPoolExecutor(max_workers=self._crc_threads) as pool:
            with h5py.File(tmp, "w", locking=False) as f:
                f.attrs["hpcdist_format"] = FORMAT
                f.attrs["version"] = VERSION
                for key, value in (("rank", rank), ("n_ranks", self.size), ("offset", offset), ("length", length),
                                   ("step", step), ("seq", seq)):
                    f.attrs[key] = np.int64(value)
                for i, (name, arr) in enumerate(items):
                    f.create_dataset(name, data=arr)
                    if i == 0:
                        self.faults.at_phase(rank, "checkpoint-write", step)
                if not items:
                    self.faults.at_phase(rank, "checkpoint-write", step)
            # The CRCs of the source memory run in a helper thread during the fsync, which
            # only waits for the disk (zlib releases the GIL): in line they would cost a
            # third of the bandwidth, and started beside the write they slowed the copy
            # into the page cache (measured: 2 cores, 512 MiB, 0.6 s vs 0.5 s in total).
            sums = [(n, pool.submit(block_checksums, piece, self.block_bytes)) for n, a in items
                    for piece in _pieces(a, _CRC_PIECE_BLOCKS * self.block_bytes)]
            fsync_path(tmp)
            checksums: dict[str, list[int]] = {n: [] for n, _ in items}
            for n, fut in sums:
                checksums[n].extend(fut.result())
        os.replace(tmp, final)  # rank 0 fsyncs the directory once for all ranks before the commit
        return {"rank": rank, "path": final.name, "offset": offset, "length": length,
                "size": final.stat().st_size, "checksums": checksums}

    def wait(self) -> None:
        """Wait until the background deletion of old checkpoints (rank 0 only) has finished.

        Not collective. :meth:`save`, :meth:`latest` and :meth:`restore` call it themselves.
        """
        pruner, self._pruner = self._pruner, None
        if pruner is not None:
            pruner.join()

    def _prune(self, newest_seq: int) -> None:
        """Delete committed checkpoints beyond ``keep`` and unfinished older saves (rank 0, best effort)."""
        try:
            found = list_checkpoints(self.directory, uncommitted=True)
        except CheckpointError as exc:
            log.warning("not pruning old checkpoints: %s", exc)
            return
        committed = [c for c in found if c.committed]
        doomed = committed[: max(0, len(committed) - self.keep)]
        doomed += [c for c in found if not c.committed and c.seq < newest_seq]
        for c in doomed:
            try:
                # The manifest goes first: an interrupted deletion leaves an unfinished
                # checkpoint, never a committed one with missing files.
                (c.directory / MANIFEST).unlink(missing_ok=True)
                shutil.rmtree(c.directory)
            except OSError as exc:
                log.warning("cannot delete old checkpoint %s: %s", c.directory, exc.strerror or exc)
        if doomed:
            try:
                fsync_dir(self.directory)
            except OSError:
                pass

    # -- finding -------------------------------------------------------------------------

    def _candidates(self, expect: Mapping[str, Any] | None) -> tuple[list[tuple[CheckpointInfo, str | None]],
                                                                     list[str], int]:
        """Committed checkpoints that look intact, newest first, each with its meta mismatch (or None),
        the problems of those skipped and the number committed. Collective.

        Rank 0 scans; the others receive its answer (one metadata scan per job, not per rank).
        """
        comm = self.comm
        error: BaseException | None = None
        answer = None
        if self.rank == 0:
            self.wait()
            try:
                answer = self._scan(expect)
            except CheckpointError as exc:
                error = exc
        agree(comm, error)
        manifests, skipped, n_committed = comm.bcast(answer, root=0)
        infos = [(parse_manifest(m, self.directory / name), mismatch) for name, m, mismatch in manifests]
        return infos, skipped, n_committed

    def _scan(self, expect: Mapping[str, Any] | None) -> tuple[list[tuple[str, dict, str | None]], list[str], int]:
        wanted = {k: _as_json(v, f"the expected value of {k!r}") for k, v in (expect or {}).items()}
        found = list_checkpoints(self.directory, uncommitted=True)
        good: list[tuple[str, dict, str | None]] = []
        skipped: list[str] = []
        n_committed = 0
        for info in reversed(found):
            if not info.committed:
                log.info("ignoring unfinished checkpoint %s (no manifest)", info.directory)
                continue
            n_committed += 1
            if info.problem is not None:
                log.warning("skipping checkpoint %s: %s", info.name, info.problem)
                skipped.append(info.problem)
                continue
            mismatch = None
            for key, want in wanted.items():
                have = info.meta.get(key, _MISSING)
                if have is _MISSING or have != want:
                    mismatch = (f"{self.directory}: checkpoint {info.name} (step {info.step}) has {key} = "
                                f"{_describe(have)}, this run expects {key} = {_describe(want)}; refusing to "
                                f"resume another run's checkpoint (use another checkpoint directory or remove "
                                f"this one)")
                    break
            if mismatch is None:
                problems = quick_check(info)
                if problems:
                    for p in problems:
                        log.warning("skipping checkpoint %s: %s", info.name, p)
                    skipped.extend(problems)
                    continue
            assert info.manifest is not None
            good.append((info.name, info.manifest, mismatch))
            if mismatch is not None:
                break  # nothing older can be used: reaching this one is an error
        return good, skipped, n_committed

    @staticmethod
    def _refuse_mismatch(mismatch: str | None) -> None:
        if mismatch is not None:
            err = CheckpointError(mismatch)
            err.collective = True  # every rank received the same verdict from rank 0
            raise err

    def latest(self, expect: Mapping[str, Any] | None = None) -> CheckpointInfo | None:
        """The newest committed checkpoint that looks intact, or None. Collective.

        "Looks intact": its manifest parses and every rank file exists with its recorded
        size. Newer ones that fail this are logged (warning, naming the file and the
        problem) and listed in the result's ``skipped``. Checksums are verified by
        :meth:`load`.

        Parameters
        ----------
        expect : mapping, optional
            Meta entries a checkpoint must have (e.g. ``{"algorithm": "pagerank",
            "graph": fingerprint}``), compared as they read back from JSON.

        Raises
        ------
        CheckpointError
            On every rank, when the checkpoint that would be returned has meta that
            differs from ``expect`` (the message names the directory, the key, the
            stored and the expected value): another run's checkpoint is refused, not
            skipped.
        """
        infos, skipped, _ = self._candidates(expect)
        if not infos:
            return None
        info, mismatch = infos[0]
        self._refuse_mismatch(mismatch)
        info.skipped = skipped
        return info

    # -- loading -------------------------------------------------------------------------

    def load(self, info: CheckpointInfo, start: int, stop: int,
             names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Read global items ``[start, stop)`` of each array, verifying every checksum read. Collective.

        Ranks may ask for any ranges (overlapping, empty, or covering several rank
        files), so a checkpoint written by any number of ranks restores on any other.

        Parameters
        ----------
        info : CheckpointInfo
            From :meth:`latest` or :meth:`save`.
        start, stop : int
            This rank's global range.
        names : iterable of str, optional
            Arrays to read (default: all).

        Returns
        -------
        dict of str to numpy.ndarray

        Raises
        ------
        CheckpointError
            On every rank, when any rank's read fails (missing or damaged file, checksum
            mismatch, bad range); the message names the file.
        """
        error: BaseException | None = None
        out: dict[str, np.ndarray] = {}
        try:
            out = read_range(info, start, stop, names, threads=self._crc_threads)
        except CheckpointError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001 - I/O errors of a damaged file become an agreed error
            error = CheckpointError(f"cannot read checkpoint {info.name} ({type(exc).__name__}: {exc})",
                                    path=info.directory)
        agree(self.comm, error)
        return out

    def restore(self, expect: Mapping[str, Any] | None, start: int, stop: int,
                names: Iterable[str] | None = None) -> tuple[CheckpointInfo, dict[str, np.ndarray]] | None:
        """Load the newest checkpoint that verifies, falling back to older ones. Collective.

        Parameters
        ----------
        expect : mapping or None
            As for :meth:`latest`.
        start, stop : int
            This rank's global range.
        names : iterable of str, optional

        Returns
        -------
        (CheckpointInfo, dict) or None
            The checkpoint used (its ``skipped`` lists the newer ones passed over and
            why) and this rank's arrays; None when the directory holds no committed
            checkpoint.

        Raises
        ------
        CheckpointError
            On every rank: the newest usable checkpoint's meta differs from ``expect``
            (also when reached by falling back); or
            committed checkpoints exist but none of them verifies (nothing is silently
            recomputed from scratch).
        """
        names = None if names is None else list(names)
        infos, skipped, n_committed = self._candidates(expect)
        for info, mismatch in infos:
            self._refuse_mismatch(mismatch)
            try:
                arrays = self.load(info, start, stop, names)
            except CheckpointError as exc:
                if self.rank == 0:
                    log.warning("checkpoint %s does not verify, trying an older one: %s", info.name, exc)
                skipped.append(str(exc))
                continue
            info.skipped = skipped
            return info, arrays
        if n_committed == 0:
            return None
        err = CheckpointError(f"none of the {n_committed} committed checkpoints can be restored; newest problem: "
                              f"{skipped[0] if skipped else 'unknown'}", path=self.directory)
        err.collective = True
        raise err


def _max_seq(directory: Path) -> int:
    best = 0
    for name in os.listdir(directory):
        m = _SEQ_RE.match(name)
        if m:
            best = max(best, int(m.group(1)))
    return best


def _check_layout(everyone: list[tuple]) -> str | None:
    """The first problem with the ranks' descriptors, identical on every rank, or None."""
    for problem, *_ in everyone:
        if problem is not None:
            return problem
    first = everyone[0][1]
    total = everyone[0][4]
    position = 0
    for r, (_, arrays, offset, length, rank_total) in enumerate(everyone):
        if arrays != first:  # empty slices too: the manifest records one dtype per array
            return f"rank {r} has arrays {arrays}, rank 0 has {first} (names and dtypes must agree)"
        if rank_total != total:
            return f"rank {r} says total {rank_total}, rank 0 says {total}"
        if offset != position:
            return f"rank {r} starts at offset {offset}, expected {position} (slices must tile 0..total in rank order)"
        position += length
    if position != total:
        return f"the slices cover {position} items, total is {total}"
    if not first:
        return "no arrays to save"
    return None


def read_range(info: CheckpointInfo, start: int, stop: int,
               names: Iterable[str] | None = None, *, threads: int = 1) -> dict[str, np.ndarray]:
    """Read and verify global items ``[start, stop)`` of a checkpoint's arrays; no MPI.

    Only the checksum blocks that overlap the range are read and checked; ``threads``
    helper threads check them while the next blocks are read.

    Raises
    ------
    CheckpointError
        Naming the file, on a bad range, unknown name, missing or damaged file or a
        checksum mismatch.
    """
    start, stop = int(start), int(stop)
    if not 0 <= start <= stop <= info.total:
        raise CheckpointError(f"range [{start}, {stop}) is outside the checkpoint's 0..{info.total}",
                              path=info.directory)
    wanted = list(info.arrays) if names is None else list(names)
    for name in wanted:
        if name not in info.arrays:
            raise CheckpointError(f"no array {name!r} (it has {', '.join(info.arrays)})", path=info.directory)
    out = {name: np.empty(stop - start, dtype=np.dtype(info.arrays[name])) for name in wanted}
    covering = [rf for rf in info.files if rf.length and rf.offset < stop and rf.stop > start]
    if not covering or not wanted:
        return out
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for rf in covering:
            lo, hi = max(start, rf.offset) - rf.offset, min(stop, rf.stop) - rf.offset
            f = open_rank_file(info, rf)  # checks the header against the manifest
            with f:
                raw = None
                try:
                    for name in wanted:
                        target = out[name][rf.offset + lo - start: rf.offset + hi - start]
                        ds = f[name]
                        where = _raw_offset(ds)
                        if where is not None and raw is None:
                            raw = open(rf.path, "rb", buffering=0)
                        read = _raw_reader(raw, where, ds.dtype.itemsize, rf) if where is not None else \
                            _h5_reader(ds, name, rf)
                        _read_verified(pool, read, ds.dtype, rf, name, info.block_bytes, lo, hi, target)
                finally:
                    if raw is not None:
                        raw.close()
    return out


def _raw_offset(ds: Any) -> int | None:
    """Byte offset of a contiguous, unfiltered dataset's data in its file, else None."""
    if ds.chunks is not None or ds.compression is not None:
        return None
    try:
        where = ds.id.get_offset()
    except Exception:  # noqa: BLE001 - compact or unallocated storage has no offset
        return None
    return None if where is None else int(where)


def _raw_reader(fh: Any, where: int, itemsize: int, rf: RankFile):
    """Read items ``[a, b)`` into ``buf`` with plain reads, which release the GIL.

    h5py holds the GIL for a whole read, which stalls the checksum threads between
    blocks; a contiguous dataset's bytes are the array's bytes (same dtype and byte
    order, checked against the manifest when the file was opened).
    """

    def read(buf: np.ndarray, a: int, b: int) -> None:
        view = memoryview(buf.reshape(-1).view(np.uint8))
        fh.seek(where + a * itemsize)
        got = 0
        while got < len(view):
            n = fh.readinto(view[got:])
            if not n:
                raise CheckpointError(f"file ends inside items {a}..{b} (truncated)", path=rf.path)
            got += n

    return read


def _h5_reader(ds: Any, name: str, rf: RankFile):
    def read(buf: np.ndarray, a: int, b: int) -> None:
        try:
            ds.read_direct(buf, source_sel=np.s_[a:b])
        except Exception as exc:  # noqa: BLE001 - I/O errors of a damaged file
            raise CheckpointError(f"dataset {name!r}: cannot read items {a}..{b} ({exc})", path=rf.path) from None

    return read


def _read_verified(pool: ThreadPoolExecutor, read: Any, dtype: np.dtype, rf: RankFile, name: str,
                   block_bytes: int, lo: int, hi: int, target: np.ndarray) -> None:
    """Read file-local items ``[lo, hi)`` into ``target``, checking the CRC of every block touched.

    Whole blocks inside the range are read straight into ``target``; the partial first
    and last blocks go through a small buffer. The CRC of each request runs in
    ``pool`` while the next one is read.
    """
    block_items = block_bytes // dtype.itemsize
    sums = rf.checksums[name]
    k0, k1 = lo // block_items, math.ceil(hi / block_items)
    requests: list[tuple[int, int, bool]] = []  # (first block, end block, straight into target)
    k = k0
    if lo % block_items:
        requests.append((k0, k0 + 1, False))
        k = k0 + 1
    tail_partial = k1 > k and min(k1 * block_items, rf.length) > hi
    k_end = k1 - 1 if tail_partial else k1
    while k < k_end:
        kb = min(k + _READ_BLOCKS, k_end)
        requests.append((k, kb, True))
        k = kb
    if tail_partial:
        requests.append((k1 - 1, k1, False))
    pending: list[Future] = []
    try:
        for ka, kb, direct in requests:
            a, b = ka * block_items, min(kb * block_items, rf.length)
            buf = target[a - lo: b - lo] if direct else np.empty(b - a, dtype=dtype)
            read(buf, a, b)
            if not direct:
                s, e = max(a, lo), min(b, hi)
                target[s - lo: e - lo] = buf[s - a: e - a]
            pending.append(pool.submit(verify_blocks, buf, sums, block_bytes, ka))
    finally:
        results = [fut.result() for fut in pending]
    for bad in results:
        if bad is not None:
            raise CheckpointError(f"dataset {name!r}: checksum mismatch in block {bad} (items "
                                  f"{bad * block_items}..{min((bad + 1) * block_items, rf.length)})", path=rf.path)
