"""The worker-side model cache (LRU within a byte budget) and the task that uses it. No MPI."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from hpcdist.models import MLP, ModelCache, ModelRegistry, worker_cache
from hpcdist.models.farm_mixin import ModelOutput, ModelRef, run_model


def loader(name, n, calls):
    def load():
        calls.append(name)
        return f"model-{name}", n
    return load


def test_lru_eviction_within_the_budget():
    c = ModelCache(100)
    calls: list[str] = []
    assert c.get("a", loader("a", 40, calls)) == ("model-a", False)
    assert c.get("b", loader("b", 40, calls)) == ("model-b", False)
    assert c.get("a", loader("a", 40, calls)) == ("model-a", True)  # a is now the most recent
    c.get("c", loader("c", 40, calls))  # 120 > 100: evicts b, the least recently used
    assert c.keys() == ["a", "c"] and c.nbytes == 80
    assert c.get("b", loader("b", 40, calls))[1] is False  # reloaded, evicting a
    assert c.keys() == ["c", "b"]
    assert calls == ["a", "b", "c", "b"]
    s = c.stats()
    assert (s.hits, s.misses, s.evictions, s.n_models, s.nbytes, s.budget) == (1, 4, 2, 2, 80, 100)
    assert s.hit_rate == pytest.approx(1 / 5)


def test_a_model_larger_than_the_budget_is_used_but_not_kept():
    c = ModelCache("1K")
    calls: list[str] = []
    c.get("small", loader("small", 100, calls))
    assert c.get("huge", loader("huge", 5000, calls)) == ("model-huge", False)
    assert "huge" not in c and "small" in c  # the big one did not flush the cache
    assert c.get("huge", loader("huge", 5000, calls))[1] is False and calls.count("huge") == 2


def test_resize_evicts_to_fit():
    c = ModelCache(300)
    for k in "abc":
        c.get(k, loader(k, 100, []))
    c.resize(150)
    assert c.keys() == ["c"] and c.budget == 150


def test_thread_safe_under_concurrent_gets():
    c = ModelCache(10 * 8)
    errors = []

    def hammer(seed):
        rng = np.random.default_rng(seed)
        try:
            for k in rng.integers(0, 20, 500):
                model, _ = c.get(int(k), lambda k=int(k): (k * 2, 8))
                assert model == int(k) * 2
                assert c.nbytes <= c.budget
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(c) <= 10
    s = c.stats()
    assert s.hits + s.misses == 2000


def test_run_model_loads_once_per_process_then_hits(tmp_path):
    reg = ModelRegistry(tmp_path)
    model = MLP(4, (6,), 2, seed=3)
    v = reg.register("m", model)
    ref = ModelRef(str(reg.path), "m", v, reg.info("m").nbytes, cache_bytes=1 << 20)
    X = np.random.default_rng(0).normal(size=(7, 4))
    worker_cache().clear()
    first = run_model(ref, X)
    second = run_model(ref, X, "decision_function")
    assert isinstance(first, ModelOutput) and first.hit is False and second.hit is True
    np.testing.assert_array_equal(first.value, model.predict(X))
    np.testing.assert_array_equal(second.value, model.decision_function(X))
    assert worker_cache().budget == 1 << 20
    # A pipeline stage takes the previous stage's ModelOutput as its input.
    np.testing.assert_array_equal(run_model(ref, ModelOutput(X, True)).value, model.predict(X))


def test_clear_drops_the_models_and_keeps_the_counters():
    c = ModelCache(100)
    calls: list[str] = []
    c.get("a", loader("a", 30, calls))
    c.get("a", loader("a", 30, calls))
    c.clear()
    s = c.stats()
    assert (s.hits, s.misses, s.n_models, s.nbytes, s.budget) == (1, 1, 0, 0, 100) and s.hit_rate == 0.5
    assert c.get("a", loader("a", 30, calls)) == ("model-a", False) and calls == ["a", "a"]
