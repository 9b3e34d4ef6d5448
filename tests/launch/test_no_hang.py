"""The no-hang guarantee, proven by launching real jobs.

An exception injected on each rank in turn, while the others wait in a collective
or in a point-to-point receive, must end the whole job with a non-zero exit code
within 10 s, with the traceback printed exactly once.
"""

import re
import sys

import pytest

from tests.conftest import SCRIPTS, hpcdist_cmd, launch

LIMIT_S = 10.0
SCRIPT = str(SCRIPTS / "inject_failure.py")
CASES = [(n, r) for n in (2, 3, 4) for r in range(n)]
LAUNCHES = {"exec": [*hpcdist_cmd(), "exec"], "import": [sys.executable]}


@pytest.mark.launch
@pytest.mark.parametrize("phase", ["collective", "p2p"])
@pytest.mark.parametrize("n,fail_rank", CASES)
def test_exec_aborts_job_on_any_rank(n, fail_rank, phase):
    rc, out, took = launch(n, *LAUNCHES["exec"], SCRIPT, str(fail_rank), phase, timeout=30)
    assert rc != 0, out
    assert took < LIMIT_S, f"job took {took:.1f} s to end:\n{out}"
    assert out.count("Traceback (most recent call last)") == 1, out
    assert f"RuntimeError: injected failure on rank {fail_rank}" in out
    assert f"[{fail_rank}/{n} " in out  # tagged with the failing rank
    summary = [line for line in out.splitlines() if line.startswith("hpcdist: rank")]
    assert summary == [summary[0]] and f"rank {fail_rank} of {n}" in summary[0], out
    assert "finished" not in out
    assert "runpy" not in out  # the guard's own frames are hidden


@pytest.mark.launch
@pytest.mark.parametrize("phase", ["collective", "p2p", "startup"])
@pytest.mark.parametrize("n", [2, 3, 4])
def test_plain_python_that_imports_hpcdist_is_guarded_too(n, phase):
    fail_rank = n - 1 if phase != "startup" else 0
    rc, out, took = launch(n, *LAUNCHES["import"], SCRIPT, str(fail_rank), phase, timeout=30)
    assert rc != 0 and took < LIMIT_S, out
    assert out.count("Traceback (most recent call last)") == 1, out


@pytest.mark.launch
@pytest.mark.parametrize("n", [2, 4])
def test_exec_aborts_on_nonzero_sys_exit_of_one_rank(n):
    rc, out, took = launch(n, *LAUNCHES["exec"], SCRIPT, "1", "p2p", "exit3", timeout=30)
    assert rc == 3 and took < LIMIT_S, out
    assert f"rank 1 of {n} exited with status 3" in out


@pytest.mark.launch
@pytest.mark.parametrize("how", ["exec", "import"])
@pytest.mark.parametrize("n,fail_rank", [(1, 0), (2, 1), (3, 2), (4, 1)])
def test_agreed_input_error_prints_one_message_and_all_ranks_exit(how, n, fail_rank):
    rc, out, took = launch(n, *LAUNCHES[how], SCRIPT, str(fail_rank), "none", "agreed", timeout=30)
    assert rc != 0 and took < LIMIT_S, out
    assert out.count("input.txt:7: bad value 'x'") == 1, out
    assert "Traceback" not in out and "Abort" not in out and "not reached" not in out, out


@pytest.mark.launch
@pytest.mark.parametrize("n", [1, 2, 4])
def test_healthy_job_exits_zero(n):
    rc, out, _ = launch(n, *LAUNCHES["exec"], SCRIPT, "0", "none", timeout=30)
    assert rc == 0, out
    # Lines of different ranks may interleave in the launcher's pipe: match, don't split.
    assert sorted(int(r) for r in re.findall(r"rank (\d+) finished", out)) == list(range(n)), out
