"""`hpcdist graph ALGO --checkpoint-dir ... --resume`: kill, signal, corrupt, restart elsewhere.

Every test compares with an uninterrupted run of the same job: PageRank bit-identical
(the engine's reductions do not depend on the rank count), at 1 to 4 ranks.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.conftest import hpcdist_cmd, launch

pytestmark = pytest.mark.launch

GRAPH = "grid2d:30"
# A slowly converging PageRank (undirected grid, alpha 0.99) that runs all 60 supersteps.
RUN = ("--input", GRAPH, "--undirected", "--alpha", "0.99", "--tol", "1e-300", "--max-iter", "60", "--backend", "numpy")


def _pagerank(n, out, *extra, env=None, timeout=90):
    return launch(n, *hpcdist_cmd(), "graph", "pagerank", *RUN, "--output", str(out), *extra, env=env,
                  timeout=timeout)


def _values(path):
    with h5py.File(path) as f:
        return f["vertex_ids"][:], f["result"][:], dict(f.attrs)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "ref.h5"
    rc, text, _ = _pagerank(2, out)
    assert rc == 0, text
    ids, vals, attrs = _values(out)
    assert attrs["iterations"] == 60 and not attrs["converged"]  # runs the whole 60 supersteps
    return ids, vals


def _steps(ck: Path) -> list[int]:
    from hpcdist.checkpoint import list_checkpoints

    return sorted(info.step for info in list_checkpoints(str(ck)))


@pytest.mark.timeout(240)
def test_killed_at_a_superstep_resumes_on_other_rank_counts_bit_identical(tmp_path, reference):
    ck = tmp_path / "ck"
    rc, text, _ = _pagerank(4, tmp_path / "dead.h5", "--checkpoint-dir", str(ck), "--checkpoint-every", "7",
                            env={"HPCDIST_FAULT": "rank:2,superstep:31,kind:kill"})
    assert rc != 0 and not (tmp_path / "dead.h5").exists(), text
    assert _steps(ck) == [20, 27]  # every 7: 6, 13, 20, 27; the newest two are kept
    for n in (1, 3, 4):
        mine = tmp_path / f"ck{n}"
        shutil.copytree(ck, mine)
        out = tmp_path / f"resumed{n}.h5"
        rc, text, _ = _pagerank(n, out, "--checkpoint-dir", str(mine), "--checkpoint-every", "7", "--resume")
        assert rc == 0, text
        assert "continuing after superstep 27" in text
        ids, vals, attrs = _values(out)
        assert attrs["iterations"] == 60
        assert np.array_equal(ids, reference[0]) and np.array_equal(vals, reference[1])


@pytest.mark.timeout(180)
def test_kill_inside_a_checkpoint_write_keeps_the_previous_one(tmp_path, reference):
    ck = tmp_path / "ck"
    rc, text, _ = _pagerank(3, tmp_path / "dead.h5", "--checkpoint-dir", str(ck), "--checkpoint-every", "10",
                            env={"HPCDIST_FAULT": "rank:1,superstep:29,phase:checkpoint-write,kind:kill"})
    assert rc != 0, text
    assert _steps(ck) == [9, 19]
    rc, text, _ = _pagerank(2, tmp_path / "out.h5", "--checkpoint-dir", str(ck), "--resume")
    assert rc == 0 and "continuing after superstep 19" in text, text
    _, vals, _ = _values(tmp_path / "out.h5")
    assert np.array_equal(vals, reference[1])


@pytest.mark.timeout(180)
def test_corrupted_newest_checkpoint_falls_back_to_the_previous(tmp_path, reference):
    ck = tmp_path / "ck"
    rc, text, _ = _pagerank(2, tmp_path / "dead.h5", "--checkpoint-dir", str(ck), "--checkpoint-every", "5",
                            env={"HPCDIST_FAULT": "rank:0,superstep:22,kind:raise"})
    assert rc != 0 and "injected" in text.lower(), text
    assert _steps(ck) == [14, 19]
    newest = sorted(p for p in ck.rglob("*.h5") if "19" in str(p.relative_to(ck)))
    assert newest, list(ck.rglob("*"))
    victim = newest[-1]
    with h5py.File(victim) as f:
        offset = f["x"].id.get_offset()  # where the state vector's bytes lie in the file
    data = bytearray(victim.read_bytes())
    data[offset + 40 : offset + 48] = b"\x00\x00\x00\x00\x00\x00\xf0\x3f"  # one value silently becomes 1.0
    victim.write_bytes(bytes(data))
    rc, text, _ = _pagerank(3, tmp_path / "out.h5", "--checkpoint-dir", str(ck), "--resume")
    assert rc == 0, text
    assert "continuing after superstep 14" in text and victim.name in text
    _, vals, _ = _values(tmp_path / "out.h5")
    assert np.array_equal(vals, reference[1])


@pytest.mark.timeout(120)
def test_checkpoint_of_another_graph_or_parameters_is_refused(tmp_path):
    ck = tmp_path / "ck"
    rc, text, _ = _pagerank(2, tmp_path / "a.h5", "--checkpoint-dir", str(ck), "--checkpoint-every", "20")
    assert rc == 0, text
    rc, text, _ = launch(2, *hpcdist_cmd(), "graph", "pagerank", *RUN[:1], "grid2d:31", *RUN[2:],
                         "--checkpoint-dir", str(ck), "--resume", timeout=90)
    assert rc == 2 and "graph" in text and "Traceback" not in text, text
    assert text.count("error") == 1
    rc, text, _ = _pagerank(2, tmp_path / "b.h5", "--alpha", "0.9", "--checkpoint-dir", str(ck), "--resume")
    assert rc == 2 and "params" in text and "Traceback" not in text, text


@pytest.mark.timeout(120)
def test_a_run_without_resume_keeps_the_checkpoints_it_finds(tmp_path):
    """A fresh run's rotation would delete another run's checkpoints: refused, nothing lost."""
    ck = tmp_path / "ck"
    rc, text, _ = _pagerank(2, tmp_path / "a.h5", "--checkpoint-dir", str(ck), "--checkpoint-every", "20")
    assert rc == 0, text
    before = _steps(ck)
    assert before
    rc, text, _ = _pagerank(3, tmp_path / "b.h5", "--checkpoint-dir", str(ck), "--checkpoint-every", "1")
    assert rc == 2 and "already holds checkpoints" in text and "--resume" in text and "Traceback" not in text, text
    assert text.count("already holds checkpoints") == 1
    assert _steps(ck) == before
    assert not (tmp_path / "b.h5").exists()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("args, message", [
    (("--resume",), "--resume needs --checkpoint-dir"),
    (("--checkpoint-every", "3"), "--checkpoint-every needs --checkpoint-dir"),
    (("--checkpoint-dir", "X", "--checkpoint-every", "0"), "at least 1"),
    (("--checkpoint-dir", "X", "--checkpoint-interval", "soon"), "--checkpoint-interval expects a duration"),
])
def test_bad_checkpoint_options(tmp_path, args, message):
    rc, text, _ = launch(2, *hpcdist_cmd(), "graph", "pagerank", "--input", "grid2d:4", *args, timeout=60)
    assert rc == 2 and message in text and "Traceback" not in text, text


def _rank_pids(root_pid: int) -> list[int]:
    """Pids of the python ranks under an mpiexec process (walks /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            todo.append(child)
            try:
                if b"hpcdist" in Path(f"/proc/{child}/cmdline").read_bytes():
                    out.append(child)
            except OSError:
                pass
    return sorted(out)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("target", ["one rank", "launcher"])
def test_signal_checkpoints_and_exits_75_then_resume_finishes(tmp_path, target):
    """SIGUSR1 to one rank (or to mpiexec, which forwards it to all): every rank stops
    after the same superstep, a checkpoint is written, the job exits 75; --resume finishes."""
    import subprocess
    import sys

    from tests.conftest import _launch_env, mpiexec_path

    ck = tmp_path / "ck"
    long_run = (*RUN[:7], "--max-iter", "100000", "--backend", "numpy")
    cmd = [mpiexec_path(), "-n", "3", sys.executable, "-m", "hpcdist", "graph", "pagerank", *long_run,
           "--checkpoint-dir", str(ck), "--checkpoint-every", "50", "--output", str(tmp_path / "out.h5")]
    proc = subprocess.Popen(cmd, env=_launch_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not ck.is_dir() or not _steps(ck):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
            time.sleep(0.05)
        pid = _rank_pids(proc.pid)[1] if target == "one rank" else proc.pid
        os.kill(pid, signal.SIGUSR1)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 75, out
    assert out.count("stopped on SIGUSR1") == 1 and "Traceback" not in out, out
    last = _steps(ck)[-1]
    assert f"after superstep {last}" in out
    # Where to stop is not part of a checkpoint's identity: the resumed run may go further.
    rc, text, _ = launch(2, *hpcdist_cmd(), "graph", "pagerank", *long_run[:7], "--max-iter", str(last + 4),
                         "--backend", "numpy", "--checkpoint-dir", str(ck), "--resume",
                         "--output", str(tmp_path / "out.h5"), timeout=90)
    assert rc == 0 and f"continuing after superstep {last}" in text, text
    assert _values(tmp_path / "out.h5")[2]["iterations"] == last + 4


ALGORITHMS = {
    "pagerank": ("--input", "grid2d:24", "--undirected", "--alpha", "0.99", "--tol", "1e-300", "--max-iter", "40"),
    "bfs": ("--input", "grid2d:24", "--source", "5"),
    # a sparse random graph, hashed: small local components, so FastSV takes 4 supersteps
    "cc": ("--input", "er:3000:1.5", "--partitioner", "hash"),
    "sssp": ("--input", "grid2d:24", "--undirected", "--source", "300"),
}


@pytest.mark.timeout(240)
@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_every_algorithm_killed_at_a_random_superstep_resumes_bit_identical(tmp_path, algorithm):
    import random

    args = (*ALGORITHMS[algorithm], "--backend", "numpy")
    ref = tmp_path / "ref.h5"
    rc, text, _ = launch(3, *hpcdist_cmd(), "graph", algorithm, *args, "--output", str(ref), timeout=90)
    assert rc == 0, text
    with h5py.File(ref) as f:
        total = int(f.attrs["iterations"])
        expected = {name: f[name][:] for name in f if name != "vertex_ids"}
    assert total >= 3, (algorithm, total)
    step = random.Random().randint(1, total - 2)
    ck, out = tmp_path / "ck", tmp_path / "out.h5"
    rc, text, _ = launch(3, *hpcdist_cmd(), "graph", algorithm, *args, "--checkpoint-dir", str(ck),
                         "--checkpoint-every", "1", "--output", str(out),
                         env={"HPCDIST_FAULT": f"rank:1,superstep:{step},kind:kill"}, timeout=90)
    assert rc != 0 and not out.exists(), f"superstep {step}: {text}"
    assert _steps(ck)[-1] == step - 1
    rc, text, _ = launch(4, *hpcdist_cmd(), "graph", algorithm, *args, "--checkpoint-dir", str(ck), "--resume",
                         "--output", str(out), timeout=90)
    assert rc == 0 and f"continuing after superstep {step - 1}" in text, f"superstep {step}: {text}"
    with h5py.File(out) as f:
        if algorithm != "cc":  # CC's superstep count depends on the partition; the others' does not
            assert int(f.attrs["iterations"]) == total
        for name, values in expected.items():
            assert np.array_equal(f[name][:], values), f"{algorithm} {name} differs after a kill at superstep {step}"


@pytest.mark.timeout(180)
def test_cc_cut_short_on_three_ranks_resumes_on_one(tmp_path):
    """One rank has no edge to another rank: its local components are final at once, and
    the checkpoint's pointers (a run cut short) change nothing."""
    args = (*ALGORITHMS["cc"], "--backend", "numpy")
    ref = tmp_path / "ref.h5"
    rc, text, _ = launch(3, *hpcdist_cmd(), "graph", "cc", *args, "--output", str(ref), timeout=90)
    assert rc == 0, text
    with h5py.File(ref) as f:
        expected = {name: f[name][:] for name in f if name != "vertex_ids"}
    ck, out = tmp_path / "ck", tmp_path / "out.h5"
    rc, text, _ = launch(3, *hpcdist_cmd(), "graph", "cc", *args, "--checkpoint-dir", str(ck), "--checkpoint-every",
                         "1", "--output", str(out), env={"HPCDIST_FAULT": "rank:1,superstep:1,kind:kill"}, timeout=90)
    assert rc != 0 and _steps(ck)[-1] == 0, text
    rc, text, _ = launch(1, *hpcdist_cmd(), "graph", "cc", *args, "--checkpoint-dir", str(ck), "--resume",
                         "--output", str(out), timeout=90)
    assert rc == 0 and "continuing after superstep 0" in text, text
    with h5py.File(out) as f:
        for name, values in expected.items():
            assert np.array_equal(f[name][:], values), name


@pytest.mark.timeout(90)
def test_a_hung_rank_ends_the_job_through_the_superstep_watchdog(tmp_path):
    """A rank that hangs leaves the others in a collective; the watchdog ends the job
    within the timeout instead of letting it sit until the allocation runs out."""
    rc, text, took = launch(3, *hpcdist_cmd(), "graph", "pagerank", *RUN, "--superstep-timeout", "3s",
                            "--checkpoint-dir", str(tmp_path / "ck"), "--checkpoint-every", "2",
                            env={"HPCDIST_FAULT": "rank:2,superstep:6,kind:hang"}, timeout=60)
    assert rc == 3 and "no superstep finished" in text and "injected fault: hang on rank 2" in text, text
    assert took < 30
    assert _steps(tmp_path / "ck")[-1] == 5
