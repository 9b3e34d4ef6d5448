"""Models on the farm at 1, 2, 3 and 4 ranks: predict_batch equal to single-process predict,
affinity routing by worker id, every mode and aggregation, validator-triggered retry on
another worker, streaming, requirements, bagging.

Rank 0 asserts; the workers serve inside ``with Farm(...)``. The registry lives in a
directory made by rank 0 and broadcast (one machine: every rank sees it).
"""

from __future__ import annotations

import tempfile
import time

import h5py
import numpy as np
import pytest
from mpi4py import MPI

from hpcdist.farm import Farm, Requirements, ResultRejected
from hpcdist.farm.aggregation import majority, weighted_mean
from hpcdist.models import (
    MLP,
    LinearRegression,
    LogisticRegression,
    ModelError,
    ModelNotFound,
    ModelRegistry,
    ModelTooLarge,
    ResultValidator,
)
from hpcdist.models import train_local
from hpcdist.runtime.errors import InputError

pytestmark = pytest.mark.mpi

FAST = dict(heartbeat_interval=0.05, heartbeat_timeout=2.0, backoff=0.0)


class NaNOnRankOne(LinearRegression):
    """Predicts NaN when run by rank 1 of COMM_WORLD, correctly elsewhere (a bad node)."""

    def predict(self, X):
        out = super().predict(X)
        return out * np.nan if MPI.COMM_WORLD.Get_rank() == 1 else out


class Slow(LinearRegression):
    """A model that takes 20 ms per batch: its holder stays busy while batches queue."""

    def predict(self, X):
        time.sleep(0.02)
        return super().predict(X)


@pytest.fixture
def reg(comm):
    path = comm.bcast(tempfile.mkdtemp(prefix="hpcdist-models-") if comm.rank == 0 else None)
    registry = ModelRegistry(path)
    if comm.rank == 0:
        registry.register("mlp", MLP(6, (16,), 1, seed=1))
        registry.register("clf", MLP(6, (16,), 3, task="classification", seed=2))
        registry.register("clf", MLP(6, (16,), 3, task="classification", seed=3))  # version 2
        registry.register("logit", LogisticRegression(6, 3, seed=4))
        registry.register("lin", LinearRegression(6, n_outputs=6, seed=5))
        registry.register("nan1", NaNOnRankOne(6, seed=6))
        registry.register("slow", Slow(6, seed=7))
    comm.Barrier()
    yield registry
    comm.Barrier()
    if comm.rank == 0:
        import shutil

        shutil.rmtree(path, ignore_errors=True)


def data(n=503, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 6))


def workers_of(comm):
    return list(range(1, comm.size)) if comm.size > 1 else [0]


def test_predict_batch_equals_single_process_predict(comm, reg):
    X = data()
    with Farm(comm, **FAST) as farm:
        if farm is not None:
            for name, version in (("mlp", None), ("clf", 1), ("clf", None), ("logit", None)):
                model = reg.load(name, version)
                for bs in (None, 1, 37, 10_000):
                    got = farm.predict_batch(name, X, registry=reg, batch_size=bs, version=version)
                    expect = model.predict(X)
                    assert got.dtype == expect.dtype and got.shape == expect.shape
                    np.testing.assert_allclose(got, expect, rtol=1e-12, atol=1e-14)
                    rep = farm.last_predict
                    assert rep.n_rows == len(X) and sum(rep.batch_rows) == len(X)
                    assert {r for ws in rep.workers for r in ws} <= set(workers_of(comm))
            proba = farm.predict_batch("logit", X, registry=reg, method="predict_proba", batch_size=50)
            np.testing.assert_allclose(proba, reg.load("logit").predict_proba(X), rtol=1e-12)
            assert farm.last_predict.models == ["model:logit:1"]
            assert farm.predict_batch("clf", X[:0], registry=reg).size == 0
            with pytest.raises(ModelNotFound, match="no version 9"):
                farm.predict_batch("clf", X, registry=reg, version=9)


