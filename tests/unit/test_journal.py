"""The farm's journal: round trips, durability, damaged and foreign files, task keys."""

from __future__ import annotations

import functools
import os
import pickle
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from hpcdist.farm.journal import FORMAT, Journal, TaskKeyError, task_key
from hpcdist.runtime.errors import InputError
from tests.conftest import ROOT

pytestmark = pytest.mark.timeout(60)

ARRAYS = {
    "f8": np.linspace(0, 1, 7),
    "f4": np.arange(5, dtype=np.float32) / 3,
    "f2": np.arange(4, dtype=np.float16),
    "i1": np.array([-128, 0, 127], dtype=np.int8),
    "i8": np.arange(-3, 3, dtype=np.int64) * 2**40,
    "u2": np.array([0, 65535], dtype=np.uint16),
    "u8": np.array([2**64 - 1], dtype=np.uint64),
    "bool": np.array([True, False, True]),
    "c8": np.array([1 + 2j, -3j], dtype=np.complex64),
    "c16": np.array([[1 + 2j, 3], [4j, 5]], dtype=np.complex128),
    "2d": np.arange(12.0).reshape(3, 4),
    "fortran": np.asfortranarray(np.arange(12).reshape(3, 4)),
    "strided": np.arange(20)[::3],
    "0d": np.array(2.5),
    "empty": np.zeros((0, 3)),
    "big-endian": np.arange(4, dtype=">f8"),  # pickled: not native byte order
    "object": np.array([1, "a", None], dtype=object),  # pickled
    "structured": np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]),  # pickled
    "unicode": np.array(["ab", "c"]),  # pickled
}

VALUES = {
    "int": 17,
    "big-int": 2**100,
    "str": "héllo",
    "empty-str": "",
    "none": None,
    "dict": {"a": 1, "b": [1, 2.5, "x"], "c": {"nested": (1, 2)}},
    "list": [1, None, "x"],
    "float": -0.0,
    "np-scalar": np.float32(1.5),
    "array-in-dict": {"w": np.ones(3)},
    "exception": ValueError("a result may be an exception object"),
}


def _same(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray):
        return (
            isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and (np.array_equal(a, b) if a.dtype.kind != "O" else list(a.ravel()) == list(b.ravel()))
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, BaseException):
        return type(a) is type(b) and a.args == b.args
    return type(a) is type(b) and a == b


def _all_items() -> list[tuple[str, object]]:
    return [(f"array-{k}", v) for k, v in ARRAYS.items()] + list(VALUES.items())


def test_round_trip_in_the_same_session_and_after_reopen(tmp_path):
    path = str(tmp_path / "run.h5")
    items = _all_items()
    with Journal(path) as journal:
        journal.record_many(items[:5])
        journal.record_many(items[5:])
        for key, value in items:
            assert key in journal
            assert _same(value, journal.get(key)), key
        assert journal.keys() == [k for k, _ in items] and len(journal) == len(items)
    assert not list((tmp_path / "run.h5.d").glob("seg-*")), "close() consolidates the segments"
    with Journal(path) as journal:
        for key, value in items:
            assert _same(value, journal.get(key)), key
        assert journal.keys() == [k for k, _ in items]
        assert "missing" not in journal
        with pytest.raises(KeyError):
            journal.get("missing")


def test_arrays_are_datasets_and_other_results_pickles(tmp_path):
    path = tmp_path / "run.h5"
    with Journal(str(path)) as journal:
        journal.record_many([("a", np.arange(3.0)), ("b", {"x": 1}), ("c", np.arange(3, dtype=">i4"))])
    with h5py.File(path, "r") as f:
        assert f.attrs["hpcdist_format"] == FORMAT
        keys = list(f["keys"].asstr()[...])
        kinds = dict(zip(keys, f["kinds"][...]))
        assert kinds == {"a": 1, "b": 0, "c": 0}
        np.testing.assert_array_equal(f["arrays"][str(keys.index("a"))][...], np.arange(3.0))


def test_a_key_recorded_again_takes_the_newer_result(tmp_path):
    path = str(tmp_path / "run.h5")
    with Journal(path) as journal:
        journal.record_many([("k", 1), ("other", 2)])
        journal.record_many([("k", "new")])
        assert journal.get("k") == "new"
    with Journal(path) as journal:
        assert journal.get("k") == "new" and journal.keys() == ["k", "other"]


