"""Job scripts rendered by `hpcdist jobs render`, given to a real single-node Slurm.

The cluster, its start/stop and its skip rules are those of test_slurm_jobs.py (its
session fixture is imported here): the tests skip only where that module's do.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.conftest import _launch_env, hpcdist_cmd, launch
from tests.slurm.test_slurm_jobs import Slurm, slurm  # noqa: F401 - slurm: the session fixture (and its skips)

pytestmark = pytest.mark.launch


def render(tmp_path: Path, kind: str, *options: str) -> Path:
    out = tmp_path / f"{kind}.sbatch"
    done = subprocess.run([*hpcdist_cmd(), "jobs", "render", kind, *options, "-o", str(out)], capture_output=True,
                          text=True, timeout=60, env=_launch_env())
    assert done.returncode == 0, done.stdout + done.stderr
    return out


@pytest.mark.timeout(60, func_only=True)
def test_sbatch_accepts_rendered_cpu_scripts(slurm: Slurm, tmp_path):
    """`sbatch --test-only` takes every rendered CPU-side script, and reads the rendered values:
    the same scripts for 2 nodes are refused by this 1-node cluster."""
    commands = {"cpu": ["--args", "graph pagerank --output pr.h5", "--input", "rmat:10"],
                "farm": ["--input", "examples/farm_sweep_requeue.py", "--args=--grid 4"],
                "checkpoint": ["--input", "grid2d:50", "--args", "pagerank --output pr.h5"]}
    for kind, command in commands.items():
        options = ["--ntasks-per-node", "2", "--time", "20", "--partition", "debug", "--job-name", f"t-{kind}",
                   "--cpus-per-task", "1", *command]
        done = slurm.run("sbatch", "--test-only", str(render(tmp_path, kind, "--nodes", "1", *options)), check=False)
        assert done.returncode == 0 and "to start at" in done.stderr, (kind, done.stderr)
        done = slurm.run("sbatch", "--test-only", str(render(tmp_path, kind, "--nodes", "2", *options)), check=False)
        assert done.returncode != 0 and "node configuration is not available" in done.stderr, (kind, done.stderr)


@pytest.mark.timeout(60, func_only=True)
def test_rendered_cpu_job_runs_its_command(slurm: Slurm, tmp_path):
    """A rendered cpu script, submitted with no arguments, runs the command rendered into it as
    one MPI world of the rendered size, and writes the same PageRank as `mpiexec -n 2`."""
    graph = ["--input", "rmat:10", "--tol", "1e-10", "--max-iter", "300"]
    out, log = tmp_path / "slurm.h5", tmp_path / "job-%j.out"
    script = render(tmp_path, "cpu", "--nodes", "1", "--ntasks-per-node", "2", "--time", "2", "--job-name", "rendered",
                    "--args", f"graph pagerank --tol 1e-10 --max-iter 300 --output {out}", "--input", "rmat:10")
    t0 = time.monotonic()
    done = slurm.run("sbatch", "--wait", f"--output={log}", str(script), timeout=45)
    took = time.monotonic() - t0
    text = "".join(p.read_text() for p in tmp_path.glob("job-*.out"))
    assert done.returncode == 0, f"{done.stdout}{done.stderr}\n{text}"
    assert "slurm-cpu: job" in text and ", 2 tasks on" in text and "hpcdist graph pagerank" in text, text
    assert "2 rank(s)" in text and f"wrote {out}" in text, text  # one world of 2 ranks, not 2 singletons
    rc, ref_text, _ = launch(2, *hpcdist_cmd(), "graph", "pagerank", *graph, "--output", str(tmp_path / "ref.h5"),
                             timeout=40)
    assert rc == 0, ref_text
    with h5py.File(out) as f, h5py.File(tmp_path / "ref.h5") as g:
        assert f.attrs["ranks"] == 2
        assert np.array_equal(f["vertex_ids"][:], g["vertex_ids"][:])
        assert np.array_equal(f["result"][:], g["result"][:])
    print(f"rendered cpu job, sbatch --wait: {took:.1f} s", file=sys.stderr)
