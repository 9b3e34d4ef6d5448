"""Strong and weak scaling of PageRank, BFS and the task farm over rank counts.

Each rank count runs as its own job, ``mpiexec -n R python benchmarks/scaling.py --worker ...``,
which builds the workload once (set-up, timed apart), warms it (numba's cache, the pull
plan, the farm's start-up), then times ``--repeat`` runs of the algorithm phase as the
engine reports it: PageRank's superstep loop per iteration and BFS's supersteps per root
(``VertexResult.seconds``, the slowest rank), the farm's ``map`` on the coordinator.
The driver gathers the jobs' JSON into one report with speed-up and efficiency, and
plots them against the ideal line.

    python benchmarks/scaling.py --ranks 1,2,4 --what pagerank,bfs,farm --mode strong,weak \\
        --repeat 3 --plot benchmarks/results/scaling-HOST.png

Sizes
-----
strong  PageRank and BFS on ``rmat:SCALE`` (edge factor 16; BFS symmetrised) at every rank
        count; the farm runs ``--farm-tasks`` CPU-bound tasks (``--task-ms`` of CPU each).
weak    the work per unit stays fixed: RMAT ``scale = base + floor(log2 R)`` with the edge
        factor ``16 * R / 2**floor(log2 R)``, so the edges per rank are exactly
        ``16 * 2**base`` at any R (R = 3 gives scale base+1, edge factor 24); the farm runs
        ``--farm-tasks-per-worker`` tasks per worker.

Units (the farm's convention)
-----------------------------
For the graphs the unit is a rank. The farm's rank 0 is the coordinator, so its unit is a
*worker*: ``workers = R - 1``, except on one rank, where the farm runs its tasks in the
coordinator's own process (one worker, no MPI). The baseline is the smallest rank count
measured (normally 1 rank: for the farm the tasks run one after another in one process).

    strong: speed-up = t_base / t_R        efficiency = speed-up / (units_R / units_base)
    weak:   efficiency = t_base / t_R      scaled speed-up = efficiency * units_R / units_base

with t the median over repeats; the spread is the min-max of the repeats. ``--rounds K``
launches every job K times, the rank counts interleaved, and pools the repeats (with the
efficiency of each round's medians as well). The farm also reports its absolute
efficiency, CPU work / (wall x workers), which needs no baseline; each row has the best
efficiency the machine's cores allow (``core_bound_efficiency``).

Numba threads are pinned to ``--threads`` per rank (default 1), so that one rank uses one
core and the rank count is the only thing that changes; ``--threads share`` keeps hpcdist's
default (the node's cores shared among its ranks, which on one rank already uses every
core). A rank count above the physical cores is *oversubscribed*: the JSON and the plot
say so. Load averages and the CPU time other processes took (``/proc/stat`` less the jobs'
own CPU time) are kept per job: this machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.machine import busy_cpu_seconds, machine_details  # noqa: E402

__all__ = [
    "WORKLOADS", "MODES", "physical_cores", "units", "weak_rmat", "workload_size", "scaling_table",
    "run_job", "merge_rounds", "run_scaling", "plot_scaling", "format_table", "main",
]  # fmt: skip

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
WORKLOADS = ("pagerank", "bfs", "farm")
MODES = ("strong", "weak")
EDGEFACTOR = 16
# What each workload's time is, for the JSON and the table.
TIME_MEANING = {
    "pagerank": "seconds per PageRank iteration (superstep loop / iterations, slowest rank)",
    "bfs": "seconds per BFS (supersteps only, slowest rank, mean over the roots)",
    "farm": "seconds of Farm.map over all tasks, on the coordinator",
}


# -- pure arithmetic ---------------------------------------------------------------------


def physical_cores() -> int:
    """Physical cores of this machine: distinct (package, core) pairs in ``/proc/cpuinfo``.

    Hyper-threads share a core's execution units, so they are not counted; where the
    file says nothing about cores, ``os.cpu_count()``.
    """
    pairs, package = set(), "0"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "physical id":
                    package = value.strip()
                elif key == "core id":
                    pairs.add((package, value.strip()))
    except OSError:
        pass
    return len(pairs) or (os.cpu_count() or 1)


def units(what: str, ranks: int) -> int:
    """The unit of parallelism at ``ranks``: ranks for a graph, workers (ranks - 1, at least 1) for the farm."""
    return max(1, ranks - 1) if what == "farm" else ranks


def weak_rmat(base_scale: int, ranks: int, edgefactor: int = EDGEFACTOR) -> tuple[int, int]:
    """RMAT (scale, edge factor) whose edges per rank equal those of ``base_scale`` on one rank.

    ``scale = base + floor(log2 R)`` and ``edgefactor * R / 2**floor(log2 R)``: exact for
    every R whose odd part divides ``edgefactor * 2**floor(log2 R)`` (all R up to 31 at
    edge factor 16).
    """
    k = ranks.bit_length() - 1
    ef, rest = divmod(edgefactor * ranks, 1 << k)
    if rest:
        raise ValueError(f"weak scaling at {ranks} ranks needs a fractional edge factor")
    return base_scale + k, ef


def workload_size(what: str, mode: str, ranks: int, args: argparse.Namespace) -> dict[str, Any]:
    """The size of ``what`` in ``mode`` at ``ranks``: RMAT scale and edge factor, or farm tasks."""
    if what == "farm":
        tasks = args.farm_tasks if mode == "strong" else args.farm_tasks_per_worker * units("farm", ranks)
        return {"tasks": tasks, "task_seconds": args.task_ms / 1e3}
    if mode == "strong":
        return {"scale": args.scale, "edgefactor": EDGEFACTOR}
    scale, ef = weak_rmat(args.weak_base, ranks)
    return {"scale": scale, "edgefactor": ef}


def _stats(values: list[float]) -> dict[str, Any]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "samples": values}


def scaling_table(runs: list[dict[str, Any]], cores: int) -> list[dict[str, Any]]:
    """Speed-up and efficiency of each run against the baseline of its (workload, mode).

    ``runs`` are job records (``what``, ``mode``, ``ranks``, ``time`` with median/min/max).
    The baseline is the smallest rank count of the same workload and mode. Spreads divide
    the baseline's median by the run's max and min time (so they show this run's noise).
    """
    rows = []
    for what in WORKLOADS:
        for mode in MODES:
            group = sorted((r for r in runs if r["what"] == what and r["mode"] == mode and r.get("time")),
                           key=lambda r: r["ranks"])
            if not group:
                continue
            base = group[0]
            t_b, u_b = base["time"]["median"], units(what, base["ranks"])
            for r in group:
                u = units(what, r["ranks"])
                rel = u / u_b
                ratio = {k: t_b / r["time"][k] for k in ("median", "min", "max")}
                row = {
                    "what": what, "mode": mode, "ranks": r["ranks"], "units": u,
                    "unit": "worker" if what == "farm" else "rank",
                    "baseline_ranks": base["ranks"], "time_median": r["time"]["median"],
                    "oversubscribed": r["ranks"] > cores,
                }
                if mode == "strong":
                    row["speedup"] = ratio["median"]
                    row["speedup_spread"] = [ratio["max"], ratio["min"]]  # from the slowest and fastest repeat
                    row["efficiency"] = ratio["median"] / rel
                    row["efficiency_spread"] = [ratio["max"] / rel, ratio["min"] / rel]
                else:
                    row["efficiency"] = ratio["median"]
                    row["efficiency_spread"] = [ratio["max"], ratio["min"]]
                    row["scaled_speedup"] = ratio["median"] * rel
                    row["speedup_spread"] = [ratio["max"] * rel, ratio["min"] * rel]
                row["ideal_speedup"] = rel
                # Round by round (the rank counts ran one after another in each round, so under a
                # drifting load these ratios compare like with like better than the pooled medians).
                if len(r.get("rounds", [])) == len(base.get("rounds", [])) > 1:
                    row["efficiency_per_round"] = [
                        b["time"]["median"] / x["time"]["median"] / (rel if mode == "strong" else 1.0)
                        for b, x in zip(base["rounds"], r["rounds"])]
                # The best this machine allows: no more cores than it has (the farm's coordinator
                # mostly sleeps, so its workers may have all of them).
                row["core_bound_efficiency"] = min(1.0, min(u, cores) / u) / min(1.0, min(u_b, cores) / u_b)
                row["core_bound_speedup"] = row["core_bound_efficiency"] * rel
                if "absolute_efficiency" in r:
                    row["absolute_efficiency"] = r["absolute_efficiency"]["median"]
                rows.append(row)
    return rows


# -- the jobs ----------------------------------------------------------------------------


def _launch_env(threads: str) -> dict[str, str]:
    env = dict(os.environ)
    # A job launched from inside an MPI job must not inherit its PMI wiring.
    for key in list(env):
        if key.startswith(("PMI_", "PMIX_", "OMPI_", "HYDRA_", "MPIR_")):
            del env[key]
    if threads != "share":
        # share_cores keeps an explicit NUMBA_NUM_THREADS below the node's share
        env["NUMBA_NUM_THREADS"] = threads
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def run_job(mpiexec: str, what: str, mode: str, ranks: int, size: dict, args: argparse.Namespace) -> dict[str, Any]:
    """One ``mpiexec -n R`` job of ``what`` at ``size``: its record, with the launcher's view of the machine."""
    with tempfile.TemporaryDirectory(prefix="hpcdist-scaling-") as tmp:
        result = Path(tmp) / "job.json"
        cmd = [mpiexec, "-n", str(ranks), sys.executable, str(Path(__file__).resolve()), "--worker",
               "--what", what, "--repeat", str(args.repeat), "--iters", str(args.iters),
               "--bfs-roots", str(args.bfs_roots), "--result", str(result)]
        if what == "farm":
            cmd += ["--tasks", str(size["tasks"]), "--task-ms", str(args.task_ms)]
        else:
            cmd += ["--job-scale", str(size["scale"]), "--job-edgefactor", str(size["edgefactor"])]
        load0, busy0 = os.getloadavg(), busy_cpu_seconds()
        own0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=_launch_env(args.threads), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=args.job_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)  # the launcher's group: no orphaned ranks
            out, _ = proc.communicate()
            raise SystemExit(f"{' '.join(cmd)} did not finish within {args.job_timeout} s:\n{out}")
        wall = time.perf_counter() - t0
        own1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy1, load1 = busy_cpu_seconds(), os.getloadavg()
        if proc.returncode != 0 or not result.exists():
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out}")
        record = json.loads(result.read_text())
    own = (own1.ru_utime - own0.ru_utime) + (own1.ru_stime - own0.ru_stime)
    record.update({
        "what": what, "mode": mode, "ranks": ranks, "units": units(what, ranks), "size": size,
        "job_wall_seconds": wall,
        "job_cpu_seconds": own,
        "load_average_before": " ".join(f"{x:.2f}" for x in load0),
        "load_average_after": " ".join(f"{x:.2f}" for x in load1),
        # cores' worth of CPU that other processes used while this job ran
        "other_load_cores": None if busy0 is None or busy1 is None else max(0.0, (busy1 - busy0 - own) / wall),
    })
    return record


