"""Checkpoint overhead of a graph run at the default policy, and the cost of a restart.

Runs the same ``hpcdist graph pagerank`` job with and without ``--checkpoint-dir``
(default policy: adaptive, at most 3 % of the run), alternating the two, and reports
the superstep time of each, the overhead in percent, and the checkpoints written.
Then it restarts from the last checkpoint (``--resume`` with the same ``--max-iter``,
so the resumed run only loads and writes) and compares the load time with reading
the same bytes with numpy.

    python benchmarks/recovery_bench.py --ranks 1 2 --repeats 3

JSON with the machine's details goes to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import busy_cpu_seconds, machine_details  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

_STEP = re.compile(r"^\s+([0-9.]+) s, ([0-9.]+) ms per superstep", re.M)
_CKPT = re.compile(r"checkpoints: (\d+) written .*?, ([0-9.]+) ms each, ([0-9.]+) % of the run")


def _run(ranks: int, args: list[str], env: dict | None = None) -> tuple[str, float]:
    cmd = [str(BIN / "mpiexec"), "-n", str(ranks), str(BIN / "hpcdist"), "graph", "pagerank", *args]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out.stdout, wall


def _stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "samples": values}


def bench(spec: str, extra: list[str], ranks: int, repeats: int, max_iter: int, workdir: Path) -> dict:
    base = ["--input", spec, *extra, "--tol", "1e-300", "--max-iter", str(max_iter), "--partitioner", "block",
            "--top", "0"]
    plain, ckpt, shares, counts, each = [], [], [], [], []
    for rep in range(repeats + 1):  # the first round warms numba's cache and the page cache
        out, _ = _run(ranks, base)
        t_plain = float(_STEP.search(out).group(1))
        ck = workdir / f"ck-{ranks}-{rep}"
        out, _ = _run(ranks, [*base, "--checkpoint-dir", str(ck)])
        t_ck = float(_STEP.search(out).group(1))
        m = _CKPT.search(out)
        if rep == 0:
            continue
        plain.append(t_plain)
        ckpt.append(t_ck)
        counts.append(int(m.group(1)) if m else 0)
        each.append(float(m.group(2)) / 1e3 if m else 0.0)
        shares.append(float(m.group(3)) if m else 0.0)
        shutil.rmtree(ck, ignore_errors=True)
    overhead = [100.0 * (c - p) / p for c, p in zip(ckpt, plain)]
    # Restart: read back (and verify) a whole checkpoint of the same job, against reading its files.
    from hpcdist.checkpoint import list_checkpoints

    ck = workdir / f"ck-{ranks}-restore"
    _run(ranks, [*base, "--checkpoint-dir", str(ck), "--checkpoint-every", "5"])
    info = list_checkpoints(str(ck))[-1]
    files = [rf.path if Path(rf.path).is_absolute() else Path(info.directory) / rf.path for rf in info.files]
    loads, reads = [], []
    from hpcdist.checkpoint.store import read_range

    for _ in range(repeats):
        t0 = time.perf_counter()
        read_range(info, 0, info.total)
        loads.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for f in files:
            with open(f, "rb") as fh:
                fh.read()
        reads.append(time.perf_counter() - t0)
    return {
        "input": spec, "options": extra, "ranks": ranks, "max_iter": max_iter,
        "superstep_seconds_plain": _stats(plain), "superstep_seconds_checkpointed": _stats(ckpt),
        "overhead_percent": _stats(overhead), "checkpoints_written": counts,
        "checkpoint_seconds_each": _stats(each), "checkpoint_share_reported_percent": _stats(shares),
        "checkpoint_bytes": info.nbytes,
        "restore_seconds": _stats(loads), "read_same_bytes_seconds": _stats(reads),
        "restore_over_read": statistics.median(loads) / max(statistics.median(reads), 1e-9),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", default="grid2d:1024",
                    help="graph spec (default grid2d:1024: with --undirected --alpha 0.99 PageRank runs all "
                         "--max-iter supersteps, long enough for several checkpoints at the default policy)")
    ap.add_argument("--options", default="--undirected --alpha 0.99", help="extra graph pagerank options")
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--max-iter", type=int, default=300)
    ap.add_argument("--dir", default=None, help="scratch directory for checkpoints (default: a temporary one)")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/recovery-<host>-<date>.json)")
    args = ap.parse_args()
    busy0, t0 = busy_cpu_seconds(), time.time()
    work = Path(args.dir or tempfile.mkdtemp(prefix="hpcdist-recovery-"))
    results = [bench(args.input, args.options.split(), r, args.repeats, args.max_iter, work) for r in args.ranks]
    busy1 = busy_cpu_seconds()
    report = {"benchmark": "recovery", "machine": machine_details(), "results": results,
              "other_load_cores": None if busy0 is None or busy1 is None else (busy1 - busy0) / (time.time() - t0)}
    for r in results:
        o = r["overhead_percent"]
        print(f"{r['input']} {r['ranks']} rank(s): superstep loop {r['superstep_seconds_plain']['median']:.3f} s "
              f"plain vs {r['superstep_seconds_checkpointed']['median']:.3f} s with checkpoints "
              f"(overhead median {o['median']:.2f} % [{o['min']:.2f} - {o['max']:.2f}], "
              f"{statistics.median(r['checkpoints_written']):.0f} checkpoints of "
              f"{r['checkpoint_bytes'] / 2**20:.1f} MiB, {1e3 * r['checkpoint_seconds_each']['median']:.1f} ms each); "
              f"restore {1e3 * r['restore_seconds']['median']:.1f} ms = {r['restore_over_read']:.2f}x reading the bytes")
    host = report["machine"].get("hostname", "host")
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"recovery-{host}-{time.strftime('%Y-%m-%d')}.json")
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")
    if not args.dir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
