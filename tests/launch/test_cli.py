"""The command line, launched as users launch it."""

import json
import sys

import pytest

from tests.conftest import hpcdist_cmd, launch

def _registered_commands():
    from hpcdist.cli.main import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sorted(sub.choices)


COMMANDS = _registered_commands()


@pytest.mark.launch
@pytest.mark.parametrize("n", [0, 1, 2, 3, 4])  # 0: plain `hpcdist info` without mpiexec
def test_info_json_at_several_sizes(n):
    rc, out, _ = launch(n, *hpcdist_cmd(), "info", "--json", timeout=60)
    assert rc == 0, out
    report = json.loads(out)  # printed once, by rank 0 only
    size = max(n, 1)
    assert report["world_size"] == size and report["n_nodes"] == 1
    assert report["ranks_per_node"] == [size]
    assert [r["rank"] for r in report["ranks"]] == list(range(size))
    assert [r["local_rank"] for r in report["ranks"]] == list(range(size))
    assert all(r["device"] == "none" and r["backend"] in ("numba", "numpy") for r in report["ranks"])
    assert report["mpi"]["thread_level"] == "multiple"
    assert report["mpi"]["library"] and "mpi4py" in report["packages"] and "numpy" in report["packages"]


@pytest.mark.launch
def test_info_table_from_rank_0_only():
    rc, out, _ = launch(3, *hpcdist_cmd(), "info", timeout=60)
    assert rc == 0, out
    assert out.count("MPI library") == 1 and "world size     3" in out
    assert "nodes          1 (3 ranks per node)" in out
    assert "rank  host" in out and "packages" in out


@pytest.mark.launch
@pytest.mark.parametrize("cmd", [[], *[[c] for c in COMMANDS]])
def test_help_on_every_command_once_per_job(cmd):
    rc, out, _ = launch(2, *hpcdist_cmd(), *cmd, "--help", timeout=60)
    assert rc == 0, out
    assert out.count("usage: hpcdist") == 1, out


@pytest.mark.launch
def test_console_script_and_module_agree():
    exe = sys.executable.rsplit("/", 1)[0] + "/hpcdist"
    rc1, out1, _ = launch(0, exe, "--version")
    rc2, out2, _ = launch(0, *hpcdist_cmd(), "--version")
    assert rc1 == rc2 == 0 and out1 == out2 and out1.startswith("hpcdist ")


@pytest.mark.launch
@pytest.mark.parametrize("n", [1, 4])
def test_demo_checks_its_answer(n):
    rc, out, _ = launch(n, *hpcdist_cmd(), "demo", "--samples", "1000000", timeout=60)
    assert rc == 0, out
    assert f"hpcdist demo: {n} ranks" in out and "(ok)" in out and out.count("pi ~") == 1


@pytest.mark.launch
@pytest.mark.parametrize(
    "args,message",
    [
        (["info", "--backend", "bogus"], "unknown backend 'bogus'"),
        (["info", "--backend", "cupy"], "backend 'cupy' needs a GPU"),
        (["demo", "--samples", "2"], "--samples 2 is smaller than the 3 ranks"),
        (["exec", "no-such-script.py"], "no such file: no-such-script.py"),
    ],
)
def test_bad_input_one_message_all_ranks_exit_2(args, message):
    rc, out, took = launch(3, *hpcdist_cmd(), *args, timeout=30)
    assert rc == 2, out
    assert out.count(message) == 1 and "Traceback" not in out, out


@pytest.mark.launch
def test_log_level_option_gives_rank_prefixed_records():
    rc, out, _ = launch(
        2, *hpcdist_cmd(), "--log-level", "info", "demo", "--samples", "100000", timeout=60
    )
    assert rc == 0, out
    assert "[0/2 " in out and "[1/2 " in out and "integrated samples" in out


@pytest.mark.launch
def test_local_job_script_runs_info():
    import os

    venv = os.path.dirname(os.path.dirname(sys.executable))
    rc, out, _ = launch(0, "bash", "jobs/local.sh", "2", "info", "--json", timeout=60, env={"HPCDIST_VENV": venv})
    assert rc == 0, out
    assert json.loads(out)["world_size"] == 2


def test_registered_commands_include_the_foundation():
    assert {"info", "exec", "demo"} <= set(COMMANDS)
