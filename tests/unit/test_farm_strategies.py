"""Strategies and requirements: pure objects, no MPI."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from hpcdist.farm.requirements import Capabilities, Requirements, format_bytes, parse_memory
from hpcdist.farm.strategies import (
    Affinity,
    CapabilityMatch,
    Latency,
    LeastLoaded,
    RoundRobin,
    Strategy,
    make_strategy,
)
from hpcdist.farm.tasks import Task
from hpcdist.runtime.errors import InputError


@dataclass
class W:
    rank: int
    caps: Capabilities
    in_flight: int = 0
    capacity: int = 2
    ewma_s: float | None = None
    tasks_done: int = 0


def w(rank, **kw):
    caps = kw.pop("caps", None) or Capabilities(rank=rank, cores=kw.pop("cores", 4), gpus=kw.pop("gpus", 0),
                                                 memory=kw.pop("memory", 2**33), labels=kw.pop("labels", ()))
    return W(rank, caps, **kw)


def t(**kw):
    return Task(0, None, **kw)


@pytest.mark.parametrize("text,expected", [
    ("2G", 2 * 2**30), ("512M", 512 * 2**20), ("1.5GiB", int(1.5 * 2**30)), ("1 GB", 2**30), ("100", 100),
    ("4k", 4096), (1024, 1024), (None, None), ("3T", 3 * 2**40),
])
def test_parse_memory(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("bad", ["two gigs", "-1G", "1X", "", True, -5])
def test_parse_memory_rejects_nonsense(bad):
    with pytest.raises(InputError, match="memory"):
        parse_memory(bad)


def test_format_bytes():
    assert format_bytes(2 * 2**30) == "2.0G" and format_bytes(None) == "?" and format_bytes(10) == "10B"


def test_requirements_match_and_explain():
    req = Requirements(cpus=2, memory="4G", gpu=1, labels={"model:a"})
    assert req.memory_bytes == 4 * 2**30 and req.labels == frozenset({"model:a"})
    good = Capabilities(rank=1, cores=4, memory=2**33, gpus=1, labels={"model:a", "x"})
    bad = Capabilities(rank=2, cores=1, memory=2**30, gpus=0)
    assert req.satisfied_by(good) and req.unmet(good) == []
    unmet = req.unmet(bad)
    assert any("cpus=2" in u for u in unmet) and any("memory=4.0G" in u for u in unmet)
    assert any("gpu=1" in u for u in unmet) and any("model:a" in u for u in unmet)
    assert Requirements(labels="model:a").labels == frozenset({"model:a"})
    assert not Requirements(labels="x").satisfied_by(bad) and Requirements(labels="x").satisfied_by(bad, labels=False)
    assert "gpu=1" in req.describe() and "rank 1" in good.describe()
    with pytest.raises(InputError):
        Requirements(gpu=-1)


def test_round_robin_cycles_and_skips_missing():
    s = RoundRobin()
    ws = [w(1), w(2), w(3)]
    assert [s.choose(t(), ws, None) for _ in range(4)] == [1, 2, 3, 1]
    assert s.choose(t(), [w(1), w(3)], None) == 3


def test_least_loaded_prefers_relative_load_then_rank():
    s = LeastLoaded()
    assert s.choose(t(), [w(1, in_flight=2), w(2, in_flight=1), w(3, in_flight=1)], None) == 2
    assert s.choose(t(), [w(1, in_flight=2, capacity=8), w(2, in_flight=1, capacity=2)], None) == 1


def test_capability_picks_the_tightest_fit():
    s = CapabilityMatch()
    ws = [w(1, cores=32, gpus=1), w(2, cores=4), w(3, cores=8)]
    assert s.choose(t(requires=Requirements(cpus=2)), ws, None) == 2
    assert s.choose(t(requires=Requirements(gpu=1)), [ws[0]], None) == 1


def test_latency_uses_ewma_times_queue_and_measures_unknown_workers_first():
    s = Latency()
    assert s.choose(t(), [w(1, ewma_s=0.1), w(2, ewma_s=1.0)], None) == 1
    assert s.choose(t(), [w(1, ewma_s=0.1, in_flight=20), w(2, ewma_s=1.0)], None) == 2
    assert s.choose(t(), [w(1, ewma_s=0.1), w(2, ewma_s=None)], None) == 2


def test_affinity_prefers_holders_then_partial_then_anyone():
    s = Affinity()
    assert not s.labels_required
    ws = [w(1), w(2, labels={"model:a"}), w(3, labels={"model:a", "model:b"})]
    assert s.choose(t(requires=Requirements(labels={"model:a"})), ws, None) == 2
    assert s.choose(t(requires=Requirements(labels={"model:a", "model:b"})), ws, None) == 3
    assert s.choose(t(requires=Requirements(labels={"model:b", "model:c"})), ws[:2] + [w(4, labels={"model:c"})], None) == 4
    assert s.choose(t(requires=Requirements(labels={"model:z"})), ws, None) == 1
    busy_holder = [w(1), w(2, labels={"model:a"}, in_flight=2)]
    assert s.choose(t(requires=Requirements(labels={"model:a"})), busy_holder, None) == 2  # still a candidate: holder wins
    assert s.choose(t(requires=Requirements(labels={"model:a"})), [w(1)], None) == 1  # holder not free: fall back


def test_make_strategy_by_name_instance_and_class():
    assert isinstance(make_strategy("least_loaded"), LeastLoaded)
    assert isinstance(make_strategy("round-robin"), RoundRobin)
    inst = Latency()
    assert make_strategy(inst) is inst and isinstance(make_strategy(Affinity), Affinity)
    with pytest.raises(InputError, match="unknown strategy 'fastest'.*least_loaded"):
        make_strategy("fastest")


def test_user_strategy_plugs_into_the_scheduler():
    from hpcdist.farm.scheduler import Dispatch, Scheduler, Submit, WorkerJoined

    class HighestRank(Strategy):
        name = "highest"

        def choose(self, task, candidates, view):
            return max(c.rank for c in candidates)

    s = Scheduler(HighestRank(), max_in_flight=1)
    for r in (1, 2, 3):
        s.handle(WorkerJoined(r, Capabilities(rank=r), 0.0))
    ranks = [a.rank for i in range(3) for a in s.handle(Submit(Task(i, None), 0.0)) if isinstance(a, Dispatch)]
    assert ranks == [3, 2, 1]


# ------------------------------------------------------------------ affinity that learns holders
def model_task(label, tid=0):
    return Task(tid, None, fn_name="run_model", requires=Requirements(labels={label}))


def test_affinity_learns_the_worker_a_model_label_was_sent_to():
    s = Affinity()
    ws = [w(1), w(2), w(3)]
    assert s.choose(model_task("model:a:1"), ws, None) == 1  # nobody holds it: least loaded
    assert s.holders("model:a:1") == [1]
    # Worker 1 now has more in flight, yet the holder still wins over the idle ones.
    assert s.choose(model_task("model:a:1"), [w(1, in_flight=1), w(2), w(3)], None) == 1
    assert s.choose(model_task("model:b:1"), [w(1, in_flight=1), w(2), w(3)], None) == 2
    assert s.holders("model:b:1") == [2]
    assert s.labels_of(w(2, labels={"gpu"})) == {"gpu", "model:b:1"}


def test_affinity_falls_back_when_holders_are_busy_and_the_fallback_becomes_a_holder():
    s = Affinity()
    s.choose(model_task("model:a:1"), [w(1), w(2)], None)
    # Holder 1 has no free slot (not a candidate): another worker takes it and loads the model.
    assert s.choose(model_task("model:a:1"), [w(2), w(3)], None) == 2
    assert s.holders("model:a:1") == [1, 2]
    # Between two holders the less loaded wins.
    assert s.choose(model_task("model:a:1"), [w(1, in_flight=1), w(2), w(3)], None) == 2


def test_affinity_spreads_new_models_over_equally_loaded_workers():
    s = Affinity()
    idle = [w(1), w(2)]
    picks = [s.choose(model_task(f"model:{m}:1"), idle, None) for m in "abcd"]
    assert picks == [1, 2, 1, 2]  # a fresh model goes where fewer models live
    assert [s.choose(model_task(f"model:{m}:1"), idle, None) for m in "dcba"] == [2, 1, 2, 1]  # then to its holder


def test_affinity_learns_only_its_prefixes_and_forgets():
    s = Affinity()
    s.choose(model_task("site:x"), [w(1), w(2)], None)
    assert s.holders("site:x") == []  # an announced-style label is not learnt
    s.choose(model_task("model:a:1"), [w(2), w(1)], None)
    s.forget(1, "model:a:1")
    assert s.holders("model:a:1") == []
    s.learn(3, {"model:b:1", "other"})
    assert s.holders("model:b:1") == [3] and s.holders("other") == []
    s.forget(3)
    assert s.holders("model:b:1") == []


def test_affinity_max_learned_mirrors_a_bounded_cache():
    s = Affinity(max_learned=2)
    for label in ("model:a:1", "model:b:1", "model:a:1", "model:c:1"):
        s.learn(1, {label})
    # a was used again after b, so b is the one forgotten (least recently routed)
    assert s.holders("model:a:1") == [1] and s.holders("model:c:1") == [1] and s.holders("model:b:1") == []
    with pytest.raises(InputError):
        Affinity(max_learned=0)


def test_affinity_in_the_scheduler_routes_by_worker_id_and_never_refuses_a_model_label():
    from hpcdist.farm.scheduler import Dispatch, Resolve, Results, Scheduler, Submit, WorkerJoined

    s = Scheduler(Affinity(), max_in_flight=1)
    for r in (1, 2, 3):
        s.handle(WorkerJoined(r, Capabilities(rank=r, cores=4), 0.0))  # nobody announces any model label

    def route(tid, label, now=0.0):
        acts = s.handle(Submit(model_task(label, tid), now))
        assert not [a for a in acts if isinstance(a, Resolve)]  # not refused as unsatisfiable
        return [a.rank for a in acts if isinstance(a, Dispatch)]

    assert route(0, "model:a:1") == [1]
    assert route(1, "model:b:1") == [2]
    s.handle(Results(1, [(0, "ok", None, 0.01)], 0.1))
    s.handle(Results(2, [(1, "ok", None, 0.01)], 0.1))
    # Both free again: each model goes back to the worker that loaded it, in either order.
    assert route(2, "model:b:1", 0.2) == [2]
    assert route(3, "model:a:1", 0.2) == [1]
    # Holders of a busy: the third worker takes a and is learnt as a holder.
    assert route(4, "model:a:1", 0.2) == [3]
    assert s.strategy.holders("model:a:1") == [1, 3]
