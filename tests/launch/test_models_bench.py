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
    assert set(p["rows_per_s"]) == {"single_process_loop", "farm_1_worker", "farm_2_workers", "futures_1_worker",
                                    "futures_2_workers"}
    assert all(v["median"] > 0 and math.isfinite(v["median"]) for v in p["rows_per_s"].values())
    assert all(r > 0 for r in p["ratios"].values())
    c = report["cache"]
    for strategy in ("affinity", "least_loaded", "round_robin"):
        assert c[strategy]["hits"] + c[strategy]["loads"] == 2 * c["requests"]  # two batches per request
    assert c["affinity"]["loads"] == 4  # one load per model: each goes back to its holder
    assert c["affinity"]["hit_rate"] >= c["least_loaded"]["hit_rate"]
    t = report["train"]
    assert set(t["seconds_per_step"]) == {"single_process", "2_ranks", "3_ranks"}
    assert "cache hit rate" in text and "wrote" in text
