"""ModelRegistry: versions, search, delete, corruption, pickle refusal, concurrent readers. No MPI."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading

import numpy as np
import pytest

from hpcdist.models import (
    MLP,
    CorruptedModel,
    LinearRegression,
    LogisticRegression,
    ModelExists,
    ModelNotFound,
    ModelRegistry,
    ModelTooLarge,
    UntrustedModel,
)
from hpcdist.runtime.errors import InputError
from tests.conftest import ROOT


class Opaque:
    """Not an array model: only pickle can store it."""

    def __init__(self, k: int) -> None:
        self.k = k

    def predict(self, X):
        return np.full(len(X), self.k)


class Scaled:
    """A user's array model following the protocol (get_params / get_config / from_params)."""

    def __init__(self, factor: float) -> None:
        self.factor = factor
        self.w = np.arange(4.0) * factor

    def get_params(self):
        return {"w": self.w}

    def get_config(self):
        return {"factor": self.factor}

    @classmethod
    def from_params(cls, params, config):
        m = cls(**config)
        m.w = params["w"]
        return m

    def predict(self, X):
        return np.asarray(X) @ self.w


def assert_same_params(a, b):
    pa, pb = a.get_params(), b.get_params()
    assert sorted(pa) == sorted(pb)
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k])


def test_versions_count_from_one_and_load_takes_the_highest(tmp_path):
    reg = ModelRegistry(tmp_path)
    models = [LinearRegression(3, seed=s) for s in range(3)]
    assert reg.register("lin", models[0]) == 1
    assert reg.update("lin", models[1]) == 2
    assert reg.register("lin", models[2], version=7) == 7
    assert reg.versions("lin") == [1, 2, 7]
    assert_same_params(reg.load("lin"), models[2])
    assert_same_params(reg.load("lin", 1), models[0])
    assert_same_params(reg.load("lin", 2), models[1])
    X = np.random.default_rng(0).normal(size=(5, 3))
    np.testing.assert_array_equal(reg.load("lin", 1).predict(X), models[0].predict(X))
    with pytest.raises(ModelExists, match="version 7 exists"):
        reg.register("lin", models[0], version=7)
    assert reg.update("lin", models[0]) == 8


@pytest.mark.parametrize("make", [
    lambda: LinearRegression(4, n_outputs=2, seed=1),
    lambda: LogisticRegression(4, n_classes=3, seed=2),
    lambda: MLP(4, (5, 3), 2, task="classification", activation="relu", seed=3),
    lambda: Scaled(2.5),
])
def test_array_models_round_trip_without_pickle(tmp_path, make, monkeypatch):
    reg = ModelRegistry(tmp_path)
    model = make()
    reg.register("m", model)
    info = reg.info("m")
    assert info.format == "arrays" and info.nbytes == sum(np.asarray(a).nbytes for a in model.get_params().values())
    assert os.path.exists(tmp_path / "m" / "1" / "model.h5")
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("pickle used to load an array model"))
    back = reg.load("m")
    assert type(back) is type(model)
    assert_same_params(back, model)
    X = np.random.default_rng(1).normal(size=(6, 4))
    np.testing.assert_array_equal(back.predict(X), model.predict(X))


def test_unknown_name_and_version_are_clear_errors(tmp_path):
    reg = ModelRegistry(tmp_path)
    reg.register("a", LinearRegression(2))
    with pytest.raises(ModelNotFound, match="no model named 'zz'.*models: a"):
        reg.load("zz")
    with pytest.raises(ModelNotFound, match="no version 3 .*versions: 1"):
        reg.load("a", 3)
    assert isinstance(ModelNotFound("x"), InputError)
    with pytest.raises(InputError, match="model name"):
        reg.register("../evil", LinearRegression(2))


def test_list_search_and_metadata(tmp_path):
    reg = ModelRegistry(tmp_path)
    reg.register("a", LinearRegression(2), metadata={"team": "x", "acc": 0.9}, tags=("prod", "linear"))
    reg.register("b", MLP(2, (3,)), metadata={"team": "y"}, tags=("prod",))
    reg.update("a", LinearRegression(2, seed=4), metadata={"acc": 0.95})
    listed = [(i.name, i.version) for i in reg.list()]
    assert listed == [("a", 1), ("a", 2), ("b", 1)]
    assert reg.names() == ["a", "b"] and "a" in reg and "c" not in reg
    assert [(i.name, i.version) for i in reg.search(tags="prod")] == listed
    assert [(i.name, i.version) for i in reg.search(tags=("prod", "linear"))] == [("a", 1), ("a", 2)]
    assert [(i.name, i.version) for i in reg.search(team="x", acc=0.95)] == [("a", 2)]  # metadata merged on update
    assert [(i.name, i.version) for i in reg.search(tags="prod", latest=True)] == [("a", 2), ("b", 1)]
    assert reg.search(team="nobody") == []
    assert reg.info("a").tags == ("linear", "prod") and reg.info("a", 1).metadata == {"team": "x", "acc": 0.9}


def test_delete_one_version_then_all(tmp_path):
    reg = ModelRegistry(tmp_path)
    for s in range(3):
        reg.register("a", LinearRegression(2, seed=s))
    reg.delete("a", 3)
    assert reg.versions("a") == [1, 2]
    assert_same_params(reg.load("a"), LinearRegression(2, seed=1))  # the highest that exists
    with pytest.raises(ModelNotFound):
        reg.delete("a", 3)
    reg.delete("a")
    assert reg.versions("a") == [] and reg.list() == []
    with pytest.raises(ModelNotFound):
        reg.load("a")
    with pytest.raises(ModelNotFound):
        reg.delete("a")
    assert reg.register("a", LinearRegression(2)) == 1