def test_affinity_routes_batches_to_the_worker_holding_the_model(comm, reg):
    X = data(400)
    with Farm(comm, strategy="affinity", **FAST) as farm:
        if farm is not None:
            # One batch at a time: the holder is always free, so every batch goes to it.
            got = farm.predict_batch("mlp", X, registry=reg, batch_size=40, max_in_flight=1)
            np.testing.assert_allclose(got, reg.load("mlp").predict(X), rtol=1e-12)
            rep = farm.last_predict
            holder = rep.workers[0][0]
            assert all(ws == [holder] for ws in rep.workers)
            assert rep.hits[0] == [False] and all(h == [True] for h in rep.hits[1:])  # loaded once
            assert farm.strategy.holders("model:mlp:1") == [holder]
            # A second call: routed to the same worker, which has it cached (no load at all).
            farm.predict_batch("mlp", X, registry=reg, batch_size=40, max_in_flight=1)
            assert all(ws == [holder] for ws in farm.last_predict.workers)
            assert farm.last_predict.n_loads == 0 and farm.last_predict.hit_rate == 1.0
            # Another model's label, never announced by any worker: placed, not refused.
            farm.predict_batch("lin", X, registry=reg, batch_size=100, max_in_flight=1)
            assert farm.last_predict.n_loads == 1


def test_affinity_falls_back_when_the_holder_is_busy_and_learns_the_new_holders(comm, reg):
    X = data(60)
    with Farm(comm, strategy="affinity", max_in_flight=1, **FAST) as farm:  # one task per worker at a time
        if farm is not None:
            got = farm.predict_batch("slow", X, registry=reg, batch_size=5, max_in_flight=12)
            np.testing.assert_allclose(got, reg.load("slow").predict(X), rtol=1e-12)
            used = {r for ws in farm.last_predict.workers for r in ws}
            assert used == set(workers_of(comm))  # every worker took batches while the first holder was busy
            assert farm.strategy.holders("model:slow:1") == sorted(used)
            assert farm.last_predict.n_loads == len(used)  # each worker loaded it once, then hit its cache


def test_parallel_modes_and_every_aggregation(comm, reg):
    X = data(211, seed=3)
    names = [("clf", 1), ("clf", 2), "logit"]
    models = [reg.load("clf", 1), reg.load("clf", 2), reg.load("logit")]
    preds = [m.predict(X) for m in models]
    with Farm(comm, **FAST) as farm:
        if farm is not None:
            kw = dict(registry=reg, mode="parallel", batch_size=30)
            got = farm.predict_batch(names, X, aggregate="all", **kw)
            assert len(got) == 3
            for g, p in zip(got, preds):
                np.testing.assert_array_equal(g, p)
            assert all(len(ws) == 3 for ws in farm.last_predict.workers)
            vote = farm.predict_batch(names, X, aggregate="majority", **kw)
            np.testing.assert_array_equal(vote, [majority([p[i] for p in preds]) for i in range(len(X))])
            probas = [m.predict_proba(X) for m in models]
            wm = farm.predict_batch(names, X, aggregate="weighted_mean", weights=[1, 2, 5], method="predict_proba", **kw)
            np.testing.assert_allclose(wm, weighted_mean(probas, [1, 2, 5]), rtol=1e-12)
            mx = farm.predict_batch(names, X, aggregate=lambda vs: np.maximum.reduce(vs), method="predict_proba", **kw)
            np.testing.assert_allclose(mx, np.maximum.reduce(probas), rtol=1e-12)
            first = farm.predict_batch("clf", X, aggregate="first", replicas=3, version=2, **kw)
            np.testing.assert_array_equal(first, preds[1])
            assert all(len(ws) == 1 for ws in farm.last_predict.workers)  # one replica answered each batch
            reps = farm.predict_batch("clf", X, aggregate="all", replicas=2, version=1, **kw)
            np.testing.assert_array_equal(reps[0], preds[0])
            np.testing.assert_array_equal(reps[1], preds[0])
            one = farm.predict_batch(("clf", 2), X, registry=reg, mode="single")
            np.testing.assert_array_equal(one, preds[1])
            assert farm.last_predict.n_batches == 1


def test_pipeline_feeds_each_stage_into_the_next(comm, reg):
    X = data(300, seed=5)
    lin, mlp = reg.load("lin"), reg.load("mlp")
    with Farm(comm, **FAST) as farm:
        if farm is not None:
            got = farm.predict_batch(["lin", "mlp"], X, registry=reg, mode="pipeline", batch_size=25)
            np.testing.assert_allclose(got, mlp.predict(lin.predict(X)), rtol=1e-12)
            assert all(len(ws) == 2 for ws in farm.last_predict.workers)  # one worker per stage
            three = farm.predict_batch(["lin", "lin", "clf"], X, registry=reg, mode="pipeline", batch_size=60)
            np.testing.assert_array_equal(three, reg.load("clf").predict(lin.predict(lin.predict(X))))


