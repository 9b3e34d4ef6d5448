"""BFS, connected components and SSSP: hpcdist against scipy.sparse.csgraph on RMAT.

Run under the launcher at 1 and 2 ranks (each job times scipy itself, on the same graph
and roots, interleaved root by root, so every ratio compares numbers from one job):

    .venv/bin/mpiexec -n 1 .venv/bin/python benchmarks/traversal_bench.py --scale 18
    .venv/bin/mpiexec -n 2 .venv/bin/python benchmarks/traversal_bench.py --scale 18

One thread per rank (the BFS target's setting): ``NUMBA_NUM_THREADS=1`` in the
environment (``mpiexec -env NUMBA_NUM_THREADS 1 ...`` or exported before). BFS alone,
several passes over the roots: ``--only bfs --bfs-repeats 5``; ``--label`` records the
conditions (say, the machine's load) in the JSON. On several ranks, ``--order blocked
--one-rank-peer`` also runs each pass's searches on rank 0 alone, on a one-rank copy of the
graph, between the all-rank pass and scipy's: the scaling from one rank is then a ratio
within the job, pass by pass (``bfs.one_rank_peer``), which a drifting host disturbs less
than a ratio between two jobs.

The graph is Graph500's: RMAT at the given scale and edge factor 16 (or ``--graph SPEC``,
another generator, say ``grid2d:500`` for a graph whose BFS has 999 levels), symmetrised, with
a weight per undirected edge (a hash of its end points in (0, 1], the same in both
directions) for SSSP. BFS roots are Graph500's: ``--roots`` random vertices with
degree > 0, seeded. TEPS = edges of the root's component / seconds, averaged over
roots by the harmonic mean (Graph500). hpcdist's time is the whole ``bfs()`` call
(slowest rank; includes the per-call set-up and the parent ids), and separately the
supersteps alone (``kernel``); scipy's is ``breadth_first_order`` with predecessors.
CC: ``connected_components`` (whole call) against scipy's ``connected_components``;
SSSP: ``sssp`` (whole call) against scipy's ``dijkstra`` from the same roots. Every
result is checked against scipy's (BFS reached sets, CC labels, SSSP distances bit for bit).
Python's garbage collector is paused inside every timed region, on both sides (``timeit``
does the same): a full collection here takes ~30 ms and would be charged to whichever
search it lands in.

Rank 0 gathers the graph for scipy (fine at these scales); the other ranks wait on a
polled barrier so that they do not spin on the cores being measured. JSON goes to
``benchmarks/results/traversal-s{scale}-r{ranks}-{host}.json`` (``traversal-{graph}-...`` with
``--graph``, its colons as dashes).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
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


def edge_weights(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """A weight in (0, 1] per edge from a hash of its unordered end points (splitmix64)."""
    lo, hi = np.minimum(src, dst).astype(np.uint64), np.maximum(src, dst).astype(np.uint64)
    x = lo * np.uint64(0x9E3779B97F4A7C15) ^ hi
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return ((x >> np.uint64(11)).astype(np.float64) + 1.0) / float(1 << 53)


@contextlib.contextmanager
def gc_paused():
    """No garbage collection inside a timed region, on either side (as ``timeit`` does): a
    full collection of this process's ~120 000 objects takes ~30 ms, and one that landed
    in a 2-8 ms search was that search's time (at 2 ranks the other rank waited too)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def timed(comm, fn):
    """``fn()`` and the seconds it took on the slowest rank (barrier before)."""
    comm.Barrier()
    with gc_paused():
        t = time.perf_counter()
        out = fn()
        elapsed = time.perf_counter() - t
    return out, comm.allreduce(elapsed, op=MPI.MAX)


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "all": values}


def harmonic(values: list[float]) -> float:
    return len(values) / sum(1.0 / v for v in values)


