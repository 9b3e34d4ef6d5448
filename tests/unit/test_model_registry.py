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


# --------------------------------------------------------------------------- forged entries
def _forge(reg_root, name, version, body_update, file_bytes=None, file_name=None, sign_with=None):
    """Write a version by hand: a manifest with a recomputed CRC-32 (anyone can) and, unless
    ``sign_with`` (a registry) is given, no valid HMAC."""
    import zlib

    d = reg_root / name / str(version)
    d.mkdir(parents=True)
    body = {**json.loads((reg_root / name / "1" / "manifest.json").read_text())["body"], "version": version,
            **body_update}
    if file_bytes is not None:
        (d / (file_name or body["file"])).write_bytes(file_bytes)
        body.update(file_bytes=len(file_bytes), file_crc32=zlib.crc32(file_bytes))
    if sign_with is not None:
        (d / "manifest.json").write_bytes(sign_with._manifest_bytes(body))
        return
    text = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    (d / "manifest.json").write_text(json.dumps({"body": body, "crc32": zlib.crc32(text), "hmac": "0" * 64}))


def test_a_forged_arrays_manifest_cannot_run_code(tmp_path):
    reg = ModelRegistry(tmp_path / "r")
    reg.register("m", LinearRegression(3, seed=0))
    h5 = (tmp_path / "r" / "m" / "1" / "model.h5").read_bytes()
    marker = tmp_path / "pwned"
    popen = {"class": "subprocess:Popen", "config": {"args": ["touch", str(marker)]}}
    # CRC recomputed, no signature: refused before the class is imported
    _forge(tmp_path / "r", "m", 2, popen, h5)
    with pytest.raises(UntrustedModel, match=r"'subprocess:Popen'.*not built in.*did not sign.*\.registry-key"):
        reg.load("m", 2)
    # even a manifest this registry signed never calls a class without the array-model protocol
    _forge(tmp_path / "r", "m", 3, popen, h5, sign_with=reg)
    with pytest.raises(CorruptedModel, match="not an array model"):
        reg.load("m", 3)
    for cls_path in ("os:system", "builtins:eval", "subprocess:Popen"):
        with pytest.raises(CorruptedModel):
            from hpcdist.models.serializers import _import_class

            _import_class(cls_path)
    assert not marker.exists()
    # the genuine entry still loads
    assert_same_params(reg.load("m", 1), LinearRegression(3, seed=0))


def test_the_manifest_cannot_name_another_file(tmp_path):
    reg = ModelRegistry(tmp_path / "r")
    reg.register("m", LinearRegression(3, seed=0))
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"not yours")
    for v, fname in ((2, str(secret)), (3, "../1/model.h5"), (4, "model.pkl")):
        import zlib

        data = secret.read_bytes() if v == 2 else (tmp_path / "r" / "m" / "1" / "model.h5").read_bytes()
        _forge(tmp_path / "r", "m", v, {"file": fname, "file_bytes": len(data), "file_crc32": zlib.crc32(data)},
               sign_with=reg)
        with pytest.raises(CorruptedModel, match="names file"):
            reg.load("m", v)
    # a manifest moved to another name or version slot does not pass for that entry
    os.rename(tmp_path / "r" / "m" / "1", tmp_path / "r" / "m" / "9")
    with pytest.raises(CorruptedModel, match="describes another entry"):
        reg.load("m", 9)


def test_builtin_classes_are_the_only_ones_loaded_without_a_signature(tmp_path):
    from hpcdist.models.builtin import BUILTIN_MODELS
    from hpcdist.models.serializers import BUILTIN_CLASS_PATHS, class_path

    assert BUILTIN_CLASS_PATHS == {class_path(c) for c in BUILTIN_MODELS.values()}
    r1, r2 = ModelRegistry(tmp_path / "r1"), ModelRegistry(tmp_path / "r2")
    r1.register("lin", LinearRegression(3, seed=2))
    r1.register("scaled", Scaled(2.0))
    r2.register("x", LinearRegression(2))
    for n in ("lin", "scaled"):
        os.rename(tmp_path / "r1" / n, tmp_path / "r2" / n)
    assert_same_params(r2.load("lin"), LinearRegression(3, seed=2))  # no code named by the file
    with pytest.raises(UntrustedModel, match="Scaled.*not built in"):
        r2.load("scaled")


class NoFromParams:
    """get_params / get_config / set_params but no from_params: not loadable without calling cls(**config)."""

    def __init__(self):
        self.w = np.ones(3)

    def get_params(self):
        return {"w": self.w}

    def get_config(self):
        return {}

    def set_params(self, params):
        self.w = params["w"]


def test_an_array_model_needs_from_params():
    from hpcdist.models.serializers import is_array_model

    assert is_array_model(Scaled(1.0)) and is_array_model(MLP(2, (3,)))
    assert not is_array_model(NoFromParams())


def test_no_from_params_needs_pickle(tmp_path):
    reg = ModelRegistry(tmp_path)
    with pytest.raises(UntrustedModel, match="trusted=True"):
        reg.register("n", NoFromParams())


