"""PageRank time per iteration: hpcdist vs scipy's CSR power iteration, plus the streaming floor.

Run under the launcher at 1 and 2 ranks (each job measures scipy and the memory
bandwidth itself, so every ratio compares numbers from one job):

    .venv/bin/mpiexec -n 1 .venv/bin/python benchmarks/graph_bench.py --scale 18
    .venv/bin/mpiexec -n 2 .venv/bin/python benchmarks/graph_bench.py --scale 18

The streaming floor of one iteration is the bytes a CSR pull must move at least —
column indices (4 B/edge), row offsets (8 B/vertex), x read and y written (8 B/vertex
each) — divided by the memory bandwidth measured here with a triad. Rank 0 gathers the
graph for scipy (fine at these scales); the other ranks wait on a polled barrier so
that they do not spin on the cores being measured. JSON goes to benchmarks/results/.
``--compare-plain`` also times the plain CSR pull (the numba default before the blocked
pull), interleaved repeat by repeat with the default and scipy.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.machine import machine_details  # noqa: E402
from hpcdist.runtime.comm import MPI  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def polite_wait(comm) -> None:
    req = comm.Ibarrier()
    while not req.Test():
        time.sleep(0.002)


def triad_bandwidth(n: int = 1 << 25, repeats: int = 5) -> float:
    """Bytes/s of ``a = b + s * c`` (24 bytes per element: two reads, one write)."""
    b, c = np.random.default_rng(0).random(n), np.random.default_rng(1).random(n)
    a = np.empty(n)
    best = []
    for _ in range(repeats):
        t = time.perf_counter()
        np.multiply(c, 3.0, out=a)
        np.add(a, b, out=a)  # numpy needs two passes: 40 bytes/element really moved
        best.append(time.perf_counter() - t)
    return 40.0 * n / min(best)


def scipy_pagerank_iteration(indptr, indices, outdeg, n: int, iters: int, alpha: float = 0.85) -> list[float]:
    """Seconds per power iteration of the plain scipy formulation (in-edge CSR, values 1/outdeg)."""
    import scipy.sparse as sp

    inv = np.zeros(n)
    inv[outdeg > 0] = 1.0 / outdeg[outdeg > 0]
    at = sp.csr_matrix((inv[indices], indices, indptr), shape=(n, n))
    dangling = np.flatnonzero(outdeg == 0)
    x = np.full(n, 1.0 / n)
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        xlast = x
        x = alpha * (at @ x + x[dangling].sum() / n) + (1 - alpha) / n
        err = np.abs(x - xlast).sum()
        times.append(time.perf_counter() - t)
    assert err >= 0
    return times


def main() -> int:
    from hpcdist.graph import load, pagerank
    from hpcdist.graph.algorithms.pagerank import share_cores

    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=18)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--partitioner", default="block")
    ap.add_argument("--output", default=None)
    ap.add_argument("--compare-plain", action="store_true",
                    help="also time the plain CSR pull (the previous default), interleaved with the default")
    args = ap.parse_args()
    comm = MPI.COMM_WORLD.Dup()
    rank, size = comm.rank, comm.size
    spec = f"rmat:{args.scale}"
    t0 = time.perf_counter()
    g = load(spec, comm, partitioner=args.partitioner)
    setup = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    threads = share_cores(comm)
    # Compile / load the numba cache and build the pull plan (kept on the graph, timed apart).
    warm = pagerank(g, max_iter=2, tol=1e-300, backend="numba")
    pull, plan_s = warm.params["pull"], comm.allreduce(warm.params["pull_plan_seconds"], op=MPI.MAX)
    plans = {"default": g.__dict__.pop("_pull_plans")}
    if args.compare_plain:
        from hpcdist.kernels import numba_cpu

        saved, numba_cpu.BLOCKED_MIN_EDGES = numba_cpu.BLOCKED_MIN_EDGES, 1 << 62
        pagerank(g, max_iter=2, tol=1e-300, backend="numba")
        numba_cpu.BLOCKED_MIN_EDGES = saved
        plans["plain"] = g.__dict__.pop("_pull_plans")
    # The graph for scipy, twice: as a user would hold it (input ids, the reader's order) and
    # in hpcdist's locality numbering (new ids: the union of the local CSRs), so that the
    # gain from renumbering and the gain from the kernel can be told apart.
    rows = comm.gather((g.in_indptr, g.local_to_global[g.in_indices], g.out_degree, g.owned_input_ids), root=0)
    csr_new = csr_input = None
    if rank == 0:
        import scipy.sparse as sp

        indptr = np.concatenate([[0], np.cumsum(np.concatenate([np.diff(r[0]) for r in rows]))]).astype(np.int64)
        indices = np.concatenate([r[1] for r in rows]).astype(np.int32)
        outdeg = np.concatenate([r[2] for r in rows])
        new_to_input = np.concatenate([r[3] for r in rows])
        csr_new = (indptr, indices, outdeg)
        n = g.n_vertices
        dst_in = np.repeat(new_to_input, np.diff(indptr))
        a = sp.csr_matrix((np.ones(indices.size), (dst_in, new_to_input[indices])), shape=(n, n))
        a.sort_indices()
        outdeg_in = np.empty(n, dtype=np.int64)
        outdeg_in[new_to_input] = outdeg
        csr_input = (a.indptr.astype(np.int64), a.indices.astype(np.int32), outdeg_in)
        del a, dst_in
    del rows
    # Interleave the contenders repeat by repeat, so that all see the same machine load.
    per_iter, phases, scipy_s, scipy_new_s, plain_s = [], [], [], [], []
    for _ in range(args.repeats):
        if args.compare_plain:
            g._pull_plans = plans["plain"]
            r = pagerank(g, max_iter=args.iters, tol=1e-300, backend="numba")
            plain_s.append(r.seconds / r.iterations)
        g._pull_plans = plans["default"]
        r = pagerank(g, max_iter=args.iters, tol=1e-300, backend="numba")
        per_iter.append(r.seconds / r.iterations)
        phases.append({k: comm.allreduce(v, op=MPI.MAX) / r.iterations for k, v in r.run.phase_seconds().items()})
        if rank == 0:
            scipy_s.append(statistics.median(scipy_pagerank_iteration(*csr_input, g.n_vertices, args.iters)))
            scipy_new_s.append(statistics.median(scipy_pagerank_iteration(*csr_new, g.n_vertices, args.iters)))
        polite_wait(comm)
    peak = comm.gather(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, root=0)
    report = None
    if rank == 0:
        n, m = g.n_vertices, g.n_edges
        bw = triad_bandwidth()
        floor_bytes = 4 * m + 8 * (n + 1) + 8 * n + 8 * n
        ours, theirs = statistics.median(per_iter), statistics.median(scipy_s)
        report = {
            "benchmark": "pagerank_per_iteration",
            "input": spec,
            "n_vertices": n,
            "n_edges": m,
            "ranks": size,
            "numba_threads_per_rank": threads,
            "partitioner": g.partition.method,
            "partition": g.report.as_dict(),
            "setup_seconds": setup,
            "pull": pull,
            "pull_plan_seconds": plan_s,
            "hpcdist_s_per_iter": {"median": ours, "all": per_iter,
                                   "spread_min_max": [min(per_iter), max(per_iter)]},
            "hpcdist_phases_s_per_iter": phases,
            "scipy_s_per_iter": {"median": theirs, "all": scipy_s, "order": "input ids",
                                 "spread_min_max": [min(scipy_s), max(scipy_s)]},
            "scipy_locality_order_s_per_iter": {"median": statistics.median(scipy_new_s), "all": scipy_new_s},
            "ratio_vs_scipy_locality_order": ours / statistics.median(scipy_new_s),
            "ratio_vs_scipy": ours / theirs,
            # Each repeat ran both contenders back to back: their ratio is robust to load drift.
            "paired_ratios": [a / b for a, b in zip(per_iter, scipy_s)],
            "paired_ratios_median": statistics.median([a / b for a, b in zip(per_iter, scipy_s)]),
            "bandwidth_bytes_per_s": bw,
            "floor_bytes": floor_bytes,
            "floor_s": floor_bytes / bw,
            "ratio_vs_floor": ours / (floor_bytes / bw),
            "scipy_ratio_vs_floor": theirs / (floor_bytes / bw),
            "peak_rss_bytes_per_rank": peak,
            "load_average": os.getloadavg(),
            "machine": machine_details(),
        }
        if plain_s:
            report["plain_pull_s_per_iter"] = {"median": statistics.median(plain_s), "all": plain_s}
            report["plain_pull_ratio_vs_scipy"] = statistics.median(plain_s) / theirs
            report["plain_pull_ratio_vs_floor"] = statistics.median(plain_s) / (floor_bytes / bw)
            report["speedup_vs_plain_pull_paired"] = statistics.median([p / o for p, o in zip(plain_s, per_iter)])
        print(json.dumps({k: v for k, v in report.items() if k not in ("machine", "partition")}, indent=1))
        out = Path(args.output) if args.output else RESULTS / f"graph-pagerank-s{args.scale}-r{size}-t{threads}-{os.uname().nodename}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1, default=str))
    polite_wait(comm)
    g.close()
    comm.Free()
    return 0


if __name__ == "__main__":
    sys.exit(main())