def test_results_survive_a_process_that_never_closes(tmp_path):
    """The writer ends with os._exit: no close, no consolidation, no finalisers."""
    path = tmp_path / "run.h5"
    code = textwrap.dedent(
        f"""
        import os, numpy as np
        from hpcdist.farm.journal import Journal
        j = Journal({str(path)!r})
        j.record_many([("a", 1), ("b", np.arange(4))])
        j.record_many([("c", {{"x": "y"}})])
        os._exit(0)
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=30)
    assert not path.exists() and len(list((tmp_path / "run.h5.d").glob("seg-*.h5"))) == 2
    with Journal(str(path)) as journal:
        assert journal.get("a") == 1 and journal.get("c") == {"x": "y"}
        np.testing.assert_array_equal(journal.get("b"), np.arange(4))
        # reopening consolidated the crash's segments into the store at once
        assert path.exists() and not list((tmp_path / "run.h5.d").glob("seg-*.h5"))
        journal.record_many([("d", 4)])
    with Journal(str(path)) as journal:
        assert journal.keys() == ["a", "b", "c", "d"]


def test_small_segments_are_merged_without_reviving_older_results(tmp_path, monkeypatch):
    import hpcdist.farm.journal as journal_module

    monkeypatch.setattr(journal_module, "_MERGE_AT", 4)
    folder = tmp_path / "run.h5.d"
    journal = Journal(str(tmp_path / "run.h5"))
    journal.record_many([("k", "old"), ("a", 1)])
    journal.record_many([("k", np.zeros(200_000))])  # 1.6 MB: a large segment, never merged
    for b in range(9):
        journal.record_many([(f"b{b}", b), ("a", 100 + b)])
    # 10 small segments, merged twice: far fewer files than batches
    assert len(list(folder.glob("seg-*.h5"))) <= 4
    assert journal.get("a") == 108 and journal.get("b0") == 0 and journal.get("b8") == 8
    assert isinstance(journal.get("k"), np.ndarray), "the merge revived the older result of k"
    assert journal.keys() == ["k", "a", *[f"b{b}" for b in range(9)]]
    with Journal(str(tmp_path / "run.h5")) as reopened:  # takes over, as after a crash: no consolidation
        assert reopened.get("a") == 108 and isinstance(reopened.get("k"), np.ndarray)
        assert sorted(reopened.keys()) == sorted(["k", "a", *[f"b{b}" for b in range(9)]])


def test_an_empty_journal_is_a_valid_store(tmp_path):
    path = str(tmp_path / "run.h5")
    Journal(path).close()
    with Journal(path) as journal:
        assert len(journal) == 0 and journal.keys() == []


def test_a_half_written_segment_is_ignored(tmp_path):
    path = str(tmp_path / "run.h5")
    with Journal(path) as journal:
        journal.record_many([("a", 1)])
    stray = tmp_path / "run.h5.d" / "seg-00000007.h5.tmp"
    stray.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)  # a kill in the middle of the write
    with Journal(path) as journal:
        assert journal.keys() == ["a"]
    assert not stray.exists()


def _crash_with_segments(tmp_path, batches: list[list[tuple[str, object]]]) -> None:
    """Record ``batches`` in a child process that dies without closing the journal."""
    code = textwrap.dedent(
        f"""
        import os, pickle, sys
        from hpcdist.farm.journal import Journal
        j = Journal({str(tmp_path / 'run.h5')!r})
        for batch in pickle.loads(sys.stdin.buffer.read()):
            j.record_many(batch)
        os._exit(0)
        """
    )
    subprocess.run([sys.executable, "-c", code], input=pickle.dumps(batches), check=True, cwd=ROOT, timeout=30)


def test_a_truncated_segment_is_set_aside_and_the_rest_kept(tmp_path, caplog):
    _crash_with_segments(tmp_path, [[("a", 1)], [("b", np.arange(1000))], [("c", 3)]])
    segment = tmp_path / "run.h5.d" / "seg-00000002.h5"
    segment.write_bytes(segment.read_bytes()[: segment.stat().st_size // 2])
    with Journal(str(tmp_path / "run.h5")) as journal:
        assert journal.keys() == ["a", "c"] and journal.get("c") == 3
    assert (tmp_path / "run.h5.d" / "seg-00000002.h5.damaged").exists()
    assert "cannot be read" in caplog.text


def _flip_blob_byte(path, key: str) -> None:
    with h5py.File(path, "r+") as f:
        i = list(f["keys"].asstr()[...]).index(key)
        start = int(f["offsets"][i]) + int(f["lengths"][i]) // 2
        f["blob"][start] = f["blob"][start] ^ 0x01


def test_a_corrupted_pickle_fails_its_checksum_naming_the_file(tmp_path):
    path = tmp_path / "run.h5"
    with Journal(str(path)) as journal:
        journal.record_many([("good", "fine"), ("bad", {"payload": list(range(50))})])
    _flip_blob_byte(path, "bad")
    with Journal(str(path)) as journal:
        assert journal.get("good") == "fine"
        with pytest.raises(InputError, match="fails its checksum") as info:
            journal.get("bad")
        assert str(path) in str(info.value) and info.value.path == str(path)


def test_a_corrupted_array_fails_its_checksum(tmp_path):
    path = tmp_path / "run.h5"
    with Journal(str(path)) as journal:
        journal.record_many([("arr", np.arange(10.0))])
    with h5py.File(path, "r+") as f:
        f["arrays"]["0"][3] = 99.0
    with Journal(str(path)) as journal, pytest.raises(InputError, match="'arr' fails its checksum"):
        journal.get("arr")


class _Tripwire:
    """Unpickling this creates a file: proof that a record was unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_forged_record_is_never_unpickled(tmp_path):
    path = tmp_path / "run.h5"
    marker = tmp_path / "unpickled"
    with Journal(str(path)) as journal:
        journal.record_many([("k", "x" * 200)])
    forged = pickle.dumps(_Tripwire(str(marker)), protocol=5)
    with h5py.File(path, "r+") as f:
        blob = np.zeros(len(forged), np.uint8)
        blob[:] = np.frombuffer(forged, np.uint8)
        del f["blob"]
        f.create_dataset("blob", data=blob)
        f["lengths"][0] = len(forged)
    with Journal(str(path)) as journal, pytest.raises(InputError, match="checksum"):
        journal.get("k")
    assert not marker.exists()


def test_a_corrupted_segment_is_refused_when_the_crash_is_recovered(tmp_path):
    _crash_with_segments(tmp_path, [[("a", "x" * 100)], [("b", "y" * 100)]])
    segment = tmp_path / "run.h5.d" / "seg-00000002.h5"
    _flip_blob_byte(segment, "b")
    with pytest.raises(InputError, match="fails its checksum") as info:
        Journal(str(tmp_path / "run.h5"))
    assert str(segment) in str(info.value)


def test_a_foreign_file_is_refused_and_left_alone(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("not a journal\n")
    with pytest.raises(InputError, match="not an hpcdist journal") as info:
        Journal(str(text))
    assert str(text) in str(info.value)
    assert text.read_text() == "not a journal\n" and not (tmp_path / "notes.h5.d").exists()

    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["data"] = np.arange(3)
    with pytest.raises(InputError, match="without the hpcdist-journal marker"):
        Journal(str(other))

    with pytest.raises(InputError, match="directory"):
        Journal(str(tmp_path))


def test_a_journal_from_a_newer_layout_is_refused(tmp_path):
    path = tmp_path / "run.h5"
    Journal(str(path)).close()
    with h5py.File(path, "r+") as f:
        f.attrs["version"] = 99
    with pytest.raises(InputError, match="newer"):
        Journal(str(path))


def test_a_journal_open_in_another_process_is_refused(tmp_path):
    path = str(tmp_path / "run.h5")
    code = f"from hpcdist.farm.journal import Journal; j = Journal({path!r}); print('open', flush=True); input()"
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(InputError, match="open in another process"):
            Journal(path)
    finally:
        holder.communicate("\n", timeout=30)
    Journal(path).close()  # released when that process ended


def test_reopening_in_the_same_process_takes_over_as_after_a_crash(tmp_path):
    path = str(tmp_path / "run.h5")
    first = Journal(path)
    first.record_many([("a", 1)])
    second = Journal(path)  # `first` is never closed: as if its process had died
    assert second.get("a") == 1
    with pytest.raises(ValueError, match="closed"):
        first.record_many([("b", 2)])
    second.record_many([("b", 2)])
    second.close()
    first.close()  # harmless
    with Journal(path) as third:
        assert third.keys() == ["a", "b"]


def test_bad_keys_and_closed_journals(tmp_path):
    journal = Journal(str(tmp_path / "run.h5"))
    with pytest.raises(TypeError, match="keys are str"):
        journal.record_many([(3, "x")])
    journal.record_many([])  # nothing to do
    journal.close()
    journal.close()
    with pytest.raises(ValueError, match="closed"):
        journal.record_many([("a", 1)])


# -- task keys -------------------------------------------------------------------------


def square(x, power=2):
    return x**power


class Model:
    def __init__(self, weight: float) -> None:
        self.weight = weight

    def predict(self, x):
        return self.weight * x

    def __call__(self, x):
        return self.weight * x


def test_a_user_key_is_used_as_is():
    assert task_key(square, (1,), {}, key="sample-17") == "sample-17"
    with pytest.raises(TypeError):
        task_key(square, (1,), {}, key=17)


def test_keys_name_the_function_and_depend_on_the_arguments():
    k = task_key(square, (3,), {})
    assert k.startswith("tests.unit.test_journal.square:") and len(k.split(":")[1]) == 40
    assert k == task_key(square, (3,), None) == task_key(square, [3], {})
    assert k != task_key(square, (4,), {})
    assert k != task_key(square, (3.0,), {})
    assert k != task_key(square, (3,), {"power": 3})
    assert task_key(square, (), {"x": 3, "power": 3}) == task_key(square, (), {"power": 3, "x": 3})
    assert task_key(square, (3,), {}) != task_key(Model, (3,), {})


def test_arrays_count_by_dtype_shape_and_bytes():
    a = np.arange(6.0)
    assert task_key(square, (a,)) == task_key(square, (a.copy(),))
    assert task_key(square, (a,)) == task_key(square, (np.asfortranarray(a),))
    assert task_key(square, (a,)) != task_key(square, (a.astype(np.float32),))
    assert task_key(square, (a,)) != task_key(square, (a.reshape(2, 3),))
    b = a.copy()
    b[5] = 7
    assert task_key(square, (a,)) != task_key(square, (b,))
    objects = np.array([1, "x"], dtype=object)
    assert task_key(square, (objects,)) == task_key(square, (objects.copy(),))
    assert task_key(square, (objects,)) != task_key(square, (np.array([1, "y"], dtype=object),))


def test_shared_and_copied_arguments_agree_and_sets_are_ordered():
    a = [1, 2, 3]
    assert task_key(square, (a, a)) == task_key(square, (a, list(a)))
    assert task_key(square, ({"b", "a", "c"},)) == task_key(square, ({"c", "a", "b"},))
    assert task_key(square, (frozenset({1, 2}),)) != task_key(square, ({1, 2},))


def test_bound_state_is_part_of_the_key():
    assert task_key(functools.partial(square, power=3), (2,)) != task_key(functools.partial(square, power=4), (2,))
    assert task_key(functools.partial(square, power=3), (2,)).startswith("tests.unit.test_journal.square:")
    assert task_key(Model(1.0).predict, (2,)) != task_key(Model(2.0).predict, (2,))
    assert task_key(Model(1.0).predict, (2,)) == task_key(Model(1.0).predict, (2,))
    assert task_key(Model(1.0), (2,)).startswith("tests.unit.test_journal.Model:")
    assert task_key(Model(1.0), (2,)) != task_key(Model(3.0), (2,))


def test_arguments_that_cannot_be_pickled_deterministically_are_named():
    with pytest.raises(TaskKeyError, match="cannot be pickled deterministically.*key=") as info:
        task_key(square, (lambda x: x,))
    assert isinstance(info.value, InputError) and isinstance(info.value, TypeError)
    cyclic: list = []
    cyclic.append(cyclic)
    with pytest.raises(TaskKeyError, match="square"):
        task_key(square, (cyclic,))


def test_keys_are_stable_across_processes_and_hash_seeds():
    code = (
        "import numpy as np; from hpcdist.farm.journal import task_key; from tests.unit.test_journal import square; "
        "print(task_key(square, ({'x', 'y', 'z', 'w'}, np.arange(5), 'text'), {'power': 2}))"
    )
    keys = set()
    for seed in ("0", "1", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                             timeout=30, check=True)
        keys.add(out.stdout.strip())
    keys.add(task_key(square, ({"x", "y", "z", "w"}, np.arange(5), "text"), {"power": 2}))
    assert len(keys) == 1, keys
