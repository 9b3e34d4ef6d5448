"""Checkpoint policy, durations and stop signals: the pure parts of graph recovery."""

from __future__ import annotations

import math
import os
import signal

import pytest

from hpcdist.graph.recovery import CheckpointPolicy, parse_duration
from hpcdist.runtime.errors import InputError
from hpcdist.runtime.preemption import EXIT_REQUEUE, Preempted, StopSignals


@pytest.mark.parametrize("text, seconds", [("90", 90), ("90s", 90), ("5m", 300), ("1.5h", 5400), ("2d", 172800),
                                           (" 10min ", 600)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "5x", "-3s", "0", "nan", "inf"])
def test_bad_durations_name_the_option(text):
    with pytest.raises(InputError, match="--checkpoint-interval"):
        parse_duration(text, "--checkpoint-interval")


def test_every_k_supersteps():
    p = CheckpointPolicy(every=3)
    assert [s for s in range(10) if p.due(s, 0.0, 1.0)] == [2, 5, 8]
    assert p.mode == "every" and "3 supersteps" in p.describe()


def test_fixed_interval():
    p = CheckpointPolicy(interval=5.0)
    assert not p.due(0, 4.9, 100.0) and p.due(0, 5.0, 0.0)


def test_adaptive_keeps_overhead_under_target():
    p = CheckpointPolicy(overhead=0.03)
    assert p.target_interval(0.3) == pytest.approx(10.0)
    assert not p.due(7, 9.9, 0.3) and p.due(7, 10.0, 0.3)


def test_adaptive_with_mtbf_follows_young_but_never_below_the_overhead_floor():
    p = CheckpointPolicy(mtbf=3600.0, overhead=0.03)
    assert p.target_interval(2.0) == pytest.approx(math.sqrt(2 * 2.0 * 3600.0))  # 120 s > 2 / 0.03
    tiny = CheckpointPolicy(mtbf=1.0, overhead=0.03)
    assert tiny.target_interval(2.0) == pytest.approx(2.0 / 0.03)


def test_policy_refuses_nonsense():
    with pytest.raises(InputError, match="at least 1"):
        CheckpointPolicy(every=0)
    with pytest.raises(InputError, match="overhead"):
        CheckpointPolicy(overhead=1.5)


def test_stop_signals_record_the_first_signal_and_restore_handlers():
    before = signal.getsignal(signal.SIGUSR1)
    with StopSignals() as sig:
        assert sig.received == 0
        os.kill(os.getpid(), signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGTERM)
        assert sig.received == signal.SIGUSR1
    assert signal.getsignal(signal.SIGUSR1) is before


def test_preempted_names_signal_step_and_exit_status():
    exc = Preempted(signal.SIGUSR1, 12, "/tmp/ck")
    assert exc.exit_code == EXIT_REQUEUE == 75
    assert "SIGUSR1" in str(exc) and "superstep 12" in str(exc) and "--resume" in str(exc)
