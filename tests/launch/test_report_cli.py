"""`hpcdist report` and `hpcdist status`, launched as users launch them."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from hpcdist.metrics import FIELDS, RunMetrics, StatusWriter, aggregate_arrays, farm_task_record, write_metrics
from tests.conftest import ROOT, SCRIPTS, hpcdist_cmd, launch

pytestmark = pytest.mark.launch

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def needs_matplotlib():
    pytest.importorskip("matplotlib", reason="hpcdist report needs matplotlib (the `plot` extra)")


def pngs(page: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def synthetic_metrics(path, p=4, s=12, farm=True):
    """A metrics file with rank 1 straggling in supersteps 2-9, and farm task records."""
    compute = np.full((p, s), 0.01)
    compute[1, 2:10] = 0.025
    rec = np.zeros((p, s, len(FIELDS)))
    rec[..., 0] = compute
    rec[..., 1] = 0.001
    rec[..., 2] = 0.001 + compute.max(axis=0) - compute
    rec[..., 3] = rec[..., :3].sum(axis=-1)
    rec[..., 4] = rec[..., 5] = 4096.0
    m = RunMetrics(algorithm="pagerank", ranks=p, rank=0, supersteps=np.arange(s), steps=aggregate_arrays(rec),
                   totals=aggregate_arrays(rec.sum(axis=1)), peak_rss=aggregate_arrays(np.full(p, 2.0**27)),
                   active=np.full(s, 1000), converged=True, seconds=0.5, graph={"n_vertices": 1000, "n_edges": 8000})
    rng = np.random.default_rng(1)
    tasks = []
    if farm:
        t = 0.0
        for i in range(60):
            d = float(rng.exponential(0.05))
            tasks.append(farm_task_record(i, fn="demo.f", rank=1 + i % 3, submitted=0.0, started=t, finished=t + d))
            t += d / 3
    write_metrics(path, m, farm_tasks=tasks)
    return path


@pytest.mark.timeout(120)
def test_report_of_a_real_run_with_a_slow_rank(tmp_path):
    needs_matplotlib()
    metrics = tmp_path / "run.jsonl"
    rc, out, _ = launch(2, sys.executable, str(SCRIPTS / "metrics_pagerank.py"), str(metrics), "rmat:13", "20",
                        env={"HPCDIST_SLOW": "rank:1,factor:6"}, timeout=90)
    assert rc == 0, out
    assert "rank 1 is a straggler" in out
    html_path = tmp_path / "report.html"
    rc, out, _ = launch(0, *hpcdist_cmd(), "report", str(metrics), "-o", str(html_path), timeout=90)
    assert rc == 0, out
    assert "wrote" in out and "20 supersteps" in out
    page = html_path.read_text()
    for section in ("run", "findings", "timeline", "imbalance", "bytes", "totals"):
        assert f'<section id="{section}">' in page
    assert 'id="farm"' not in page  # no farm records in this file
    assert "rank 1 is a straggler" in page
    images = pngs(page)
    assert len(images) == 3 and all(img.startswith(PNG_MAGIC) and len(img) > 5000 for img in images)
    # self-contained: nothing fetched (outside the inlined images, whose base64 may spell "http" by chance)
    text = re.sub(r'data:image/png;base64,[A-Za-z0-9+/=]+', "", page)
    assert "http" not in text.replace("http-equiv", "")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_report_with_farm_records(tmp_path, suffix):
    needs_matplotlib()
    metrics = synthetic_metrics(tmp_path / f"m{suffix}")
    out_html = tmp_path / "r.html"
    rc, out, _ = launch(0, *hpcdist_cmd(), "report", str(metrics), "-o", str(out_html), "--title", "demo run")
    assert rc == 0, out
    page = out_html.read_text()
    assert "<title>demo run</title>" in page and '<section id="farm">' in page
    assert "tasks/s" in page and "60 farm tasks" in out
    assert "rank 1 is a straggler: compute 1.8x the mean in supersteps 2-9" in page
    assert len(pngs(page)) == 4  # timeline, imbalance, bytes, farm


@pytest.mark.timeout(60)
def test_report_errors_exit_2_with_one_message(tmp_path):
    rc, out, _ = launch(0, *hpcdist_cmd(), "report", str(tmp_path / "missing.json"), "-o", str(tmp_path / "r.html"))
    assert rc == 2 and "no such metrics file" in out and "Traceback" not in out
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "metrics"}')
    rc, out, _ = launch(0, *hpcdist_cmd(), "report", str(bad))
    assert rc == 2 and "not an hpcdist metrics file" in out and "Traceback" not in out
    # matplotlib missing: a package shadowing it that fails to import
    shim = tmp_path / "shim" / "matplotlib"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('matplotlib is hidden by this test')\n")
    metrics = synthetic_metrics(tmp_path / "m.json", farm=False)
    rc, out, _ = launch(0, *hpcdist_cmd(), "report", str(metrics), "-o", str(tmp_path / "r.html"),
                        env={"PYTHONPATH": f"{shim.parent}:{ROOT}"})
    assert rc == 2 and "needs matplotlib" in out and "pip install" in out and "Traceback" not in out
    assert not (tmp_path / "r.html").exists()


@pytest.mark.timeout(60)
def test_status_once_and_errors(tmp_path):
    run = tmp_path / "job"
    w = StatusWriter(run, what="pagerank")
    w.update(done=40, total=100, rate=12.5, slowest_rank=3, memory=300 * 2**20)
    rc, out, _ = launch(0, *hpcdist_cmd(), "status", str(run))
    assert rc == 0, out
    assert "pagerank: running" in out and "40.0%" in out and "(40/100)" in out
    assert "12.5 supersteps/s" in out and "slowest rank 3" in out and "300.0 MiB" in out
    assert re.search(r"updated\s+\d+ s ago", out)
    rc, out, _ = launch(0, *hpcdist_cmd(), "status", str(tmp_path / "nowhere"))
    assert rc == 2 and "no such run directory" in out and "Traceback" not in out
    (tmp_path / "empty").mkdir()
    rc, out, _ = launch(0, *hpcdist_cmd(), "status", str(tmp_path / "empty"))
    assert rc == 2 and "no status.json" in out and "Traceback" not in out


@pytest.mark.timeout(60)
def test_status_watch_stops_when_the_job_finishes(tmp_path):
    run = tmp_path / "job"
    w = StatusWriter(run, what="farm", unit="tasks/s", min_interval=0.0)
    w.update(done=1, total=3, rate=2.0)

    def job():
        for done in (2, 3):
            time.sleep(0.6)
            w.update(done=done, total=3, rate=2.0)
        w.finish()

    t = threading.Thread(target=job)
    t.start()
    proc = subprocess.run([*hpcdist_cmd(), "status", str(run), "--watch", "--interval", "0.2"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    t.join()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("farm: running") >= 2 and "farm: finished" in proc.stdout
    assert "tasks/s" in proc.stdout and "(3/3)" in proc.stdout
