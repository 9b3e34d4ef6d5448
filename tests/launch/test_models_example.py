"""``examples/models_batch.py`` under ``mpiexec -n 3 hpcdist exec``: SPMD training, registry,
predict_batch on the farm equal to ``model.predict``, a bagged ensemble; and the same
output under plain ``python`` (one rank)."""

from __future__ import annotations

import re
import sys

import pytest

from hpcdist.models import ModelRegistry
from tests.conftest import ROOT, hpcdist_cmd, launch

pytestmark = pytest.mark.launch

SCRIPT = str(ROOT / "examples" / "models_batch.py")


def _lines(out: str) -> dict[str, str]:
    return {k: line for line in out.splitlines() for k in ("registered", "predict_batch", "ensemble") if line.startswith(k)}


def test_models_example_under_hpcdist_exec_matches_one_rank(tmp_path):
    rc, out, _ = launch(3, *hpcdist_cmd(), "exec", SCRIPT, str(tmp_path / "reg3"), timeout=120)
    assert rc == 0, out
    assert out.count("\nok\n") + out.startswith("ok\n") == 1 and "MISMATCH" not in out, out
    lines3 = _lines(out)
    assert "equal to model.predict: True" in lines3["predict_batch"]
    assert "workers [1, 2]" in lines3["predict_batch"], out  # both workers, not the coordinator
    reg = ModelRegistry(tmp_path / "reg3")
    assert [(i.name, i.version) for i in reg.list()] == [("bag-m0", 1), ("bag-m1", 1), ("bag-m2", 1), ("clf", 1)]
    assert reg.info("clf").metadata == {"epochs": 20} and reg.search(tags="demo")[0].name == "clf"

    rc, out1, _ = launch(0, sys.executable, SCRIPT, str(tmp_path / "reg1"), timeout=120)
    assert rc == 0, out1
    lines1 = _lines(out1)
    # Training and the ensemble do not depend on the rank count: the same losses and accuracies.
    assert lines1["registered"] == lines3["registered"]
    assert lines1["ensemble"] == lines3["ensemble"]
    acc = lambda s: re.search(r"accuracy ([0-9.]+)", s).group(1)  # noqa: E731
    assert acc(lines1["predict_batch"]) == acc(lines3["predict_batch"])
