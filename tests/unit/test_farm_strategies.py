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
