"""The real ``Farm`` survives a SIGKILLed worker in-job under ULFM (Open MPI ``mpirun --with-ft ulfm``).

Runs ``tests/scripts/farm_ulfm_job.py`` with the Open MPI venv of ``tools/ulfm/setup-venv.sh``
(built once, shared with ``test_ulfm.py``; skipped only when its packages cannot be installed)
and checks the job's own verdict: every result present and correct, the dead worker reported,
its tasks back on the survivors within milliseconds (the failure timeout is 60 s, so the
heartbeat path cannot be what recovers them), the job over well within its timeout. Under the
main venv's MPICH the same script runs with ULFM off and nothing killed.
"""

from __future__ import annotations

import json
import sys

import pytest

from tests.conftest import SCRIPTS, launch
from tests.launch.test_ulfm import ULFM_ARGS, ompi_venv  # noqa: F401 - the fixture builds the Open MPI venv

pytestmark = pytest.mark.launch

JOB = SCRIPTS / "farm_ulfm_job.py"
ITEMS = 60
LAUNCH_TIMEOUT = 90


def _verdict(out: str) -> dict:
    line = next((x for x in out.splitlines() if x.startswith("FARM_ULFM ")), None)
    assert line is not None, out
    return json.loads(line.split(" ", 1)[1])


@pytest.mark.timeout(300)
@pytest.mark.parametrize("n", [3, 4])
def test_farm_survives_killed_worker(ompi_venv, tmp_path, n):  # noqa: F811
    env = {"OPAL_PREFIX": str(ompi_venv), "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    for kill_rank in (n - 1, 1):
        stamp = tmp_path / f"killed-{n}-{kill_rank}"
        rc, out, took = launch(0, str(ompi_venv / "bin" / "mpirun"), *ULFM_ARGS, "-n", str(n),
                               str(ompi_venv / "bin" / "python"), str(JOB), "--items", str(ITEMS),
                               "--kill-rank", str(kill_rank), "--stamp", str(stamp),
                               timeout=LAUNCH_TIMEOUT, env=env)
        v = _verdict(out)
        assert v["ulfm"] is True and v["killed"], out
        assert v["results"] == [i * i for i in range(ITEMS)] and v["correct"], out
        assert v["dead"] == [kill_rank] and v["ok"], out
        assert "ULFM" in v["failures"][0]["reason"], out
        assert v["detect_to_requeue_ms"] is not None and v["detect_to_requeue_ms"] < 100, out
        assert v["kill_to_requeue_ms"] is not None and v["kill_to_requeue_ms"] < 1000, out
        # Heartbeat timeout 30 s, failure timeout 60 s: only the in-job detection finishes this fast.
        assert v["run_s"] < 20 and took < LAUNCH_TIMEOUT / 2, (took, out)


def test_farm_ulfm_job_under_mpich(tmp_path):
    rc, out, _ = launch(2, sys.executable, str(JOB), "--items", "20", "--kill-rank", "0",
                        "--stamp", str(tmp_path / "none"), timeout=60)
    v = _verdict(out)
    assert rc == 0 and v["ulfm"] is False and v["ok"] and v["dead"] == [] and v["failures"] == [], out