# ----------------------------------------------------------------------------- key trust
def test_a_key_file_others_can_access_or_do_not_own_proves_nothing(tmp_path, monkeypatch):
    root = tmp_path / "r"
    reg = ModelRegistry(root)
    reg.register("o", Opaque(5), trusted=True)
    reg.register("s", Scaled(3.0))
    reg.register("lin", LinearRegression(2, seed=1))
    assert reg.key_trusted and reg.load("o").k == 5
    key = root / ".registry-key"
    assert (key.stat().st_mode & 0o777) == 0o600

    def refused(pattern):
        fresh = ModelRegistry(root)  # the key is judged when first read
        assert not fresh.key_trusted
        with pytest.raises(UntrustedModel, match=pattern):
            fresh.load("o")
        with pytest.raises(UntrustedModel, match=pattern):
            fresh.load("s")
        with pytest.raises(UntrustedModel, match=pattern):
            fresh.register("o", Opaque(6), trusted=True)  # could never be loaded back
        assert_same_params(fresh.load("lin"), LinearRegression(2, seed=1))  # built in: still fine

    for mode in (0o640, 0o604, 0o620, 0o660):
        key.chmod(mode)
        refused(f"cannot be trusted: its mode {mode:04o} gives group or others access")
    key.chmod(0o600)
    assert ModelRegistry(root).load("o").k == 5
    monkeypatch.setattr(os, "getuid", lambda: key.stat().st_uid + 1)
    refused(f"owned by uid {key.stat().st_uid}, not by you")
    monkeypatch.undo()
    # a link planted in place of the key (say, to a file of yours whose content is known)
    known = tmp_path / "known"
    known.write_bytes(key.read_bytes())
    known.chmod(0o600)
    key.unlink()
    key.symlink_to(known)
    refused("symbolic link")


def test_another_users_unreadable_key_still_lets_built_in_models_load(tmp_path, monkeypatch):
    import hpcdist.models.registry as registry_mod

    reg = ModelRegistry(tmp_path)
    reg.register("lin", LinearRegression(2, seed=3))
    reg.register("o", Opaque(1), trusted=True)
    real_open = os.open

    def no_read(path, flags, *a):  # what a 0600 key of another user gives (root cannot reproduce it with chmod)
        if str(path).endswith(".registry-key") and not flags & os.O_CREAT:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *a)

    monkeypatch.setattr(registry_mod.os, "open", no_read)
    other = ModelRegistry(tmp_path)
    assert not other.key_trusted
    assert [i.name for i in other.list()] == ["lin", "o"]
    assert_same_params(other.load("lin"), LinearRegression(2, seed=3))
    with pytest.raises(UntrustedModel, match="you cannot read it"):
        other.load("o")


def test_a_copied_registry_does_not_verify_its_entries(tmp_path):
    import shutil

    reg = ModelRegistry(tmp_path / "r")
    reg.register("o", Opaque(7), trusted=True)
    shutil.copytree(tmp_path / "r", tmp_path / "copy")  # key included, still 0600 and ours
    copy = ModelRegistry(tmp_path / "copy")
    assert copy.key_trusted and copy.key == reg.key
    with pytest.raises(UntrustedModel, match="signature does not match"):
        copy.load("o")
    assert reg.load("o").k == 7
    # the path in the signature is the resolved one: a link to the registry is the same registry
    (tmp_path / "alias").symlink_to(tmp_path / "r")
    assert ModelRegistry(tmp_path / "alias").load("o").k == 7


# ------------------------------------------------------------------------- delete race
def test_delete_all_keeps_a_version_committed_meanwhile(tmp_path, monkeypatch):
    import hpcdist.models.registry as registry_mod

    reg = ModelRegistry(tmp_path)
    reg.register("a", LinearRegression(2, seed=0))
    reg.register("a", LinearRegression(2, seed=1))
    real_fsync = registry_mod.fsync_dir
    state = {"in_delete": False, "done": False}

    def fsync_then_race(path):
        real_fsync(path)
        # the fsync after delete() renamed the versions away, before the base is removed:
        # another process commits a new version right now
        if state["in_delete"] and not state["done"]:
            state["done"] = True
            assert ModelRegistry(tmp_path).register("a", LinearRegression(2, seed=9)) == 1

    monkeypatch.setattr(registry_mod, "fsync_dir", fsync_then_race)
    state["in_delete"] = True
    reg.delete("a")
    assert state["done"]
    assert reg.versions("a") == [1]
    assert_same_params(reg.load("a"), LinearRegression(2, seed=9))
    monkeypatch.undo()
    reg.delete("a")
    assert not (tmp_path / "a").exists()  # an empty directory is removed


# ---------------------------------------------------------------------------- labels
@pytest.mark.parametrize("make", [lambda: LogisticRegression(3, 3, seed=0),
                                  lambda: MLP(3, (4,), 3, task="classification", seed=0)])
def test_labels_out_of_range_are_refused_not_wrapped(make):
    from hpcdist.models import train_local

    X = np.random.default_rng(0).normal(size=(6, 3))
    for bad in (-1, 3):
        y = np.array([0, 1, 2, 0, bad, 1])
        with pytest.raises(InputError, match=rf"labels must be 0 \.\. 2, got {bad}"):
            make().loss_grad_sum(X, y)
        with pytest.raises(InputError, match=rf"training failed computing the gradient of epoch 0, step 0: "
                                             rf"InputError: .*got {bad}") as err:
            train_local(make(), X, y, epochs=1)
        assert isinstance(err.value.__cause__, InputError)
    make().loss_grad_sum(X, np.array([0, 1, 2, 0, 2, 1]))