def bfs_report(roots, edges, examined, directions, ours, kernel, theirs, repeats: int) -> dict:
    """TEPS the Graph500 way (harmonic mean over roots), over all passes and per pass."""
    teps = [e / s for e, s in zip(edges, ours)]
    teps_kernel = [e / s for e, s in zip(edges, kernel)]
    teps_scipy = [e / s for e, s in zip(edges, theirs)]
    n = len(roots)
    per_pass = [harmonic(teps[i * n:(i + 1) * n]) / harmonic(teps_scipy[i * n:(i + 1) * n]) for i in range(repeats)]
    per_pass_kernel = [harmonic(teps_kernel[i * n:(i + 1) * n]) / harmonic(teps_scipy[i * n:(i + 1) * n])
                       for i in range(repeats)]
    return {
        "roots": roots,
        "passes": repeats,
        "edges_traversed": edges,
        "edges_examined": examined,
        "directions": directions,
        "hpcdist_s": summary(ours),
        "hpcdist_kernel_s": summary(kernel),
        "scipy_s": summary(theirs),
        "teps_harmonic_mean": harmonic(teps),
        "teps_kernel_harmonic_mean": harmonic(teps_kernel),
        "scipy_teps_harmonic_mean": harmonic(teps_scipy),
        "speedup_vs_scipy": harmonic(teps) / harmonic(teps_scipy),
        "speedup_kernel_vs_scipy": harmonic(teps_kernel) / harmonic(teps_scipy),
        "speedup_vs_scipy_per_pass": summary(per_pass),
        "speedup_kernel_vs_scipy_per_pass": summary(per_pass_kernel),
        "paired_speedups": [b / a for a, b in zip(ours, theirs)],
        "paired_speedup_median": statistics.median([b / a for a, b in zip(ours, theirs)]),
    }


def one_rank_report(edges, ours, alone, n_roots: int, repeats: int) -> dict:
    """The same searches on all ranks and on rank 0 alone, pass by pass in one job: TEPS
    (harmonic means) of each and their ratio, the scaling from one rank."""
    teps = [e / s for e, s in zip(edges, ours)]
    teps_alone = [e / s for e, s in zip(edges, alone)]
    per_pass = [harmonic(teps[i * n_roots:(i + 1) * n_roots]) / harmonic(teps_alone[i * n_roots:(i + 1) * n_roots])
                for i in range(repeats)]
    return {"hpcdist_s": summary(alone), "teps_harmonic_mean": harmonic(teps_alone),
            "scaling_vs_one_rank": harmonic(teps) / harmonic(teps_alone), "scaling_per_pass": summary(per_pass)}


def cc_report(g, comm, A, repeats: int) -> dict:
    from hpcdist.graph import connected_components

    ours, theirs = [], []
    for _ in range(repeats):
        r, s = timed(comm, lambda: connected_components(g, backend="numba"))
        ours.append(s)
        labels = r.gather_arrays()
        if comm.rank == 0:
            from scipy.sparse.csgraph import connected_components as scipy_cc

            with gc_paused():
                t = time.perf_counter()
                count, lab = scipy_cc(A, directed=True, connection="weak")
                theirs.append(time.perf_counter() - t)
            smallest = np.full(count, np.iinfo(np.int64).max)
            np.minimum.at(smallest, lab, np.arange(g.n_vertices))
            assert np.array_equal(labels[1], smallest[lab])
        polite_wait(comm)
    theirs = comm.bcast(theirs)
    return {"components": r.params["components"], "largest": r.params["largest_component"],
            "supersteps": r.iterations, "hpcdist_s": summary(ours), "scipy_s": summary(theirs),
            "speedup_vs_scipy": statistics.median(theirs) / statistics.median(ours)}


def sssp_report(g, comm, A, roots) -> dict:
    from hpcdist.graph import sssp

    ours, theirs, steps = [], [], []
    for root in roots:
        r, s = timed(comm, lambda: sssp(g, root, backend="numba"))
        ours.append(s)
        steps.append(r.iterations)
        dist = r.gather_arrays()
        if comm.rank == 0:
            from scipy.sparse.csgraph import dijkstra

            with gc_paused():
                t = time.perf_counter()
                ref = dijkstra(A, indices=root)
                theirs.append(time.perf_counter() - t)
            assert np.array_equal(dist[1], ref)  # bit for bit
        polite_wait(comm)
    theirs = comm.bcast(theirs)
    return {"delta": r.params["delta"], "supersteps": steps, "hpcdist_s": summary(ours),
            "scipy_s": summary(theirs), "speedup_vs_scipy": statistics.median(theirs) / statistics.median(ours),
            "paired_speedups": [b / a for a, b in zip(ours, theirs)]}


