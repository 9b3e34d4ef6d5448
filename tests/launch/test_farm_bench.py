"""``hpcdist farm-bench`` runs the farm's benchmarks in one job and writes a sound JSON report."""

from __future__ import annotations

import json
import math

import pytest

from tests.conftest import hpcdist_cmd, launch

pytestmark = pytest.mark.launch

MEASUREMENTS = {
    "noop_throughput": {"bare_mpi", "mpi4py_futures"},
    "round_trip": {"bare_ping_pong", "mpi4py_futures"},
    "array_1mb": {"bare_pickle5_oob", "bare_pickle5_inband", "mpi4py_futures"},
    "auto_batching": set(),
    "efficiency_10ms": {"bare_mpi"},
    "idle_coordinator_cpu": {"mpi4py_futures"},
    "journal_record_many": {"1_result", "100_results", "10000_results", "1mb_array", "floor_write_fsync_rename"},
}
FARM_CONTENDERS = {
    "noop_throughput": {"farm"},
    "round_trip": {"farm"},
    "array_1mb": {"farm"},
    "auto_batching": {"farm_auto", "farm_best_fixed"},
    "efficiency_10ms": {"farm"},
    "idle_coordinator_cpu": {"farm"},
    "journal_record_many": set(),
}


def _numbers(node, where="report"):
    if isinstance(node, bool):
        yield where, node
    elif isinstance(node, (int, float)):
        yield where, node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from _numbers(v, f"{where}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _numbers(v, f"{where}[{i}]")


@pytest.mark.timeout(180)
def test_quick_run_writes_a_complete_report(tmp_path):
    from benchmarks.farm_bench import farm_class

    output = tmp_path / "farm.json"
    rc, out, _ = launch(3, *hpcdist_cmd(), "farm-bench", "--quick", "--output", str(output), timeout=170)
    assert rc == 0, out
    assert out.count("| measurement | contender |") == 1, out  # the table, from rank 0 only
    report = json.loads(output.read_text())

    machine = report["machine"]
    for key in ("hostname", "date", "cpu_model", "cores", "mpi_library", "mpi_vendor", "python", "packages"):
        assert machine[key], key
    assert "mpi4py" in machine["packages"] and "numpy" in machine["packages"]
    assert report["config"]["ranks"] == 3 and report["config"]["workers"] == 2 and report["config"]["repeats"] == 1

    farm_exists = farm_class() is not None
    assert set(report["measurements"]) == set(MEASUREMENTS)
    for name, peers in MEASUREMENTS.items():
        entry = report["measurements"][name]
        assert entry["unit"] and entry["better"] in ("higher", "lower")
        expected = peers | (FARM_CONTENDERS[name] if farm_exists else set())
        assert set(entry["contenders"]) == expected, name
        for contender, stats in entry["contenders"].items():
            assert stats["min"] <= stats["median"] <= stats["max"], (name, contender)
            assert len(stats["samples"]) == 1
    assert [t["measurement"] for t in report["targets"]] == list(MEASUREMENTS)[:-1]  # the journal has no target
    for target in report["targets"]:
        assert target["met"] in (("yes", "no") if farm_exists else ("not measured",)), target
    if not farm_exists:
        assert "Farm" in report["not_measured"]["farm"]

    numbers = list(_numbers(report))
    assert len(numbers) > 40
    bad = [(where, x) for where, x in numbers if isinstance(x, bool) or not (math.isfinite(x) and x > 0)]
    assert not bad, bad


@pytest.mark.parametrize(
    "n, args, message",
    [
        (1, [], "farm-bench needs a coordinator and workers"),
        (2, ["--only", "noop_throughput,bogus"], "--only: unknown measurement bogus"),
        (2, ["--repeats", "0"], "--repeats must be at least 1"),
    ],
)
def test_bad_use_is_refused_with_one_message(n, args, message):
    rc, out, _ = launch(n, *hpcdist_cmd(), "farm-bench", "--quick", *args, timeout=60)
    assert rc == 2, out
    assert out.count(message) == 1 and "Traceback" not in out, out


@pytest.mark.timeout(120)
def test_only_runs_the_named_measurements(tmp_path):
    output = tmp_path / "only.json"
    rc, out, _ = launch(2, *hpcdist_cmd(), "farm-bench", "--quick", "--only", "round_trip,journal_record_many",
                        "--output", str(output), timeout=110)
    assert rc == 0, out
    report = json.loads(output.read_text())
    assert report["config"]["measurements_run"] == ["round_trip", "journal_record_many"]
    assert list(report["measurements"]) == ["round_trip", "journal_record_many"]
    assert [t["measurement"] for t in report["targets"]] == ["round_trip"]
    assert report["measurements"]["round_trip"]["contenders"]["bare_ping_pong"]["median"] > 0