def merge_rounds(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One job's records from several rounds as one: the repeats pooled, the rest per round and its median."""
    merged = dict(records[-1])
    merged["time"] = _stats([x for r in records for x in r["time"]["samples"]])
    if "absolute_efficiency" in merged:
        merged["absolute_efficiency"] = _stats([x for r in records for x in r["absolute_efficiency"]["samples"]])
    for key in ("teps", "tasks_per_second"):
        if key in merged:
            merged[key] = [x for r in records for x in r[key]]
    for key in ("setup_seconds", "warm_up_seconds", "job_wall_seconds"):
        merged[key] = statistics.median(r[key] for r in records)
    others = [r["other_load_cores"] for r in records if r["other_load_cores"] is not None]
    merged["other_load_cores"] = statistics.median(others) if others else None
    merged["load_average_before"] = records[0]["load_average_before"]
    merged["rounds"] = [{k: r[k] for k in ("time", "setup_seconds", "job_wall_seconds", "other_load_cores",
                                           "load_average_before", "load_average_after")} for r in records]
    return merged


def run_scaling(args: argparse.Namespace, out: Path | None = None) -> dict[str, Any]:
    """Every (workload, mode, rank count) job, ``--rounds`` times over; the report with the scaling table.

    The rounds interleave the rank counts (1, 2, 4, 1, 2, 4, ...), so that a change in
    the machine's load while the benchmark runs falls on every rank count alike. After
    each job the report so far goes to ``out`` (``"complete": false``), so that a run cut
    short keeps what it measured.
    """
    cores = physical_cores()
    records: dict[tuple, list] = {}
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    machine = machine_details()
    machine["physical_cores"] = cores
    machine["os_cpu_count"] = os.cpu_count()
    for round_ in range(args.rounds):
        for what in args.what:
            for mode in args.mode:
                for ranks in args.ranks:
                    size = workload_size(what, mode, ranks, args)
                    record = run_job(args.mpiexec, what, mode, ranks, size, args)
                    records.setdefault((what, mode, ranks), []).append(record)
                    t = record["time"]
                    print(f"round {round_ + 1}/{args.rounds} {what:8s} {mode:6s} {ranks:2d} rank(s) "
                          f"{json.dumps(size)}: {t['median']:.4g} s [{t['min']:.4g}-{t['max']:.4g}], "
                          f"set-up {record['setup_seconds']:.2f} s, job {record['job_wall_seconds']:.1f} s, "
                          f"other load {record['other_load_cores'] or 0:.2f} cores", flush=True)
                    if out is not None:
                        partial = _report(args, machine, records, load_start, t0, complete=False)
                        out.write_text(json.dumps(partial, indent=1, default=str))
    return _report(args, machine, records, load_start, t0, complete=True)


def _report(args: argparse.Namespace, machine: dict, records: dict, load_start: tuple, t0: float,
            complete: bool) -> dict[str, Any]:
    cores = machine["physical_cores"]
    jobs = [merge_rounds(rs) for rs in records.values()]
    others = [j["other_load_cores"] for j in jobs if j["other_load_cores"] is not None]
    return {
        "benchmark": "scaling",
        "complete": complete,
        "label": args.label or "unlabelled",
        "machine_name": args.machine_name,
        "machine": machine,
        "load_average_before": " ".join(f"{x:.2f}" for x in load_start),
        "load_average_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "other_load_cores_median": statistics.median(others) if others else None,
        "total_seconds": time.perf_counter() - t0,
        "config": {
            "ranks": args.ranks, "what": args.what, "mode": args.mode, "repeat": args.repeat, "rounds": args.rounds,
            "scale": args.scale, "weak_base": args.weak_base, "edgefactor": EDGEFACTOR, "iters": args.iters,
            "bfs_roots": args.bfs_roots, "farm_tasks": args.farm_tasks,
            "farm_tasks_per_worker": args.farm_tasks_per_worker, "task_ms": args.task_ms,
            "numba_threads_per_rank": args.threads, "mpiexec": args.mpiexec,
        },
        "conventions": {
            "time": TIME_MEANING,
            "units": "graph: ranks; farm: workers = ranks - 1 (rank 0 coordinates), 1 on one rank (tasks run "
                     "in the coordinator's process)",
            "baseline": "the smallest rank count measured of the same workload and mode",
            "strong": "speedup = t_base / t_R; efficiency = speedup / (units_R / units_base)",
            "weak": "efficiency = t_base / t_R; scaled_speedup = efficiency * units_R / units_base; "
                    "RMAT scale = base + floor(log2 R), edge factor 16 R / 2**floor(log2 R) (edges per rank "
                    "fixed); farm tasks = tasks per worker x workers",
            "spread": "min-max over the repeats of all rounds (the baseline's median over this run's slowest "
                      "and fastest repeat)",
            "oversubscribed": f"ranks > physical cores ({cores})",
            "core_bound": "the best efficiency this machine allows: min(units, cores) / units, relative to the "
                          "baseline's; the farm's coordinator is not counted (it sleeps while it waits)",
        },
        "jobs": jobs,
        "scaling": scaling_table(jobs, cores),
    }


# -- inside one job ----------------------------------------------------------------------


def _graph_job(args: argparse.Namespace, comm: Any) -> dict[str, Any]:
    from hpcdist.graph import bfs, load, pagerank
    from hpcdist.graph.algorithms.bfs import random_roots
    from hpcdist.metrics import metrics_for_run
    from hpcdist.runtime.comm import MPI

    spec = f"rmat:{args.job_scale}:{args.job_edgefactor}"
    comm.Barrier()
    t0 = time.perf_counter()
    g = load(spec, comm, undirected=args.what == "bfs", partitioner="block")
    setup = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    times, extra = [], {}
    t0 = time.perf_counter()
    if args.what == "pagerank":
        # numba compiles or loads its cache, and the graph keeps its pull plan: timed apart
        pagerank(g, max_iter=2, tol=1e-300, backend="numba")
        warm = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
        for _ in range(args.repeat):
            r = pagerank(g, max_iter=args.iters, tol=1e-300, backend="numba")
            times.append(comm.allreduce(r.seconds, op=MPI.MAX) / r.iterations)
        extra["iterations"] = r.iterations
    else:
        roots = random_roots(g, args.bfs_roots, seed=1)
        r = bfs(g, roots[0], backend="numba")
        warm = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
        edges = 0
        for _ in range(args.repeat):
            total, edges = 0.0, 0
            for root in roots:
                r = bfs(g, root, backend="numba")
                total += comm.allreduce(r.seconds, op=MPI.MAX)
                edges += r.params["edges_traversed"]
            times.append(total / len(roots))
        extra.update({"roots": roots, "edges_traversed_per_bfs": edges / len(roots),
                      "teps": [edges / len(roots) / t for t in times]})
    m = metrics_for_run(comm, g, r, args.what)  # the last run: where the time went
    totals = m.summary()["totals"]
    import numba

    record = {
        "input": spec + (" (symmetrised)" if args.what == "bfs" else ""),
        # RMAT draws 2^scale x edge factor edges; duplicates and self-loops are dropped when stored
        "edges_generated": (1 << args.job_scale) * args.job_edgefactor,
        "edges_generated_per_rank": (1 << args.job_scale) * args.job_edgefactor / comm.size,
        "n_vertices": g.n_vertices, "n_edges": g.n_edges, "edges_per_rank": g.n_edges / comm.size,
        "numba_threads_per_rank": numba.get_num_threads(),
        "setup_seconds": setup, "warm_up_seconds": warm,
        "time": _stats(times),
        "last_run": {
            "compute_s_max": totals["compute_s"]["max"], "compute_s_mean": totals["compute_s"]["mean"],
            "communication_s": m.summary()["communication_s"], "imbalance": m.summary()["imbalance_overall"],
            "bytes_sent_sum": totals["bytes_sent"]["sum"],
            "peak_rss_bytes_max": m.summary()["peak_rss_bytes"]["max"],
        },
        **extra,
    }
    g.close()
    return record


def _farm_job(args: argparse.Namespace, comm: Any) -> dict[str, Any] | None:
    import hpcdist as hd
    from benchmarks.peers import busy_cpu

    task_s = args.task_ms / 1e3
    times, cpu = [], []
    comm.Barrier()
    t0 = time.perf_counter()
    record = None
    with hd.Farm(comm) as farm:
        if farm is not None:
            farm.submit(busy_cpu, 0.0).result()  # the workers' start-up stays out of the measurement
            setup = time.perf_counter() - t0
            for _ in range(args.repeat):
                t = time.perf_counter()
                done = list(farm.map(busy_cpu, [task_s] * args.tasks, chunksize=1, progress=False))
                times.append(time.perf_counter() - t)
                cpu.append(sum(done))
            workers = units("farm", comm.size)
            record = {
                "tasks": args.tasks, "task_seconds": task_s, "workers": workers,
                "setup_seconds": setup, "warm_up_seconds": 0.0,
                "time": _stats(times),
                "absolute_efficiency": _stats([c / (t * workers) for c, t in zip(cpu, times)]),
                "tasks_per_second": [args.tasks / t for t in times],
            }
    return record


def worker_main(args: argparse.Namespace) -> int:
    """One job's body, under ``mpiexec``: rank 0 writes the record to ``--result``."""
    from hpcdist.runtime.comm import MPI

    comm = MPI.COMM_WORLD.Dup()
    record = _farm_job(args, comm) if args.what == "farm" else _graph_job(args, comm)
    if comm.rank == 0:
        record["peak_rss_bytes_rank0"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        Path(args.result).write_text(json.dumps(record, indent=1, default=str))
    comm.Free()
    return 0


# -- the report --------------------------------------------------------------------------


def format_table(report: dict[str, Any]) -> str:
    """A Markdown table of the scaling rows."""
    jobs = {(j["what"], j["mode"], j["ranks"]): j for j in report["jobs"]}
    lines = ["| workload | mode | ranks | units | size | time median [min-max] | set-up s | speed-up | efficiency |"
             " other load (cores) |",
             "|---|---|---:|---:|---|---|---:|---:|---:|---:|"]
    for row in report["scaling"]:
        j = jobs[(row["what"], row["mode"], row["ranks"])]
        t = j["time"]
        size = (f"{j['tasks']} x {1e3 * j['task_seconds']:g} ms" if row["what"] == "farm"
                else f"rmat {j['size']['scale']}:{j['size']['edgefactor']}")
        spd = row.get("speedup", row.get("scaled_speedup"))
        eff = row["efficiency"]
        mark = " (over)" if row["oversubscribed"] else ""
        abs_eff = f" (abs {row['absolute_efficiency']:.2f})" if "absolute_efficiency" in row else ""
        lines.append(
            f"| {row['what']} | {row['mode']} | {row['ranks']}{mark} | {row['units']} {row['unit']}"
            f"{'s' if row['units'] > 1 else ''} | {size} | "
            f"{_fmt_s(t['median'])} [{_fmt_s(t['min'])}-{_fmt_s(t['max'])}] | {j['setup_seconds']:.2f} | "
            f"{spd:.2f}{'' if row['mode'] == 'strong' else ' (scaled)'} | {eff:.2f}{abs_eff} | "
            f"{(j['other_load_cores'] or 0):.2f} |")
    return "\n".join(lines)


def _fmt_s(s: float) -> str:
    return f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s"


def plot_scaling(report: dict[str, Any], path: str | Path) -> Path:
    """Speed-up (top) and efficiency (bottom) against the ideal line, one column per workload.

    The x axis is the rank count for every workload; the farm's ticks also give its
    workers, and its ideal line follows the workers (flat from 1 to 2 ranks).
    Oversubscribed points (ranks > physical cores) are hollow, on a shaded band.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    rows = report["scaling"]
    whats = [w for w in WORKLOADS if any(r["what"] == w for r in rows)]
    cores = report["machine"]["physical_cores"]
    fig, axes = plt.subplots(2, len(whats), figsize=(4.8 * len(whats), 8.4), squeeze=False)
    colors = {"strong": "tab:blue", "weak": "tab:orange"}
    for col, what in enumerate(whats):
        ax_s, ax_e = axes[0][col], axes[1][col]
        mine_all = [r for r in rows if r["what"] == what]
        ranks_all = sorted({r["ranks"] for r in mine_all})
        ideal = sorted({(r["ranks"], r["ideal_speedup"]) for r in mine_all})
        ax_s.plot(*zip(*ideal), "k--", lw=1, zorder=1)
        ax_e.axhline(1.0, color="k", ls="--", lw=1, zorder=1)
        ax_e.axhline(0.7, color="tab:red", ls=":", lw=1.2, zorder=1)
        if any(r["core_bound_efficiency"] < 1 for r in mine_all):
            cap = sorted({(r["ranks"], r["core_bound_speedup"], r["core_bound_efficiency"]) for r in mine_all})
            ax_s.plot([c[0] for c in cap], [c[1] for c in cap], color="tab:green", ls="-.", lw=1.2, zorder=1)
            ax_e.plot([c[0] for c in cap], [c[2] for c in cap], color="tab:green", ls="-.", lw=1.2, zorder=1)
        for mode in MODES:
            mine = [r for r in mine_all if r["mode"] == mode]
            if not mine:
                continue
            c = colors[mode]
            x = [r["ranks"] for r in mine]
            spd = [r.get("speedup", r.get("scaled_speedup")) for r in mine]
            eff = [r["efficiency"] for r in mine]
            ax_s.plot(x, spd, "-", color=c, zorder=2)
            ax_e.plot(x, eff, "-", color=c, zorder=2)
            for r, xi, s, e in zip(mine, x, spd, eff):
                face = "white" if r["oversubscribed"] else c
                for ax, y, spread in ((ax_s, s, r["speedup_spread"]), (ax_e, e, r["efficiency_spread"])):
                    ax.errorbar([xi], [y], yerr=[[max(0.0, y - min(spread))], [max(0.0, max(spread) - y)]],
                                fmt="o", color=c, mfc=face, mec=c, mew=1.8, ms=8, capsize=3, zorder=3)
                if r["ranks"] != r["baseline_ranks"]:
                    ax_e.annotate(f"{e:.2f}", (xi, e), textcoords="offset points",
                                  xytext=(7, 5 if mode == "strong" else -13), fontsize=8, color=c)
            if any("absolute_efficiency" in r for r in mine):
                ax_e.plot(x, [r["absolute_efficiency"] for r in mine], ":", color=c, marker="s", ms=4, zorder=2)
        over = [r["ranks"] for r in mine_all if r["oversubscribed"]]
        lo, hi = min(ranks_all), max(ranks_all)
        ticks = [f"{r}\n({units(what, r)} worker{'s' if units(what, r) > 1 else ''})" if what == "farm" else str(r)
                 for r in ranks_all]
        for ax in (ax_s, ax_e):
            if over:
                ax.axvspan(cores + 0.5, hi + 0.5 + 0.1 * (hi - lo), color="0.88", zorder=0)
            ax.set_xticks(ranks_all, ticks)
            ax.set_xlim(lo - 0.4 - 0.05 * (hi - lo), hi + 0.4 + 0.05 * (hi - lo))
            ax.grid(alpha=0.3)
            ax.set_xlabel("ranks" + (" (workers = ranks - 1; 1 rank: tasks run in-process)" if what == "farm" else ""),
                          fontsize=9 if what == "farm" else 10)
        top_s = max(max(r["ideal_speedup"] for r in mine_all), max(max(r["speedup_spread"]) for r in mine_all))
        # Noisy repeats (a shared machine) must not squash the medians: the axes stop at
        # 1.5x the ideal and at 2.2x efficiency; longer error bars run off the edge.
        ideal_top = max(r["ideal_speedup"] for r in mine_all)
        ax_s.set_ylim(0, min(top_s * 1.15, 1.5 * ideal_top + 0.5))
        ax_e.set_ylim(0, min(2.2, max(1.25, max(max(r["efficiency_spread"]) for r in mine_all) * 1.1)))
        ax_s.set_title({"pagerank": "PageRank", "bfs": "BFS", "farm": "Task farm"}[what])
        ax_s.set_ylabel("speed-up vs the smallest rank count")
        ax_e.set_ylabel("efficiency")
    handles = [
        Line2D([], [], color=colors["strong"], marker="o", label="strong: speed-up, efficiency = speed-up / units"),
        Line2D([], [], color=colors["weak"], marker="o", label="weak: scaled speed-up, efficiency = t_base / t_R"),
        Line2D([], [], color="k", ls="--", label="ideal"),
        Line2D([], [], color="tab:red", ls=":", lw=1.2, label="70 % efficiency target"),
        Line2D([], [], color="tab:green", ls="-.", lw=1.2, label=f"best possible on {cores} cores"),
        Line2D([], [], color="0.3", ls=":", marker="s", ms=4, label="farm: CPU work / (wall x workers)"),
        Line2D([], [], ls="", marker="o", mfc="white", mec="0.3", mew=1.8, ms=8,
               label=f"hollow point: oversubscribed (ranks > {cores} physical cores)"),
        Patch(color="0.88", label="shaded: oversubscribed region"),
    ]
    if not any(r["oversubscribed"] for r in rows):
        handles = [h for h in handles if "oversubscribed" not in h.get_label() and "best possible" not in h.get_label()]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=9, frameon=False)
    m = report["machine"]
    name = report.get("machine_name") or m.get("hostname")
    over = f"; ranks > {cores} are OVERSUBSCRIBED" if any(r["oversubscribed"] for r in rows) else ""
    fig.suptitle(
        f"hpcdist scaling on {name}: {cores} physical cores, os.cpu_count {m.get('os_cpu_count')}{over}\n"
        f"{report['label']}\nload average {report['load_average_before']} before, "
        f"{report['load_average_after']} after; other processes used a median "
        f"{report['other_load_cores_median'] or 0:.2f} cores during the jobs; error bars: min-max of "
        f"{report['config']['repeat'] * report['config'].get('rounds', 1)} repeats", fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 0.94))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# -- command line ------------------------------------------------------------------------


def _csv(kind: type, choices: tuple | None = None):
    def parse(text: str) -> list:
        items = [kind(x) for x in text.split(",") if x.strip()]
        if not items or (choices and any(x not in choices for x in items)):
            of = f" of {', '.join(choices)}" if choices else ""
            raise argparse.ArgumentTypeError(f"expected a comma-separated list{of}")
        return items

    return parse


def _default_mpiexec() -> str:
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else "mpiexec"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", type=_csv(int), default=[1, 2, 4], help="rank counts (default 1,2,4)")
    ap.add_argument("--what", type=_csv(str, WORKLOADS), default=list(WORKLOADS), help="pagerank,bfs,farm")
    ap.add_argument("--mode", type=_csv(str, MODES), default=list(MODES), help="strong,weak")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per job (median and min-max)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="launch every job this many times, the rank counts interleaved; repeats are pooled")
    ap.add_argument("--scale", type=int, default=18, help="strong scaling: RMAT scale of the graphs")
    ap.add_argument("--weak-base", type=int, default=16, help="weak scaling: RMAT scale on one rank")
    ap.add_argument("--iters", type=int, default=20, help="PageRank iterations per timed run")
    ap.add_argument("--bfs-roots", type=int, default=8, help="BFS roots per timed run")
    ap.add_argument("--farm-tasks", type=int, default=120, help="strong scaling: farm tasks in all")
    ap.add_argument("--farm-tasks-per-worker", type=int, default=40, help="weak scaling: farm tasks per worker")
    ap.add_argument("--task-ms", type=float, default=20.0, help="CPU milliseconds of one farm task")
    ap.add_argument("--threads", default="1", help="numba threads per rank, or 'share' (default 1)")
    ap.add_argument("--mpiexec", default=_default_mpiexec(), help="the launcher (default: next to this Python)")
    ap.add_argument("--job-timeout", type=float, default=600.0, help="seconds one job may take")
    ap.add_argument("--label", default=None,
                    help="how loaded the machine was, e.g. 'loaded' (kept in the JSON; default 'unlabelled')")
    ap.add_argument("--machine-name", default=None, help="name for the machine in the file names (default: host)")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/scaling-<machine>-<date>.json)")
    ap.add_argument("--plot", default=None, help="PNG path for the plot (needs matplotlib)")
    ap.add_argument("--from-json", default=None, help="re-plot and re-tabulate an earlier report, run nothing")
    # inside one job
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    ap.add_argument("--job-scale", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--job-edgefactor", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--tasks", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        args.what = args.what[0]
        return args
    if args.repeat < 1 or args.rounds < 1 or any(r < 1 for r in args.ranks):
        ap.error("--repeat, --rounds and every rank count must be at least 1")
    if args.threads != "share" and not args.threads.isdigit():
        ap.error("--threads takes a positive integer or 'share'")
    if "weak" in args.mode and any(w != "farm" for w in args.what):
        for r in args.ranks:
            try:
                weak_rmat(args.weak_base, r)
            except ValueError as exc:
                ap.error(str(exc))
    args.ranks = sorted(set(args.ranks))
    args.machine_name = args.machine_name or os.uname().nodename
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args)
    if args.from_json:
        report = json.loads(Path(args.from_json).read_text())
        report["scaling"] = scaling_table(report["jobs"], report["machine"]["physical_cores"])
        report["label"] = args.label or report["label"]
        # reports from before --rounds and the partial writes: one round, written when complete
        report["config"].setdefault("rounds", 1)
        report.setdefault("complete", True)
        out = Path(args.out or args.from_json)
    else:
        date = time.strftime("%Y-%m-%d", time.gmtime())
        out = Path(args.out or RESULTS / f"scaling-{args.machine_name}-{date}.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        report = run_scaling(args, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str))
    print(format_table(report))
    print(f"wrote {out}")
    if args.plot:
        print(f"wrote {plot_scaling(report, args.plot)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
