"""Models on the farm: predict_batch throughput, cache hit rate under routing, data-parallel training.

    mpiexec -n 3 python benchmarks/models_bench.py [--repeats 5] [--parts predict] [--light | --quick]

Needs 3 ranks (rank 0 coordinates; 1 and 2 work). Every measurement is against a peer
in the same job, on the same batches:

* ``predict``: ``farm.predict_batch`` of a CPU-heavy MLP (default 64-1024-1024-10,
  32,768 rows in batches of 1,024: about 45 ms of work per batch; ``--light`` is the
  earlier default, 64-512-512-10 over 8,192 rows in batches of 256, about 11 ms) with 1
  and 2 workers against

  - a single-process loop of ``model.predict`` over the batches (rank 0, nothing else
    running),
  - ``mpi4py.futures`` ``MPICommExecutor.map`` with the same workers, the same task
    function (the same model cache) and the same batches,
  - the **ceiling**: two independent loops at the same time on ranks 1 and 2, each over
    half of the batches, no farm and no coordinator: what two processes get out of this
    machine (shared memory bandwidth, caches, turbo and other tenants keep it under 2).

  Targets: 2 workers >= 1.8x the loop, >= futures. ``farm_2_workers_auto`` is the same
  farm with ``batch_size=None`` (its own choice of batches, the last ones halved).

  **Every contender is measured warm**, as a user with a long-lived farm sees it: the
  loop has its model in memory and ran one untimed ``predict``; each farm (a fresh one
  per repeat; its start-up is not timed) first runs an untimed ``predict_batch`` until
  every worker has loaded the model and run a batch (checked with
  ``farm.last_predict.workers``), and the ``mpi4py.futures`` executor likewise (checked
  by rank). So no timed region includes a model load, a first call or a start-up. The
  coordinator's CPU time during the timed ``predict_batch`` and the batches each worker
  ran go into the JSON.
* ``cache``: 4 models on 2 workers whose caches hold 2 of them; a stream of requests
  for random models; hit rate of the ``affinity`` strategy against ``least_loaded``.
* ``train``: time per step of ``train_data_parallel`` on 2 and 3 ranks against one
  process on the whole data (same steps, equal result).

BLAS threads are pinned to 1 so that "single process" means one core. The contenders
take turns within each repeat, so a change of the machine's load hits them alike;
ratios are given of the medians and, per repeat, as median and min-max. The machine's
load goes into the JSON (``machine``, ``load``: load averages and the busy CPU time other
processes took during the run) and into the default file name (``-loadL``: the cores other
processes kept busy, on average, during the run).
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402
from machine import busy_cpu_seconds, machine_details  # noqa: E402

import hpcdist as hd  # noqa: E402
from hpcdist.models import MLP, ModelRegistry, shard, train_data_parallel, train_local  # noqa: E402
from hpcdist.models.farm_mixin import ModelRef, run_model  # noqa: E402
from hpcdist.runtime.comm import MPI  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def futures_predict(item):
    """The ``mpi4py.futures`` peer's task: the farm's own task function on one batch."""
    ref, X = item
    return run_model(ref, X).value


def futures_warm(item):
    """The futures peer's warm-up task: one batch, then which rank ran it."""
    futures_predict(item)
    return MPI.COMM_WORLD.Get_rank()


def stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def sub_comm(comm, n_ranks: int):
    """Ranks 0 .. n_ranks-1 of ``comm`` (COMM_NULL on the others). Collective over ``comm``."""
    return comm.Split(0 if comm.rank < n_ranks else MPI.UNDEFINED, comm.rank)


def warm_farm(farm, X, reg, batch_size: int, tries: int = 10) -> None:
    """Untimed predict_batch until every worker has loaded the model and run a batch."""
    want = {w.rank for w in farm.workers()}
    seen: set = set()
    for _ in range(tries):
        farm.predict_batch("heavy", X[:batch_size * 2 * len(want)], registry=reg, batch_size=batch_size)
        seen |= {r for ranks in farm.last_predict.workers for r in ranks}
        if seen >= want:
            return
    raise RuntimeError(f"warm-up reached workers {sorted(seen)} of {sorted(want)}")


