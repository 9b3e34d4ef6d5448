"""The farm's metrics, without MPI: streaming counters, load spread, the drift finding, the file."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hpcdist.farm.requirements import Capabilities
from hpcdist.farm.scheduler import (
    Dispatch,
    Heartbeat,
    Resolve,
    Results,
    Scheduler,
    SetStrategy,
    Submit,
    Tick,
    WorkerJoined,
    WorkerLost,
)
from hpcdist.farm.strategies import Strategy, make_strategy
from hpcdist.farm.tasks import Task, TaskStatus
from hpcdist.metrics.farm import (
    MAX_BUCKETS,
    EwmaSamples,
    FnCounter,
    LogHistogram,
    Throughput,
    farm_findings,
    load_spread,
)
from hpcdist.metrics.findings import find_drift
from hpcdist.metrics.io import read_metrics, write_metrics
from hpcdist.metrics.status import StatusWriter, read_status


# ----------------------------------------------------------------- streaming counters
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_histogram_quantiles_match_numpy_within_a_bucket(seed):
    rng = np.random.default_rng(seed)
    x = rng.lognormal(mean=-6.0, sigma=1.5, size=20_000)
    h = LogHistogram()
    for v in x:
        h.add(float(v))
    assert h.count == x.size
    assert h.sum == pytest.approx(x.sum())
    assert h.min == x.min() and h.max == x.max()
    for q in (0.01, 0.1, 0.5, 0.9, 0.99):
        want = np.quantile(x, q, method="lower")
        # half a bucket of 1/8 octave: within 2**(1/16) - 1 = 4.4 %, plus the quantile's own step
        assert h.quantile(q) == pytest.approx(want, rel=0.06), q
    assert h.quantile(0.0) >= h.min and h.quantile(1.0) <= h.max
    # bounded memory: at most 8 buckets per octave spanned
    octaves = math.log2(x.max() / x.min()) + 1
    assert len(h.buckets) <= 8 * (octaves + 1)


def test_histogram_buckets_hold_their_values_and_merge_and_round_trip():
    rng = np.random.default_rng(3)
    a, b = LogHistogram(), LogHistogram()
    both = LogHistogram()
    for v in rng.uniform(1e-6, 10.0, 2000).tolist():
        lo, hi = LogHistogram.bounds(_index(v))
        assert lo <= v < hi
        a.add(v)
        both.add(v)
    for v in rng.uniform(1e-3, 1.0, 500).tolist():
        b.add(v)
        both.add(v)
    b.add(0.0)
    both.add(0.0)
    merged = LogHistogram().merge(a).merge(b)
    assert merged.buckets == both.buckets
    assert merged.count == both.count and merged.zeros == 1 and merged.sum == pytest.approx(both.sum)
    assert (merged.min, merged.max) == (both.min, both.max)
    back = LogHistogram.from_dict(merged.to_dict())
    assert back.buckets == merged.buckets and back.count == merged.count and back.zeros == merged.zeros
    assert back.quantile(0.5) == merged.quantile(0.5)
    assert LogHistogram().quantile(0.5) is None


def _index(v):
    m, e = math.frexp(v)
    return e * 8 + int((m - 0.5) * 16)


def test_fn_counter_is_a_histogram_plus_ewma():
    c, h = FnCounter(), LogHistogram()
    xs = [0.01, 0.02, 0.005, 0.04, 0.0]
    ewma = None
    for i, x in enumerate(xs):
        c.add(x, 0.2)
        c.errors += i == 2
        h.add(x)
        ewma = x if ewma is None else 0.8 * ewma + 0.2 * x
    assert c.tasks == 5 and c.errors == 1 and c.busy_s == pytest.approx(sum(xs))
    assert c.ewma_s == pytest.approx(ewma)
    assert c.hist.to_dict() == h.to_dict()


def test_throughput_doubles_its_buckets_and_keeps_every_task():
    tp = Throughput(100.0, bucket_s=0.01, max_buckets=16)
    times = 100.0 + 0.01 * np.arange(1001) + 0.003  # never on a bucket edge
    for t in times:
        tp.add(float(t))
    assert sum(tp.counts) == 1001
    assert len(tp.counts) <= 16
    assert tp.bucket_s == pytest.approx(0.01 * 2 ** math.ceil(math.log2(10.0 / 0.01 / 16 + 1e-9)))
    # counts per bucket match a histogram of the times at the final width
    edges = 100.0 + tp.bucket_s * np.arange(len(tp.counts) + 1)
    want, _ = np.histogram(times, bins=edges)
    want[-1] += int((times >= edges[-1]).sum())
    assert list(want) == tp.counts
    assert tp.rates() == pytest.approx([c / tp.bucket_s for c in tp.counts])
    d = tp.to_dict(end=100.0 + 15.5 * tp.bucket_s)
    assert len(d["counts"]) == 16 and d["total"] == 1001


def test_throughput_default_bound():
    tp = Throughput(0.0)
    for i in range(100_000):
        tp.add(i * 0.01)  # 1000 s
    assert len(tp.counts) <= MAX_BUCKETS and sum(tp.counts) == 100_000


def test_ewma_samples_are_bounded():
    es = EwmaSamples(0.0, interval_s=0.1, max_samples=20)
    now = 0.0
    for i in range(1000):
        now += 0.1
        if es.due(now):
            es.sample(now, {"f": {1: 0.01, 2: 0.02 + i}})
    assert len(es.times) < 20
    s = es.series("f")
    assert s["ranks"] == [1, 2] and len(s["t"]) == len(es.times) and s["t"] == sorted(s["t"])


# ---------------------------------------------------------------------- load spread
def test_load_spread_against_numpy():
    tasks = {1: 10, 2: 30, 3: 20, 4: 0}
    busy = {1: 1.0, 2: 5.0, 3: 2.0, 4: 0.0}
    ls = load_spread(tasks, busy)
    t, b = np.array(list(tasks.values()), float), np.array(list(busy.values()), float)
    assert ls["workers"] == 4
    assert ls["imbalance_tasks"] == pytest.approx(t.max() / t.mean())
    assert ls["imbalance_busy"] == pytest.approx(b.max() / b.mean())
    assert ls["busiest"] == 2 and ls["least_busy"] == 4
    assert sum(ls["share"].values()) == pytest.approx(1.0)
    assert ls["share"]["2"] == pytest.approx(5.0 / 8.0)
    even = load_spread({1: 5, 2: 5}, {1: 0.0, 2: 0.0})
    assert even["imbalance_busy"] == 1.0 and even["imbalance_tasks"] == 1.0


# ---------------------------------------------------------------------- drift finding
def _trace(n=40, slow_rank_col=1, start=10, stop=30, factor=2.0, noise=0.05, seed=0, workers=4, base=0.01):
    rng = np.random.default_rng(seed)
    ewma = base * (1 + noise * rng.standard_normal((n, workers)))
    ewma[start:stop, slow_rank_col] *= factor
    t = 0.5 * np.arange(n)
    return t, ewma.tolist()


def test_drift_found_for_the_right_worker_and_span():
    t, ewma = _trace()
    ranks = [1, 2, 3, 4]
    found = find_drift(t, ewma, ranks, fn="mod.f")
    assert len(found) == 1
    f = found[0]
    assert f["kind"] == "farm_drift" and f["severity"] == "warning"
    ev = f["evidence"]
    assert ev["rank"] == 2 and ev["fn"] == "mod.f"
    assert ev["t"] == [t[10], t[29]] and ev["samples"] == 20
    assert ev["ratio"] == pytest.approx(2.0, rel=0.15)
    assert "worker 2" in f["message"] and "mod.f" in f["message"] and "\n" not in f["message"]


def test_no_drift_in_noise_short_runs_or_tiny_tasks():
    t, ewma = _trace(factor=1.0, noise=0.1)
    assert find_drift(t, ewma, [1, 2, 3, 4]) == []
    t, ewma = _trace(start=10, stop=12)  # two samples: not sustained
    assert find_drift(t, ewma, [1, 2, 3, 4]) == []
    assert find_drift(t, ewma, [1, 2, 3, 4], consecutive=2) != []
    t, ewma = _trace(base=1e-6)  # 2x of a microsecond: below min_excess_s
    assert find_drift(t, ewma, [1, 2, 3, 4]) == []
    t, ewma = _trace()
    assert find_drift(t, ewma, [1, 2, 3, 4], min_span_s=20.0) == []  # 9.5 s of drift only


def test_drift_handles_unknown_values_and_lone_workers():
    t, ewma = _trace(workers=2)
    ewma = [list(r) for r in ewma]
    found = find_drift(t, ewma, [5, 6])
    assert [f["evidence"]["rank"] for f in found] == [6]
    for r in ewma[15:17]:
        r[1] = None  # the slow worker's EWMA unknown for two samples: the run is split in two
    spans = [f["evidence"]["t"] for f in find_drift(t, ewma, [5, 6])]
    assert spans == [[t[10], t[14]], [t[17], t[29]]]
    assert find_drift(t, [[r[0]] for r in ewma], [5]) == []
    assert find_drift([], [], [1, 2]) == []


# ------------------------------------------------------------ the scheduler's counters
def _sched(n_workers=3, strategy=None):
    s = Scheduler(make_strategy(strategy or "least_loaded"), heartbeat_timeout=1e9, backoff=0.0, max_in_flight=2)
    for r in range(1, n_workers + 1):
        s.handle(WorkerJoined(r, Capabilities(rank=r, cores=1), 10.0))
    return s


def _drive(s, tasks, elapsed_of, now=10.0, fail=()):
    """Run every task to its end: answer each dispatch with results; ``fail``: ids that raise once."""
    failed = set()
    actions = s.handle_many([Submit(t, now) for t in tasks])
    resolved = []
    placed = {}
    while True:
        dispatched = [a for a in actions if isinstance(a, Dispatch)]
        resolved += [a for a in actions if isinstance(a, Resolve)]
        if not dispatched:
            break
        now += 0.01
        events = []
        for a in dispatched:
            outs = []
            for t in a.tasks:
                placed.setdefault(t.id, []).append(a.rank)
                if t.id in fail and t.id not in failed:
                    failed.add(t.id)
                    outs.append((t.id, "error", ValueError("x"), elapsed_of(a.rank)))
                else:
                    outs.append((t.id, "ok", t.id, elapsed_of(a.rank)))
            events.append(Results(a.rank, outs, now))
        events.append(Tick(now))
        actions = s.handle_many(events)
    return resolved, placed, now


def test_scheduler_counts_every_task_and_retry_cause():
    s = _sched()
    tasks = [Task(i, None, fn_name="m.f" if i % 2 else "m.g", retries=1) for i in range(200)]
    speed = {1: 0.001, 2: 0.002, 3: 0.004}
    resolved, placed, now = _drive(s, tasks, speed.get, fail={3, 4, 5})
    assert len(resolved) == 200 and all(r.status == TaskStatus.COMPLETED for r in resolved)
    doc = s.metrics(now)
    summ = doc["summary"]
    assert summ["submitted"] == 200 and summ["completed"] == 200
    assert summ["retries"] == {"error": 3}
    runs = sum(len(v) for v in placed.values())
    assert runs == 203
    assert sum(w["tasks"] for w in doc["workers"]) == runs
    assert sum(f["tasks"] for f in doc["functions"]) == runs
    assert sum(w["errors"] for w in doc["workers"]) == 3
    for w in doc["workers"]:
        n = sum(1 for ranks in placed.values() for r in ranks if r == w["rank"])
        assert w["tasks"] == n
        assert w["busy_s"] == pytest.approx(n * speed[w["rank"]])
        assert w["idle_s"] == pytest.approx(w["wall_s"] - w["busy_s"])
        assert w["ewma_s"] == pytest.approx(speed[w["rank"]])
        assert w["task_time"]["p50"] == pytest.approx(speed[w["rank"]], rel=0.05)
    fns = {f["fn"]: f for f in doc["functions"]}
    assert fns["m.f"]["retries"] == {"error": 2} and fns["m.g"]["retries"] == {"error": 1}  # ids 3, 5 and 4
    assert doc["throughput"]["total"] == 200
    load = summ["load"]
    busy = np.array([w["busy_s"] for w in doc["workers"]])
    assert load["imbalance_busy"] == pytest.approx(busy.max() / busy.mean())


def test_worker_lost_retries_and_peak_rss():
    s = _sched(2)
    s.handle(Heartbeat(1, 10.0, resources={"rss": 100}))
    s.handle(Heartbeat(1, 10.1, resources={"rss": 300}))
    s.handle(Heartbeat(1, 10.2, resources={"rss": 200}))
    acts = s.handle_many([Submit(Task(i, None, fn_name="f"), 10.3) for i in range(4)])
    on1 = [t.id for a in acts if isinstance(a, Dispatch) and a.rank == 1 for t in a.tasks]
    assert on1
    s.handle(WorkerLost(1, 10.5, "test"))
    doc = s.metrics(11.0)
    assert doc["summary"]["retries"] == {"worker_lost": len(on1)}
    w1 = next(w for w in doc["workers"] if w["rank"] == 1)
    assert w1["peak_rss"] == 300 and w1["status"] == "offline"
    assert w1["wall_s"] == pytest.approx(0.5)  # joined at 10.0, lost at 10.5


class Highest(Strategy):
    name = "highest"

    def choose(self, task, candidates, view):
        return max(w.rank for w in candidates)


def test_set_strategy_event_changes_placement_and_is_recorded():
    s = _sched(3, "round_robin")
    resolved, placed, now = _drive(s, [Task(i, None, fn_name="f") for i in range(30)], lambda r: 0.001)
    assert {r for v in placed.values() for r in v} == {1, 2, 3}
    s.handle(SetStrategy(Highest(), now))
    # one task at a time: the highest free rank always takes it
    for i in range(30, 40):
        _, placed2, now = _drive(s, [Task(i, None, fn_name="f")], lambda r: 0.001, now=now)
        assert placed2 == {i: [3]}
    strategies = s.metrics(now)["summary"]["strategies"]
    assert [c["strategy"] for c in strategies] == ["round_robin", "highest"]
    assert strategies[1]["t"] == pytest.approx(now - 10.0 - 0.01 * 10, abs=0.05)


def test_drift_finding_from_the_scheduler():
    s = _sched(4)
    s.stats.ewma.interval_s = 0.05
    speed = {1: 0.001, 2: 0.001, 3: 0.003, 4: 0.001}
    _, _, now = _drive(s, [Task(i, None, fn_name="m.f") for i in range(400)], speed.get)
    doc = s.metrics(now)
    drift = [f for f in doc["findings"] if f["kind"] == "farm_drift"]
    assert [f["evidence"]["rank"] for f in drift] == [3]
    assert drift[0]["evidence"]["ratio"] == pytest.approx(3.0, rel=0.1)
    assert doc["ewma"] and doc["ewma"][0]["ranks"] == [1, 2, 3, 4]
    assert farm_findings(doc) == doc["findings"]


# -------------------------------------------------------------------------- the file
@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_farm_metrics_file_round_trip(tmp_path, suffix):
    s = _sched(2)
    _, _, now = _drive(s, [Task(i, None, fn_name="m.f") for i in range(50)], lambda r: 0.001 * r)
    doc = s.metrics(now, traffic={1: [3, 300, 4, 400]}, header={"ranks": 3})
    path = tmp_path / f"farm{suffix}"
    write_metrics(path, None, farm=doc)
    back = read_metrics(path)
    assert back["header"]["kind"] == "farm" and back["header"]["ranks"] == 3
    assert back["header"]["strategy"] == "least_loaded"
    farm = back["farm"]
    assert farm["summary"]["completed"] == 50
    assert [w["rank"] for w in farm["workers"]] == [1, 2]
    w1 = farm["workers"][0]
    assert (w1["messages_sent"], w1["bytes_sent"], w1["messages_received"], w1["bytes_received"]) == (3, 300, 4, 400)
    assert farm["functions"][0]["task_time"]["count"] == 50
    assert farm["throughput"]["total"] == 50
    assert [f["kind"] for f in back["findings"]] == [f["kind"] for f in doc["findings"]]
    h = LogHistogram.from_dict(farm["functions"][0]["task_time"])
    assert h.count == 50


def test_graph_metrics_json_has_no_farm_block(tmp_path):
    path = tmp_path / "x.json"
    write_metrics(path, None, farm_tasks=[])
    import json

    assert "farm" not in json.loads(path.read_text())
    assert read_metrics(path)["farm"]["workers"] == []


def test_status_writer_extras_and_unfilled_finish(tmp_path):
    clock = iter([0.0, 0.5, 2.0, 3.0]).__next__
    w = StatusWriter(tmp_path / "run", what="farm", unit="tasks/s", clock=clock)
    assert w.update(done=5, total=10, pending=3, running=2, failed=None, force=True)
    assert not w.update(done=6, total=10)  # within a second of the last write
    assert w.update(done=7, total=10, running=1)
    st = read_status(tmp_path / "run")
    assert (st["done"], st["pending"], st["running"]) == (7, 3, 1) and "failed" not in st
    w.finish("finished", fill=False)
    st = read_status(tmp_path / "run")
    assert st["state"] == "finished" and st["done"] == 7 and st["progress"] == pytest.approx(0.7)
