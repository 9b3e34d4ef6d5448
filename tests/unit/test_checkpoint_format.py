"""Checkpoint format, listing and verification without MPI ranks (a one-rank store on COMM_SELF)."""

from __future__ import annotations

import json
import logging
import os

import h5py
import numpy as np
import pytest

from hpcdist.checkpoint import (
    CheckpointError,
    CheckpointStore,
    list_checkpoints,
    quick_check,
    read_manifest,
    read_range,
    verify_checkpoint,
)
from hpcdist.checkpoint.format import FORMAT, VERSION, parse_manifest
from hpcdist.runtime.faults import Faults

N = 3000
BLOCK = 1024  # bytes: small blocks so that tiny arrays span many of them


def values(step: int) -> dict[str, np.ndarray]:
    idx = np.arange(N)
    return {"rank": idx * 0.5 + step, "label": (idx % 97).astype(np.int32) + step,
            "flag": (idx % 3 == step % 3)}


@pytest.fixture
def store(tmp_path):
    from mpi4py import MPI

    return CheckpointStore(tmp_path / "ckpt", MPI.COMM_SELF, keep=3, block_bytes=BLOCK, faults=Faults())


def save(store, step, meta=None):
    return store.save(step, values(step), 0, N, meta or {"algorithm": "pagerank", "graph": "g1"})


def flip_byte(path, dataset: str, item_byte: int) -> None:
    """Flip one byte inside a dataset's data (not the HDF5 metadata)."""
    with h5py.File(path, "r") as f:
        where = f[dataset].id.get_offset() + item_byte
    with open(path, "r+b") as fh:
        fh.seek(where)
        byte = fh.read(1)
        fh.seek(where)
        fh.write(bytes([byte[0] ^ 0x40]))


