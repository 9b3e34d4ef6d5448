"""Rebalancing benchmark: PageRank with an injected slow rank, with and without rebalancing, in one job.

Run as ``mpiexec -n 2 python benchmarks/rebalance_bench.py`` (and ``-n 3``, which on a
2-core machine is oversubscribed and labelled so). Each run adds its rank count's
results to the same JSON file (default ``benchmarks/results/rebalance-vm-<date>.json``).

The slow rank comes from ``HPCDIST_SLOW`` (default ``rank:1,factor:3``): after each
compute, that rank sleeps ``factor - 1`` times the compute's duration
(:mod:`hpcdist.metrics.slow`), so moving vertices off it really shortens its compute.

Per graph (``rmat:SCALE``, block partition, numba kernels where available), every repeat
runs three contenders back to back, in an order that alternates between repeats:

==================  ===================================================================
contender           what runs (PageRank, ``--supersteps`` supersteps, tol small enough
                    that none converges early)
==================  ===================================================================
balanced            no slow rank (the time per superstep to recover to)
slow                the slow rank, no rebalancing (the baseline)
slow+rebalance      the slow rank, :func:`hpcdist.graph.rebalance.run_with_rebalancing`
                    with the default policy (threshold 1.2 over 3 supersteps)
rebalance           no slow rank, with rebalancing: what the policy makes of the block
                    partition's own imbalance
==================  ===================================================================

After a rebalanced run the boundaries are moved back (untimed), so every run starts from
the same partition. Time per superstep is the slowest rank's exchange + compute + reduce
of each superstep; "before" is the median over the supersteps before the first
rebalance (the first superstep, which runs before the slowdown is installed, left out),
"after" the median over the supersteps from the second one after the last rebalance.
The whole run's wall time (from a barrier to the slowest rank, including the migration
and the program's set-up on the new layout) is compared against the slow baseline's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.machine import busy_cpu_seconds, machine_details  # noqa: E402
from hpcdist.graph import load, pagerank  # noqa: E402
from hpcdist.graph.rebalance import RebalancePolicy, run_with_rebalancing  # noqa: E402
from hpcdist.metrics.slow import SlowSpec, slow_hook, slow_spec  # noqa: E402
from hpcdist.runtime.comm import MPI  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_OUTPUT = RESULTS / f"rebalance-vm-{datetime.now(timezone.utc):%Y-%m-%d}.json"
CONTENDERS = ("balanced", "rebalance", "slow", "slow+rebalance")


def _step_seconds(comm: MPI.Intracomm, run) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Superstep numbers, the slowest rank's step seconds and the compute imbalance of each superstep."""
    ms = list(run.metrics)
    steps = [m.superstep for m in ms]
    local = np.array([[m.compute_s + m.exchange_s + m.reduce_s, m.compute_s] for m in ms]).reshape(len(ms), 2)
    hi = np.empty_like(local)
    tot = np.empty_like(local)
    comm.Allreduce(local, hi, op=MPI.MAX)
    comm.Allreduce(local, tot, op=MPI.SUM)
    mean_c = tot[:, 1] / comm.Get_size()
    imb = np.divide(hi[:, 1], mean_c, out=np.ones_like(mean_c), where=mean_c > 0)
    return steps, hi[:, 0], imb


def one_run(comm, g, contender: str, spec: SlowSpec, supersteps: int, backend: str, bounds0: np.ndarray) -> dict:
    """One timed run of a contender on ``g``; the graph is moved back to ``bounds0`` afterwards (untimed)."""
    slow = slow_hook(g.comm, spec) if contender.startswith("slow") else None

    def call(hook, resume):
        return pagerank(g, tol=1e-300, max_iter=supersteps, backend=backend, on_superstep=hook, resume=resume)

    comm.Barrier()
    t0 = time.perf_counter()
    if contender.endswith("rebalance"):
        result = run_with_rebalancing(g, call, policy=RebalancePolicy(), on_superstep=slow, announce=False)
    else:
        result = call(slow, None)
    wall = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    steps, step_s, imb = _step_seconds(comm, result.run)
    recs = list(getattr(result.run, "rebalances", []))
    out = {"contender": contender, "wall_s": wall, "supersteps": result.iterations,
           "step_ms": [round(1e3 * x, 4) for x in step_s.tolist()], "steps": steps,
           "imbalance": [round(x, 3) for x in imb.tolist()],
           "rebalances": [r.as_dict() for r in recs]}
    if recs:
        first, last = recs[0].superstep, recs[-1].superstep
        before = [s for k, s in zip(steps, step_s) if 0 < k <= first]
        after = [s for k, s in zip(steps, step_s) if k > last + 1]
        out["before_ms"] = 1e3 * statistics.median(before) if before else None
        out["after_ms"] = 1e3 * statistics.median(after) if after else None
        out["migration_ms"] = 1e3 * sum(r.migration_seconds for r in recs)
        g.move_bounds(bounds0)  # the next run starts from the same partition
    else:
        out["median_ms"] = 1e3 * statistics.median([s for k, s in zip(steps, step_s) if k > 0])
    return out


