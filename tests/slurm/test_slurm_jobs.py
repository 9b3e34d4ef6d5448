"""The job scripts in jobs/, run end to end on a real single-node Slurm.

A session fixture starts the cluster with ``tools/slurm/local-slurm.sh start`` (it installs
the Debian packages the first time, ~20 s) and stops it at the end when it started it.
The tests skip only when the script cannot run here: not root (exit 3), or the packages
are missing and apt cannot install them (exit 4); ``HPCDIST_REQUIRE_SLURM=1`` turns those
skips into failures. Any other failure to start is a test failure.

Every launch goes through ``srun --mpi=pmi2`` with the MPICH wheel (the scripts' default).
Each test has a hard timeout that covers only its body (``func_only``: the install in
the fixture has its own), and every wait inside a test has its own deadline, after which
the job is cancelled and the test fails with the job's output.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.conftest import ROOT, _launch_env, hpcdist_cmd, launch

pytestmark = pytest.mark.launch

SCRIPT = ROOT / "tools" / "slurm" / "local-slurm.sh"
JOBS = ROOT / "jobs"
EXAMPLE = ROOT / "examples" / "farm_sweep_requeue.py"
EXIT_REQUEUE = 75
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
            "PREEMPTED"}
NO_CHECKPOINT_REASON = "`hpcdist graph pagerank --help` does not list --checkpoint-dir (graph checkpoints not implemented yet)"


# --------------------------------------------------------------------------- the cluster


class Slurm:
    """The running local cluster: the environment its clients and jobs need, and helpers."""

    def __init__(self, conf: str) -> None:
        env = _launch_env()
        for key in list(env):
            if key.startswith("SLURM_") or key.startswith("SBATCH_") or key.startswith("SRUN_"):
                del env[key]  # tests started inside a Slurm job must not leak its allocation
        env["SLURM_CONF"] = conf
        env["HPCDIST_VENV"] = sys.prefix  # the jobs run this interpreter's hpcdist
        env.pop("HPCDIST_PYTHON", None)
        env.pop("HPCDIST_LAUNCH", None)
        self.env = env

    def run(self, *cmd: str, timeout: float = 30.0, env: dict[str, str] | None = None, check: bool = True):
        done = subprocess.run(list(cmd), cwd=ROOT, env={**self.env, **(env or {})}, capture_output=True, text=True,
                              timeout=timeout)
        if check and done.returncode != 0:
            pytest.fail(f"`{' '.join(cmd)}` exit {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def submit(self, *args: str, env: dict[str, str] | None = None) -> str:
        """``sbatch --parsable ARGS``; the job id."""
        out = self.run("sbatch", "--parsable", *args, env=env).stdout.strip()
        return out.split(";")[0]

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job -o``, as a dict (JobState, Restarts, ExitCode, ...)."""
        done = self.run("scontrol", "show", "job", "-o", job_id, check=False)
        fields = {}
        for m in re.finditer(r"(\w+)=(\S*)", done.stdout):
            fields.setdefault(m.group(1), m.group(2))
        return fields

    def wait_job(self, job_id: str, timeout: float, output: Path | None = None) -> dict[str, str]:
        """Poll until the job ends (a requeued job is not ended); cancel it and fail after ``timeout``."""
        end = time.monotonic() + timeout
        while True:
            info = self.job(job_id)
            if info.get("JobState") in TERMINAL:
                return info
            if not info:  # MinJobAge (5 s on the local cluster) purged the record before this poll saw the end
                pytest.fail(f"job {job_id} is unknown to slurmctld (ended and purged?); output:\n{read(output)}")
            if time.monotonic() > end:
                self.cancel(job_id)
                pytest.fail(f"job {job_id} did not end in {timeout} s ({info.get('JobState')}); output:\n"
                            f"{read(output)}")
            time.sleep(0.2)

    def cancel(self, job_id: str) -> None:
        self.run("scancel", job_id, check=False)


