"""``benchmarks/models_bench.py --quick`` runs under ``mpiexec -n 3`` and writes a sound JSON report."""

from __future__ import annotations

import json
import math
import sys

import pytest

from tests.conftest import ROOT, launch

pytestmark = pytest.mark.launch


def test_models_bench_quick_writes_every_measurement(tmp_path):
    out = tmp_path / "models.json"
    rc, text, _ = launch(3, sys.executable, str(ROOT / "benchmarks" / "models_bench.py"), "--quick", "--repeats", "1",
                         "--out", str(out), timeout=180)
    assert rc == 0, text
    report = json.loads(out.read_text())
    assert report["benchmark"] == "models" and "cpu_model" in report["machine"]
    p = report["predict"]
    assert set(p["rows_per_s"]) == {"single_process_loop", "ceiling_2_loops", "farm_1_worker", "farm_2_workers",
                                    "farm_2_workers_auto", "futures_1_worker", "futures_2_workers"}
    assert all(v["median"] > 0 and math.isfinite(v["median"]) for v in p["rows_per_s"].values())
    assert all(r > 0 for r in p["ratios"].values())
    assert set(p["ratios_per_repeat"]) == set(p["ratios"])
    # The ratio of medians agrees with the medians it comes from.
    loop, farm = p["seconds"]["single_process_loop"]["median"], p["seconds"]["farm_2_workers"]["median"]
    assert p["ratios"]["farm_2_workers_vs_single_process"] == pytest.approx(loop / farm)
    assert p["farm_2_workers_coordinator_cpu_s"]["median"] > 0
    # Every batch ran, on the two workers (the warm-up reached both; the timed run spread over both or one).
    assert [sum(d.values()) for d in p["farm_2_workers_batches_per_worker"]] == [p["n_batches"]]
    assert set(p["farm_2_workers_batches_per_worker"][0]) <= {"1", "2"}
    assert "loadavg_1min_start_end" in report["load"]
    c = report["cache"]
    for strategy in ("affinity", "least_loaded", "round_robin"):
        assert c[strategy]["hits"] + c[strategy]["loads"] == 2 * c["requests"]  # two batches per request
    assert c["affinity"]["loads"] == 4  # one load per model: each goes back to its holder
    assert c["affinity"]["hit_rate"] >= c["least_loaded"]["hit_rate"]
    t = report["train"]
    assert set(t["seconds_per_step"]) == {"single_process", "2_ranks", "3_ranks"}
    assert "cache hit rate" in text and "wrote" in text


def test_models_bench_runs_only_the_parts_asked_for(tmp_path):
    out = tmp_path / "models.json"
    rc, text, _ = launch(3, sys.executable, str(ROOT / "benchmarks" / "models_bench.py"), "--quick", "--repeats", "1",
                         "--parts", "predict", "--out", str(out), timeout=180)
    assert rc == 0, text
    report = json.loads(out.read_text())
    assert "predict" in report and "cache" not in report and "train" not in report
    assert report["size"] == "quick" and report["predict"]["batch_size"] == 128