def bench_graph(comm, spec_text: str, spec: SlowSpec, supersteps: int, repeats: int, backend: str) -> dict:
    t0 = time.perf_counter()
    g = load(spec_text, comm, partitioner="block")
    load_s = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    bounds0 = g.bounds.copy()
    runs: list[dict] = []
    try:
        pagerank(g, tol=1e-300, max_iter=2, backend=backend)  # compile / load the kernels, untimed
        for rep in range(repeats):
            order = CONTENDERS if rep % 2 == 0 else CONTENDERS[::-1]
            for contender in order:
                runs.append(one_run(comm, g, contender, spec, supersteps, backend, bounds0) | {"repeat": rep})
        info = {"graph": spec_text, "n_vertices": g.n_vertices, "n_edges": g.n_edges, "load_s": load_s,
                "bounds": bounds0.tolist()}
    finally:
        g.close()

    def med(name: str, key: str) -> dict | None:
        vals = [r[key] for r in runs if r["contender"] == name and r.get(key) is not None]
        if not vals:
            return None
        return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}

    summary = {
        "balanced_ms": med("balanced", "median_ms"),
        "slow_ms": med("slow", "median_ms"),
        "rebalanced_before_ms": med("slow+rebalance", "before_ms"),
        "rebalanced_after_ms": med("slow+rebalance", "after_ms"),
        "wall_slow_s": med("slow", "wall_s"),
        "wall_rebalanced_s": med("slow+rebalance", "wall_s"),
        "wall_balanced_s": med("balanced", "wall_s"),
        "unslowed_rebalanced_after_ms": med("rebalance", "after_ms"),
        "unslowed_rebalances_per_run": [len(r["rebalances"]) for r in runs if r["contender"] == "rebalance"],
        "migration_ms": med("slow+rebalance", "migration_ms"),
    }
    reb = [r for r in runs if r["contender"] == "slow+rebalance"]
    firsts = [r["rebalances"][0] for r in reb if r["rebalances"]]
    summary["rebalances_per_run"] = [len(r["rebalances"]) for r in reb]
    if firsts:
        summary["imbalance_before"] = statistics.median(f["imbalance_before"] for f in firsts)
        after = [f["imbalance_after"] for f in firsts if f["imbalance_after"] is not None]
        summary["imbalance_after"] = statistics.median(after) if after else None
        summary["moved_vertices"] = statistics.median(f["moved_vertices"] for f in firsts)
        summary["first_rebalance_superstep"] = statistics.median(f["superstep"] for f in firsts)
    b, a, s = summary["rebalanced_before_ms"], summary["rebalanced_after_ms"], summary["balanced_ms"]
    if b and a:
        summary["after_over_before"] = a["median"] / b["median"]
    if a and s:
        summary["after_over_balanced"] = a["median"] / s["median"]
    ws, wr = summary["wall_slow_s"], summary["wall_rebalanced_s"]
    if ws and wr:
        summary["wall_rebalanced_over_slow"] = wr["median"] / ws["median"]
    return info | {"summary": summary, "runs": runs}


def format_row(size: int, label: str, res: dict) -> str:
    s = res["summary"]

    def m(x: dict | None, scale: float = 1.0, fmt: str = ".1f") -> str:
        if not x:
            return "-"
        return f"{x['median'] * scale:{fmt}} [{x['min'] * scale:{fmt}}-{x['max'] * scale:{fmt}}]"

    return (f"| {size}{label} | {res['graph']} | {m(s['balanced_ms'])} | {m(s['slow_ms'])} | "
            f"{m(s['rebalanced_before_ms'])} -> {m(s['rebalanced_after_ms'])} | "
            f"{s.get('after_over_before', float('nan')):.2f} | {s.get('after_over_balanced', float('nan')):.2f} | "
            f"{s.get('imbalance_before', float('nan')):.2f} -> {s.get('imbalance_after') or float('nan'):.2f} | "
            f"{m(s['migration_ms'])} | {m(s['wall_slow_s'], fmt='.2f')} / {m(s['wall_rebalanced_s'], fmt='.2f')} "
            f"({s.get('wall_rebalanced_over_slow', float('nan')):.2f}) |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scales", default="16,17,18", help="rmat scales, comma-separated (default 16,17,18)")
    p.add_argument("--supersteps", type=int, default=30)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--backend", default="auto")
    p.add_argument("--output", default=str(DEFAULT_OUTPUT), help="JSON file; results are merged by rank count")
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args(argv)
    comm = MPI.COMM_WORLD.Dup()
    rank, size = comm.Get_rank(), comm.Get_size()
    spec = slow_spec() or SlowSpec(1, 3.0)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    label = f" (oversubscribed: {size} ranks on {cores} cores)" if size > cores else ""
    machine = machine_details() if rank == 0 else None
    results = []
    for scale in (int(x) for x in args.scales.split(",")):
        comm.Barrier()
        busy0, wall0, own0 = busy_cpu_seconds(), time.perf_counter(), sum(os.times()[:2])
        res = bench_graph(comm, f"rmat:{scale}", spec, args.supersteps, args.repeats, args.backend)
        own = comm.allreduce(sum(os.times()[:2]) - own0)
        busy1, wall = busy_cpu_seconds(), time.perf_counter() - wall0
        if busy0 is not None and busy1 is not None:
            # how many cores other processes kept busy meanwhile: the noise this run had
            res["other_processes_cores_busy"] = round(max(0.0, busy1 - busy0 - own) / wall, 2)
        res["load_average_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        results.append(res)
        if rank == 0:
            print(format_row(size, label, res), flush=True)
            print(f"  other processes kept {res.get('other_processes_cores_busy', '?')} cores busy meanwhile",
                  flush=True)
    if rank == 0 and not args.no_write:
        out = Path(args.output)
        report = json.loads(out.read_text()) if out.exists() else {"benchmark": "rebalance", "runs": {}}
        report["description"] = __doc__
        report["runs"][str(size)] = {"machine": machine, "slow": {"rank": spec.rank, "factor": spec.factor},
                                     "oversubscribed": size > cores, "supersteps": args.supersteps,
                                     "repeats": args.repeats, "results": results}
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(report, indent=1) + "\n")
        os.replace(tmp, out)
        print(f"wrote {out}", flush=True)
    comm.Free()
    return 0


if __name__ == "__main__":
    sys.exit(main())
