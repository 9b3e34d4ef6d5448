"""Bad input on the command line: one message per job, before the run, nothing overwritten.

Usage errors, a broken environment or config file, a program that fails on every rank
and a watchdog that fires everywhere print their message once, not once per rank; output
paths are checked before the computation, and an output that names the input is refused.
"""

from __future__ import annotations

import pytest

from tests.conftest import hpcdist_cmd, launch

pytestmark = pytest.mark.timeout(120)


def _graph(n, *args, env=None):
    return launch(n, *hpcdist_cmd(), "graph", *args, env=env, timeout=90)


@pytest.mark.parametrize("args, message", [
    (("pagerank", "-i", "rmat:8", "--tolerance", "1e-3"), "unrecognized arguments: --tolerance"),
    (("sssp", "-i", "rmat:8"), "the following arguments are required: --source"),
])
def test_a_usage_error_prints_once(args, message):
    rc, text, _ = _graph(3, *args)
    assert rc == 2, text
    assert text.count(message) == 1 and text.count("usage:") == 1, text


@pytest.mark.parametrize("env, message", [
    ({"HPCDIST_LOG_LEVEL": "bogus"}, "unknown log level"),
    ({"HPCDIST_MEMORY_LIMIT": "abc"}, "HPCDIST_MEMORY_LIMIT: not a memory size"),
    ({"HPCDIST_FAULT": "rank:1,superstep:3,kind:bogus"}, "HPCDIST_FAULT: unknown kind"),
    ({"HPCDIST_CONFIG": "/no/such/hpcdist.json"}, "cannot read config file"),
])
def test_a_broken_environment_is_one_message_on_every_rank(env, message):
    rc, text, _ = _graph(3, "cc", "-i", "rmat:8", env=env)
    assert rc == 2, text
    assert text.count(message) == 1 and "Abort" not in text and "Traceback" not in text, text


def test_a_program_failing_on_every_rank_prints_one_traceback(tmp_path):
    script = tmp_path / "fails.py"
    script.write_text("from mpi4py import MPI\nraise RuntimeError('everywhere %d' % MPI.COMM_WORLD.Get_rank())\n")
    rc, text, _ = launch(3, *hpcdist_cmd(), "exec", str(script), timeout=60)
    assert rc == 1, text
    assert text.count("Traceback") == 1 and "everywhere 0" in text, text


def test_a_program_failing_on_one_rank_still_shows_its_traceback(tmp_path):
    script = tmp_path / "one.py"
    script.write_text("from mpi4py import MPI\nif MPI.COMM_WORLD.Get_rank() == 2:\n    raise KeyError('only two')\n"
                      "MPI.COMM_WORLD.Barrier()\n")
    rc, text, took = launch(3, *hpcdist_cmd(), "exec", str(script), timeout=60)
    assert rc == 1 and "only two" in text and "rank 2 of 3" in text, text
    assert took < 30


def test_exec_of_a_missing_module_is_a_message():
    rc, text, _ = launch(2, *hpcdist_cmd(), "exec", "-m", "no_such_module_xyz", timeout=60)
    assert rc == 2 and text.count("no module named 'no_such_module_xyz'") == 1 and "Traceback" not in text, text


def test_output_paths_are_checked_before_the_run(tmp_path):
    graph = tmp_path / "g.txt"
    graph.write_text("0 1\n1 2\n2 0\n")
    before = graph.read_bytes()
    (tmp_path / "d.json").mkdir()
    cases = [
        (("-o", str(graph)), "would overwrite the input"),
        (("-o", str(tmp_path)), "the output file is a directory"),
        (("-o", str(tmp_path / "missing" / "out.h5")), "the output file's directory does not exist"),
        (("--metrics", str(tmp_path / "d.json")), "the metrics file is a directory"),
        (("-o", str(tmp_path / "r.h5"), "--metrics", str(tmp_path / "missing" / "m.json")), "directory does not exist"),
    ]
    for extra, message in cases:
        rc, text, _ = _graph(2, "cc", "-i", str(graph), *extra)
        assert rc == 2 and text.count(message) == 1 and "Traceback" not in text, (extra, text)
        # refused before the run: no summary line, no result
        assert "components" not in text and not (tmp_path / "r.h5").exists(), (extra, text)
    assert graph.read_bytes() == before
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*probe*"))


def test_a_negative_seed_is_refused():
    rc, text, _ = _graph(2, "bfs", "-i", "rmat:8", "--roots", "2", "--seed", "-1")
    assert rc == 2 and text.count("--seed must be a whole number") == 1 and "Traceback" not in text, text


@pytest.mark.parametrize("args, message", [
    (("bfs", "-i", "rmat:8", "--roots", "2", "-s", "3"), "give --source or --roots, not both"),
    (("pagerank", "-i", "rmat:8", "--top", "-1"), "--top must be at least 0"),
])
def test_contradictory_or_negative_options_are_refused(args, message):
    rc, text, _ = _graph(2, *args)
    assert rc == 2 and text.count(message) == 1 and "Traceback" not in text, text


def test_farm_bench_refuses_a_directory_as_output_before_it_runs(tmp_path):
    rc, text, took = launch(3, *hpcdist_cmd(), "farm-bench", "--quick", "--output", str(tmp_path), timeout=60)
    assert rc == 2 and text.count("the output file is a directory") == 1 and "round_trip" not in text, text


@pytest.mark.parametrize("args, message", [
    (("--memory-limit", "-5"), "a memory size must be finite and non-negative"),
    (("--memory-limit", "nan"), "a memory size must be finite and non-negative"),
])
def test_convert_refuses_a_negative_memory_limit(tmp_path, args, message):
    rc, text, _ = launch(2, *hpcdist_cmd(), "convert", "rmat:8", str(tmp_path / "g.h5"), *args, timeout=60)
    assert rc == 2 and text.count(message) == 1 and not (tmp_path / "g.h5").exists(), text


def test_convert_refuses_an_output_that_would_not_read_back_as_hdf5(tmp_path):
    rc, text, _ = launch(2, *hpcdist_cmd(), "convert", "rmat:8", str(tmp_path / "g.txt"), timeout=60)
    assert rc == 2 and text.count("give an output name ending in .h5 or .hdf5") == 1, text
    assert not (tmp_path / "g.txt").exists()