def main() -> int:
    from hpcdist.graph import bfs, connected_components, from_edgelist, sssp
    from hpcdist.graph.algorithms.bfs import random_roots
    from hpcdist.graph.algorithms.pagerank import share_cores
    from hpcdist.graph.io import read_edges

    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=18)
    ap.add_argument("--edgefactor", type=int, default=16)
    ap.add_argument("--graph", default=None,
                    help="another generator spec instead of RMAT (say grid2d:500, a graph of high diameter); "
                         "--scale and --edgefactor are then unused")
    ap.add_argument("--roots", type=int, default=16, help="BFS roots (Graph500 uses 64)")
    ap.add_argument("--sssp-roots", type=int, default=3)
    ap.add_argument("--cc-repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bfs-repeats", type=int, default=1,
                    help="passes over the BFS roots (each pass gives one harmonic-mean TEPS; the spread is reported)")
    ap.add_argument("--order", choices=("interleaved", "blocked"), default="interleaved",
                    help="BFS timing order: root by root alternating with scipy (each search starts with the other's "
                         "data in the caches), or each pass of roots back to back on one side, then the other's "
                         "(Graph500's protocol: caches hold the graph), each pass after one untimed search")
    ap.add_argument("--only", default="bfs,cc,sssp", help="comma-separated subset of bfs,cc,sssp to run")
    ap.add_argument("--one-rank-peer", action="store_true",
                    help="on several ranks with --order blocked: each pass also runs the same searches on rank 0 "
                         "alone (a copy of the graph on one rank), so that the scaling from one rank is a ratio "
                         "within one job, pass by pass, not between jobs on a host whose speed drifts")
    ap.add_argument("--partitioner", default="block")
    ap.add_argument("--output", default=None)
    ap.add_argument("--label", default="", help="free text kept in the JSON (conditions, load)")
    args = ap.parse_args()
    only = set(args.only.split(","))
    comm = MPI.COMM_WORLD.Dup()
    rank, size = comm.rank, comm.size
    spec = args.graph or f"rmat:{args.scale}:{args.edgefactor}"
    t0 = time.perf_counter()
    el = read_edges(spec, comm, undirected=True)
    el.weights = edge_weights(el.src, el.dst)
    g = from_edgelist(el, comm, args.partitioner)
    del el
    setup = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    threads = share_cores(comm)
    roots = random_roots(g, args.roots, args.seed)
    peer = args.one_rank_peer and size > 1 and "bfs" in only and args.order == "blocked"
    g1 = None  # the one-rank peer's copy of the graph (rank 0)
    if peer and rank == 0:
        el1 = read_edges(spec, MPI.COMM_SELF, undirected=True)
        g1 = from_edgelist(el1, MPI.COMM_SELF, args.partitioner)
        del el1
        bfs(g1, roots[0], backend="numba")  # its plan and kernels, untimed
    if peer:
        polite_wait(comm)
    # numba compiles or loads its cache, and the graph builds its transposed CSR, here
    (_, warm_s) = timed(comm, lambda: (bfs(g, roots[0], backend="numba"),
                                       "sssp" in only and sssp(g, roots[0], backend="numba"),
                                       "cc" in only and connected_components(g, backend="numba")))

    # The graph for scipy in input ids (rows = sources), weights included.
    keys = g.column_input_ids()
    rows = comm.gather((np.repeat(g.owned_input_ids, np.diff(g.in_indptr)), keys[g.in_indices], g.in_weights), root=0)
    A = None
    if rank == 0:
        import scipy.sparse as sp

        dst = np.concatenate([r[0] for r in rows])
        src = np.concatenate([r[1] for r in rows])
        w = np.concatenate([r[2] for r in rows])
        A = sp.csr_matrix((w, (src, dst)), shape=(g.n_vertices, g.n_vertices))
        A.sort_indices()
        del dst, src, w
    del rows

    report: dict = {}
    # ---------------------------------------------------------------- BFS
    ours, kernel, theirs, edges, examined, directions = [], [], [], [], [], []
    alone: list[float] = []  # the one-rank peer's whole calls (rank 0)

    def ours_one(root) -> int:
        r, s = timed(comm, lambda: bfs(g, root, backend="numba"))
        ours.append(s)
        kernel.append(r.seconds)
        edges.append(r.params["edges_traversed"])
        examined.append(r.params["edges_examined"])
        directions.append(r.params["directions"])
        return r.params["reached"]

    def theirs_one(root, reached: int, timed_run: bool = True) -> None:
        if rank == 0:
            from scipy.sparse.csgraph import breadth_first_order

            with gc_paused():
                t = time.perf_counter()
                order, _pred = breadth_first_order(A, root, directed=True, return_predecessors=True)
                if timed_run:
                    theirs.append(time.perf_counter() - t)
            assert order.shape[0] == reached, (order.shape[0], reached)
        polite_wait(comm)

    for _ in range(args.bfs_repeats) if "bfs" in only else []:
        if args.order == "interleaved":
            for root in roots:
                theirs_one(root, ours_one(root))
        else:  # each side's pass over the roots back to back, as Graph500 runs its 64 searches
            # Each pass starts with one untimed search on its side: the first search after
            # the other side's pass found its pages and caches taken (on two ranks, whose
            # second rank sleeps through scipy's pass, 5-10x its median at scale 20).
            bfs(g, roots[0], backend="numba")
            reached = [ours_one(root) for root in roots]
            if g1 is not None:  # the same searches on rank 0 alone, while the others sleep
                bfs(g1, roots[0], backend="numba")
                for root, count in zip(roots, reached):
                    with gc_paused():
                        t = time.perf_counter()
                        r1 = bfs(g1, root, backend="numba")
                        alone.append(time.perf_counter() - t)
                    assert r1.params["reached"] == count, (root, r1.params["reached"], count)
            if peer:
                polite_wait(comm)
            theirs_one(roots[0], reached[0], timed_run=False)
            for root, count in zip(roots, reached):
                theirs_one(root, count)
    theirs = comm.bcast(theirs)
    if "bfs" in only:
        report["bfs"] = bfs_report(roots, edges, examined, directions, ours, kernel, theirs, args.bfs_repeats)
        alone = comm.bcast(alone)
        if alone:
            report["bfs"]["one_rank_peer"] = one_rank_report(edges, ours, alone, len(roots), args.bfs_repeats)
    if "cc" in only:
        report["cc"] = cc_report(g, comm, A, args.cc_repeats)
    if "sssp" in only:
        report["sssp"] = sssp_report(g, comm, A, roots[: args.sssp_roots])

    peak = comm.gather(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, root=0)
    if rank == 0:
        out = {
            "benchmark": "traversal",
            "input": spec + " (symmetrised, hashed weights in (0, 1])",
            "n_vertices": g.n_vertices,
            "n_edges_stored": g.n_edges,
            "ranks": size,
            "numba_threads_per_rank": threads,
            "partitioner": g.partition.method,
            "bfs_order": args.order,
            "garbage_collector": "paused inside every timed region, both sides (as timeit does)",
            "setup_seconds": setup,
            "warm_up_seconds": warm_s,
            **report,
            "peak_rss_bytes_per_rank": peak,
            "load_average": os.getloadavg(),
            "label": args.label,
            "machine": machine_details(),
        }
        brief = {k: v for k, v in out.items() if k not in ("machine",)}
        print(json.dumps(brief, indent=1, default=str))
        graph = args.graph.replace(":", "-") if args.graph else f"s{args.scale}"  # --scale is unused with --graph
        default = RESULTS / f"traversal-{graph}-r{size}-{os.uname().nodename}.json"
        path = Path(args.output) if args.output else default
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=1, default=str))
    polite_wait(comm)
    g.close()
    if g1 is not None:
        g1.close()
    comm.Free()
    return 0


if __name__ == "__main__":
    sys.exit(main())
