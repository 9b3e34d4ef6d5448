"""The communication optimizer against the plain halo exchange: bytes and exchange time per superstep.

Run under the launcher (2 ranks; 3-4 on a 2-core machine are oversubscribed and labelled so):

    .venv/bin/mpiexec -n 2 .venv/bin/python benchmarks/comm_bench.py --scale 16 17 18

For each RMAT scale (Graph500 generator, edge factor 16, symmetrised, block partition)
one job runs, interleaved repeat by repeat on the same graph:

* PageRank (``tol`` 1e-10, so the run has a long tail near convergence) with
  ``exchange="dense"`` (every ghost value every superstep), ``"sparse"`` (changed values
  only, smallest exact encoding per neighbour, the interior computed while the messages
  are in flight) and ``"auto"`` (the default: ``sparse`` for BFS's frontier, ``dense`` for
  PageRank's values);
* BFS from ``--roots`` Graph500 roots, the same three ways.

Per superstep it records the global bytes sent (headers included) and the exchange time
(slowest rank: encoding, collectives, waits and decoding; the interior compute that
overlapped is not counted), and checks that every result is bit-identical to the dense
run's. Reported: whole-run sums, and for PageRank also the last third of the supersteps
(near convergence), as ratios optimized / dense with the median and range over repeats.
JSON goes to ``benchmarks/results/comm-s{scale}-r{ranks}-{host}.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.machine import busy_cpu_seconds, machine_details  # noqa: E402
from hpcdist.runtime.comm import MPI  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
MODES = ("dense", "sparse", "auto")


def per_step(comm, run) -> dict[str, list]:
    """Per-superstep global bytes and slowest-rank exchange seconds of one run."""
    ex = np.array([m.exchange_s for m in run.metrics])
    ov = np.array([m.overlap_s for m in run.metrics])
    ex_max = np.empty_like(ex)
    ov_max = np.empty_like(ov)
    comm.Allreduce(ex, ex_max, op=MPI.MAX)
    comm.Allreduce(ov, ov_max, op=MPI.MAX)
    return {"bytes": [int(m.bytes_sent) for m in run.metrics], "bytes_dense": [int(m.bytes_dense) for m in run.metrics],
            "exchange_s": ex_max.tolist(), "overlap_s": ov_max.tolist()}


def same_bits(comm, a: np.ndarray, b: np.ndarray) -> bool:
    ok = a.shape == b.shape and np.array_equal(np.ascontiguousarray(a).view(np.uint8),
                                               np.ascontiguousarray(b).view(np.uint8))
    return bool(comm.allreduce(ok, op=MPI.LAND))


def summarise(records: list[dict], part: slice | None = None) -> dict:
    """Median and range over repeats of bytes and exchange seconds per mode, and the ratios."""
    out: dict = {}
    for mode in MODES:
        b = [sum(r[mode]["bytes"][part] if part else r[mode]["bytes"]) for r in records]
        t = [sum(r[mode]["exchange_s"][part] if part else r[mode]["exchange_s"]) for r in records]
        out[mode] = {"bytes": statistics.median(b), "exchange_s_median": statistics.median(t),
                     "exchange_s_min": min(t), "exchange_s_max": max(t)}
    for mode in ("sparse", "auto"):
        rb = [sum(r[mode]["bytes"][part] if part else r[mode]["bytes"])
              / max(1, sum(r["dense"]["bytes"][part] if part else r["dense"]["bytes"])) for r in records]
        rt = [sum(r[mode]["exchange_s"][part] if part else r[mode]["exchange_s"])
              / max(1e-12, sum(r["dense"]["exchange_s"][part] if part else r["dense"]["exchange_s"])) for r in records]
        out[f"{mode}_bytes_ratio"] = statistics.median(rb)
        out[f"{mode}_time_ratio_median"] = statistics.median(rt)
        out[f"{mode}_time_ratio_min"] = min(rt)
        out[f"{mode}_time_ratio_max"] = max(rt)
    return out


def main() -> None:
    from hpcdist.graph import bfs, load, pagerank
    from hpcdist.graph.algorithms.bfs import random_roots

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=int, nargs="+", default=[16])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--roots", type=int, default=4)
    ap.add_argument("--tol", type=float, default=1e-10)
    ap.add_argument("--partitioner", default="block")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    comm = MPI.COMM_WORLD
    rank, size = comm.rank, comm.size
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    label = f"{size} ranks on {cores} cores" + (" (oversubscribed)" if size > cores else "")
    for scale in args.scale:
        t0 = time.perf_counter()
        g = load(f"rmat:{scale}:16:1", comm, undirected=True, partitioner=args.partitioner)
        build_s = time.perf_counter() - t0
        roots = random_roots(g, args.roots, seed=scale)
        busy0 = busy_cpu_seconds()
        w0 = time.perf_counter()
        pr_records, bfs_records = [], []
        identical = True
        # one untimed round of each: numba compiles or loads its kernels, the plans get built
        for mode in MODES:
            pagerank(g, tol=args.tol, max_iter=3, exchange=mode)
            bfs(g, roots[0], exchange=mode)
        for rep in range(args.repeats):
            rec, ref = {}, None
            order = MODES if rep % 2 == 0 else MODES[::-1]  # alternate, so drift hits both
            for mode in order:
                r = pagerank(g, tol=args.tol, max_iter=200, exchange=mode)
                rec[mode] = per_step(comm, r.run)
                rec[mode]["supersteps"] = r.iterations
                if ref is None:
                    ref = r
                else:
                    identical &= same_bits(comm, r.values, ref.values)
            pr_records.append(rec)
            for root in roots:
                rec, ref = {}, None
                for mode in order:
                    r = bfs(g, root, exchange=mode)
                    rec[mode] = per_step(comm, r.run)
                    if ref is None:
                        ref = r
                    else:
                        identical &= same_bits(comm, r.values, ref.values)
                        identical &= same_bits(comm, r.extras["parent"], ref.extras["parent"])
                bfs_records.append(rec)
        wall = time.perf_counter() - w0
        busy1 = busy_cpu_seconds()
        steps = pr_records[0]["dense"]["supersteps"]
        near = slice(steps - max(1, steps // 3), steps)
        result = {
            "benchmark": "comm_bench", "scale": scale, "ranks": size, "label": label,
            "partitioner": args.partitioner, "graph_build_s": build_s,
            "n_vertices": g.n_vertices, "n_edges": g.n_edges, "repeats": args.repeats, "roots": roots,
            "pagerank_tol": args.tol, "pagerank_supersteps": steps,
            "near_convergence_supersteps": [near.start, near.stop],
            "identical_results": bool(identical),
            "pagerank_whole": summarise(pr_records), "pagerank_near": summarise(pr_records, near),
            "bfs": summarise(bfs_records),
            "other_load_cores": None if busy0 is None else max(0.0, (busy1 - busy0) / wall - size),
            "per_superstep": {"pagerank": pr_records, "bfs": bfs_records},
            "machine": machine_details(),
        }
        if rank == 0:
            RESULTS.mkdir(exist_ok=True)
            host = result["machine"]["hostname"]
            path = RESULTS / f"comm-s{scale}-r{size}-{host}{args.tag}.json"
            path.write_text(json.dumps(result, indent=1))
            for what in ("pagerank_whole", "pagerank_near", "bfs"):
                s = result[what]
                print(f"| {scale} | {label} | {what} | {s['dense']['bytes'] / 1e6:.2f} | "
                      f"{s['sparse_bytes_ratio']:.3f} | {s['auto_bytes_ratio']:.3f} | "
                      f"{1e3 * s['dense']['exchange_s_median']:.1f} | "
                      f"{s['sparse_time_ratio_median']:.2f} [{s['sparse_time_ratio_min']:.2f}-{s['sparse_time_ratio_max']:.2f}] | "
                      f"{s['auto_time_ratio_median']:.2f} [{s['auto_time_ratio_min']:.2f}-{s['auto_time_ratio_max']:.2f}] |",
                      flush=True)
            print(f"# identical results: {identical}; other load {result['other_load_cores']} cores; {path}",
                  flush=True)
        g.close()


if __name__ == "__main__":
    main()
