"""The communication optimizer against the plain halo exchange: bytes and exchange time per superstep.

Run under the launcher (2 ranks; 3-4 on a 2-core machine are oversubscribed and labelled so):

    .venv/bin/mpiexec -n 2 .venv/bin/python benchmarks/comm_bench.py --scale 16 17 18 --repeats 7 --tag=-DATE-loaded

For each RMAT scale (Graph500 generator, edge factor 16, symmetrised, block partition)
one job runs, interleaved repeat by repeat on the same graph (the order reversed every
other repeat, so drift hits every setting alike):

* PageRank (``tol`` 1e-10, so the run has a long tail near convergence) five ways:
  ``dense`` (every ghost value every superstep, float64: the plain exchange of Graph
  engine I, the baseline), ``sparse`` (changed values only, smallest exact encoding per
  neighbour, the interior computed while the messages are in flight), ``auto`` (the
  default), ``dense-f32`` (``exchange_precision="float32"``: every value rounded to
  float32, one fixed-size persistent round; what ``auto`` does in float32 mode) and
  ``sparse-f32`` (the optimizer's encodings on the float32 values);
* BFS from ``--roots`` Graph500 roots: ``dense`` (a flag byte per ghost), ``sparse`` (the
  flags packed into bitmaps by the optimizer) and ``auto`` (the frontier channel,
  :mod:`hpcdist.graph.frontier_exchange`: bitmaps built from each level's queue); the
  replay's ``bitmap`` and ``frontier`` are the last two.

Per superstep it records the global bytes sent (headers included) and the exchange time
(slowest rank: rounding, encoding, collectives, waits and decoding; the interior compute
that overlapped is not counted), and checks that every float64 result is bit-identical to
the dense run's, every float32 result to the other float32 run's, and float32 within
``alpha / (1 - alpha) * (2 n tol + 2^-24)`` (L1) of float64. Reported, as ratios against
``dense`` with the median and [min-max] over repeats: whole runs, the last third of
PageRank's supersteps (near convergence), and per superstep (median bytes and time of
every setting, printed as a table). JSON goes to
``benchmarks/results/comm-s{scale}-r{ranks}-{host}[-tcp]{tag}.json``.

``exchange_s_best`` (and ``best / dense``) sums, superstep by superstep, the fastest
repeat's time: on a shared machine, where a rank waits for a descheduled partner now and
then, it estimates the undisturbed cost. To see the optimizer where bytes cost more than
on shared memory, run the same command with ``MPIR_CVAR_NOLOCAL=1 UCX_TLS=tcp,self``
(MPICH then sends through its network module, here TCP over loopback).
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
PR_MODES = {"dense": ("dense", "float64"), "sparse": ("sparse", "float64"), "auto": ("auto", "float64"),
            "dense-f32": ("dense", "float32"), "sparse-f32": ("sparse", "float32")}
BFS_MODES = ("dense", "sparse", "auto")
ALPHA = 0.85


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


def l1(comm, a: np.ndarray, b: np.ndarray) -> float:
    return float(comm.allreduce(float(np.abs(a - b).sum())))


def _part(values: list, last_third: bool) -> list:
    return values[len(values) - max(1, len(values) // 3):] if last_third else values


def best_seconds(records: list[dict], mode: str, groups: int, last_third: bool) -> float:
    """Sum over supersteps of the fastest repeat's exchange seconds (records of one group:
    the same run repeated; ``groups`` interleaved, e.g. BFS roots, averaged): one run's
    cost with the waits for descheduled partners mostly filtered out."""
    total = 0.0
    for g in range(groups):
        runs = [_part(r[mode]["exchange_s"], last_third) for r in records[g::groups]]
        total += sum(min(run[i] for run in runs) for i in range(min(len(run) for run in runs)))
    return total / groups


def summarise(records: list[dict], modes, last_third: bool = False, groups: int = 1) -> dict:
    """Median and range over repeats of bytes and exchange seconds per mode, and the ratios to dense.

    ``last_third``: only each run's last third of supersteps (near convergence).
    ``exchange_s_best``: see :func:`best_seconds`.
    """
    out: dict = {}
    for mode in modes:
        b = [sum(_part(r[mode]["bytes"], last_third)) for r in records]
        t = [sum(_part(r[mode]["exchange_s"], last_third)) for r in records]
        out[mode] = {"bytes": statistics.median(b), "exchange_s_median": statistics.median(t),
                     "exchange_s_min": min(t), "exchange_s_max": max(t),
                     "exchange_s_best": best_seconds(records, mode, groups, last_third),
                     "supersteps": statistics.median(len(r[mode]["bytes"]) for r in records)}
        if mode == "dense":
            continue
        out[mode]["best_ratio"] = out[mode]["exchange_s_best"] / max(1e-12, out["dense"]["exchange_s_best"])
        rb = [sum(_part(r[mode]["bytes"], last_third)) / max(1, sum(_part(r["dense"]["bytes"], last_third)))
              for r in records]
        rt = [sum(_part(r[mode]["exchange_s"], last_third)) / max(1e-12, sum(_part(r["dense"]["exchange_s"], last_third)))
              for r in records]
        out[mode].update(bytes_ratio=statistics.median(rb), time_ratio_median=statistics.median(rt),
                         time_ratio_min=min(rt), time_ratio_max=max(rt))
    return out


def transport() -> str:
    """How the ranks' messages travel: shared memory (MPICH's default on one node) or, with
    ``MPIR_CVAR_NOLOCAL=1``, the network module (with ``UCX_TLS=tcp,self``: TCP over loopback,
    a stand-in for ranks on different nodes)."""
    if os.environ.get("MPIR_CVAR_NOLOCAL", "0") not in ("0", ""):
        return f"netmod (MPIR_CVAR_NOLOCAL=1, UCX_TLS={os.environ.get('UCX_TLS', 'default')})"
    return "shared memory"


def per_superstep_table(records: list[dict], modes) -> dict:
    """Per superstep and mode: median bytes, median [min, max] exchange seconds over repeats."""
    table: dict = {}
    for mode in modes:
        steps = min(len(r[mode]["bytes"]) for r in records)
        table[mode] = [{"superstep": i,
                        "bytes": statistics.median(r[mode]["bytes"][i] for r in records),
                        "exchange_s_median": statistics.median(r[mode]["exchange_s"][i] for r in records),
                        "exchange_s_min": min(r[mode]["exchange_s"][i] for r in records),
                        "exchange_s_max": max(r[mode]["exchange_s"][i] for r in records)} for i in range(steps)]
    return table


def pagerank_vectors(g, tol: float) -> list[np.ndarray]:
    """The vectors a float64 PageRank run publishes, superstep by superstep (local, owned + ghost slots)."""
    from hpcdist.graph import pagerank
    from hpcdist.graph.algorithms.pagerank import PageRankProgram, resolve_kernels

    kernels = resolve_kernels("auto", g.comm)
    first = PageRankProgram(g, kernels, alpha=ALPHA, tol=tol, personalization=None, dangling=None, nstart=None,
                            weighted=False)
    vectors = [first.contrib.copy()]
    # after superstep s the program holds what superstep s + 1 publishes
    pagerank(g, alpha=ALPHA, tol=tol, max_iter=200, exchange="dense",
             on_superstep=lambda step, prog: vectors.append(prog.contrib.copy()))
    return vectors


def bfs_vectors(g, root: int) -> list[np.ndarray]:
    """0/1 frontiers of a BFS from ``root``, level by level (the vertices at each hop distance).

    The dense and bitmap exchanges cost the same whatever the flags say; these make the
    replay's messages those of a real search."""
    from hpcdist.graph import bfs

    dist = bfs(g, root, exchange="dense").values
    levels = int(g.comm.allreduce(int(dist.max(initial=0)), op=MPI.MAX))
    out = []
    for level in range(levels + 1):
        flags = np.zeros(g.n_local, dtype=np.uint8)
        flags[: g.n_owned] = dist == level
        out.append(flags)
    return out


