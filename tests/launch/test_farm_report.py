"""A farm job's metrics file, live status and report, launched as users launch them."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, SCRIPTS, _launch_env, hpcdist_cmd, mpiexec_path

pytestmark = pytest.mark.launch

FARM_SECTIONS = ("run", "findings", "farm-run", "farm-throughput", "farm-task-times", "farm-load", "farm-ewma")


def _pngs(page: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def _run(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run([*hpcdist_cmd(), *args], cwd=ROOT, env=_launch_env(), capture_output=True, text=True,
                          timeout=timeout)


def test_status_during_a_farm_run_and_report_after(tmp_path):
    pytest.importorskip("matplotlib", reason="hpcdist report needs matplotlib (the `plot` extra)")
    metrics, rundir, html = tmp_path / "farm.jsonl", tmp_path / "run", tmp_path / "report.html"
    cmd = [mpiexec_path(), "-n", "3", sys.executable,
           str(SCRIPTS / "farm_metrics_job.py"), str(metrics), str(rundir), "4"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_launch_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        # The status file appears while the job runs, and `hpcdist status` shows it.
        status = rundir / "status.json"
        seen_running = None
        deadline = time.monotonic() + 40.0
        while time.monotonic() < deadline and proc.poll() is None:
            if status.exists():
                st = json.loads(status.read_text())
                if st["state"] == "running" and st.get("done"):
                    seen_running = st
                    break
            time.sleep(0.1)
        assert seen_running is not None, "no running status with tasks done while the job ran"
        shown = _run("status", str(rundir))
        assert shown.returncode == 0, shown.stdout + shown.stderr
        out = shown.stdout
        assert "farm:" in out and "tasks/s" in out and "pending" in out and "workers" in out, out
        # rewritten as the job goes on (at most once a second): `updated` moves
        first = seen_running["updated"]
        t_end = time.monotonic() + 5.0
        while time.monotonic() < t_end and json.loads(status.read_text())["updated"] == first:
            time.sleep(0.1)
        assert json.loads(status.read_text())["updated"] > first
        out, _ = proc.communicate(timeout=60.0)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    assert proc.returncode == 0, out
    submitted = int(re.search(r"submitted (\d+)", out).group(1))
    final = json.loads(status.read_text())
    assert final["state"] == "finished"
    assert final["done"] == submitted + 20 == final["total"]  # the map's 100 items went as 20 chunks
    shown = _run("status", str(rundir))
    assert shown.returncode == 0 and "farm: finished" in shown.stdout

    rep = _run("report", str(metrics), "-o", str(html), timeout=120)
    assert rep.returncode == 0, rep.stdout + rep.stderr
    assert "load spread over 2 worker(s)" in rep.stdout
    page = html.read_text()
    for sec in FARM_SECTIONS:
        assert f'id="{sec}"' in page, sec
    images = _pngs(page)
    assert len(images) >= 5 and all(p.startswith(b"\x89PNG\r\n\x1a\n") and len(p) > 5000 for p in images)
    assert "round_robin" in page and "least_loaded" in page  # the strategy switch
    # rank 2's tasks take twice as long: the drift finding names it
    assert re.search(r"\[farm_drift\] farm worker 2 drifts", page), re.findall(r"\[farm_[a-z]+\][^<]*", page)
    assert "[farm_imbalance]" in page


def test_report_and_status_refuse_bad_input(tmp_path):
    bad = tmp_path / "x.jsonl"
    bad.write_text('{"type": "farm_worker", "rank": 1}\n')
    rep = _run("report", str(bad), "-o", str(tmp_path / "r.html"))
    assert rep.returncode == 2 and "not an hpcdist metrics file" in (rep.stdout + rep.stderr)
    st = _run("status", str(tmp_path))
    assert st.returncode == 2 and "status.json" in (st.stdout + st.stderr)


def test_report_of_a_synthetic_farm_file_has_every_section(tmp_path):
    """A farm document made by the pure scheduler (no MPI): worker 3 slow, a strategy switch."""
    pytest.importorskip("matplotlib", reason="hpcdist report needs matplotlib (the `plot` extra)")
    from hpcdist.farm.requirements import Capabilities
    from hpcdist.farm.scheduler import Dispatch, Results, Scheduler, SetStrategy, Submit, Tick, WorkerJoined
    from hpcdist.farm.strategies import make_strategy
    from hpcdist.farm.tasks import Task
    from hpcdist.metrics.io import write_metrics

    s = Scheduler(make_strategy("least_loaded"), heartbeat_timeout=1e9, max_in_flight=2)
    for r in (1, 2, 3):
        s.handle(WorkerJoined(r, Capabilities(rank=r), 0.0))
    speed = {1: 0.002, 2: 0.002, 3: 0.006}
    now = 0.0
    acts = s.handle_many([Submit(Task(i, None, fn_name="sweep.simulate" if i % 4 else "sweep.post"), now)
                          for i in range(600)])
    step = 0
    while True:
        disp = [a for a in acts if isinstance(a, Dispatch)]
        if not disp:
            break
        now += 0.004
        step += 1
        if step == 50:
            s.handle(SetStrategy(make_strategy("round_robin"), now))
        acts = s.handle_many([Results(a.rank, [(t.id, "ok", None, speed[a.rank]) for t in a.tasks], now)
                              for a in disp] + [Tick(now)])
    path = tmp_path / "farm.json"
    write_metrics(path, None, farm=s.metrics(now, header={"ranks": 4}))
    html = tmp_path / "r.html"
    rep = _run("report", str(path), "-o", str(html))
    assert rep.returncode == 0, rep.stdout + rep.stderr
    assert "load spread over 3 worker(s)" in rep.stdout
    page = html.read_text()
    for sec in FARM_SECTIONS:
        assert f'id="{sec}"' in page, sec
    assert "[farm_drift] farm worker 3 drifts" in page
    assert "least_loaded (t=0.00 s)" in page and "round_robin" in page
    assert len(_pngs(page)) == 5  # throughput, task times, load, and an EWMA plot per function