def test_manifest_records_layout_checksums_and_meta(store):
    info = save(store, 7)
    data = json.loads(info.manifest_path.read_text())
    assert data["format"] == FORMAT and data["version"] == VERSION
    assert (data["step"], data["ranks"], data["total"]) == (7, 1, N)
    assert data["arrays"] == {"flag": "|b1", "label": "<i4", "rank": "<f8"}
    assert data["meta"] == {"algorithm": "pagerank", "graph": "g1"}
    (entry,) = data["files"]
    assert entry["path"] == "rank-00000.h5" and (entry["offset"], entry["length"]) == (0, N)
    assert entry["size"] == os.path.getsize(info.directory / "rank-00000.h5")
    assert len(entry["checksums"]["rank"]) == -(-N * 8 // BLOCK)
    assert sorted(os.listdir(info.directory)) == ["manifest.json", "rank-00000.h5"]  # no temporaries left
    again = read_manifest(info.directory)
    assert (again.step, again.total, again.arrays, again.meta) == (7, N, info.arrays, info.meta)
    with h5py.File(info.files[0].path, "r") as f:  # the rank file describes itself too
        assert f.attrs["hpcdist_format"] == FORMAT and int(f.attrs["length"]) == N
        assert np.array_equal(f["rank"][...], values(7)["rank"])


def test_round_trip_of_any_range(store):
    info = save(store, 2)
    want = values(2)
    want["z"] = (np.arange(N) * (1 + 2j)).astype(np.complex64)
    want["h"] = np.arange(N).astype(np.float16)
    info = store.save(2, want, 0, N, {})
    for start, stop in [(0, N), (0, 0), (N, N), (1, 2), (127, 129), (128, 256), (5, N - 5), (N - 1, N)]:
        got = read_range(info, start, stop)
        for name in want:
            assert got[name].dtype == want[name].dtype
            assert np.array_equal(got[name], want[name][start:stop]), (name, start, stop)
    assert list(read_range(info, 3, 9, names=["label"])) == ["label"]
    with pytest.raises(CheckpointError, match="outside"):
        read_range(info, 5, N + 1)
    with pytest.raises(CheckpointError, match="no array 'nope'"):
        read_range(info, 0, 1, names=["nope"])


def test_list_is_oldest_first_and_keep_prunes(store):
    for step in (10, 20, 30, 40):
        save(store, step)
    found = list_checkpoints(store.directory)
    assert [c.step for c in found] == [20, 30, 40]  # keep=3
    assert all(c.committed and c.problem is None and not quick_check(c) for c in found)
    assert [c.seq for c in found] == sorted(c.seq for c in found)
    assert store.latest().step == 40


def test_newest_is_the_last_committed_not_the_highest_step(store):
    save(store, 50)
    save(store, 3)  # a run restarted from scratch in the same directory
    assert store.latest().step == 3


def test_verify_finds_a_flipped_byte_and_load_refuses_it(store):
    info = save(store, 1)
    assert verify_checkpoint(info) == []
    flip_byte(info.files[0].path, "rank", 8 * 1000 + 3)  # item 1000 is in block 7 (128 items per block)
    problems = verify_checkpoint(info)
    assert len(problems) == 1
    assert "rank-00000.h5" in problems[0] and "'rank'" in problems[0] and "block 7" in problems[0]
    assert np.array_equal(read_range(info, 0, 896)["rank"], values(1)["rank"][:896])  # blocks 0-6 are intact
    with pytest.raises(CheckpointError, match="checksum mismatch in block 7"):
        read_range(info, 900, 901)


def test_truncated_newest_is_skipped_with_a_warning(store, caplog):
    save(store, 1)
    newest = save(store, 2)
    path = newest.files[0].path
    with open(path, "r+b") as fh:
        fh.truncate(os.path.getsize(path) // 2)
    assert "truncated" in quick_check(newest)[0]
    assert any("truncated" in p for p in verify_checkpoint(newest))
    caplog.set_level(logging.WARNING, logger="hpcdist")
    logging.getLogger("hpcdist").propagate = True
    try:
        info = store.latest()
    finally:
        logging.getLogger("hpcdist").propagate = False
    assert info.step == 1
    assert len(info.skipped) == 1 and str(path) in info.skipped[0]
    assert any(str(path) in r.getMessage() and "truncated" in r.getMessage() for r in caplog.records)


def test_corrupted_data_falls_back_to_the_previous_checkpoint_on_restore(store):
    save(store, 1)
    newest = save(store, 2)
    flip_byte(newest.files[0].path, "label", 40)
    info, arrays = store.restore({"algorithm": "pagerank"}, 0, N)
    assert info.step == 1 and np.array_equal(arrays["label"], values(1)["label"])
    assert "checksum mismatch" in info.skipped[0] and "rank-00000.h5" in info.skipped[0]


def test_restore_refuses_when_every_committed_checkpoint_is_damaged(store):
    only = save(store, 1)
    flip_byte(only.files[0].path, "rank", 0)
    with pytest.raises(CheckpointError, match="none of the 1 committed checkpoints can be restored"):
        store.restore(None, 0, N)


def test_empty_directory_restores_nothing(store):
    assert store.latest() is None and store.restore({"algorithm": "x"}, 0, 10) is None


def test_missing_manifest_is_uncommitted_and_ignored(store):
    save(store, 1)
    newest = save(store, 2)
    newest.manifest_path.unlink()
    assert [c.step for c in list_checkpoints(store.directory)] == [1]
    found = list_checkpoints(store.directory, uncommitted=True)
    assert [(c.step, c.committed) for c in found] == [(1, True), (2, False)]
    assert "uncommitted" in found[1].problem
    assert store.latest().step == 1
    save(store, 3)  # the next commit deletes the unfinished save
    assert [c.step for c in list_checkpoints(store.directory, uncommitted=True)] == [1, 3]


@pytest.mark.parametrize("change, words", [
    (lambda m: m.update(version=VERSION + 1), "newer than this hpcdist reads"),
    (lambda m: m.update(format="something-else"), "not an hpcdist checkpoint manifest"),
    (lambda m: m.pop("files"), "missing field 'files'"),
    (lambda m: m.update(total=m["total"] + 1), "the files cover"),
    (lambda m: m["files"][0]["checksums"]["rank"].pop(), "checksums for 'rank'"),
    (lambda m: m["files"][0].update(path="../elsewhere.h5"), "bad path"),
])
def test_bad_manifests_are_refused_naming_the_file(store, change, words):
    info = save(store, 1)
    data = json.loads(info.manifest_path.read_text())
    change(data)
    info.manifest_path.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=words) as err:
        read_manifest(info.directory)
    assert str(info.manifest_path) in str(err.value)
    (listed,) = list_checkpoints(store.directory)
    assert listed.committed and words in listed.problem
    assert store.latest() is None


def test_manifest_that_is_not_json(store):
    info = save(store, 1)
    info.manifest_path.write_bytes(b'{"format": "hpcdist-check')
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_manifest(info.directory)


def test_another_runs_meta_is_refused_not_skipped(store):
    save(store, 1, {"algorithm": "pagerank", "graph": "g1", "params": {"damping": 0.85}})
    with pytest.raises(CheckpointError) as err:
        store.latest({"algorithm": "pagerank", "graph": "g2"})
    text = str(err.value)
    assert str(store.directory) in text and "graph" in text and '"g1"' in text and '"g2"' in text
    with pytest.raises(CheckpointError, match='damping'):
        store.restore({"params": {"damping": 0.9}}, 0, N)
    with pytest.raises(CheckpointError, match=r"has seed = \(missing\)"):
        store.latest({"seed": 1})
    # tuples compare as the lists JSON gives back
    save(store, 2, {"algorithm": "pagerank", "dims": (1, 2)})
    assert store.latest({"dims": (1, 2)}).step == 2


def test_bad_arguments_raise_checkpoint_errors(store):
    with pytest.raises(CheckpointError, match="2-D"):
        store.save(1, {"a": np.zeros((2, 2))}, 0, 4, {})
    with pytest.raises(CheckpointError, match="dtype object"):
        store.save(1, {"a": np.array([None, 1])}, 0, 2, {})
    with pytest.raises(CheckpointError, match="cover 3 items, total is 4"):
        store.save(1, {"a": np.zeros(3)}, 0, 4, {})
    with pytest.raises(CheckpointError, match="has 2 items"):
        store.save(1, {"a": np.zeros(3), "b": np.zeros(2)}, 0, 3, {})
    with pytest.raises(CheckpointError, match="not JSON-able"):
        store.save(1, {"a": np.zeros(3)}, 0, 3, {"x": object()})
    assert list_checkpoints(store.directory) == []


def test_injected_write_failure_leaves_the_previous_checkpoint(tmp_path):
    from mpi4py import MPI

    store = CheckpointStore(tmp_path / "c", MPI.COMM_SELF, faults=Faults())
    save(store, 1)
    store.faults = Faults.parse("rank:0,phase:checkpoint-write,kind:raise")
    with pytest.raises(CheckpointError, match="InjectedFault"):
        save(store, 2)
    found = list_checkpoints(store.directory, uncommitted=True)
    assert [(c.step, c.committed) for c in found] == [(1, True)]  # the unfinished save was removed
    assert verify_checkpoint(found[0]) == []


def test_store_refuses_a_file_as_directory(tmp_path):
    from mpi4py import MPI

    (tmp_path / "f").write_text("x")
    with pytest.raises(CheckpointError, match="not a directory"):
        CheckpointStore(tmp_path / "f", MPI.COMM_SELF)
    with pytest.raises(CheckpointError, match="keep must be a positive integer"):
        CheckpointStore(tmp_path / "d", MPI.COMM_SELF, keep=0)
    with pytest.raises(CheckpointError, match="no such checkpoint directory"):
        list_checkpoints(tmp_path / "missing")


def test_parse_manifest_rejects_gaps_between_files(store):
    info = save(store, 1)
    data = json.loads(info.manifest_path.read_text())
    data["files"][0]["offset"] = 1
    with pytest.raises(CheckpointError, match="does not continue at item 0"):
        parse_manifest(data, info.directory)


def test_a_newest_checkpoint_of_another_run_is_refused_even_if_an_older_one_matches(store):
    save(store, 1, {"algorithm": "pagerank", "graph": "g1"})
    save(store, 2, {"algorithm": "pagerank", "graph": "g2"})
    with pytest.raises(CheckpointError, match='has graph = "g2", this run expects graph = "g1"'):
        store.latest({"graph": "g1"})


def test_falling_back_onto_another_runs_checkpoint_is_refused(store):
    save(store, 1, {"algorithm": "pagerank", "graph": "g0"})
    newest = save(store, 2, {"algorithm": "pagerank", "graph": "g1"})
    assert store.latest({"graph": "g1"}).step == 2
    flip_byte(newest.files[0].path, "rank", 0)
    with pytest.raises(CheckpointError, match='has graph = "g0"'):
        store.restore({"graph": "g1"}, 0, N)


def test_a_malformed_fault_spec_is_an_input_error_at_store_creation(tmp_path, monkeypatch):
    from mpi4py import MPI

    from hpcdist.runtime.errors import InputError
    from hpcdist.runtime.faults import faults

    monkeypatch.setenv("HPCDIST_FAULT", "rank:0,phase:checkpoint-write,kind:boom")
    faults.cache_clear()
    try:
        with pytest.raises(InputError, match="unknown kind 'boom'"):
            CheckpointStore(tmp_path / "c", MPI.COMM_SELF)
    finally:
        faults.cache_clear()


def test_background_pruning_finishes_by_wait(tmp_path):
    from mpi4py import MPI

    store = CheckpointStore(tmp_path / "c", MPI.COMM_SELF, keep=1, faults=Faults(), background_prune=True)
    for step in range(3):
        save(store, step)
    store.wait()
    assert [c.step for c in list_checkpoints(store.directory, uncommitted=True)] == [2]


def test_cli_verify_and_ls_report_without_launching(store, tmp_path):
    from hpcdist.cli.checkpoint import _ls, _verify

    lines, code, message = _verify(str(store.directory))
    assert code == 1 and message == f"no committed checkpoint in {store.directory}"
    assert _ls(str(store.directory), False) == ([f"no checkpoints in {store.directory}"], 0)
    save(store, 4)
    bad = save(store, 5)
    (store.directory / "ckpt-000009-step-000000006").mkdir()  # a crashed save
    lines, code, message = _verify(str(store.directory))
    assert code == 0 and message is None and "uncommitted" in lines[-2]
    flip_byte(bad.files[0].path, "flag", 1)
    lines, code, message = _verify(str(store.directory))
    assert code == 1 and "1 of 2 committed" in message and str(bad.files[0].path) in message
    lines, code = _ls(str(store.directory), True)
    rows = json.loads(lines[0])["checkpoints"]
    assert [(r["step"], r["status"]) for r in rows] == [(4, "ok"), (5, "ok"), (6, "uncommitted")]


def test_reading_through_h5py_when_the_data_has_no_raw_offset(store, monkeypatch):
    import hpcdist.checkpoint.store as store_module

    info = save(store, 3)
    monkeypatch.setattr(store_module, "_raw_offset", lambda ds: None)
    got = read_range(info, 100, 2900)
    assert all(np.array_equal(got[k], v[100:2900]) for k, v in values(3).items())
    flip_byte(info.files[0].path, "rank", 8 * 2000)
    with pytest.raises(CheckpointError, match="checksum mismatch in block 15"):
        read_range(info, 0, N)


def test_a_truncated_rank_file_fails_a_direct_read(store):
    info = save(store, 1)
    path = info.files[0].path
    with open(path, "r+b") as fh:
        fh.truncate(os.path.getsize(path) - 100)
    with pytest.raises(CheckpointError, match="rank-00000.h5"):
        read_range(info, 0, N)