def warm_futures(executor, ref, batches, n_workers: int, tries: int = 10) -> None:
    """Untimed futures tasks until every worker has loaded the model and run a batch."""
    seen: set = set()
    for _ in range(tries):
        seen |= set(executor.map(futures_warm, [(ref, b) for b in batches[:2 * n_workers]]))
        if len(seen) >= n_workers:
            return
    raise RuntimeError(f"futures warm-up reached ranks {sorted(seen)} of {n_workers} workers")


def bench_predict(comm, reg, X, batch_size, repeats) -> dict:
    info = reg.info("heavy")
    ref = ModelRef(str(reg.path), "heavy", info.version, info.nbytes)
    batches = [X[s:s + batch_size] for s in range(0, len(X), batch_size)]
    half = -(-len(batches) // 2)
    keys = ("single_process_loop", "ceiling_2_loops", "farm_1_worker", "farm_2_workers", "farm_2_workers_auto",
            "futures_1_worker", "futures_2_workers")
    times: dict[str, list[float]] = {k: [] for k in keys}
    coordinator_cpu: list[float] = []
    per_worker: list[dict] = []
    model = reg.load("heavy")  # every rank: the loop on 0, the ceiling's loops on 1 and 2
    expect = model.predict(X) if comm.rank == 0 else None
    for r in range(repeats):
        if comm.rank == 0:
            model.predict(batches[0])
            t0 = time.perf_counter()
            out = np.concatenate([model.predict(b) for b in batches])
            times["single_process_loop"].append(time.perf_counter() - t0)
            assert np.array_equal(out, expect)
        # The ceiling: ranks 1 and 2 each loop over half of the batches at the same time.
        mine = (batches[:half], batches[half:])[comm.rank - 1] if comm.rank in (1, 2) else []
        if mine:
            model.predict(mine[0])
        peers.polite_barrier(comm)
        t0 = time.perf_counter()
        parts = [model.predict(b) for b in mine]
        elapsed = time.perf_counter() - t0
        peers.polite_barrier(comm)  # then the reduce: MPICH's blocking calls spin, rank 0 must not meanwhile
        slowest = comm.reduce(elapsed if mine else 0.0, op=MPI.MAX)
        gathered = comm.gather(np.concatenate(parts) if parts else None)
        if comm.rank == 0:
            times["ceiling_2_loops"].append(slowest)
            assert np.array_equal(np.concatenate([g for g in gathered[1:3]]), expect)
        for k in (1, 2):
            sub = sub_comm(comm, k + 1)
            if sub != MPI.COMM_NULL:
                with hd.Farm(sub, progress=False) as farm:
                    if farm is not None:
                        warm_farm(farm, X, reg, batch_size)
                        runs = [batch_size, None] if k == 2 else [batch_size]
                        for bs in (runs if r % 2 == 0 else runs[::-1]):  # alternate which goes first
                            c0, t0 = time.process_time(), time.perf_counter()
                            got = farm.predict_batch("heavy", X, registry=reg, batch_size=bs)
                            elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
                            name = f"farm_{k}_worker{'s' if k > 1 else ''}" + ("_auto" if bs is None else "")
                            times[name].append(elapsed)
                            assert np.array_equal(got, expect)
                            if k == 2 and bs is not None:
                                coordinator_cpu.append(cpu)
                                ran = [w for ranks in farm.last_predict.workers for w in ranks]
                                per_worker.append({str(w): ran.count(w) for w in sorted(set(ran))})
                sub.Free()
            peers.polite_barrier(comm)
            sub = sub_comm(comm, k + 1)
            if sub != MPI.COMM_NULL:

                def body(executor, k=k):
                    warm_futures(executor, ref, batches, k)
                    t0 = time.perf_counter()
                    got = np.concatenate(list(executor.map(futures_predict, [(ref, b) for b in batches])))
                    elapsed = time.perf_counter() - t0
                    assert np.array_equal(got, expect)
                    return elapsed

                t = peers._with_futures(sub, body)
                if comm.rank == 0:
                    times[f"futures_{k}_worker{'s' if k > 1 else ''}"].append(t)
                sub.Free()
            peers.polite_barrier(comm)
    if comm.rank != 0:
        return {}
    rows_per_s = {k: stats([len(X) / t for t in v]) for k, v in times.items()}
    med = {k: statistics.median(v) for k, v in times.items()}
    loop = times["single_process_loop"]
    pairs = {  # name: (numerator times, denominator times): the ratio is numerator time / denominator time
        "farm_2_workers_vs_single_process": (loop, times["farm_2_workers"]),
        "ceiling_2_loops_vs_single_process": (loop, times["ceiling_2_loops"]),
        "farm_2_workers_vs_ceiling": (times["ceiling_2_loops"], times["farm_2_workers"]),
        "farm_2_workers_auto_vs_single_process": (loop, times["farm_2_workers_auto"]),
        "farm_1_worker_vs_single_process": (loop, times["farm_1_worker"]),
        "farm_2_workers_vs_futures_2_workers": (times["futures_2_workers"], times["farm_2_workers"]),
        "farm_1_worker_vs_futures_1_worker": (times["futures_1_worker"], times["farm_1_worker"]),
    }
    return {
        "rows": len(X), "batch_size": batch_size, "n_batches": len(batches), "model": info.config,
        "batch_ms_in_loop": 1e3 * med["single_process_loop"] / len(batches),
        "fairness": "all warm: model in memory and one untimed call in the loop and the ceiling's loops; "
                    "an untimed predict_batch (futures: map) until every worker ran a batch; start-up not timed",
        "seconds": {k: stats(v) for k, v in times.items()}, "rows_per_s": rows_per_s,
        "ratios": {name: statistics.median(num) / statistics.median(den) for name, (num, den) in pairs.items()},
        "ratios_per_repeat": {name: stats([a / b for a, b in zip(num, den)]) for name, (num, den) in pairs.items()},
        "farm_2_workers_coordinator_cpu_s": stats(coordinator_cpu),
        "farm_2_workers_batches_per_worker": per_worker,
        "targets": {"farm_2_workers_vs_single_process": ">= 1.8", "farm_2_workers_vs_futures_2_workers": ">= 1.0"},
    }


def bench_cache(comm, base: Path, n_requests: int, seed: int = 0) -> dict:
    """4 models, 2 workers whose caches hold 2 models each; random requests, one at a time."""
    out = {}
    rng = np.random.default_rng(seed)
    order = rng.integers(0, 4, n_requests).tolist()
    X = rng.normal(size=(512, 32))
    for strategy in ("affinity", "least_loaded", "round_robin"):
        path = comm.bcast(str(base / f"cache-{strategy}") if comm.rank == 0 else None)
        reg = ModelRegistry(path)
        if comm.rank == 0:
            for i in range(4):
                reg.register(f"m{i}", MLP(32, (128,), 4, seed=i))
        comm.Barrier()
        budget = int(2.5 * reg.info("m0").nbytes) if comm.rank == 0 else None
        with hd.Farm(comm, strategy=strategy, progress=False) as farm:
            if farm is not None:
                hits = loads = 0
                t0 = time.perf_counter()
                for m in order:
                    farm.predict_batch(f"m{m}", X, registry=reg, batch_size=256, cache_bytes=budget, max_in_flight=2)
                    hits += farm.last_predict.n_hits
                    loads += farm.last_predict.n_loads
                out[strategy] = {"hit_rate": hits / (hits + loads), "hits": hits, "loads": loads,
                                 "seconds": time.perf_counter() - t0}
        peers.polite_barrier(comm)
    if comm.rank == 0:
        out["requests"] = n_requests
        out["cache_budget_models"] = 2.5
    return out


def bench_train(comm, repeats: int, n: int, epochs: int) -> dict:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n, 64))
    y = np.argmax(X @ rng.normal(size=(64, 10)), axis=1)
    batch = n // 10
    steps = epochs * -(-n // batch)
    times: dict[str, list[float]] = {"single_process": [], "2_ranks": [], "3_ranks": []}
    ref = None
    for _ in range(repeats):
        if comm.rank == 0:
            t0 = time.perf_counter()
            ref = train_local(MLP(64, (256,), 10, task="classification"), X, y, epochs=epochs, batch_size=batch,
                              lr=0.1, seed=2)
            times["single_process"].append((time.perf_counter() - t0) / steps)
        peers.polite_barrier(comm)
        for k in (2, 3):
            sub = sub_comm(comm, k)
            if sub != MPI.COMM_NULL:
                sub.Barrier()
                t0 = time.perf_counter()
                m = train_data_parallel(MLP(64, (256,), 10, task="classification"), shard(X, sub), shard(y, sub),
                                        epochs=epochs, batch_size=batch, lr=0.1, comm=sub, seed=2)
                if sub.rank == 0:
                    times[f"{k}_ranks"].append((time.perf_counter() - t0) / steps)
                    diff = max(float(np.abs(m.params[p] - ref.params[p]).max()) for p in ref.params)
                    assert diff < 1e-10, diff
                sub.Free()
            peers.polite_barrier(comm)
    if comm.rank != 0:
        return {}
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"rows": n, "batch_size": batch, "steps": steps, "seconds_per_step": {k: stats(v) for k, v in times.items()},
            "speedup": {k: med["single_process"] / med[k] for k in ("2_ranks", "3_ranks")},
            "max_abs_difference_to_single_process": "< 1e-10 (asserted)"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    ap.add_argument("--light", action="store_true",
                    help="the light model of earlier runs: MLP 64-512-512-10, 8192 rows, batches of 256")
    ap.add_argument("--parts", default="predict,cache,train", help="what to measure (default predict,cache,train)")
    ap.add_argument("--out", default=None,
                    help="JSON path (default benchmarks/results/models-HOST-DATE-SIZE-loadL.json, L: cores that "
                         "other processes kept busy meanwhile)")
    ap.add_argument("--tag", default="", help="appended to the default JSON name")
    ap.add_argument("--rows", type=int, default=None, help="rows to predict (default 32768; --light 8192; --quick 1024)")
    ap.add_argument("--batch-size", type=int, default=None,
                    help="rows per predict_batch task (default 1024; --light 256; --quick 128)")
    ap.add_argument("--hidden", default=None, help="hidden layer widths (default 1024,1024; --light 512,512)")
    args = ap.parse_args()
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    unknown = parts - {"predict", "cache", "train"}
    if unknown:
        ap.error(f"unknown parts {sorted(unknown)}; choose from predict, cache, train")
    size = "quick" if args.quick else "light" if args.light else "heavy"
    hidden = {"quick": (128, 128), "light": (512, 512), "heavy": (1024, 1024)}[size]
    if args.hidden:
        hidden = tuple(int(h) for h in args.hidden.split(","))
    rows = args.rows or {"quick": 1024, "light": 8192, "heavy": 32768}[size]
    batch_size = args.batch_size or {"quick": 128, "light": 256, "heavy": 1024}[size]
    comm = MPI.COMM_WORLD
    if comm.size < 3:
        if comm.rank == 0:
            print("models_bench needs 3 ranks: mpiexec -n 3 python benchmarks/models_bench.py", file=sys.stderr)
        return 2
    base = Path(comm.bcast(tempfile.mkdtemp(prefix="hpcdist-models-bench-") if comm.rank == 0 else None))
    busy0, cpu0, wall0 = busy_cpu_seconds(), time.process_time(), time.perf_counter()
    load0 = os.getloadavg()
    try:
        reg = ModelRegistry(base / "heavy")
        if comm.rank == 0:
            reg.register("heavy", MLP(64, hidden, 10, task="classification", seed=0))
        comm.Barrier()
        X = np.random.default_rng(0).normal(size=(rows, 64))
        report = {"benchmark": "models", "size": size, "argv": sys.argv[1:], "machine": machine_details(),
                  "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS")}
        if "predict" in parts:
            report["predict"] = bench_predict(comm, reg, X, batch_size, args.repeats)
        if "cache" in parts:
            report["cache"] = bench_cache(comm, base, 12 if args.quick else 60)
        if "train" in parts:
            report["train"] = bench_train(comm, args.repeats, 3000 if args.quick else 24000, 1 if args.quick else 2)
    finally:
        comm.Barrier()
        if comm.rank == 0:
            shutil.rmtree(base, ignore_errors=True)
    busy = comm.gather(time.process_time() - cpu0)
    if comm.rank == 0:
        wall = time.perf_counter() - wall0
        busy1 = busy_cpu_seconds()
        load1 = os.getloadavg()
        report["load"] = {"wall_s": wall, "loadavg_1min_start_end": [load0[0], load1[0]],
                          "loadavg_5min_start_end": [load0[1], load1[1]]}
        if busy0 is not None and busy1 is not None:
            other = max(0.0, busy1 - busy0 - sum(busy))
            report["load"].update({"other_processes_cpu_s": other, "other_processes_cores": other / wall,
                                   "note": "busy CPU time of the whole machine during the run, less this job's own"})
        # The load in the name: cores other processes kept busy during the run (the load
        # average, which lags by a minute, where /proc/stat is missing).
        load = report["load"].get("other_processes_cores", max(load0[0], load1[0]))
        name = (f"models-{report['machine']['hostname'].split('.')[0]}-{time.strftime('%Y-%m-%d')}-{size}"
                f"-load{load:.2f}{'-' + args.tag if args.tag else ''}.json")
        out = Path(args.out or ROOT / "benchmarks" / "results" / name)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1, sort_keys=True, default=str))
        if "predict" in report:
            p = report["predict"]
            print("predict_batch rows/s (median): " + ", ".join(f"{k} {v['median']:.0f}" for k, v in p["rows_per_s"].items()))
            print("ratios of medians: " + ", ".join(f"{k} {v:.2f}" for k, v in p["ratios"].items()))
            print("ratios per repeat, median [min-max]: " + ", ".join(
                f"{k} {v['median']:.2f} [{v['min']:.2f}-{v['max']:.2f}]" for k, v in p["ratios_per_repeat"].items()))
            print(f"coordinator CPU during predict_batch (2 workers): {p['farm_2_workers_coordinator_cpu_s']['median']:.3f} s")
        if "cache" in report:
            c = report["cache"]
            print("cache hit rate: " + ", ".join(f"{k} {v['hit_rate']:.2f}" for k, v in c.items() if isinstance(v, dict)))
        if "train" in report:
            t = report["train"]
            print("train s/step: " + ", ".join(f"{k} {v['median'] * 1e3:.1f} ms" for k, v in t["seconds_per_step"].items())
                  + "; speedup " + ", ".join(f"{k} {v:.2f}" for k, v in t["speedup"].items()))
        ld = report["load"]
        print(f"load: 1-min average {ld['loadavg_1min_start_end'][0]:.1f} -> {ld['loadavg_1min_start_end'][1]:.1f}"
              + (f", other processes {ld['other_processes_cores']:.2f} cores" if "other_processes_cores" in ld else ""))
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
