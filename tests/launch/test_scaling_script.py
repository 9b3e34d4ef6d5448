"""``benchmarks/scaling.py`` runs its mpiexec jobs and writes a sound report and a plot."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys

import pytest

from tests.conftest import ROOT, mpiexec_path

pytestmark = pytest.mark.launch

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SCRIPT = ROOT / "benchmarks" / "scaling.py"


def test_weak_sizes_keep_the_edges_per_rank():
    sys.path.insert(0, str(ROOT))
    from benchmarks.scaling import units, weak_rmat

    for ranks in range(1, 17):
        scale, ef = weak_rmat(16, ranks)
        assert (2**scale * ef) == ranks * 2**16 * 16, ranks  # RMAT edges = 2^scale x edge factor
        assert scale == 16 + int(math.log2(ranks))
    assert [units("farm", r) for r in (1, 2, 3, 5)] == [1, 1, 2, 4]
    assert [units("bfs", r) for r in (1, 2, 3)] == [1, 2, 3]
    with pytest.raises(ValueError, match="fractional edge factor"):
        weak_rmat(10, 33)


def test_rounds_pool_their_repeats_and_the_table_uses_the_smallest_run():
    sys.path.insert(0, str(ROOT))
    from benchmarks.scaling import merge_rounds, scaling_table

    def job(what, ranks, samples, other):
        return {"what": what, "mode": "strong", "ranks": ranks,
                "time": {"samples": samples, "median": statistics.median(samples)},
                "setup_seconds": 1.0 + ranks, "warm_up_seconds": 0.1, "job_wall_seconds": 5.0,
                "other_load_cores": other, "load_average_before": f"{ranks}", "load_average_after": "x"}

    rounds = [job("farm", 3, [4.0, 2.0], 0.5), job("farm", 3, [3.0], None), job("farm", 3, [9.0], 1.5)]
    merged = merge_rounds(rounds)
    assert merged["time"]["samples"] == [4.0, 2.0, 3.0, 9.0]
    assert merged["time"]["median"] == 3.5 and merged["time"]["min"] == 2.0 and merged["time"]["max"] == 9.0
    assert merged["other_load_cores"] == 1.0 and len(merged["rounds"]) == 3  # None (unknown) left out
    base = merge_rounds([job("farm", 2, [6.0, 8.0], 0.0)])
    rows = scaling_table([merged, base], cores=2)
    assert [r["ranks"] for r in rows] == [2, 3] and rows[0]["baseline_ranks"] == 2
    assert rows[1]["units"] == 2 and rows[1]["speedup"] == 7.0 / 3.5 and rows[1]["efficiency"] == 7.0 / 3.5 / 2
    assert sorted(rows[1]["speedup_spread"]) == [7.0 / 9.0, 7.0 / 2.0]
    assert rows[1]["oversubscribed"] and not rows[0]["oversubscribed"]
    assert rows[1]["core_bound_efficiency"] == 1.0  # 2 workers fit 2 cores (the coordinator sleeps)

    # the same rounds on both sides: efficiency round by round, each round's medians paired
    two = [merge_rounds([job("bfs", r, [t], 0.0) for t in ts]) for r, ts in ((1, [2.0, 4.0]), (4, [1.0, 0.5]))]
    rows = scaling_table(two, cores=2)
    assert rows[1]["efficiency_per_round"] == [2.0 / 1.0 / 4, 4.0 / 0.5 / 4]
    assert rows[1]["core_bound_efficiency"] == 0.5 and rows[1]["core_bound_speedup"] == 2.0


@pytest.mark.timeout(240)
def test_tiny_run_writes_consistent_json_and_png(tmp_path):
    pytest.importorskip("matplotlib", reason="the plot needs matplotlib (the `plot` extra)")
    out, png = tmp_path / "scaling.json", tmp_path / "scaling.png"
    cmd = [sys.executable, str(SCRIPT), "--ranks", "2,1", "--repeat", "2", "--scale", "9", "--weak-base", "8",
           "--iters", "3", "--bfs-roots", "2", "--farm-tasks", "6", "--farm-tasks-per-worker", "3",
           "--task-ms", "2", "--mpiexec", mpiexec_path(), "--label", "test", "--machine-name", "testbox",
           "--out", str(out), "--plot", str(png), "--job-timeout", "60"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=230)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 20_000
    report = json.loads(out.read_text())

    m = report["machine"]
    assert 1 <= m["physical_cores"] <= m["os_cpu_count"]  # hyper-threads are not cores
    for key in ("hostname", "cpu_model", "cores", "mpi_library", "packages", "load_average"):
        assert m[key], key
    assert report["label"] == "test" and report["machine_name"] == "testbox"
    assert report["load_average_before"] and report["load_average_after"]
    assert report["config"]["ranks"] == [1, 2] and report["config"]["rounds"] == 1

    jobs = {(j["what"], j["mode"], j["ranks"]): j for j in report["jobs"]}
    assert set(jobs) == {(w, mo, r) for w in ("pagerank", "bfs", "farm") for mo in ("strong", "weak") for r in (1, 2)}
    for key, j in jobs.items():
        t = j["time"]
        assert len(t["samples"]) == 2 and t["min"] <= t["median"] <= t["max"] and t["min"] > 0, key
        assert len(j["rounds"]) == 1 and j["rounds"][0]["time"]["samples"] == t["samples"], key
        assert t["median"] == pytest.approx(sum(t["samples"]) / 2), key
        assert j["setup_seconds"] > 0 and j["job_wall_seconds"] > j["setup_seconds"], key
        assert j["load_average_before"] and j["load_average_after"], key
        assert j["other_load_cores"] is None or j["other_load_cores"] >= 0, key
    # sizes: strong fixed, weak grows with the units
    assert jobs[("pagerank", "strong", 1)]["n_edges"] == jobs[("pagerank", "strong", 2)]["n_edges"]
    assert jobs[("pagerank", "weak", 2)]["size"] == {"scale": 9, "edgefactor": 16}
    for what in ("pagerank", "bfs"):
        w1, w2 = jobs[(what, "weak", 1)], jobs[(what, "weak", 2)]
        assert w1["edges_generated_per_rank"] == w2["edges_generated_per_rank"] == 2**8 * 16
        assert 0.8 < w2["edges_per_rank"] / w1["edges_per_rank"] < 1.25  # stored: duplicates dropped
    assert jobs[("farm", "strong", 1)]["tasks"] == jobs[("farm", "strong", 2)]["tasks"] == 6
    assert jobs[("farm", "weak", 2)]["tasks"] == 3 * 1  # one worker at 2 ranks (rank 0 coordinates)
    for j in report["jobs"]:
        if j["what"] != "farm":
            assert j["numba_threads_per_rank"] == 1
            assert j["last_run"]["compute_s_max"] >= j["last_run"]["compute_s_mean"] > 0

    rows = {(r["what"], r["mode"], r["ranks"]): r for r in report["scaling"]}
    assert set(rows) == set(jobs)
    cores = m["physical_cores"]
    for (what, mode, ranks), row in rows.items():
        t1 = jobs[(what, mode, 1)]["time"]["median"]
        tr = jobs[(what, mode, ranks)]["time"]
        u = 1 if what == "farm" else ranks
        assert row["units"] == u and row["oversubscribed"] == (ranks > cores)
        if mode == "strong":
            assert row["speedup"] == pytest.approx(t1 / tr["median"])
            assert row["efficiency"] == pytest.approx(t1 / tr["median"] / u)
            assert min(row["speedup_spread"]) == pytest.approx(t1 / tr["max"])
            assert max(row["speedup_spread"]) == pytest.approx(t1 / tr["min"])
        else:
            assert row["efficiency"] == pytest.approx(t1 / tr["median"])
            assert row["scaled_speedup"] == pytest.approx(u * t1 / tr["median"])
        lo, hi = sorted(row["efficiency_spread"])
        assert lo <= row["efficiency"] <= hi
        if ranks == 1:
            assert row["efficiency"] == pytest.approx(1.0)
    for mode in ("strong", "weak"):
        farm = jobs[("farm", mode, 2)]
        cpu = farm["tasks"] * farm["task_seconds"]
        # CPU-bound tasks spin for their CPU time: the work per second of wall cannot exceed the workers
        assert 0 < farm["absolute_efficiency"]["median"] <= 1.0 + 1e-6
        assert farm["time"]["min"] >= cpu * (1 - 1e-6)
    assert "| pagerank | strong | 2" in proc.stdout and f"wrote {png}" in proc.stdout


def test_bad_arguments_give_one_clear_message():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--what", "pagerank,sort"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "pagerank, bfs, farm" in proc.stderr and "Traceback" not in proc.stderr