def test_rejected_result_is_retried_on_another_worker(comm, reg):
    X = data(120, seed=7)
    expect = LinearRegression(6, seed=6).predict(X)
    with Farm(comm, **FAST) as farm:
        if farm is not None:
            validators = ["finite", {"finite": True, "shape": (None,)}, ResultValidator(finite=True, dtype="floating")]
            for validate in validators:
                if comm.size == 2:  # the only worker is the bad one: every attempt is rejected
                    with pytest.raises(ResultRejected):
                        farm.predict_batch("nan1", X, registry=reg, batch_size=20, validate=validate, retries=2)
                    continue
                got = farm.predict_batch("nan1", X, registry=reg, batch_size=20, validate=validate)
                np.testing.assert_allclose(got, expect, rtol=1e-12)
                assert 1 not in {r for ws in farm.last_predict.workers for r in ws}
            # validator= is another name for validate=
            if comm.size == 2:
                with pytest.raises(ResultRejected):
                    farm.predict_batch("nan1", X, registry=reg, batch_size=20, validator="finite", retries=1)
            else:
                got = farm.predict_batch("nan1", X, registry=reg, batch_size=20, validator="finite")
                np.testing.assert_allclose(got, expect, rtol=1e-12)
            with pytest.raises(InputError, match="not both"):
                farm.predict_batch("nan1", X, registry=reg, validate="finite", validator="finite")
            if comm.size > 2:
                model_tasks = [t for t in farm.tasks() if t.fn.endswith(".run_model")]
                retried = [t for t in model_tasks if t.errors_used]
                # Exactly the tasks rank 1 ran were rejected, each once, then done by one other worker
                # (``tried`` is sorted and 1 is the lowest worker rank).
                assert retried and [t.id for t in retried] == [t.id for t in model_tasks if 1 in t.tried]
                for t in retried:
                    assert t.errors_used == 1 and t.tried == (1, t.worker) and t.worker != 1, t
            # Without a validator the NaNs pass through (the check is what caught them).
            if comm.size >= 2:
                raw = farm.predict_batch("nan1", X, registry=reg, batch_size=20, max_in_flight=1)
                assert farm.last_predict.workers[0] == [1] and np.isnan(raw[:20]).all()


def test_streaming_from_hdf5_and_iterators_into_an_hdf5_output(comm, reg, tmp_path):
    X = data(1000, seed=9)
    model = reg.load("clf")
    with Farm(comm, **FAST) as farm:
        if farm is not None:
            path = tmp_path / "io.h5"
            with h5py.File(path, "w") as f:
                f["X"] = X
                out = f.create_dataset("y", shape=(len(X),), dtype="int64")
                got = farm.predict_batch("clf", f["X"], registry=reg, batch_size=64, out=out, max_in_flight=3)
                assert got is out
                np.testing.assert_array_equal(out[()], model.predict(X))
            chunks = (X[i:i + 77] for i in range(0, len(X), 77))  # a generator: length unknown
            got = farm.predict_batch("clf", chunks, registry=reg, batch_size=50)
            np.testing.assert_array_equal(got, model.predict(X))
            assert max(farm.last_predict.batch_rows) <= 50


def test_a_model_no_worker_can_hold_fails_at_once(comm, reg):
    if comm.rank == 0:
        reg.register("huge", LinearRegression(6, seed=0), requires={"memory": "1P"})
    comm.Barrier()
    with Farm(comm, **FAST) as farm:
        if farm is not None:
            with pytest.raises(ModelTooLarge, match="needs .*memory=1.0P.*which no worker meets"):
                farm.predict_batch("huge", data(10), registry=reg)
            with pytest.raises(ModelTooLarge, match="memory=1.0P"):
                farm.predict_batch("mlp", data(10), registry=reg, requires={"memory": "1P"})
            with pytest.raises(ModelError, match="gpu=64"):
                farm.predict_batch("mlp", data(10), registry=reg, requires=Requirements(gpu=64))
            assert not [t for t in farm.tasks() if t.fn.endswith(".run_model")]  # nothing was sent


