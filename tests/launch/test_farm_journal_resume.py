"""A journaled farm job SIGKILLed at random moments, then rerun: identical results, work skipped.

The job (``tests/scripts/farm_journal_job.py``, 150 ``submit(..., key=...)`` tasks and a
150-item ``map`` with automatic chunks) runs under ``mpiexec -n 3 hpcdist exec``. Each
run logs its own executions, so the test sees that a rerun runs exactly the tasks the
journal lacks, and that nothing the journal held before a kill is lost by the next one.
"""

from __future__ import annotations

import os
import pickle
import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from hpcdist.farm.journal import Journal
from tests.conftest import ROOT, SCRIPTS, _launch_env, hpcdist_cmd, mpiexec_path

pytestmark = pytest.mark.launch

SCRIPT = SCRIPTS / "farm_journal_job.py"
N_TASKS = 300  # 150 submitted + 150 mapped
KILLS = 3


def start_job(journal: Path, out: Path, log: Path, console: Path, *extra: str, n: int = 3,
              runner: tuple[str, ...] = ()) -> subprocess.Popen:
    """Start the job in a session of its own, so that the whole process group can be signalled."""
    env = _launch_env()
    env["FARM_JOB_LOG"] = str(log)
    runner = runner or (*hpcdist_cmd(), "exec")
    cmd = [mpiexec_path(), "-n", str(n), *runner, str(SCRIPT), str(journal), str(out), *extra]
    with open(console, "w") as fh:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)


def job_processes(root: int) -> list[int]:
    """``root`` and all its descendants: mpiexec, its proxy and the ranks.

    Hydra starts every rank in a session of its own, so killing mpiexec's process group
    would leave the ranks running: the job is found by parentage instead.
    """
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def kill_job(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to every process of the job at once, then reap mpiexec."""
    for pid in job_processes(proc.pid):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    if sig == signal.SIGKILL:
        proc.wait(timeout=30)


def wait_gone(pids: list[int], timeout: float = 15.0) -> None:
    from hpcdist.farm.transport import process_alive

    end = time.monotonic() + timeout
    while any(process_alive(p) for p in pids):
        assert time.monotonic() < end, f"job processes outlived the kill: {[p for p in pids if process_alive(p)]}"
        time.sleep(0.01)


def finish(proc: subprocess.Popen, console: Path, timeout: float = 60.0) -> tuple[int, str]:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_job(proc)
        pytest.fail(f"the job hung; output:\n{console.read_text()}")
    return proc.returncode, console.read_text()


def executions(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def lock_holders(path: Path) -> list[str]:
    """The processes that have the journal's lock file open (for a failure message)."""
    lock = str(path.with_name(path.name + ".d") / "lock")
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if any(os.readlink(fd) == lock for fd in (entry / "fd").iterdir()):
                    cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                    state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                    found.append(f"{entry.name} ({state}): {cmdline}")
            except OSError:
                continue
    return found


def journal_len(path: Path, wait_s: float = 10.0) -> int:
    """Records in the journal, opened as a rerun would (its segments are consolidated).

    A killed coordinator's lock can outlive its process for a moment (the kernel closes
    the files of a dying process asynchronously), so a busy lock is retried briefly.
    """
    end = time.monotonic() + wait_s
    while True:
        try:
            journal = Journal(str(path))
            break
        except Exception as exc:  # noqa: BLE001
            if "open in another process" not in str(exc) or time.monotonic() > end:
                raise AssertionError(f"{exc}; lock held by {lock_holders(path)}") from exc
            time.sleep(0.05)
    with journal:
        return len(journal)


def skipped(out: str) -> int:
    line = next((x for x in out.splitlines() if x.startswith("SKIPPED ")), None)
    assert line is not None, out
    return int(line.split()[1])


def assert_same(a, b, where="result"):
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b and type(a) is type(b), where


def reference_run(tmp: Path) -> dict:
    """An uninterrupted run: every task executes once."""
    ref = tmp / "ref"
    ref.mkdir()
    proc = start_job(ref / "run.h5", ref / "out.pkl", ref / "log", ref / "console")
    rc, out = finish(proc, ref / "console")
    assert rc == 0 and "DONE" in out and skipped(out) == 0, out
    assert sorted(executions(ref / "log")) == sorted([f"s {i}" for i in range(150)] + [f"m {i}" for i in range(150)])
    return pickle.loads((ref / "out.pkl").read_bytes())


def kill_when(proc: subprocess.Popen, log: Path, segments: Path, threshold: int, extra_s: float,
              console: Path) -> None:
    """SIGKILL the job's process group once this run executed ``threshold`` tasks and journaled some."""
    end = time.monotonic() + 60
    while time.monotonic() < end:
        if proc.poll() is not None:
            return  # finished before the kill: the rerun has nothing left to do
        if len(executions(log)) >= threshold and any(segments.glob("seg-*.h5")):
            break
        time.sleep(0.005)
    else:
        kill_job(proc)
        pytest.fail(f"the job never reached {threshold} executions; output:\n{console.read_text()}")
    time.sleep(extra_s)
    pids = job_processes(proc.pid)
    kill_job(proc)
    wait_gone(pids)


@pytest.mark.timeout(180)
def test_sigkill_at_random_moments_then_rerun_gives_identical_results(tmp_path):
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    expected = reference_run(tmp_path)
    journal, out = tmp_path / "run.h5", tmp_path / "out.pkl"
    segments = tmp_path / "run.h5.d"
    held = 0
    for k in range(KILLS):
        log, console = tmp_path / f"log-{k}", tmp_path / f"console-{k}"
        left = N_TASKS - held
        if left < 90:
            break  # a kill must land before the run ends, or the final rerun has nothing to show
        proc = start_job(journal, out, log, console)
        # At most about 55 tasks before the kill (2 workers, 4 ms tasks): the run cannot finish first.
        kill_when(proc, log, segments, threshold=rng.randint(5, left // 3), extra_s=rng.uniform(0, 0.05),
                  console=console)
        now_held = journal_len(journal)
        # Nothing journaled before is lost; every task this run finished before its last
        # journal write is held (a task that ran but was not journaled yet is simply rerun).
        assert now_held >= held, f"seed {seed}: the journal shrank from {held} to {now_held}"
        assert now_held <= N_TASKS
        held = now_held
    assert 0 < held < N_TASKS, f"seed {seed}: {held} tasks journaled after the kills"
    log, console = tmp_path / "log-final", tmp_path / "console-final"
    rc, text = finish(start_job(journal, out, log, console), console)
    assert rc == 0 and "DONE" in text, text
    assert skipped(text) == held, f"seed {seed}: {text}"
    ran = executions(log)
    assert len(ran) == N_TASKS - held == len(set(ran)), f"seed {seed}: the rerun ran {len(ran)} tasks, {held} were journaled"
    assert_same(expected, pickle.loads(out.read_bytes()))
    # A second rerun has nothing left to run.
    log2, console2 = tmp_path / "log-again", tmp_path / "console-again"
    rc, text = finish(start_job(journal, out, log2, console2), console2)
    assert rc == 0 and skipped(text) == N_TASKS and executions(log2) == [], text
    assert_same(expected, pickle.loads(out.read_bytes()))
