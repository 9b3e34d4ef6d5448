"""Checkpoint store benchmark: save and restore bandwidth against bare numpy I/O of the same bytes.

Run as ``mpiexec -n 1 python benchmarks/checkpoint_bench.py`` and again with ``-n 2``;
each run adds its rank count's results to the same JSON file (default
``benchmarks/results/checkpoint-vm-2026-11-25.json``).

Per job size (the bytes of all ranks together, split evenly; two arrays per rank,
float64 and int64), every repeat runs all contenders back to back on the same disk, in
an order that alternates between repeats:

=======================  ===============================================================
contender                what each rank does (timed from a barrier to the slowest rank)
=======================  ===============================================================
tofile_fsync (baseline)  numpy ``tofile`` of both arrays into one file, ``fsync``
checkpoint_save          ``CheckpointStore.save`` (HDF5 file per rank, CRC-32 computed
                         beside the write, fsync, rename, agreement, manifest commit,
                         pruning with keep=2)
h5py_inline_crc32        h5py write + CRC-32 computed before it + fsync (no overlap)
h5py_inline_blake2b      the same with BLAKE2b: what a cryptographic hash would cost
fromfile (baseline)      numpy ``fromfile`` of the baseline file
checkpoint_load          ``CheckpointStore.load`` of the rank's own range, verifying
                         every CRC-32 block
=======================  ===============================================================

Two untimed warm-up rounds come first (fresh page-cache pages cost 3-10x on this VM).
Before each timed write, ``os.sync()`` flushes what the previous contender left dirty.
Every contender deletes its previous output after its timed write, untimed: the
baselines unlink their file, the store (``background_prune=True``) prunes checkpoints
beyond ``keep=2`` in its background thread, waited for before the next contender. (On
this VM, pages freed some seconds before a write are handed back to the host and cost
several times more to write into again; deleting right before writing hides that, so
every contender deletes after.)
Reads are timed cold (the files' pages dropped from the page cache with
``posix_fadvise(DONTNEED)``, which needs no privileges) and warm (right after). Target:
checkpoint_save bandwidth >= 80 % of tofile_fsync's, median over repeats.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.machine import busy_cpu_seconds, machine_details  # noqa: E402
from hpcdist.checkpoint import CheckpointStore  # noqa: E402
from hpcdist.checkpoint.atomic import fsync_path  # noqa: E402
from hpcdist.runtime.comm import MPI  # noqa: E402
from hpcdist.runtime.faults import Faults  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_OUTPUT = RESULTS / "checkpoint-vm-2026-11-25.json"
TARGET = 0.80


def _drop_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _timed(comm: MPI.Intracomm, fn: Callable[[], object]) -> float:
    """Seconds from a common barrier until the slowest rank finished ``fn``."""
    comm.Barrier()
    t0 = time.perf_counter()
    fn()
    return comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)


def _summary(seconds: list[float], nbytes: int) -> dict:
    gib = nbytes / 2**30
    rates = [gib / s for s in seconds]
    return {"seconds_median": statistics.median(seconds), "seconds_min": min(seconds), "seconds_max": max(seconds),
            "gib_per_s_median": statistics.median(rates), "gib_per_s_min": min(rates), "gib_per_s_max": max(rates),
            "seconds": seconds}


def checksum_speeds(nbytes: int = 64 << 20, repeats: int = 5) -> dict:
    """GiB/s of candidate checksums over one in-memory buffer (median of ``repeats``)."""
    buf = memoryview(np.random.default_rng(0).random(nbytes // 8)).cast("B")
    funcs = {"crc32": lambda: zlib.crc32(buf), "adler32": lambda: zlib.adler32(buf),
             "sha1": lambda: hashlib.sha1(buf).digest(), "blake2b": lambda: hashlib.blake2b(buf).digest(),
             "md5": lambda: hashlib.md5(buf).digest()}
    out = {}
    for name, fn in funcs.items():
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        out[name] = round(nbytes / 2**30 / statistics.median(times), 3)
    return out


def bench_size(comm: MPI.Intracomm, workdir: Path, job_bytes: int, repeats: int, warmup: int) -> dict:
    import h5py

    rank, size = comm.Get_rank(), comm.Get_size()
    n_total = job_bytes // 16  # two 8-byte arrays
    bounds = np.linspace(0, n_total, size + 1).astype(np.int64)
    lo, hi = int(bounds[rank]), int(bounds[rank + 1])
    rng = np.random.default_rng(rank)
    arrays = {"value": rng.random(hi - lo), "index": np.arange(lo, hi, dtype=np.int64)}
    nbytes_rank = sum(a.nbytes for a in arrays.values())
    nbytes = comm.allreduce(nbytes_rank)
    store = CheckpointStore(workdir / "store", comm, keep=2, faults=Faults(), background_prune=True)
    raw = workdir / f"raw-{rank}.bin"
    h5 = workdir / f"inline-{rank}.h5"

    def tofile() -> None:
        with open(raw, "wb") as fh:
            for a in arrays.values():
                a.tofile(fh)
            fh.flush()
            os.fsync(fh.fileno())

    def h5_inline(hasher: Callable[[memoryview], object]) -> Callable[[], None]:
        def write() -> None:
            for a in arrays.values():
                hasher(memoryview(a).cast("B"))
            with h5py.File(h5, "w", locking=False) as f:
                for name, a in arrays.items():
                    f.create_dataset(name, data=a)
            fsync_path(h5)
        return write

    saved = {}

    def save() -> None:
        saved["info"] = store.save(1, arrays, lo, n_total, {"algorithm": "bench"})

    def settle() -> None:
        store.wait()  # the previous save's background deletion must not overlap a timed contender

    def remove(path: Path) -> None:  # after the timed write, untimed, as the save's pruning
        path.unlink(missing_ok=True)

    writers = {
        "tofile_fsync": (tofile, lambda: remove(raw)),
        "checkpoint_save": (save, settle),
        "h5py_inline_crc32": (h5_inline(zlib.crc32), lambda: remove(h5)),
        "h5py_inline_blake2b": (h5_inline(lambda b: hashlib.blake2b(b).digest()), lambda: remove(h5)),
    }
    times: dict[str, list[float]] = {k: [] for k in writers}
    reads: dict[str, list[float]] = {k: [] for k in ("fromfile_cold", "checkpoint_load_cold",
                                                     "fromfile_warm", "checkpoint_load_warm")}
    for rep in range(-warmup, repeats):
        order = list(writers) if rep % 2 == 0 else list(reversed(writers))
        for name in order:
            fn, after = writers[name]
            os.sync()  # no contender inherits the previous one's dirty pages
            comm.Barrier()
            took = _timed(comm, fn)
            if rep >= 0:
                times[name].append(took)
            after()
        if rep < 0:
            continue
        tofile()  # the baseline file for the reads (the last contender may have removed it)
        info = saved["info"]
        own = [f.path for f in info.files if f.rank == rank]

        def fromfile() -> None:
            got = np.fromfile(raw, dtype=np.float64)
            assert got.size * 8 == nbytes_rank

        def load() -> None:
            got = store.load(info, lo, hi)
            assert got["index"][:1].tolist() == arrays["index"][:1].tolist()

        for temp in ("cold", "warm"):
            pair = [("fromfile", fromfile), ("checkpoint_load", load)]
            if rep % 2:
                pair.reverse()
            for name, fn in pair:
                if temp == "cold":
                    for p in [raw, *own]:
                        _drop_cache(p)
                reads[f"{name}_{temp}"].append(_timed(comm, fn))
    result = {"job_bytes": nbytes, "bytes_per_rank": nbytes_rank, "repeats": repeats, "warmup_rounds": warmup}
    result["write"] = {k: _summary(v, nbytes) for k, v in times.items()}
    result["read"] = {k: _summary(v, nbytes) for k, v in reads.items()}
    base = statistics.median(times["tofile_fsync"])
    ratios = [b / s for b, s in zip(times["tofile_fsync"], times["checkpoint_save"])]
    result["save_vs_tofile"] = {
        "ratio_of_medians": base / statistics.median(times["checkpoint_save"]),
        "paired_ratio_median": statistics.median(ratios), "paired_ratio_min": min(ratios),
        "paired_ratio_max": max(ratios), "target": TARGET,
    }
    result["save_vs_tofile"]["met"] = result["save_vs_tofile"]["ratio_of_medians"] >= TARGET
    for temp in ("cold", "warm"):
        result[f"load_vs_fromfile_{temp}"] = (statistics.median(reads[f"checkpoint_load_{temp}"])
                                              / statistics.median(reads[f"fromfile_{temp}"]))
    comm.Barrier()
    if rank == 0:
        shutil.rmtree(workdir / "store", ignore_errors=True)
    remove(raw)
    remove(h5)
    return result


def format_rows(size: int, results: list[dict]) -> list[str]:
    lines = []
    for r in results:
        w, rd = r["write"], r["read"]
        mib = r["job_bytes"] / 2**20
        for k in ("tofile_fsync", "checkpoint_save", "h5py_inline_crc32", "h5py_inline_blake2b"):
            s = w[k]
            lines.append(f"ranks {size}  {mib:6.0f} MiB  write {k:20s} {s['gib_per_s_median']:5.2f} GiB/s "
                         f"[{s['gib_per_s_min']:.2f}-{s['gib_per_s_max']:.2f}]  {s['seconds_median']:.3f} s")
        for k in ("fromfile_cold", "checkpoint_load_cold", "fromfile_warm", "checkpoint_load_warm"):
            s = rd[k]
            lines.append(f"ranks {size}  {mib:6.0f} MiB  read  {k:20s} {s['gib_per_s_median']:5.2f} GiB/s "
                         f"[{s['gib_per_s_min']:.2f}-{s['gib_per_s_max']:.2f}]  {s['seconds_median']:.3f} s")
        v = r["save_vs_tofile"]
        lines.append(f"ranks {size}  {mib:6.0f} MiB  save/tofile {v['ratio_of_medians']:.2f} (paired median "
                     f"{v['paired_ratio_median']:.2f}, {v['paired_ratio_min']:.2f}-{v['paired_ratio_max']:.2f}); "
                     f"load/fromfile time cold {r['load_vs_fromfile_cold']:.2f}x, warm "
                     f"{r['load_vs_fromfile_warm']:.2f}x")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="64,512", help="job sizes in MiB, comma-separated (default 64,512)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2,
                   help="untimed rounds first: on a VM whose memory the host backs lazily, the first writes into "
                   "fresh page-cache pages run several times slower")
    p.add_argument("--dir", default=None, help="scratch directory on the disk to measure (default: the temp dir)")
    p.add_argument("--output", default=str(DEFAULT_OUTPUT), help="JSON file; results are merged by rank count")
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args(argv)
    comm = MPI.COMM_WORLD.Dup()
    rank, size = comm.Get_rank(), comm.Get_size()
    scratch = Path(args.dir or tempfile.gettempdir()) / f"hpcdist-ckpt-bench-{size}"
    if rank == 0:
        scratch.mkdir(parents=True, exist_ok=True)
    comm.Barrier()
    machine = machine_details() if rank == 0 else None
    speeds = checksum_speeds() if rank == 0 else None
    results = []
    for mib in (int(x) for x in args.sizes.split(",")):
        comm.Barrier()
        busy0, wall0, own0 = busy_cpu_seconds(), time.perf_counter(), sum(os.times()[:2])
        results.append(bench_size(comm, scratch, mib << 20, args.repeats, args.warmup))
        own = comm.allreduce(sum(os.times()[:2]) - own0)
        busy1, wall = busy_cpu_seconds(), time.perf_counter() - wall0
        if busy0 is not None and busy1 is not None:
            # how many cores other processes kept busy meanwhile: the noise this run had
            results[-1]["other_processes_cores_busy"] = round(max(0.0, busy1 - busy0 - own) / wall, 2)
        results[-1]["load_average_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        if rank == 0:
            for line in format_rows(size, results[-1:]):
                print(line, flush=True)
            print(f"ranks {size}  other processes kept {results[-1].get('other_processes_cores_busy', '?')} "
                  f"cores busy meanwhile", flush=True)
    if rank == 0:
        shutil.rmtree(scratch, ignore_errors=True)
        if not args.no_write:
            out = Path(args.output)
            report = json.loads(out.read_text()) if out.exists() else {"benchmark": "checkpoint", "runs": {}}
            report["description"] = __doc__
            report["checksum_gib_per_s_64mib_in_memory"] = speeds
            report["runs"][str(size)] = {"machine": machine, "disk": str(scratch.parent), "results": results}
            tmp = out.with_name(out.name + ".tmp")
            tmp.write_text(json.dumps(report, indent=1) + "\n")
            os.replace(tmp, out)
            print(f"wrote {out}", flush=True)
    comm.Free()
    return 0


if __name__ == "__main__":
    sys.exit(main())