def read(path: Path | None) -> str:
    return path.read_text(errors="replace") if path is not None and path.exists() else "(no output file)"


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("HPCDIST_REQUIRE_SLURM") == "1":
        pytest.fail(f"HPCDIST_REQUIRE_SLURM=1 but: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def slurm():
    """Start the local Slurm with tools/slurm/local-slurm.sh; stop it at the end if this session started it."""
    if os.geteuid() != 0:
        _skip_or_fail("the local Slurm needs root (tools/slurm/local-slurm.sh installs packages and runs slurmd)")
    env = {k: v for k, v in _launch_env().items() if not k.startswith("SLURM_")}
    was_running = subprocess.run(["bash", str(SCRIPT), "status"], env=env, capture_output=True, timeout=30).returncode == 0
    t0 = time.monotonic()
    try:
        done = subprocess.run(["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        pytest.fail("tools/slurm/local-slurm.sh start did not finish in 600 s")
    if done.returncode in (3, 4):  # not root / the packages are missing and apt cannot install them
        _skip_or_fail(f"no local Slurm: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
    if done.returncode != 0:
        if not was_running:  # do not leave half a cluster behind
            subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, timeout=120)
        pytest.fail(f"tools/slurm/local-slurm.sh start failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    m = re.search(r"^export SLURM_CONF=(\S+)$", done.stdout, re.M)
    assert m, done.stdout
    print(f"\nlocal Slurm ready in {time.monotonic() - t0:.1f} s ({'already running' if was_running else 'started'})")
    yield Slurm(m.group(1))
    if not was_running and os.environ.get("HPCDIST_SLURM_KEEP") != "1":
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, timeout=120)


def sweep_reference(grid: int = 8) -> list[float]:
    """What an uninterrupted sweep returns: the example's own function, in this process."""
    spec = importlib.util.spec_from_file_location("farm_sweep_requeue_ref", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return [mod.simulate(a / 4, b / 2) for a in range(1, grid + 1) for b in range(1, grid + 1)]


# --------------------------------------------------------------------------- tests


@pytest.mark.timeout(30)
def test_job_scripts_are_valid_bash():
    """All job scripts parse (the GPU one cannot run here: this is all that is checked of it)."""
    scripts = sorted(JOBS.glob("*.sbatch")) + [JOBS / "local.sh", SCRIPT]
    assert {p.name for p in scripts} >= {"slurm-cpu.sbatch", "slurm-farm.sbatch", "slurm-gpu.sbatch",
                                         "slurm-checkpoint.sbatch"}
    for path in scripts:
        done = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=10)
        assert done.returncode == 0, f"{path}: {done.stderr}"
    assert "--gpus-per-task=1" in (JOBS / "slurm-gpu.sbatch").read_text()


@pytest.mark.timeout(30, func_only=True)
def test_start_again_is_a_no_op_and_status_reports(slurm):
    t0 = time.monotonic()
    done = slurm.run("bash", str(SCRIPT), "start")
    assert "already running" in done.stderr and f"export SLURM_CONF={slurm.env['SLURM_CONF']}" in done.stdout
    assert time.monotonic() - t0 < 5
    status = slurm.run("bash", str(SCRIPT), "status").stdout
    assert "slurmctld: running" in status and "slurmd: running" in status and "idle" in status, status


@pytest.mark.timeout(30, func_only=True)
def test_sbatch_accepts_every_script(slurm):
    """`sbatch --test-only` parses each script's #SBATCH lines against the cluster; the GPU
    script is refused for the one reason expected here: the cluster has no GPUs (no GRES)."""
    for name in ("slurm-cpu.sbatch", "slurm-farm.sbatch", "slurm-checkpoint.sbatch"):
        done = slurm.run("sbatch", "--test-only", str(JOBS / name), check=False)
        assert done.returncode == 0 and "to start at" in done.stderr, (name, done.stderr)
    done = slurm.run("sbatch", "--test-only", str(JOBS / "slurm-gpu.sbatch"), check=False)
    assert done.returncode != 0 and "gres" in done.stderr.lower(), done.stderr


@pytest.mark.timeout(90, func_only=True)
@pytest.mark.parametrize("ntasks", [2, 4])
def test_cpu_pagerank_equals_plain_mpiexec(slurm, tmp_path, ntasks):
    """slurm-cpu.sbatch under `sbatch --wait` writes the same PageRank as `mpiexec -n N`: one MPI world of N ranks."""
    graph = ["--input", "rmat:12", "--tol", "1e-10", "--max-iter", "300"]
    out, log = tmp_path / "slurm.h5", tmp_path / "job-%j.out"
    t0 = time.monotonic()
    done = slurm.run("sbatch", "--wait", f"--ntasks={ntasks}", "--time=2", f"--output={log}",
                     str(JOBS / "slurm-cpu.sbatch"), "graph", "pagerank", *graph, "--output", str(out), timeout=60)
    took = time.monotonic() - t0
    text = "".join(p.read_text() for p in tmp_path.glob("job-*.out"))
    assert done.returncode == 0, f"{done.stdout}{done.stderr}\n{text}"
    assert f"{ntasks} rank(s)" in text and "wrote " in text, text  # one world, not N singletons
    rc, ref_text, ref_took = launch(ntasks, *hpcdist_cmd(), "graph", "pagerank", *graph, "--output", str(tmp_path / "ref.h5"),
                             timeout=60)
    assert rc == 0, ref_text
    with h5py.File(out) as f, h5py.File(tmp_path / "ref.h5") as g:
        assert np.array_equal(f["vertex_ids"][:], g["vertex_ids"][:])
        assert np.array_equal(f["result"][:], g["result"][:])  # same ranks, same partition: bit-identical
        assert f.attrs["ranks"] == ntasks
    print(f"sbatch --wait, {ntasks} tasks: {took:.1f} s; mpiexec {ref_took:.1f} s")


@pytest.mark.timeout(90, func_only=True)
def test_farm_sweep_completes(slurm, tmp_path):
    """slurm-farm.sbatch with its defaults (examples/farm_sweep_requeue.py) runs the whole sweep."""
    work, log = tmp_path / "sweep", tmp_path / "farm-%j.out"
    job = slurm.submit("--ntasks=4", "--time=5", f"--output={log}", str(JOBS / "slurm-farm.sbatch"),
                       env={"HPCDIST_FARM_DIR": str(work)})
    output = tmp_path / f"farm-{job}.out"
    info = slurm.wait_job(job, timeout=60, output=output)
    text = read(output)
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", (info, text)
    assert "64 runs on 3 worker(s), 0 from the journal (restart 0)" in text, text
    result = json.loads((work / "sweep.json").read_text())
    assert result["values"] == sweep_reference()


@pytest.mark.timeout(120, func_only=True)
def test_farm_signal_requeue_resume_cycle(slurm, tmp_path):
    """SIGUSR1 to the batch shell -> the farm drains, exit 75 -> scontrol requeue -> the job runs again with
    SLURM_RESTART_COUNT=1 -> resumes from the journal -> complete, identical to an uninterrupted run."""
    journal, result, ran, log = tmp_path / "sweep.h5", tmp_path / "sweep.json", tmp_path / "ran.txt", tmp_path / "farm-%j.out"
    job = slurm.submit("--ntasks=4", "--time=5", f"--output={log}", str(JOBS / "slurm-farm.sbatch"),
                       str(EXAMPLE), "--journal", str(journal), "--output", str(result), "--sleep", "0.2",
                       "--log", str(ran))
    output = tmp_path / f"farm-{job}.out"
    try:
        end = time.monotonic() + 60
        while not ran.exists() or len(ran.read_text().splitlines()) < 8:  # the sweep is under way
            state = slurm.job(job).get("JobState")
            assert state in ("PENDING", "RUNNING", "CONFIGURING"), (state, read(output))
            assert time.monotonic() < end, f"the sweep did not get going:\n{read(output)}"
            time.sleep(0.05)
        t_signal = time.monotonic()
        slurm.run("scancel", "--signal=USR1", "--batch", job)  # what --signal=B:USR1@N does before the limit
        info = slurm.wait_job(job, timeout=90, output=output)
    finally:
        slurm.cancel(job)  # no-op once it ended
    took = time.monotonic() - t_signal
    text = read(output)
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", (info, text)
    assert info["Restarts"] == "1", (info, text)
    first, _, second = text.partition("restart 1,")
    assert "SIGUSR1 received" in first and f"exit code {EXIT_REQUEUE}" in first, text
    assert "requeueing job" in first and f"step exit {EXIT_REQUEUE}" in first, text
    m = re.search(r"64 runs on 3 worker\(s\), (\d+) from the journal \(restart 1\)", second)  # the ranks saw it too
    assert m and "step exit 0" in second, text
    skipped = int(m.group(1))
    assert json.loads(result.read_text())["values"] == sweep_reference()
    executed = len(ran.read_text().splitlines())
    # The rerun ran only what the journal lacked; a point a worker had begun when the drain
    # took it back may have run twice (at most one per worker).
    assert 8 <= skipped < 64 and 64 <= executed <= 64 + 3, (skipped, executed)
    print(f"signal -> requeue -> resumed and complete in {took:.1f} s ({skipped} of 64 from the journal)")


@pytest.mark.timeout(300, func_only=True)
def test_farm_time_limit_warning_requeues(slurm, tmp_path):
    """The same cycle driven by Slurm itself: `--signal=B:USR1@90` on a 2-minute job.
    Slow (~1-2 min: Slurm sends the warning at its periodic time-limit check), so opt-in."""
    if os.environ.get("HPCDIST_SLURM_SLOW") != "1":
        pytest.skip("slow (1-2 min): set HPCDIST_SLURM_SLOW=1 to run the --signal=B:USR1@N time-limit test")
    journal, result, log = tmp_path / "sweep.h5", tmp_path / "sweep.json", tmp_path / "limit-%j.out"
    # 100 points of 1.5 s on 3 workers: ~50 s uninterrupted, longer than the ~30 s before the warning.
    job = slurm.submit("--ntasks=4", "--time=2", "--signal=B:USR1@90", f"--output={log}",
                       str(JOBS / "slurm-farm.sbatch"), str(EXAMPLE), "--journal", str(journal),
                       "--output", str(result), "--grid", "10", "--sleep", "1.5")
    output = tmp_path / f"limit-{job}.out"
    try:
        info = slurm.wait_job(job, timeout=280, output=output)
    finally:
        slurm.cancel(job)
    text = read(output)
    assert info["JobState"] == "COMPLETED" and int(info["Restarts"]) >= 1, (info, text)
    assert "SIGUSR1 received" in text and "requeueing job" in text, text
    assert json.loads(result.read_text())["values"] == sweep_reference(10)


@pytest.mark.timeout(90, func_only=True)
def test_requeued_run_starts_after_ranks_skipped_mpi_finalize(slurm, tmp_path):
    """Ranks that leave with 75 via os._exit leave MPICH's shared-memory segment, named after
    "JOBID.STEPID"; the requeued job numbers its steps from 0 again. Without the empty steps
    the job scripts run first, the rerun's MPI_Init fails on the stale segment."""
    log = tmp_path / "shm-%j.out"
    job = slurm.submit("--ntasks=2", "--time=5", f"--output={log}", str(JOBS / "slurm-farm.sbatch"),
                       str(Path(__file__).with_name("exit75_without_finalize.py")))
    output = tmp_path / f"shm-{job}.out"
    try:
        info = slurm.wait_job(job, timeout=75, output=output)
    finally:
        slurm.cancel(job)
    text = read(output)
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", (info, text)
    assert "leaving with 75, without MPI_Finalize" in text and "RESUMED restart 1: 2 ranks" in text, text


@pytest.mark.timeout(60, func_only=True)
def test_failing_task_ends_the_step_promptly(slurm, tmp_path):
    """One task dies without MPI knowing (os._exit) while the others wait in a barrier: srun -K1
    (in the job scripts) ends the step in seconds; without it the survivors would wait forever."""
    code = ("import os, time; from mpi4py import MPI; c = MPI.COMM_WORLD; time.sleep(0.5); "
            "os._exit(3) if c.rank == 1 else c.Barrier(); print('PASSED', 'BARRIER', flush=True)")
    log = tmp_path / "fail-%j.out"
    t0 = time.monotonic()
    # Polled, not `sbatch --wait` (which looks every 2, then 8 s): the time is the point here.
    job = slurm.submit("--ntasks=3", "--time=1", f"--output={log}", str(JOBS / "slurm-cpu.sbatch"), "exec", "-c", code)
    output = tmp_path / f"fail-{job}.out"
    try:
        info = slurm.wait_job(job, timeout=40, output=output)
    finally:
        slurm.cancel(job)
    took = time.monotonic() - t0
    text = read(output)
    assert info["JobState"] == "FAILED", (info, text)
    assert "task 1: Exited with exit code 3" in text and "PASSED BARRIER" not in text, text
    assert took < 15, f"the job took {took:.1f} s to end:\n{text}"
    print(f"a task died: the job ended {took:.1f} s after its submission")


def _has_graph_checkpoints() -> bool:
    done = subprocess.run([*hpcdist_cmd(), "graph", "pagerank", "--help"], capture_output=True, text=True, timeout=60,
                          env=_launch_env())
    return "--checkpoint-dir" in done.stdout


@pytest.mark.timeout(240, func_only=True)
def test_graph_checkpoint_signal_requeue_resume_cycle(slurm, tmp_path):
    """slurm-checkpoint.sbatch: SIGUSR1 -> checkpoint, exit 75 -> requeue -> resume from the checkpoint ->
    the same PageRank as an uninterrupted run. Runs once `hpcdist graph` has --checkpoint-dir."""
    if not _has_graph_checkpoints():
        pytest.skip(NO_CHECKPOINT_REASON)
    # A run long enough to be signalled between its first checkpoint and its end: PageRank on
    # a grid with alpha 0.99 takes ~1400 supersteps, ~3 s on 2 ranks here (rmat graphs converge
    # in 25-60 supersteps, too fast). If the run ends first, the test fails saying so.
    graph = ["--input", "grid2d:200", "--undirected", "--alpha", "0.99", "--tol", "1e-15", "--max-iter", "5000"]
    ckpt, out, log = tmp_path / "ckpt", tmp_path / "pr.h5", tmp_path / "ckpt-%j.out"
    job = slurm.submit("--ntasks=2", "--time=5", f"--output={log}", str(JOBS / "slurm-checkpoint.sbatch"),
                       "pagerank", *graph, "--output", str(out),
                       env={"HPCDIST_CHECKPOINT_DIR": str(ckpt), "HPCDIST_CHECKPOINT_EVERY": "100"})
    output = tmp_path / f"ckpt-{job}.out"
    try:
        end = time.monotonic() + 120
        while not (ckpt.is_dir() and any(p.is_file() for p in ckpt.rglob("*"))):  # a first checkpoint exists
            state = slurm.job(job).get("JobState")
            assert state in ("PENDING", "RUNNING", "CONFIGURING"), (
                f"the job ended ({state}) before its first checkpoint was seen:\n{read(output)}")
            assert time.monotonic() < end, f"no checkpoint in {ckpt} after 120 s:\n{read(output)}"
            time.sleep(0.02)
        slurm.run("scancel", "--signal=USR1", "--batch", job)
        info = slurm.wait_job(job, timeout=180, output=output)
    finally:
        slurm.cancel(job)
    text = read(output)
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", (info, text)
    assert info["Restarts"] == "1", f"not requeued: the run may have ended before the signal; use a larger graph\n{text}"
    first = text.partition("restart 1,")[0]
    assert f"step exit {EXIT_REQUEUE}" in first and "requeueing job" in first, text
    rc, ref_text, _ = launch(2, *hpcdist_cmd(), "graph", "pagerank", *graph, "--output", str(tmp_path / "ref.h5"),
                             timeout=120)
    assert rc == 0, ref_text
    with h5py.File(out) as f, h5py.File(tmp_path / "ref.h5") as g:
        assert np.array_equal(f["vertex_ids"][:], g["vertex_ids"][:])
        assert np.array_equal(f["result"][:], g["result"][:])
