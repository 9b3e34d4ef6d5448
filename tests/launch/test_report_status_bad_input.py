"""`hpcdist report` and `hpcdist status` on bad input, launched as users launch them.

Each case is one clear message naming the file (and the field or line), no traceback,
exit status 2, and nothing lost: the metrics file is never overwritten, no report is
computed for an output that cannot take it. `status --watch` ends for a job whose
process is gone (a real process, killed) or, on another host, after the staleness limit.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from hpcdist.metrics import FIELDS, RunMetrics, StatusWriter, aggregate_arrays, write_metrics
from tests.conftest import ROOT, hpcdist_cmd, launch

pytestmark = pytest.mark.launch


def needs_matplotlib():
    pytest.importorskip("matplotlib", reason="hpcdist report needs matplotlib (the `plot` extra)")


def small_metrics(path, p=2, s=5):
    """A valid metrics file: rank 1 straggles in supersteps 1-4 (so a straggler finding is in it)."""
    compute = np.full((p, s), 0.01)
    compute[1, 1:] = 0.03
    rec = np.zeros((p, s, len(FIELDS)))
    rec[..., 0] = compute
    rec[..., 1] = 0.001
    rec[..., 2] = 0.001 + compute.max(axis=0) - compute
    rec[..., 3] = rec[..., :3].sum(axis=-1)
    rec[..., 4] = rec[..., 5] = 2048.0
    m = RunMetrics(algorithm="pagerank", ranks=p, rank=0, supersteps=np.arange(s), steps=aggregate_arrays(rec),
                   totals=aggregate_arrays(rec.sum(axis=1)), peak_rss=aggregate_arrays(np.full(p, 2.0**27)),
                   active=np.full(s, 100), converged=True, seconds=0.2, graph={"n_vertices": 100, "n_edges": 400})
    write_metrics(path, m)
    return path


def report(*args, timeout=60):
    return launch(0, *hpcdist_cmd(), "report", *map(str, args), timeout=timeout)[:2]


def assert_one_clean_message(rc, out, *needles):
    assert rc == 2, out
    assert "Traceback" not in out, out
    assert out.count("hpcdist: error:") == 1, out
    for needle in needles:
        assert needle in out, out


# -- report: the output path ------------------------------------------------------------

@pytest.mark.timeout(60)
def test_report_refuses_to_overwrite_its_metrics_file(tmp_path):
    needs_matplotlib()
    metrics = small_metrics(tmp_path / "M.json")
    before = metrics.read_bytes()
    (tmp_path / "link.json").symlink_to("M.json")
    os.link(metrics, tmp_path / "hard.json")
    for target in (metrics, tmp_path / "link.json", tmp_path / "sub" / ".." / "M.json"):
        rc, out = report(metrics, "-o", target)
        assert_one_clean_message(rc, out, "the report would overwrite the input", str(target))
        assert metrics.read_bytes() == before
    rc, out = report(tmp_path / "hard.json", "-o", metrics)  # a hard link: the same file under another name
    assert_one_clean_message(rc, out, "the report would overwrite the input")
    assert metrics.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["M.json", "hard.json", "link.json"]  # no temporary left


@pytest.mark.timeout(60)
def test_report_checks_the_output_before_reading_the_metrics(tmp_path):
    needs_matplotlib()
    metrics = small_metrics(tmp_path / "m.json")
    broken = tmp_path / "broken.json"  # read only after the output was accepted: its error must not show
    broken.write_text(metrics.read_text().replace('"version": 1', '"version": 99'))
    (tmp_path / "adir").mkdir()
    cases = [(tmp_path / "adir", "the report is a directory"),
             (tmp_path / "nope" / "r.html", "the report's directory does not exist")]
    for out_path, needle in cases:
        for src in (metrics, broken):
            rc, out = report(src, "-o", out_path)
            assert_one_clean_message(rc, out, needle, str(out_path))
    assert list((tmp_path / "adir").iterdir()) == [] and not (tmp_path / "nope").exists()
    # a good output: written whole, no temporary file left beside it
    rc, out = report(metrics, "-o", tmp_path / "r.html")
    assert rc == 0, out
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "broken.json", "m.json", "r.html"]


# -- report: a metrics file that parses but has the wrong structure --------------------

def _set(doc, path, value):
    *head, last = path
    for key in head:
        doc = doc[key]
    doc[last] = value


# The audit's bad1/3/4/6/7.json and v99.json, and more of the fields the plots read.
STRUCTURE_CASES = [
    (("supersteps", 1, "compute_s"), "fast",
     'field supersteps[1].compute_s: expected an object, got a string ("fast")'),
    (("findings",), "none", 'field findings: expected a list, got a string ("none")'),
    (("supersteps",), "x", 'field supersteps: expected a list, got a string ("x")'),
    (("summary",), [1], "field summary: expected an object, got a list (1 item)"),
    (("supersteps", 0, "superstep"), "zero",
     'field supersteps[0].superstep: expected an integer, got a string ("zero")'),
    (("supersteps", 2, "compute_s", "max"), "slow", "field supersteps[2].compute_s.max: expected a finite number"),
    (("header", "seconds"), "long", "field header.seconds: expected a finite number"),
    (("header", "graph"), [1, 2], "field header.graph: expected an object, got a list (2 items)"),
    (("summary", "imbalance_overall"), True, "field summary.imbalance_overall: expected a finite number, got true"),
    (("findings", 0, "evidence", "supersteps"), [3], "field findings[0].evidence.supersteps: expected a list of 2"),
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("path,value,message", STRUCTURE_CASES, ids=[".".join(map(str, c[0])) for c in STRUCTURE_CASES])
def test_report_names_the_first_field_of_the_wrong_type(tmp_path, path, value, message):
    needs_matplotlib()
    metrics = small_metrics(tmp_path / "m.json")
    doc = json.loads(metrics.read_text())
    assert doc["findings"][0]["kind"] == "straggler"  # the evidence case edits it
    _set(doc, path, value)
    metrics.write_text(json.dumps(doc))
    rc, out = report(metrics, "-o", tmp_path / "r.html")
    assert_one_clean_message(rc, out, f"{metrics}: {message}")
    assert not (tmp_path / "r.html").exists()


@pytest.mark.timeout(60)
def test_report_jsonl_names_the_line_and_refuses_newer_versions(tmp_path):
    needs_matplotlib()
    metrics = small_metrics(tmp_path / "m.jsonl")
    lines = metrics.read_text().splitlines()
    rec = json.loads(lines[3])
    assert rec["type"] == "superstep"
    rec["compute_s"] = "fast"
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines[:3] + [json.dumps(rec)] + lines[4:]) + "\n")
    rc, out = report(bad, "-o", tmp_path / "r.html")
    assert_one_clean_message(rc, out, f"{bad}:4: superstep record: field compute_s: expected an object")
    head = json.loads(lines[0])
    for version, needle in ((99, "metrics format version 99 is newer than this hpcdist reads (version 1)"),
                            (0, "metrics format version 0 is not one this hpcdist reads (version 1)"),
                            ("1", 'field header.version: expected an integer, got a string ("1")')):
        head["version"] = version
        newer = tmp_path / "v.jsonl"
        newer.write_text("\n".join([json.dumps(head)] + lines[1:]) + "\n")
        rc, out = report(newer, "-o", tmp_path / "r.html")
        assert_one_clean_message(rc, out, f"{newer}: {needle}")
    assert not (tmp_path / "r.html").exists()


# -- status: a status file with fields of the wrong type --------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("field,value,message", [
    ("started", "yesterday", 'field started: expected a finite number, got a string ("yesterday")'),
    ("updated", [1], "field updated: expected a finite number, got a list (1 item)"),
    ("done", "many", 'field done: expected an integer, got a string ("many")'),
    ("pid", -1, "field pid: expected a positive integer (a process id), got the number -1"),
    ("version", 2, "status format version 2 is newer than this hpcdist reads (version 1)"),
])
def test_status_names_the_field_of_the_wrong_type(tmp_path, field, value, message):
    run = tmp_path / "job"
    w = StatusWriter(run, what="cc")
    w.update(done=3, total=10, rate=1.0, force=True)
    doc = json.loads((run / "status.json").read_text())
    doc[field] = value
    (run / "status.json").write_text(json.dumps(doc))
    for extra in ((), ("--watch", "--interval", "0.1")):
        rc, out, _ = launch(0, *hpcdist_cmd(), "status", str(run), *extra, timeout=30)
        assert_one_clean_message(rc, out, f"{run / 'status.json'}: {message}")


# -- status --watch: a job that died ----------------------------------------------------

_WRITER = """
import sys, time
from hpcdist.metrics import StatusWriter
w = StatusWriter(sys.argv[1], what="pagerank", min_interval=0.0)
w.update(done=1, total=100, rate=5.0)
print("ready", flush=True)
while True:
    time.sleep(0.2)
    w.update(done=2, total=100, rate=5.0)
