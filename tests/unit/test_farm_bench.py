"""The farm benchmarks' bookkeeping: medians, ratios against the peer, targets, the table."""

from __future__ import annotations

import math

import pytest

from benchmarks.farm_bench import MEASUREMENTS, TARGETS, Samples, _summarise, check_report, default_output, format_table


def _samples() -> Samples:
    out = Samples()
    for v in (2000.0, 3000.0, 2500.0):
        out.add("noop_throughput", "mpi4py_futures", v)
    for v in (30000.0, 20000.0, 40000.0):
        out.add("noop_throughput", "farm", v)
    for v in (1e-5, 2e-5, 3e-5):
        out.add("round_trip", "bare_ping_pong", v)
    for v in (1e-3, 1e-3, 1e-3):
        out.add("round_trip", "farm", v)
    out.add("round_trip", "mpi4py_futures", None)  # not measured on this rank: ignored
    out.add("idle_coordinator_cpu", "farm", 0.001)
    return out


def test_ratios_use_medians_and_targets_say_met_or_not():
    measurements, targets = _summarise(_samples(), True, "", ["noop_throughput", "round_trip", "idle_coordinator_cpu"])
    noop = measurements["noop_throughput"]["contenders"]
    assert noop["farm"] == {"median": 30000.0, "min": 20000.0, "max": 40000.0, "samples": [30000.0, 20000.0, 40000.0]}
    assert "mpi4py_futures" not in measurements["round_trip"]["contenders"]
    by_name = {t["measurement"]: t for t in targets}
    assert set(by_name) == {"noop_throughput", "round_trip", "idle_coordinator_cpu"}
    assert by_name["noop_throughput"]["ratio"] == pytest.approx(12.0) and by_name["noop_throughput"]["met"] == "yes"
    assert by_name["round_trip"]["ratio"] == pytest.approx(50.0) and by_name["round_trip"]["met"] == "no"
    idle = by_name["idle_coordinator_cpu"]
    assert idle["ratio"] == pytest.approx(0.001) and idle["met"] == "yes"


def test_missing_farm_rows_are_not_measured_with_the_reason():
    out = Samples()
    out.add("noop_throughput", "mpi4py_futures", 2000.0)
    _, targets = _summarise(out, False, "no Farm yet", ["noop_throughput"])
    assert targets == [{"measurement": "noop_throughput", "what": TARGETS[0][5], "compares": "farm / mpi4py_futures",
                        "target": ">= 10", "ratio": None, "met": "not measured", "why": "no Farm yet"}]


def test_table_and_number_checks():
    measurements, targets = _summarise(_samples(), True, "", ["noop_throughput", "round_trip"])
    report = {
        "machine": {"hostname": "h", "cpu_model": "cpu", "cores": 2, "date": "2026-11-25T18:00:00+00:00",
                    "mpi_library": "MPICH 5"},
        "config": {"ranks": 3, "workers": 2, "repeats": 3},
        "measurements": measurements,
        "targets": targets,
    }
    table = format_table(report)
    assert "| noop_throughput (tasks/s) | farm | 30,000/s [20,000/s - 40,000/s] |" in table
    assert "| round_trip (s) | bare_ping_pong | 20 µs [10 µs - 30 µs] |" in table
    assert "| 12 | >= 10 | yes |" in table
    assert check_report(report) == []
    report["config"]["bad"] = [1.0, math.inf, 0, True]
    assert check_report(report) == [
        "report.config.bad[1]: inf", "report.config.bad[2]: 0", "report.config.bad[3]: a boolean",
    ]


def test_every_measurement_is_registered_and_the_default_output_is_dated():
    assert list(MEASUREMENTS)[:3] == ["noop_throughput", "round_trip", "array_1mb"]
    assert {t[0] for t in TARGETS} <= set(MEASUREMENTS)
    assert default_output("node1", "2026-11-25T18:00:00+00:00").name == "farm-node1-2026-11-25.json"
