"""hpcdist.metrics without MPI: aggregation arithmetic, findings on synthetic traces,
HPCDIST_SLOW parsing, the file formats and the status writer."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from hpcdist.metrics import (
    FIELDS,
    RunMetrics,
    StatusWriter,
    Timer,
    aggregate_arrays,
    farm_task_record,
    find_bound,
    find_imbalance,
    find_stragglers,
    parse_slow,
    read_metrics,
    read_status,
    slow_spec,
    slowdown,
    write_metrics,
)
from hpcdist.metrics.findings import communication_estimate, format_ranges, step_ranges
from hpcdist.metrics.slow import SlowSpec
from hpcdist.runtime.errors import InputError

C = FIELDS.index("compute_s")


def balanced_trace(p=4, s=20, compute=0.01, seed=0):
    """(P, S) compute seconds within +-5 % of each other."""
    rng = np.random.default_rng(seed)
    return compute * (1.0 + rng.uniform(-0.05, 0.05, size=(p, s)))


def metrics_from_stack(stack: np.ndarray, active=None) -> RunMetrics:
    """A RunMetrics built from per-rank records (P, S, F) with the reference arithmetic."""
    p, s, _ = stack.shape
    st = aggregate_arrays(stack)
    totals = aggregate_arrays(stack.sum(axis=1))
    rss = aggregate_arrays(np.arange(1, p + 1, dtype=float) * 2**20)
    return RunMetrics(algorithm="synthetic", ranks=p, rank=0, supersteps=np.arange(s), steps=st, totals=totals,
                      peak_rss=rss, active=np.zeros(s, dtype=np.int64) if active is None else active,
                      converged=True, seconds=float(stack[..., FIELDS.index("step_s")].max(axis=0).sum()))


def records(compute: np.ndarray, exchange: float = 1e-4, reduce: float = 1e-4) -> np.ndarray:
    """Per-rank records (P, S, F) with the given compute and a BSP-consistent reduce (waits for the slowest)."""
    p, s = compute.shape
    out = np.zeros((p, s, len(FIELDS)))
    out[..., C] = compute
    out[..., FIELDS.index("exchange_s")] = exchange
    out[..., FIELDS.index("reduce_s")] = reduce + (compute.max(axis=0) - compute)  # idle lands in the reduce
    out[..., FIELDS.index("step_s")] = out[..., :3].sum(axis=-1)
    out[..., FIELDS.index("bytes_sent")] = 1000 * (np.arange(p)[:, None] + 1)
    return out


# -- Timer -------------------------------------------------------------------------------

def test_timer_accumulates_spans_per_phase():
    t = Timer()
    for _ in range(3):
        with t.span("compute"):
            time.sleep(0.002)
    with t.span("exchange"):
        pass
    assert t.counts == {"compute": 3, "exchange": 1}
    assert 0.006 <= t.get("compute") < 0.5 and t.get("exchange") < t.get("compute")
    assert t.get("missing") == 0.0
    with pytest.raises(RuntimeError):
        with t.span("reduce"):
            raise RuntimeError("boom")
    assert t.counts["reduce"] == 1  # a failing block is still timed
    assert set(t.reset()) == {"compute", "exchange", "reduce"} and t.totals == {}


# -- aggregation -------------------------------------------------------------------------

def test_aggregate_arrays_min_mean_max_and_the_ranks_holding_them():
    stack = np.array([[1.0, 5.0, 2.0], [3.0, 5.0, 0.5], [2.0, 1.0, 2.0]])  # 3 ranks x 3 values
    st = aggregate_arrays(stack)
    assert st.min.tolist() == [1.0, 1.0, 0.5] and st.max.tolist() == [3.0, 5.0, 2.0]
    assert np.allclose(st.mean, [2.0, 11 / 3, 1.5]) and st.sum.tolist() == [6.0, 11.0, 4.5]
    assert st.argmax.tolist() == [1, 0, 0]  # ties go to the lowest rank, as MPI_MAXLOC
    assert st.argmin.tolist() == [0, 2, 1]


def test_run_metrics_views_idle_imbalance_and_communication():
    compute = balanced_trace(p=3, s=5)
    compute[1, 2] = 0.05
    m = metrics_from_stack(records(compute))
    c = m.field("compute_s")
    assert np.allclose(c.max, compute.max(axis=0)) and np.allclose(c.mean, compute.mean(axis=0))
    assert c.argmax[2] == 1
    assert np.allclose(m.imbalance, compute.max(axis=0) / compute.mean(axis=0))
    idle = m.idle()
    assert np.allclose(idle.max, compute.max(axis=0) - compute.min(axis=0))
    assert np.allclose(idle.mean, compute.max(axis=0) - compute.mean(axis=0)) and idle.argmax[2] == c.argmin[2]
    # mean step time - slowest compute = exchange + pure reduce cost: the idle wait is not communication
    assert np.allclose(m.communication(), 2e-4)
    t = m.total("compute_s")
    assert t["max"] == pytest.approx(compute.sum(axis=1).max()) and t["argmax"] == int(compute.sum(axis=1).argmax())
    assert m.imbalance_overall == pytest.approx(compute.sum(axis=1).max() / compute.sum(axis=1).mean())
    recs = list(m.superstep_records())
    assert [r["superstep"] for r in recs] == list(range(5))
    assert recs[2]["compute_s"]["argmax"] == 1 and recs[2]["bound"] == "compute"
    assert recs[0]["bytes_sent"]["sum"] == 1000 + 2000 + 3000 and recs[0]["bytes_sent"]["argmax"] == 2


# -- findings ----------------------------------------------------------------------------

def test_straggler_found_with_its_rank_and_supersteps():
    compute = balanced_trace(p=4, s=20)
    compute[3, 4:18] *= 1.9  # rank 3, supersteps 4-17
    stack = records(compute)
    m = metrics_from_stack(stack)
    found = [f for f in m.findings() if f["kind"] == "straggler"]
    assert len(found) == 1
    f = found[0]
    assert f["severity"] == "warning"
    assert f["evidence"]["rank"] == 3 and f["evidence"]["supersteps"] == [4, 17] and f["evidence"]["count"] == 14
    ratio = compute[3, 4:18] / compute[:, 4:18].mean(axis=0)
    assert f["evidence"]["ratio"] == pytest.approx(ratio.mean())
    assert f["message"] == f"rank 3 is a straggler: compute {ratio.mean():.1f}x the mean in supersteps 4-17"
    assert set(f) == {"kind", "severity", "message", "evidence"}
    json.dumps(f)  # plain JSON types only


def test_no_straggler_on_a_balanced_trace_nor_on_short_or_tiny_spikes():
    compute = balanced_trace(p=4, s=30)
    m = metrics_from_stack(records(compute))
    assert not [f for f in m.findings() if f["kind"] == "straggler"]
    spiky = compute.copy()
    spiky[2, 5:7] *= 3.0  # two supersteps only: below K = 3
    spiky[1, 10:20] += 5e-5  # 10 supersteps, 0.5 % over: below both thresholds
    c = aggregate_arrays(spiky)
    assert find_stragglers(c.max, c.mean, c.argmax) == []
    assert len(find_stragglers(c.max, c.mean, c.argmax, consecutive=2)) == 1
    tiny = np.full((2, 10), 1e-5)
    tiny[1] *= 3.0  # 3x the mean, but 10 microseconds: scheduler noise, not a straggler
    t = aggregate_arrays(tiny)
    assert find_stragglers(t.max, t.mean, t.argmax) == []
    assert find_stragglers(t.max, t.mean, t.argmax, min_excess_s=0.0)[0]["evidence"]["rank"] == 1


def test_two_stragglers_in_turn_and_the_threshold_parameter():
    compute = np.full((3, 12), 0.01)
    compute[0, 0:4] *= 2.0  # 1.5x the mean
    compute[2, 6:12] *= 1.45  # 1.26x the mean
    c = aggregate_arrays(compute)
    found = find_stragglers(c.max, c.mean, c.argmax, np.arange(100, 112))
    assert [(f["evidence"]["rank"], f["evidence"]["supersteps"]) for f in found] == [(0, [100, 103]), (2, [106, 111])]
    assert [f["evidence"]["rank"] for f in find_stragglers(c.max, c.mean, c.argmax, threshold=0.3)] == [0]


def test_communication_bound_detection():
    p, s = 4, 10
    compute = balanced_trace(p=p, s=s, compute=0.001)
    comm_heavy = metrics_from_stack(records(compute, exchange=0.004, reduce=0.001))
    f = [x for x in comm_heavy.findings() if x["kind"] in ("communication_bound", "compute_bound")]
    assert len(f) == 1 and f[0]["kind"] == "communication_bound" and f[0]["severity"] == "warning"
    assert f[0]["evidence"]["communication_bound"] == [[0, 9]] and f[0]["evidence"]["fraction"] == 1.0
    assert f[0]["message"].startswith("10 of 10 supersteps are communication-bound")
    # A straggler makes the others wait in the reduce; that wait is not communication.
    straggling = compute.copy()
    straggling[0] *= 10.0
    g = [x for x in metrics_from_stack(records(straggling)).findings() if x["kind"].endswith("_bound")]
    assert g[0]["kind"] == "compute_bound" and g[0]["evidence"]["count"] == 0
    # mixed: supersteps 3-5 communication-bound
    cmax = np.full(8, 1.0)
    step_mean = np.full(8, 1.5)
    step_mean[3:6] = 3.0
    h = find_bound(cmax, step_mean)[0]
    assert h["kind"] == "compute_bound" and h["evidence"]["communication_bound"] == [[3, 5]]
    assert np.allclose(communication_estimate(step_mean, cmax), step_mean - 1.0)
    assert find_bound(np.array([]), np.array([])) == []


def test_imbalance_factor_overall_and_per_superstep():
    cmax = np.array([2.0, 1.0, 3.0])
    cmean = np.array([1.0, 1.0, 1.5])
    f = find_imbalance(cmax, cmean, total_max=5.0, total_mean=3.5)[0]
    assert f["kind"] == "imbalance" and f["severity"] == "warning"
    assert f["evidence"]["overall"] == pytest.approx(5 / 3.5) and f["evidence"]["worst_superstep"] == 0
    assert f["evidence"]["per_superstep_mean"] == pytest.approx((2 + 1 + 2) / 3)
    ok = find_imbalance(np.ones(3), np.ones(3), 3.0, 3.0)[0]
    assert ok["severity"] == "info" and ok["evidence"]["overall"] == 1.0
    zero = find_imbalance(np.zeros(2), np.zeros(2), 0.0, 0.0)[0]  # nothing computed: balanced, not NaN
    assert zero["evidence"]["overall"] == 1.0


def test_step_ranges_and_their_text():
    assert step_ranges([9, 1, 2, 3, 7, 10]) == [[1, 3], [7, 7], [9, 10]]
    assert format_ranges([[1, 3], [7, 7]]) == "1-3, 7"
    assert format_ranges([[i, i] for i in range(0, 20, 2)], limit=2) == "0, 2, ..."


# -- HPCDIST_SLOW ------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("rank:3,factor:2", SlowSpec(3, 2.0)),
    (" factor: 1.5 , rank: 0 ", SlowSpec(0, 1.5)),
    ("RANK:1,FACTOR:4", SlowSpec(1, 4.0)),
    ("", None),
    (None, None),
])
def test_parse_slow(text, expected):
    assert parse_slow(text) == expected


@pytest.mark.parametrize("text", ["rank:1", "factor:2", "rank:1,factor:2,rank:3", "rank=1,factor=2", "rank:x,factor:2",
                                  "rank:-1,factor:2", "rank:1,factor:0.5", "rank:1,factor:nan", "rank:1,speed:2"])
def test_parse_slow_refuses_bad_specs(text):
    with pytest.raises(InputError, match="HPCDIST_SLOW"):
        parse_slow(text)


def test_slow_spec_from_environment_and_slowdown_only_on_its_rank():
    assert slow_spec({"HPCDIST_SLOW": "rank:1,factor:3"}) == SlowSpec(1, 3.0)
    assert slow_spec({}) is None
    spec = SlowSpec(1, 3.0)
    assert slowdown(0.01, spec, rank=0) == 0.0
    t0 = time.perf_counter()
    assert slowdown(0.01, spec, rank=1) == pytest.approx(0.02)
    assert time.perf_counter() - t0 >= 0.019
    assert slowdown(0.01, None, rank=1) == 0.0


def test_slow_hook_wraps_compute_on_the_slow_rank_only():
    from hpcdist.metrics import slow_hook

    class FakeComm:
        def __init__(self, rank):
            self.rank = rank

        def Get_rank(self):
            return self.rank

    class Program:
        def compute(self, step):
            time.sleep(0.002)
            return step

    calls = []
    inner = lambda step, prog: calls.append(step)  # noqa: E731
    assert slow_hook(FakeComm(0), SlowSpec(1, 4.0), inner=inner) is inner  # not the slow rank: nothing added
    from mpi4py import MPI

    assert slow_hook(MPI.COMM_SELF, None, environ={}) is None
    assert slow_hook(MPI.COMM_SELF, None, environ={"HPCDIST_SLOW": "rank:1,factor:2"}) is None  # rank 0 here
    assert slow_hook(MPI.COMM_SELF, None, environ={"HPCDIST_SLOW": "rank:0,factor:2"}) is not None
    with pytest.raises(InputError) as info:
        slow_hook(MPI.COMM_SELF, None, environ={"HPCDIST_SLOW": "rank:0"})
    assert info.value.collective
    hook = slow_hook(FakeComm(1), SlowSpec(1, 4.0), inner=inner)
    prog = Program()
    hook(0, prog)
    t0 = time.perf_counter()
    assert prog.compute(1) == 1
    assert time.perf_counter() - t0 >= 4 * 0.002 * 0.9  # 1x compute + 3x sleep
    hook(1, prog)  # wrapped once, not twice
    t0 = time.perf_counter()
    prog.compute(2)
    assert time.perf_counter() - t0 < 4 * 0.002 * 3
    assert calls == [0, 1]


# -- files -------------------------------------------------------------------------------

def _synthetic() -> RunMetrics:
    compute = balanced_trace(p=4, s=8)
    compute[2, 1:7] *= 2.0
    return metrics_from_stack(records(compute), active=np.arange(8, 0, -1))


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_write_and_read_metrics_round_trip(tmp_path, suffix):
    m = _synthetic()
    tasks = [farm_task_record(i, fn="f", rank=1 + i % 2, submitted=0.0, started=0.1 * i, finished=0.1 * i + 0.05)
             for i in range(5)]
    path = tmp_path / f"run{suffix}"
    write_metrics(path, m, farm_tasks=tasks)
    doc = read_metrics(path)
    assert doc["header"]["format"] == "hpcdist-metrics" and doc["header"]["ranks"] == 4
    assert doc["header"]["fields"] == list(FIELDS) and doc["header"]["supersteps"] == 8
    assert [r["active"] for r in doc["supersteps"]] == list(range(8, 0, -1))
    assert doc["supersteps"][3]["compute_s"]["argmax"] == 2
    assert [f["kind"] for f in doc["findings"]][0] == "straggler"
    assert doc["summary"]["peak_rss_bytes"]["argmax"] == 3
    assert len(doc["farm_tasks"]) == 5 and doc["farm_tasks"][0]["type"] == "farm_task"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary left behind
    if suffix == ".jsonl":
        kinds = [json.loads(line)["type"] for line in path.read_text().splitlines()]
        assert kinds[0] == "header" and kinds[1:9] == ["superstep"] * 8 and kinds.count("summary") == 1


def test_only_rank_zero_writes_and_bad_paths_are_input_errors(tmp_path):
    m = _synthetic()
    m.rank = 1
    write_metrics(tmp_path / "x.json", m)
    assert not (tmp_path / "x.json").exists()
    m.rank = 0
    with pytest.raises(InputError, match=r"\.json .*\.jsonl"):
        write_metrics(tmp_path / "x.csv", m)
    with pytest.raises(InputError, match="cannot write metrics"):
        write_metrics(tmp_path / "no" / "such" / "x.json", m)


def test_check_metrics_path_before_a_run(tmp_path):
    from hpcdist.metrics import check_metrics_path

    check_metrics_path(tmp_path / "ok.json")
    check_metrics_path(tmp_path / "ok.jsonl")
    with pytest.raises(InputError, match="must end in .json"):
        check_metrics_path(tmp_path / "m.yaml")
    with pytest.raises(InputError, match="directory does not exist"):
        check_metrics_path(tmp_path / "nope" / "m.json")


def test_read_metrics_errors(tmp_path):
    with pytest.raises(InputError, match="no such metrics file"):
        read_metrics(tmp_path / "missing.json")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "header", "format": "hpcdist-metrics"}\n{oops\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: not valid JSON"):
        read_metrics(bad)
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    with pytest.raises(InputError, match="not an hpcdist metrics file"):
        read_metrics(other)


def test_non_finite_values_are_written_as_null(tmp_path):
    m = _synthetic()
    m.seconds = float("nan")
    path = tmp_path / "m.json"
    write_metrics(path, m)
    assert read_metrics(path)["header"]["seconds"] is None


# -- status ------------------------------------------------------------------------------

def test_status_writer_throttles_to_one_write_per_interval(tmp_path):
    now = [100.0]
    w = StatusWriter(tmp_path / "run", what="pagerank", clock=lambda: now[0])
    assert w.update(done=1, total=10, rate=5.0, slowest_rank=2)
    st = read_status(tmp_path / "run")
    assert st["state"] == "running" and st["progress"] == 0.1 and st["slowest_rank"] == 2 and st["memory"] > 0
    now[0] += 0.5
    assert not w.update(done=2, total=10)  # within the second: skipped, but remembered
    assert read_status(tmp_path / "run")["done"] == 1
    now[0] += 0.6
    assert w.update(done=3, total=10)
    assert read_status(tmp_path / "run")["done"] == 3
    assert w.update(done=4, total=10, force=True) and w.writes == 3
    w.finish()
    st = read_status(tmp_path / "run")
    assert st["state"] == "finished" and st["progress"] == 1.0 and st["done"] == 10


def test_status_writer_is_silent_off_rank_zero_and_read_status_errors(tmp_path):
    class Rank1:
        def Get_rank(self):
            return 1

        def Get_size(self):
            return 2

    w = StatusWriter(tmp_path / "r1", Rank1())
    assert not w.update(progress=0.5, force=True)
    w.finish()
    assert not (tmp_path / "r1").exists()
    with pytest.raises(InputError, match="no such run directory"):
        read_status(tmp_path / "r1")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no status.json"):
        read_status(tmp_path / "empty")
    (tmp_path / "empty" / "status.json").write_text("[1]")
    with pytest.raises(InputError, match="not an hpcdist status file"):
        read_status(tmp_path / "empty")


def test_status_hook_reports_progress_and_rate_and_chains(tmp_path):
    from hpcdist.metrics import status_hook

    w = StatusWriter(tmp_path / "run", what="bfs", min_interval=0.0)
    seen = []
    hook = status_hook(w, total=8, inner=lambda step, prog: seen.append(step))
    for step in range(3):
        time.sleep(0.01)
        hook(step, None)
    st = read_status(tmp_path / "run")
    assert st["done"] == 3 and st["total"] == 8 and st["progress"] == pytest.approx(3 / 8)
    assert 0 < st["rate"] < 200  # two supersteps in >= 20 ms
    assert seen == [0, 1, 2] and st["what"] == "bfs" and st["unit"] == "supersteps/s"