def test_train_ensemble_registers_bagged_members_equal_to_local_training(comm, reg):
    rng = np.random.default_rng(11)
    X = rng.normal(size=(200, 6))
    y = (X[:, 0] - X[:, 2] > 0).astype(np.int64)
    base = LogisticRegression(6, 2, seed=0)
    with Farm(comm, **FAST) as farm:
        if farm is not None:
            members = farm.train_ensemble("bag", base, X, y, n_members=4, registry=reg, epochs=3, batch_size=32,
                                          lr=0.5, seed=7)
            assert [m.name for m in members] == [f"bag-m{i}" for i in range(4)]
            assert [m.name for m in reg.search(tags="ensemble:bag")] == [m.name for m in members]
            loaded = [reg.load(m.name) for m in members]
            for i, got in enumerate(loaded):
                # the documented recipe, rebuilt here: bootstrap rows from default_rng([seed, i]),
                # then local training of a fresh copy with seed + i
                idx = np.random.default_rng([7, i]).integers(0, len(X), size=len(X))
                local = train_local(LogisticRegression(6, 2, seed=0), X[idx], y[idx], epochs=3, batch_size=32,
                                    lr=0.5, seed=7 + i)
                assert sorted(got.get_params()) == sorted(local.get_params())
                for k, v in local.get_params().items():
                    np.testing.assert_array_equal(got.get_params()[k], v)
            assert not np.array_equal(loaded[0].get_params()["w"], loaded[1].get_params()["w"])  # distinct samples
            np.testing.assert_array_equal(base.get_params()["w"], LogisticRegression(6, 2, seed=0).get_params()["w"])
            vote = farm.predict_batch(members, X, registry=reg, mode="parallel", aggregate="majority")
            assert (vote == y).mean() > 0.8


def test_default_batches_follow_the_plan_with_a_halved_tail(comm, reg):
    from hpcdist.models.farm_mixin import auto_batch_size, batch_bounds

    X = data(20_000, seed=21)
    expect = reg.load("clf").predict(X)
    with Farm(comm, **FAST) as farm:
        if farm is not None:
            got = farm.predict_batch("clf", X, registry=reg)
            np.testing.assert_array_equal(got, expect)
            rep = farm.last_predict
            n_workers = max(1, farm.n_workers)
            bs = auto_batch_size(len(X), X.shape[1] * X.itemsize, n_workers)
            assert rep.batch_rows == [b - a for a, b in batch_bounds(len(X), bs, n_workers)]
            if n_workers >= 2:  # the last batches are halves; the first ones whole
                assert rep.batch_rows[0] == bs and max(rep.batch_rows[-n_workers:]) <= -(-bs // 2)
            else:
                assert set(rep.batch_rows[:-1]) <= {bs}
            # A batch_size given is kept exactly: no halved tail.
            farm.predict_batch("clf", X, registry=reg, batch_size=3000)
            assert farm.last_predict.batch_rows == [3000] * 6 + [2000]


def test_a_plain_list_of_rows_is_the_rows(comm, reg):
    X = data(50, seed=13)
    model = reg.load("mlp")
    expect = model.predict(X)
    with Farm(comm, **FAST) as farm:
        if farm is not None:
            rows = [list(r) for r in X]  # a list of lists: rows, not chunks
            np.testing.assert_allclose(farm.predict_batch("mlp", rows, registry=reg, batch_size=7), expect, rtol=1e-12)
            assert farm.last_predict.batch_rows == [7] * 7 + [1]
            as_tuple = tuple(X)  # a tuple of 1-D arrays: rows too
            np.testing.assert_allclose(farm.predict_batch("mlp", as_tuple, registry=reg), expect, rtol=1e-12)
            np.testing.assert_allclose(farm.predict_batch("mlp", rows, registry=reg, mode="single"), expect,
                                       rtol=1e-12)
            chunks = [X[:30], X[30:]]  # 2-D elements: still chunks of rows
            np.testing.assert_allclose(farm.predict_batch("mlp", chunks, registry=reg, batch_size=25), expect,
                                       rtol=1e-12)
            assert farm.last_predict.batch_rows == [25, 5, 20]