#: replay settings: (exchange, precision); ``dense`` float64 is the plain HaloPlan.exchange
REPLAY_PR = {"dense": ("dense", "float64"), "sparse": ("sparse", "float64"),
             "dense-f32": ("dense", "float32"), "sparse-f32": ("sparse", "float32")}
REPLAY_BFS = {"dense": ("dense", "float64"), "bitmap": ("sparse", "float64"), "frontier": ("frontier", "float64")}


def replay(g, vectors: list[np.ndarray], settings: dict, repeats: int, binary: bool) -> dict:
    """Exchange time of each setting on a recorded sequence of published vectors.

    The whole sequence is replayed per setting (the change encodings depend on the
    previous superstep), settings interleaved repeat by repeat, the order reversed every
    other repeat. Per superstep: the slowest rank's seconds of ``start`` + ``finish``
    (or of the plain ``HaloPlan.exchange``). Only the exchange runs: no compute between
    supersteps, so the timings are short and many; on a loaded machine the minimum and
    median over repeats are steadier than the full runs' sums.
    """
    import time

    from hpcdist.graph.sparse_exchange import SparseExchange
    from hpcdist.kernels import kernels_for

    comm = g.comm
    kernels = kernels_for("numba")
    exchangers = {}
    # the frontier channel (BFS's ``auto``): each level's owned frontier as a queue and as
    # owned bits (a bottom-up level has both), published into bitmaps and unpacked into bits
    fronts = [np.flatnonzero(v[: g.n_owned]).astype(np.int64) for v in vectors] if "frontier" in settings else []
    bit_words = [np.zeros((g.n_local + 63) // 64, dtype=np.uint64) for _ in fronts]
    for q, b in zip(fronts, bit_words):
        kernels.bfs_owned_bits(b, q, q.shape[0], g.n_owned)
    for name, (exchange, precision) in settings.items():
        if exchange == "frontier":
            exchangers[name] = g.halo.frontier()
            continue
        if exchange == "dense" and precision == "float64":
            continue
        ex = exchangers[name] = SparseExchange(g.halo, kernels)
        ex.warm_up(binary=binary, precision=precision)
    times = {name: np.zeros((repeats, len(vectors))) for name in settings}
    sent = {name: [0] * len(vectors) for name in settings}
    names = list(settings)
    for rep in range(-1, repeats):  # repeat -1: untimed, everything warm
        for name in (names if rep % 2 == 0 else names[::-1]):
            exchange, precision = settings[name]
            ex = exchangers.get(name)
            if ex is not None and exchange != "frontier":
                ex.reset()
            work = [v.copy() for v in vectors]
            local = np.zeros(len(vectors))
            comm.Barrier()
            for i, v in enumerate(work):
                t0 = time.perf_counter()
                if exchange == "frontier":
                    ex.start(fronts[i], fronts[i].shape[0], kernels, bit_words[i])
                    ex.finish(bit_words[i], kernels)
                    nbytes = ex.bytes_sent
                elif ex is None:
                    g.halo.exchange(v)
                    nbytes = g.halo.bytes_sent
                else:
                    ex.exchange(v, binary=binary, precision=precision, changes=exchange == "sparse")
                    nbytes = ex.bytes_sent
                local[i] = time.perf_counter() - t0
                if rep == 0:
                    sent[name][i] = nbytes
            if rep >= 0:
                comm.Allreduce(local, times[name][rep], op=MPI.MAX)
    for name, ex in exchangers.items():
        if settings[name][0] != "frontier":  # the plan's own channel, closed with the graph
            ex.close()
    out: dict = {}
    steps = len(vectors)
    near = slice(steps - max(1, steps // 3), steps)
    for name in settings:
        t = times[name]
        b = comm.allreduce(np.array(sent[name], dtype=np.int64))
        out[name] = {"bytes_per_superstep": b.tolist(),
                     "exchange_s_median_per_superstep": np.median(t, axis=0).tolist(),
                     "exchange_s_min_per_superstep": t.min(axis=0).tolist(),
                     "exchange_s_max_per_superstep": t.max(axis=0).tolist()}
        for part, sl in (("whole", slice(0, steps)), ("near", near)):
            totals = t[:, sl].sum(axis=1)
            out[name][part] = {"bytes": int(b[sl].sum()), "exchange_s_median": float(np.median(totals)),
                               "exchange_s_min": float(totals.min()), "exchange_s_max": float(totals.max()),
                               "exchange_s_sum_of_step_medians": float(np.median(t[:, sl], axis=0).sum()),
                               "exchange_s_sum_of_step_mins": float(t[:, sl].min(axis=0).sum())}
    for name in settings:
        if name == "dense":
            continue
        for part in ("whole", "near"):
            d, m = out["dense"][part], out[name][part]
            # per repeat ratios: setting and dense ran side by side in the same repeat
            sl = near if part == "near" else slice(0, steps)
            ratios = times[name][:, sl].sum(axis=1) / times["dense"][:, sl].sum(axis=1)
            m.update(bytes_ratio=m["bytes"] / max(1, d["bytes"]), time_ratio_median=float(np.median(ratios)),
                     time_ratio_q25=float(np.percentile(ratios, 25)), time_ratio_q75=float(np.percentile(ratios, 75)),
                     time_ratio_of_medians=m["exchange_s_sum_of_step_medians"] / d["exchange_s_sum_of_step_medians"],
                     time_ratio_of_mins=m["exchange_s_sum_of_step_mins"] / d["exchange_s_sum_of_step_mins"])
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
    ap.add_argument("--replay", type=int, default=40, metavar="N",
                    help="repeats of the exchange-only replay of recorded supersteps (0: none)")
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
        f32_l1_max = 0.0
        # one untimed round of each: numba compiles or loads its kernels, the plans get built
        for exchange, precision in PR_MODES.values():
            pagerank(g, tol=args.tol, max_iter=3, exchange=exchange, exchange_precision=precision)
        for mode in BFS_MODES:
            bfs(g, roots[0], exchange=mode)
        for rep in range(args.repeats):
            rec, ref = {}, {}
            names = list(PR_MODES) if rep % 2 == 0 else list(PR_MODES)[::-1]  # alternate, so drift hits all
            for name in names:
                exchange, precision = PR_MODES[name]
                r = pagerank(g, alpha=ALPHA, tol=args.tol, max_iter=200, exchange=exchange, exchange_precision=precision)
                rec[name] = per_step(comm, r.run)
                if precision not in ref:
                    ref[precision] = r
                else:
                    identical &= same_bits(comm, r.values, ref[precision].values)
            f32_l1_max = max(f32_l1_max, l1(comm, ref["float32"].values, ref["float64"].values))
            pr_records.append(rec)
            order = BFS_MODES if rep % 2 == 0 else BFS_MODES[::-1]
            for root in roots:
                rec, first = {}, None
                for mode in order:
                    r = bfs(g, root, exchange=mode)
                    rec[mode] = per_step(comm, r.run)
                    if first is None:
                        first = r
                    else:
                        identical &= same_bits(comm, r.values, first.values)
                        identical &= same_bits(comm, r.extras["parent"], first.extras["parent"])
                bfs_records.append(rec)
        replays = {}
        if args.replay:
            replays["pagerank"] = replay(g, pagerank_vectors(g, args.tol), REPLAY_PR, args.replay, binary=False)
            replays["bfs"] = replay(g, bfs_vectors(g, roots[0]), REPLAY_BFS, args.replay, binary=True)
        wall = time.perf_counter() - w0
        busy1 = busy_cpu_seconds()
        n = g.n_vertices
        f32_bound = ALPHA / (1 - ALPHA) * (2 * n * args.tol + 2.0**-24)
        result = {
            "benchmark": "comm_bench", "scale": scale, "ranks": size, "label": label,
            "partitioner": args.partitioner, "graph_build_s": build_s,
            "n_vertices": n, "n_edges": g.n_edges, "repeats": args.repeats, "roots": roots,
            "pagerank_tol": args.tol, "pagerank_alpha": ALPHA,
            "identical_results": bool(identical),
            "float32_l1_to_float64_max": f32_l1_max, "float32_l1_bound": f32_bound,
            "float32_within_bound": bool(f32_l1_max <= f32_bound),
            "pagerank_whole": summarise(pr_records, PR_MODES),
            "pagerank_near": summarise(pr_records, PR_MODES, last_third=True),
            "bfs": summarise(bfs_records, BFS_MODES, groups=len(roots)),
            "transport": transport(),
            "replay_repeats": args.replay, "replay": replays,
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "per_superstep_summary": {"pagerank": per_superstep_table(pr_records, PR_MODES),
                                      "bfs_first_root": per_superstep_table(bfs_records[::len(roots)], BFS_MODES)},
            "other_load_cores": None if busy0 is None else max(0.0, (busy1 - busy0) / wall - size),
            "per_superstep": {"pagerank": pr_records, "bfs": bfs_records},
            "machine": machine_details(),
        }
        if rank == 0:
            RESULTS.mkdir(exist_ok=True)
            host = result["machine"]["hostname"]
            net = "" if result["transport"] == "shared memory" else "-tcp"
            path = RESULTS / f"comm-s{scale}-r{size}-{host}{net}{args.tag}.json"
            path.write_text(json.dumps(result, indent=1))
            print(f"## scale {scale}, {label}: whole runs (ratios to dense, median [min-max] over "
                  f"{args.repeats} repeats)", flush=True)
            print(f"# transport: {result['transport']}")
            print("| run | setting | MB | fewer bytes | exchange ms | time / dense | best ms | best / dense |")
            print("|---|---|---|---|---|---|---|---|")
            for what, modes in (("pagerank_whole", PR_MODES), ("pagerank_near", PR_MODES), ("bfs", BFS_MODES)):
                s = result[what]
                for mode in modes:
                    m = s[mode]
                    ratio = "1" if mode == "dense" else \
                        f"{m['time_ratio_median']:.2f} [{m['time_ratio_min']:.2f}-{m['time_ratio_max']:.2f}]"
                    fewer = "-" if mode == "dense" else f"{100 * (1 - m['bytes_ratio']):.0f} %"
                    best = "1" if mode == "dense" else f"{m['best_ratio']:.2f}"
                    print(f"| {what} | {mode} | {m['bytes'] / 1e6:.3f} | {fewer} | "
                          f"{1e3 * m['exchange_s_median']:.2f} | {ratio} | {1e3 * m['exchange_s_best']:.2f} | {best} |",
                          flush=True)
            for what, modes in (("pagerank", PR_MODES), ("bfs_first_root", BFS_MODES)):
                table = result["per_superstep_summary"][what]
                print(f"## {what} per superstep: kB / exchange ms (median over repeats)")
                print("| superstep | " + " | ".join(modes) + " |")
                print("|---|" + "---|" * len(modes))
                for i in range(max(len(table[m]) for m in modes)):
                    cells = [f"{table[m][i]['bytes'] / 1e3:.1f} / {1e3 * table[m][i]['exchange_s_median']:.2f}"
                             if i < len(table[m]) else "" for m in modes]
                    print(f"| {i} | " + " | ".join(cells) + " |")
            for what, rep in replays.items():
                print(f"## replay of {what}'s supersteps, exchange only, {args.replay} interleaved repeats: "
                      "time / dense per repeat, median [quartiles]; and from per-superstep medians and minima")
                print("| part | setting | kB | fewer bytes | median ms | time / dense | of medians | of minima |")
                print("|---|---|---|---|---|---|---|---|")
                for part in ("whole", "near"):
                    for name, r in rep.items():
                        m = r[part]
                        if name == "dense":
                            print(f"| {part} | {name} | {m['bytes'] / 1e3:.1f} | - | {1e3 * m['exchange_s_median']:.3f} "
                                  "| 1 | 1 | 1 |")
                        else:
                            print(f"| {part} | {name} | {m['bytes'] / 1e3:.1f} | {100 * (1 - m['bytes_ratio']):.0f} % | "
                                  f"{1e3 * m['exchange_s_median']:.3f} | {m['time_ratio_median']:.2f} "
                                  f"[{m['time_ratio_q25']:.2f}-{m['time_ratio_q75']:.2f}] | "
                                  f"{m['time_ratio_of_medians']:.2f} | {m['time_ratio_of_mins']:.2f} |")
                print(f"| superstep | " + " | ".join(rep) + " |  (kB / median ms)")
                for i in range(len(rep["dense"]["bytes_per_superstep"])):
                    print(f"| {i} | " + " | ".join(
                        f"{r['bytes_per_superstep'][i] / 1e3:.1f} / {1e3 * r['exchange_s_median_per_superstep'][i]:.3f}"
                        for r in rep.values()) + " |")
            print(f"# identical results: {identical}; float32 L1 to float64 {f32_l1_max:.3g} (bound {f32_bound:.3g}); "
                  f"other load {result['other_load_cores']} cores; {path}", flush=True)
        g.close()


if __name__ == "__main__":
    main()
