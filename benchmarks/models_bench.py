"""Models on the farm: predict_batch throughput, cache hit rate under routing, data-parallel training.

    mpiexec -n 3 python benchmarks/models_bench.py [--repeats 5] [--quick]

Needs 3 ranks (rank 0 coordinates; 1 and 2 work). Every measurement is against a peer
in the same job, on the same batches:

* ``predict``: ``farm.predict_batch`` of a CPU-heavy MLP with 1 and 2 workers against a
  single-process loop of ``model.predict`` over the batches (rank 0, nothing else
  running) and against ``mpi4py.futures`` ``MPICommExecutor.map`` with the same workers,
  the same task function (the same model cache) and the same batches. Targets:
  2 workers >= 1.8x the loop, >= futures.
* ``cache``: 4 models on 2 workers whose caches hold 2 of them; a stream of requests
  for random models; hit rate of the ``affinity`` strategy against ``least_loaded``.
* ``train``: time per step of ``train_data_parallel`` on 2 and 3 ranks against one
  process on the whole data (same steps, equal result).

BLAS threads are pinned to 1 so that "single process" means one core. Medians and
min-max of ``--repeats``; the machine's load goes into the JSON (``machine``) with the
busy CPU time other processes took during the run.
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


def stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def sub_comm(comm, n_ranks: int):
    """Ranks 0 .. n_ranks-1 of ``comm`` (COMM_NULL on the others). Collective over ``comm``."""
    return comm.Split(0 if comm.rank < n_ranks else MPI.UNDEFINED, comm.rank)


def bench_predict(comm, reg, X, batch_size, repeats) -> dict:
    info = reg.info("heavy")
    ref = ModelRef(str(reg.path), "heavy", info.version, info.nbytes)
    batches = [X[s:s + batch_size] for s in range(0, len(X), batch_size)]
    times: dict[str, list[float]] = {k: [] for k in ("single_process_loop", "farm_1_worker", "farm_2_workers",
                                                      "futures_1_worker", "futures_2_workers")}
    expect = reg.load("heavy").predict(X) if comm.rank == 0 else None
    for _ in range(repeats):
        if comm.rank == 0:
            model = reg.load("heavy")
            model.predict(batches[0])
            t0 = time.perf_counter()
            out = np.concatenate([model.predict(b) for b in batches])
            times["single_process_loop"].append(time.perf_counter() - t0)
            assert np.array_equal(out, expect)
        peers.polite_barrier(comm)
        for k in (1, 2):
            sub = sub_comm(comm, k + 1)
            if sub != MPI.COMM_NULL:
                with hd.Farm(sub, progress=False) as farm:
                    if farm is not None:
                        farm.predict_batch("heavy", X[:batch_size * k], registry=reg, batch_size=batch_size)  # load on workers
                        t0 = time.perf_counter()
                        got = farm.predict_batch("heavy", X, registry=reg, batch_size=batch_size)
                        times[f"farm_{k}_worker{'s' if k > 1 else ''}"].append(time.perf_counter() - t0)
                        assert np.array_equal(got, expect)
                sub.Free()
            peers.polite_barrier(comm)
            sub = sub_comm(comm, k + 1)
            if sub != MPI.COMM_NULL:

                def body(executor, k=k):
                    list(executor.map(futures_predict, [(ref, b) for b in batches[:k]]))  # load on workers
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
    return {
        "rows": len(X), "batch_size": batch_size, "n_batches": len(batches), "model": info.config,
        "seconds": {k: stats(v) for k, v in times.items()}, "rows_per_s": rows_per_s,
        "ratios": {
            "farm_2_workers_vs_single_process": med["single_process_loop"] / med["farm_2_workers"],
            "farm_1_worker_vs_single_process": med["single_process_loop"] / med["farm_1_worker"],
            "farm_2_workers_vs_futures_2_workers": med["futures_2_workers"] / med["farm_2_workers"],
            "farm_1_worker_vs_futures_1_worker": med["futures_1_worker"] / med["farm_1_worker"],
        },
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
    ap.add_argument("--out", default=None)
    ap.add_argument("--rows", type=int, default=None, help="rows to predict (default 8192; --quick 1024)")
    ap.add_argument("--batch-size", type=int, default=256, help="rows per predict_batch task (default 256)")
    ap.add_argument("--hidden", default=None, help="hidden layer widths, e.g. 1024,1024 (default 512,512)")
    args = ap.parse_args()
    comm = MPI.COMM_WORLD
    if comm.size < 3:
        if comm.rank == 0:
            print("models_bench needs 3 ranks: mpiexec -n 3 python benchmarks/models_bench.py", file=sys.stderr)
        return 2
    base = Path(comm.bcast(tempfile.mkdtemp(prefix="hpcdist-models-bench-") if comm.rank == 0 else None))
    busy0, cpu0, wall0 = busy_cpu_seconds(), time.process_time(), time.perf_counter()
    try:
        reg = ModelRegistry(base / "heavy")
        hidden = (128, 128) if args.quick else (512, 512)
        if args.hidden:
            hidden = tuple(int(h) for h in args.hidden.split(","))
        if comm.rank == 0:
            reg.register("heavy", MLP(64, hidden, 10, task="classification", seed=0))
        comm.Barrier()
        X = np.random.default_rng(0).normal(size=(args.rows or (1024 if args.quick else 8192), 64))
        report = {"benchmark": "models", "machine": machine_details(), "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS")}
        report["predict"] = bench_predict(comm, reg, X, args.batch_size, args.repeats)
        report["cache"] = bench_cache(comm, base, 12 if args.quick else 60)
        report["train"] = bench_train(comm, args.repeats, 3000 if args.quick else 24000, 1 if args.quick else 2)
    finally:
        comm.Barrier()
        if comm.rank == 0:
            shutil.rmtree(base, ignore_errors=True)
    busy = comm.gather(time.process_time() - cpu0)
    if comm.rank == 0:
        wall = time.perf_counter() - wall0
        busy1 = busy_cpu_seconds()
        if busy0 is not None and busy1 is not None:
            report["load"] = {"wall_s": wall, "other_processes_cpu_s": max(0.0, busy1 - busy0 - sum(busy)),
                              "note": "busy CPU time of the whole machine during the run, less this job's own"}
        out = Path(args.out or ROOT / "benchmarks" / "results" /
                   f"models-{report['machine']['hostname'].split('.')[0]}-{time.strftime('%Y-%m-%d')}.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1, sort_keys=True, default=str))
        p, c, t = report["predict"], report["cache"], report["train"]
        print(f"predict_batch rows/s (median): " + ", ".join(f"{k} {v['median']:.0f}" for k, v in p["rows_per_s"].items()))
        print("ratios: " + ", ".join(f"{k} {v:.2f}" for k, v in p["ratios"].items()))
        print("cache hit rate: " + ", ".join(f"{k} {v['hit_rate']:.2f}" for k, v in c.items() if isinstance(v, dict)))
        print("train s/step: " + ", ".join(f"{k} {v['median'] * 1e3:.1f} ms" for k, v in t["seconds_per_step"].items())
              + "; speedup " + ", ".join(f"{k} {v:.2f}" for k, v in t["speedup"].items()))
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
