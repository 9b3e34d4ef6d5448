"""SIGTERM drains the farm: no new work, the journal holds what completed, every rank exits
with ``EXIT_REQUEUE`` within seconds, and a rerun finishes the rest with identical results."""

from __future__ import annotations

import os
import pickle
import signal
import sys
import time

import pytest

from hpcdist.farm.walltime import EXIT_REQUEUE
from tests.conftest import SCRIPTS
from tests.launch.test_farm_journal_resume import (
    N_TASKS,
    assert_same,
    executions,
    finish,
    journal_len,
    kill_job,
    skipped,
    start_job,
    wait_gone,
)

pytestmark = pytest.mark.launch

SLEEP = "0.03"  # seconds per task: a full run takes about 4.5 s on two workers


def expected_output() -> dict:
    sys.path.insert(0, str(SCRIPTS))
    try:
        import farm_journal_job as job
    finally:
        sys.path.remove(str(SCRIPTS))
    assert "FARM_JOB_LOG" not in os.environ
    return {"submit": [job.simulate(i, 0.0) for i in range(150)], "map": [job.square(i) for i in range(150)]}


def wait_for_ranks(proc, pid_dir, log, console, n=3, executed=10, timeout=60.0) -> list[int]:
    end = time.monotonic() + timeout
    files = [pid_dir / f"rank-{r}.pid" for r in range(n)]
    while not (all(f.exists() for f in files) and len(executions(log)) >= executed):
        if proc.poll() is not None or time.monotonic() > end:
            kill_job(proc)
            pytest.fail(f"the job did not get going; output:\n{console.read_text()}")
        time.sleep(0.005)
    return [int(f.read_text()) for f in files]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("target,how", [("rank0", "exec"), ("all", "python")])
def test_sigterm_drains_and_a_rerun_finishes_the_rest(tmp_path, target, how):
    journal, out, pid_dir = tmp_path / "run.h5", tmp_path / "out.pkl", tmp_path / "pids"
    pid_dir.mkdir()
    log, console = tmp_path / "log-0", tmp_path / "console-0"
    runner = (sys.executable,) if how == "python" else ()
    proc = start_job(journal, out, log, console, "--sleep", SLEEP, "--pid-dir", str(pid_dir), runner=runner)
    pids = wait_for_ranks(proc, pid_dir, log, console)
    t0 = time.monotonic()
    for pid in pids if target == "all" else pids[:1]:
        os.kill(pid, signal.SIGTERM)
    rc, text = finish(proc, console, timeout=30)
    took = time.monotonic() - t0
    assert rc == EXIT_REQUEUE, text
    assert took < 10, f"the drain took {took:.1f} s:\n{text}"
    wait_gone(pids)
    assert not out.exists() and "DONE" not in text, text
    ran = executions(log)
    held = journal_len(journal)
    assert 0 < held < N_TASKS, (held, text)
    # Every task that completed is journaled. A queued task a worker had already begun when
    # the drain took it back may have run without its result being kept (at most one a worker).
    assert len(ran) - 2 <= held <= len(ran), (held, len(ran))

    log, console = tmp_path / "log-1", tmp_path / "console-1"
    rc, text = finish(start_job(journal, out, log, console, "--sleep", SLEEP, runner=runner), console)
    assert rc == 0 and "DONE" in text, text
    assert skipped(text) == held
    assert len(executions(log)) == N_TASKS - held
    assert_same(expected_output(), pickle.loads(out.read_bytes()))
