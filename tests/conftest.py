"""Shared fixtures: a fresh duplicated communicator per test, and the launcher helpers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "tests" / "scripts"
SHARED = ROOT.parent / "shared"


@pytest.fixture
def comm():
    """A private duplicate of COMM_WORLD, freed after the test (mpi4py's test mixins)."""
    from mpi4py import MPI

    dup = MPI.COMM_WORLD.Dup()
    yield dup
    dup.Free()


def mpiexec_path() -> str:
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else "mpiexec"


def _launch_env() -> dict[str, str]:
    env = dict(os.environ)
    # A test launched from inside an MPI job must not inherit its PMI wiring.
    for key in list(env):
        if key.startswith(("PMI_", "PMIX_", "OMPI_", "HYDRA_", "MPIR_")):
            del env[key]
    return env


def launch(n: int, *args: str, timeout: float = 60.0, env: dict[str, str] | None = None) -> tuple[int, str, float]:
    """Run ``mpiexec -n N ARGS...``; return exit code, combined output and seconds taken.

    A hang is a failure: after ``timeout`` the launcher's whole process group is
    killed (no orphaned ranks) and the test fails.
    """
    full_env = _launch_env()
    full_env.update(env or {})
    cmd = [mpiexec_path(), "-n", str(n), *args] if n else list(args)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"`{' '.join(cmd)}` hung: killed after {timeout} s; output so far:\n{out}")
    return proc.returncode, out, time.monotonic() - t0


def hpcdist_cmd() -> list[str]:
    return [sys.executable, "-m", "hpcdist"]


def pytest_sessionfinish(session, exitstatus):
    """Remove the shared-memory segments of MPI jobs that the tests killed (see tests/shm_hygiene.py)."""
    from tests.shm_hygiene import remove_stale_mpich_segments

    remove_stale_mpich_segments()
