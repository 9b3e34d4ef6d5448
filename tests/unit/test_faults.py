"""HPCDIST_FAULT parsing and the injection hooks of hpcdist.runtime.faults."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from hpcdist.runtime.errors import InputError
from hpcdist.runtime.faults import FaultSpec, Faults, InjectedFault, faults, parse_faults
from tests.conftest import ROOT


def test_parse_several_specs_in_any_key_order():
    specs = parse_faults(" rank:2,superstep:5,kind:kill ; kind:raise,phase:checkpoint-write,rank:* ;")
    assert specs == (FaultSpec(rank=2, kind="kill", superstep=5),
                     FaultSpec(rank=None, kind="raise", phase="checkpoint-write"))
    assert parse_faults(None) == () and parse_faults("  ") == ()
    assert not Faults.from_env({}) and Faults.from_env({"HPCDIST_FAULT": "rank:0,superstep:1,kind:hang"})


@pytest.mark.parametrize("text, words", [
    ("rank:x,superstep:1,kind:kill", "rank must be an integer"),
    ("rank:1,superstep:-2,kind:kill", "must not be negative"),
    ("rank:1,superstep:1,kind:explode", "unknown kind 'explode'"),
    ("rank:1,kind:kill", "needs superstep:S, phase:NAME or both"),
    ("rank:1,phase:checkpoint-wrte,kind:kill", "unknown phase 'checkpoint-wrte'"),
    ("superstep:1,kind:kill", "has no rank"),
    ("rank:1,superstep:1", "has no kind"),
    ("rank:1,superstep:1,kind:kill,when:now", "unknown key 'when'"),
    ("rank:1,superstep,kind:kill", "'superstep' is not key:value"),
    ("rank:1,rank:2,superstep:1,kind:kill", "rank given twice"),
    ("rank:1,,superstep:1,kind:kill", "empty field"),
])
def test_malformed_specs_name_the_bad_part(text, words):
    with pytest.raises(InputError, match="HPCDIST_FAULT") as info:
        Faults.from_env({"HPCDIST_FAULT": text})
    assert words in str(info.value)
    assert "\n" not in str(info.value)


def test_hooks_fire_only_on_the_matching_rank_and_step_or_phase():
    f = Faults.parse("rank:1,superstep:3,kind:raise;rank:*,phase:checkpoint-commit,kind:raise")
    f.at_superstep(0, 3)
    f.at_superstep(1, 2)
    f.at_phase(1, "checkpoint-write")
    with pytest.raises(InjectedFault, match="raise on rank 1 at superstep 3"):
        f.at_superstep(1, 3)
    with pytest.raises(InjectedFault, match="phase checkpoint-commit"):
        f.at_phase(7, "checkpoint-commit")
    assert issubclass(InjectedFault, RuntimeError)


def test_a_phase_with_a_superstep_fires_only_in_that_superstep():
    f = Faults.parse("rank:1,superstep:29,phase:checkpoint-write,kind:raise")
    f.at_superstep(1, 29)  # a phase fault never fires at the superstep hook itself
    f.at_phase(1, "checkpoint-write", 19)  # the step passed by the caller wins
    with pytest.raises(InjectedFault, match="phase checkpoint-write superstep 29"):
        f.at_phase(1, "checkpoint-write", 29)
    with pytest.raises(InjectedFault):
        f.at_phase(1, "checkpoint-write")  # else the last superstep seen: 29
    f.at_superstep(1, 30)
    f.at_phase(1, "checkpoint-write")
    f.at_phase(0, "checkpoint-write", 29)


def test_faults_accessor_is_cached_and_reads_the_environment(monkeypatch):
    faults.cache_clear()
    monkeypatch.setenv("HPCDIST_FAULT", "rank:0,superstep:4,kind:raise")
    try:
        first = faults()
        assert first is faults() and first.specs[0].superstep == 4
    finally:
        faults.cache_clear()


def _run(code: str, timeout: float = 20.0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_kill_sends_sigkill_to_itself():
    proc = _run("from hpcdist.runtime.faults import Faults\n"
                "Faults.parse('rank:0,superstep:2,kind:kill').at_superstep(0, 2)\nprint('survived')")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert "survived" not in out and "injected fault: kill on rank 0 at superstep 2" in err


def test_hang_sleeps_until_killed():
    proc = _run("from hpcdist.runtime.faults import Faults\n"
                "Faults.parse('rank:0,phase:checkpoint-write,kind:hang').at_phase(0, 'checkpoint-write')\n"
                "print('returned')")
    with pytest.raises(subprocess.TimeoutExpired):
        proc.communicate(timeout=1.5)
    proc.kill()
    out, _ = proc.communicate(timeout=10)
    assert "returned" not in out