"""


def _start_writer(run):
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(run)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _watch(run, *extra, timeout=30):
    t0 = time.monotonic()
    proc = subprocess.run([*hpcdist_cmd(), "status", str(run), "--watch", "--interval", "0.2", *extra], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0


@pytest.mark.timeout(60)
@pytest.mark.parametrize("reap", [True, False], ids=["reaped", "zombie"])
def test_status_watch_ends_when_the_job_process_is_killed(tmp_path, reap):
    run = tmp_path / "job"
    writer = _start_writer(run)
    try:
        pid = json.loads((run / "status.json").read_text())["pid"]
        assert pid == writer.pid
        os.kill(writer.pid, signal.SIGKILL)
        if reap:
            writer.wait(timeout=10)
        else:  # killed but not yet reaped by its parent: still in the process table
            deadline = time.monotonic() + 10
            while open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
                assert time.monotonic() < deadline
                time.sleep(0.05)
        rc, out, err, took = _watch(run)
    finally:
        writer.kill()
        writer.wait(timeout=10)
    assert rc == 1, out + err
    assert "Traceback" not in out + err
    assert err.count("is gone") == 1 and f"(pid {pid} on {socket.gethostname()}) is gone" in err, err
    assert "last update" in err
    assert "pagerank: running" in out and "(gone: the job's process no longer exists)" in out
    assert took < 20


@pytest.mark.timeout(60)
def test_status_watch_of_a_live_job_keeps_going_until_it_finishes(tmp_path):
    """The pid check must not end the watch of a job that runs, nor miss its final state."""
    run = tmp_path / "job"
    w = StatusWriter(run, what="farm", unit="tasks/s", min_interval=0.0)
    w.update(done=1, total=3, rate=2.0)
    script = ("import sys, time\nfrom hpcdist.metrics import StatusWriter\n"
              "w = StatusWriter(sys.argv[1], what='farm', unit='tasks/s', min_interval=0.0)\n"
              "for done in (1, 2, 3):\n    w.update(done=done, total=3, rate=2.0)\n    time.sleep(0.7)\n"
              "w.finish()\n")
    job = subprocess.Popen([sys.executable, "-c", script, str(run)], cwd=ROOT)
    try:
        time.sleep(0.3)
        rc, out, err, _ = _watch(run)
    finally:
        job.wait(timeout=30)
    assert rc == 0, out + err
    assert out.count("farm: running") >= 2 and "farm: finished" in out and "gone" not in out + err


@pytest.mark.timeout(60)
def test_status_watch_of_a_job_on_another_host_stops_at_the_staleness_limit(tmp_path):
    run = tmp_path / "job"
    w = StatusWriter(run, what="cc")
    w.state["host"] = "another-host.invalid"  # its pid cannot be looked at from here
    w.update(done=3, total=10, rate=1.0, force=True)
    rc, out, err, took = _watch(run, "--stale-limit", "1.5")
    assert rc == 3, out + err
    assert "Traceback" not in out + err
    assert err.count("stopped watching") == 1 and "no update from the job on another-host.invalid" in err, err
    assert "(limit 2 s)" in err and 1.5 <= took < 15
    for bad in ("0", "-1", "abc", "inf"):
        rc, out, _ = launch(0, *hpcdist_cmd(), "status", str(run), "--watch", "--stale-limit", bad)
        assert_one_clean_message(rc, out, "--stale-limit")


@pytest.mark.timeout(120)
def test_status_watch_of_an_mpi_farm_whose_rank_0_is_killed(tmp_path):
    """The audit's case: a Farm with a status directory under mpiexec, rank 0 killed with SIGKILL."""
    run = tmp_path / "st"
    script = tmp_path / "farm_slow.py"
    script.write_text("import time\nimport hpcdist as hd\n\ndef work(x):\n    time.sleep(0.5)\n    return x\n\n"
                      f"with hd.Farm(status_dir={str(run)!r}) as farm:\n    if farm is not None:\n"
                      "        print(list(farm.map(work, range(400))))\n")
    from tests.conftest import _launch_env, mpiexec_path

    job = subprocess.Popen([mpiexec_path(), "-n", "2", *hpcdist_cmd(), "exec", str(script)], cwd=ROOT,
                           env=_launch_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (run / "status.json").exists():
            assert time.monotonic() < deadline and job.poll() is None, "the farm did not write its status"
            time.sleep(0.2)
        pid = json.loads((run / "status.json").read_text())["pid"]
        os.kill(pid, signal.SIGKILL)
        rc, out, err, took = _watch(run, timeout=40)
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(timeout=30)
    assert rc == 1, out + err
    assert err.count("is gone") == 1 and f"(pid {pid} on" in err and "Traceback" not in out + err
