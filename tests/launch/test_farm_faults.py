"""Failures that need a job of their own: a worker process that really dies, or stops.

MPICH aborts the whole job when a rank exits unless ``mpiexec -disable-auto-cleanup``;
with it, the farm must find the dead worker (silence, and no process in ``/proc``),
re-run its task on a survivor without using up the task's retries, finish, and end
without hanging in ``MPI_Finalize``.
"""

from __future__ import annotations

import os
import sys

import pytest

from tests.conftest import SCRIPTS, hpcdist_cmd, launch

pytestmark = pytest.mark.launch


@pytest.mark.timeout(90)
@pytest.mark.parametrize("n,how", [(3, "python"), (4, "exec")])
def test_dead_worker_is_detected_and_its_task_requeued(tmp_path, n, how):
    marker = tmp_path / "died"
    runner = [sys.executable] if how == "python" else [*hpcdist_cmd(), "exec"]
    rc, out, took = launch(0, _mpiexec(), "-disable-auto-cleanup",
                           "-n", str(n), *runner, str(SCRIPTS / "farm_dead_worker.py"), str(marker), timeout=60)
    line = next((x for x in out.splitlines() if x.startswith("RESULT OK")), None)
    assert line is not None, out
    assert "status=offline" in line and "attempts=2" in line and "retries_used=0" in line, line
    assert took < 30, out


@pytest.mark.timeout(90)
def test_stopped_worker_is_failed_and_ends_with_the_job_once_continued(tmp_path):
    """A stopped process exists in /proc but runs nothing: no proof that its silent worker
    is busy. Its task must go to another worker; and, continued after the farm, the
    worker must find a shutdown waiting, or the job never ends."""
    marker = tmp_path / "stopped"
    rc, out, took = launch(0, _mpiexec(), "-disable-auto-cleanup", "-n", "3", sys.executable,
                           str(SCRIPTS / "farm_dead_worker.py"), str(marker), "stop", timeout=60)
    line = next((x for x in out.splitlines() if x.startswith("RESULT OK")), None)
    assert rc == 0 and line is not None, out
    assert "status=offline" in line and "attempts=2" in line and "reason='silent for" in line, line
    pid = int(marker.read_text().split()[1])
    assert f"CONTINUED {pid}" in out and not os.path.exists(f"/proc/{pid}"), out
    assert took < 30, out


def _mpiexec() -> str:
    from tests.conftest import mpiexec_path

    return mpiexec_path()
