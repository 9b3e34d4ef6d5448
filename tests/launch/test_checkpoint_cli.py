"""Checkpoints under real launches: a rank SIGKILLed mid-save, and `hpcdist checkpoint ls/verify`."""

from __future__ import annotations

import json
import re

import pytest

from hpcdist.checkpoint import list_checkpoints, verify_checkpoint
from tests.conftest import SCRIPTS, hpcdist_cmd, launch

pytestmark = pytest.mark.launch

LOOP = str(SCRIPTS / "checkpoint_loop.py")


def run_loop(n: int, directory, saves: int, fault: str | None = None, total: int = 400_000):
    env = {"HPCDIST_FAULT": fault} if fault else {"HPCDIST_FAULT": ""}
    return launch(n, *hpcdist_cmd(), "exec", LOOP, str(directory), str(saves), str(total), timeout=90, env=env)


def committed_steps(out: str) -> list[int]:
    return [int(m) for m in re.findall(r"^committed (\d+)$", out, flags=re.M)]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("victim, phase", [(1, "checkpoint-write"), (0, "checkpoint-commit")])
def test_rank_killed_while_saving_leaves_the_previous_checkpoint_valid(tmp_path, victim, phase):
    directory = tmp_path / "ckpt"
    rc, out, _ = run_loop(3, directory, 2)
    assert rc == 0 and committed_steps(out) == [1, 2], out

    rc, out, _ = run_loop(3, directory, 2, fault=f"rank:{victim},phase:{phase},kind:kill")
    assert rc != 0, out
    assert "restored 2 written by 3 ranks" in out and f"injected fault: kill on rank {victim} at phase {phase}" in out
    assert committed_steps(out) == [], out

    assert [c.step for c in list_checkpoints(directory)] == [1, 2]
    found = list_checkpoints(directory, uncommitted=True)
    assert [(c.step, c.committed) for c in found] == [(1, True), (2, True), (3, False)]
    assert all(verify_checkpoint(c) == [] for c in found if c.committed)
    unfinished = {p.name for p in found[-1].directory.iterdir()}
    assert "manifest.json" not in unfinished
    if phase == "checkpoint-write":  # the victim died before its file got its final name
        assert f"rank-{victim:05d}.h5" not in unfinished

    rc, out, _ = launch(0, *hpcdist_cmd(), "checkpoint", "verify", str(directory), timeout=60)
    assert rc == 0 and "all 2 committed checkpoint(s)" in out and "uncommitted" in out, out

    # the next run (on another rank count) resumes from step 2 and clears the debris
    rc, out, _ = run_loop(2, directory, 1)
    assert rc == 0 and "restored 2 written by 3 ranks" in out and committed_steps(out) == [3], out
    assert [(c.step, c.committed, c.ranks) for c in list_checkpoints(directory, uncommitted=True)] == [
        (2, True, 3), (3, True, 2)]


@pytest.mark.timeout(120)
def test_ls_and_verify_output_and_exit_codes(tmp_path):
    directory = tmp_path / "ckpt"
    rc, out, _ = run_loop(2, directory, 3, total=50_000)
    assert rc == 0 and committed_steps(out) == [1, 2, 3], out

    rc, out, _ = launch(2, *hpcdist_cmd(), "checkpoint", "ls", str(directory), timeout=60)
    assert rc == 0, out
    assert out.count("NAME") == 1  # printed by rank 0 only
    rows = [line.split() for line in out.splitlines() if line.startswith("ckpt-")]
    assert [(r[1], r[2], r[3], r[4], r[-1]) for r in rows] == [("2", "2", "50000", "loop", "ok"),
                                                             ("3", "2", "50000", "loop", "ok")]
    rc, out, _ = launch(0, *hpcdist_cmd(), "checkpoint", "ls", "--json", str(directory), timeout=60)
    listing = json.loads(out)
    assert [c["step"] for c in listing["checkpoints"]] == [2, 3]
    assert all(c["committed"] and c["bytes"] > 800_000 for c in listing["checkpoints"])

    rc, out, _ = launch(0, *hpcdist_cmd(), "checkpoint", "verify", str(directory), timeout=60)
    assert rc == 0 and out.count(": ok (") == 2, out

    newest = list_checkpoints(directory)[-1]
    bad = newest.files[1].path
    data = bytearray(bad.read_bytes())
    data[-5] ^= 0xFF  # the last dataset's data ends the file
    bad.write_bytes(bytes(data))
    rc, out, _ = launch(0, *hpcdist_cmd(), "checkpoint", "verify", str(directory), timeout=60)
    assert rc == 1, out
    assert "hpcdist: error: 1 of 2 committed checkpoint(s)" in out and str(bad) in out and "checksum mismatch" in out
    assert "Traceback" not in out

    with open(newest.files[0].path, "r+b") as fh:  # truncation shows in ls without reading data
        fh.truncate(1000)
    rc, out, _ = launch(0, *hpcdist_cmd(), "checkpoint", "ls", str(directory), timeout=60)
    assert rc == 0 and "BAD" in out and "truncated" in out and str(newest.files[0].path) in out, out


@pytest.mark.timeout(60)
@pytest.mark.parametrize("n", [0, 2])
def test_missing_directory_is_one_clear_message(tmp_path, n):
    missing = tmp_path / "nope"
    for action in ("ls", "verify"):
        rc, out, _ = launch(n, *hpcdist_cmd(), "checkpoint", action, str(missing), timeout=60)
        assert rc == 2, out
        assert out.strip() == f"hpcdist: error: {missing}: no such checkpoint directory"