def test_corrupted_model_file_and_manifest_are_detected(tmp_path):
    reg = ModelRegistry(tmp_path)
    reg.register("a", MLP(3, (4,)))
    reg.register("a", MLP(3, (4,), seed=1))
    f = tmp_path / "a" / "1" / "model.h5"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(CorruptedModel, match="checksum"):
        reg.load("a", 1)
    f.write_bytes(bytes(data[:-10]))  # truncated
    with pytest.raises(CorruptedModel):
        reg.load("a", 1)
    m = tmp_path / "a" / "2" / "manifest.json"
    doc = json.loads(m.read_text())
    doc["body"]["nbytes"] += 1  # an edit without a matching checksum
    m.write_text(json.dumps(doc))
    with pytest.raises(CorruptedModel, match="damaged"):
        reg.load("a", 2)
    m.write_text("{not json")
    with pytest.raises(CorruptedModel):
        reg.load("a", 2)
    # a damaged manifest is skipped by list() (and named in a warning); a damaged model file shows at load
    assert [(i.name, i.version) for i in reg.list()] == [("a", 1)]
    assert isinstance(CorruptedModel("x"), InputError)


def test_pickle_needs_trusted_and_is_loaded_only_from_this_registry(tmp_path):
    reg = ModelRegistry(tmp_path / "r1")
    with pytest.raises(UntrustedModel, match="trusted=True"):
        reg.register("o", Opaque(3))
    assert reg.versions("o") == []
    assert reg.register("o", Opaque(3), trusted=True) == 1
    assert reg.info("o").format == "pickle"
    assert reg.load("o").predict(np.zeros((2, 1))).tolist() == [3, 3]
    # The same entry copied into another registry (another key): refused, not unpickled.
    other = ModelRegistry(tmp_path / "r2")
    other.register("x", LinearRegression(2))
    os.rename(tmp_path / "r1" / "o", tmp_path / "r2" / "o")
    with pytest.raises(UntrustedModel, match="did not write"):
        other.load("o")
    # A forged entry: a pickle with a valid CRC but no signature of this registry.
    import zlib

    evil = pickle.dumps(Opaque(666))
    d = tmp_path / "r2" / "x" / "2"
    d.mkdir()
    (d / "model.pkl").write_bytes(evil)
    body = {**json.loads((tmp_path / "r2" / "x" / "1" / "manifest.json").read_text())["body"],
            "version": 2, "format": "pickle", "file": "model.pkl", "file_bytes": len(evil),
            "file_crc32": zlib.crc32(evil), "trusted": True}
    text = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    (d / "manifest.json").write_text(json.dumps({"body": body, "crc32": zlib.crc32(text), "hmac": "0" * 64}))
    called = []
    orig = pickle.loads
    pickle.loads = lambda *a, **k: called.append(1) or orig(*a, **k)
    try:
        with pytest.raises(UntrustedModel):
            other.load("x", 2)
    finally:
        pickle.loads = orig
    assert not called


def test_max_bytes_refuses_a_model_too_large(tmp_path):
    reg = ModelRegistry(tmp_path)
    reg.register("big", MLP(100, (100,), seed=0))
    with pytest.raises(ModelTooLarge, match="needs 79.7K, more than the 10.0K"):
        reg.load("big", max_bytes="10K")
    assert reg.load("big", max_bytes="1M") is not None


def test_registry_pickles_as_its_path(tmp_path):
    reg = ModelRegistry(tmp_path)
    reg.register("a", LinearRegression(2))
    back = pickle.loads(pickle.dumps(reg))
    assert back.path == reg.path and back.versions("a") == [1]


def test_concurrent_writers_get_distinct_versions(tmp_path):
    reg = ModelRegistry(tmp_path)
    got: list[int] = []
    lock = threading.Lock()

    def write(s):
        v = ModelRegistry(tmp_path).register("a", LinearRegression(3, seed=s), metadata={"seed": s})
        with lock:
            got.append(v)

    threads = [threading.Thread(target=write, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(1, 9))
    for info in reg.list("a"):
        assert_same_params(reg.load("a", info.version), LinearRegression(3, seed=info.metadata["seed"]))


READER = r"""
import sys, numpy as np
from hpcdist.models import ModelRegistry, ModelNotFound
reg = ModelRegistry(sys.argv[1])
seen = set()
for _ in range(int(sys.argv[2])):
    try:
        v = reg.resolve("m")
        m = reg.load("m", v)
    except ModelNotFound:
        continue  # a version deleted between resolve and load: allowed, never a partial one
    # every version's weights are filled with its version number: a torn read would show
    assert np.all(m.params["w"] == v) and np.all(m.params["b"] == v), v
    seen.add(v)
print(len(seen))
"""


def _filled(v: int) -> LinearRegression:
    m = LinearRegression(200, n_outputs=50)
    m.set_params({"w": np.full((200, 50), float(v)), "b": np.full(50, float(v))})
    return m


def test_concurrent_readers_never_see_a_partial_version(tmp_path):
    reg = ModelRegistry(tmp_path)
    reg.register("m", _filled(1))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for k in list(env):
        if k.startswith(("PMI_", "PMIX_", "HYDRA_", "OMPI_")):
            del env[k]
    readers = [subprocess.Popen([sys.executable, "-c", READER, str(tmp_path), "150"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for v in range(2, 12):
        assert reg.update("m", _filled(v)) == v
        if v % 3 == 0:
            reg.delete("m", v - 1)
    outs = [p.communicate(timeout=50) for p in readers]
    for p, (out, err) in zip(readers, outs):
        assert p.returncode == 0, err
        assert int(out.strip().splitlines()[-1]) >= 1
