"""Walltime arithmetic, the allocation's end under (fake) Slurm, and drain signals."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import threading
import time
from datetime import datetime
from types import SimpleNamespace

import pytest

from hpcdist.farm.walltime import EXIT_REQUEUE, DrainSignal, Walltime, allocation_end

pytestmark = pytest.mark.timeout(30)


class FakeSqueue:
    """Stands in for subprocess.run: records the command, answers like squeue."""

    def __init__(self, stdout: str = "", returncode: int = 0, raises: BaseException | None = None) -> None:
        self.stdout, self.returncode, self.raises = stdout, returncode, raises
        self.calls: list[list[str]] = []

    def __call__(self, cmd, **kwargs):
        self.calls.append(list(cmd))
        assert kwargs.get("timeout"), "squeue must not be able to hang the coordinator"
        if self.raises is not None:
            raise self.raises
        return SimpleNamespace(stdout=self.stdout, returncode=self.returncode)


def test_exit_requeue_is_ex_tempfail():
    assert EXIT_REQUEUE == 75


def test_end_time_from_the_environment_wins_without_squeue():
    fake = FakeSqueue("2030-01-01T00:00:00\n")
    assert allocation_end({"SLURM_JOB_END_TIME": "1764097200", "SLURM_JOB_ID": "42"}, run=fake) == 1764097200.0
    assert fake.calls == []


def test_end_time_from_squeue_in_local_time():
    fake = FakeSqueue("2026-11-25T19:30:00\n")
    end = allocation_end({"SLURM_JOB_ID": "42"}, run=fake)
    assert fake.calls == [["squeue", "-h", "-j", "42", "-o", "%e"]]
    assert end == datetime(2026, 11, 25, 19, 30, 0).timestamp()


@pytest.mark.parametrize("environ", [{}, {"SLURM_JOB_END_TIME": "0"}, {"SLURM_JOB_END_TIME": "soon"}])
def test_no_slurm_means_no_end(environ):
    fake = FakeSqueue("2026-11-25T19:30:00")
    assert allocation_end(environ, run=fake) is None
    assert fake.calls == []


@pytest.mark.parametrize(
    "fake",
    [
        FakeSqueue("N/A\n"),
        FakeSqueue("Unknown\n"),
        FakeSqueue(""),
        FakeSqueue("garbage"),
        FakeSqueue("slurm_load_jobs error: Invalid job id specified", returncode=1),
        FakeSqueue(raises=FileNotFoundError("squeue")),
        FakeSqueue(raises=subprocess.TimeoutExpired("squeue", 10)),
    ],
)
def test_squeue_that_cannot_tell_means_no_end(fake):
    assert allocation_end({"SLURM_JOB_ID": "42", "SLURM_JOB_END_TIME": ""}, run=fake) is None
    assert len(fake.calls) == 1


def test_remaining_and_fits():
    wt = Walltime(end=1000.0, margin_s=30.0)
    assert wt.remaining(now=900.0) == 70.0
    assert wt.remaining(now=990.0) == 0.0 and wt.expired(now=990.0)
    assert wt.fits(70.0, now=900.0) and not wt.fits(70.5, now=900.0)
    assert wt.fits(None, now=969.0)  # unknown duration: fits while time remains
    assert not wt.fits(None, now=970.0) and not wt.fits(0.0, now=975.0)
    assert Walltime(end=1000.0, margin_s=0).remaining(now=999.5) == 0.5


def test_no_end_never_runs_out():
    wt = Walltime(None)
    assert wt.remaining(now=1e12) == math.inf
    assert wt.fits(1e9, now=1e12) and wt.fits(None, now=0.0) and not wt.expired(now=1e12)
    assert Walltime(math.inf).remaining(now=0.0) == math.inf


def test_constructors_and_bad_margins():
    assert Walltime.after(600, now=1000.0, margin_s=10).remaining(now=1000.0) == 590.0
    wt = Walltime.from_slurm(margin_s=5, environ={"SLURM_JOB_END_TIME": "2000"}, run=FakeSqueue())
    assert wt.end == 2000.0 and wt.remaining(now=1000.0) == 995.0
    assert Walltime.from_slurm(environ={}).end is None
    with pytest.raises(ValueError):
        Walltime(100.0, margin_s=-1)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_a_drain_signal_sets_the_flag_and_the_process_survives(signum):
    before = signal.getsignal(signum)
    drain = DrainSignal()
    assert drain.install()
    try:
        assert not drain.requested.is_set() and drain.signum is None
        os.kill(os.getpid(), signum)
        assert drain.requested.is_set(), "the handler marks the flag at once"
        assert drain.requested.wait(timeout=5)
        assert drain.signum == signum and drain.count >= 1
    finally:
        drain.restore()
    assert signal.getsignal(signum) == before


def test_restore_puts_the_previous_handler_back():
    seen: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda s, f: seen.append(s))
    try:
        with DrainSignal(signals=(signal.SIGUSR1,)) as drain:
            os.kill(os.getpid(), signal.SIGUSR1)
            assert drain.requested.wait(timeout=5)
            assert seen == []  # a drain replaces the previous handler while installed
        os.kill(os.getpid(), signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seen == [signal.SIGUSR1]
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_other_signals_do_not_request_a_drain():
    seen: list[int] = []
    previous = signal.signal(signal.SIGUSR2, lambda s, f: seen.append(s))
    try:
        with DrainSignal() as drain:
            os.kill(os.getpid(), signal.SIGUSR2)
            deadline = time.monotonic() + 2
            while not seen and time.monotonic() < deadline:
                time.sleep(0.01)
            assert seen == [signal.SIGUSR2]
            assert not drain.requested.wait(timeout=0.2)
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_the_flag_is_set_while_the_main_thread_is_stuck_in_c_code():
    """Python handlers wait until the main thread returns to the interpreter (think of a
    blocking MPI call); the wake-up fd lets the helper thread set the event meanwhile."""
    import hashlib

    data = bytes(512 << 20)  # one long hashlib call: C code that releases the GIL, no signal checks
    set_at: list[float] = []
    with DrainSignal() as drain:
        waiter = threading.Thread(target=lambda: drain.requested.wait(30) and set_at.append(time.perf_counter()))
        waiter.start()
        sender = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGUSR1))
        sender.start()
        hashlib.sha256(data).digest()
        main_back = time.perf_counter()
        waiter.join(timeout=30)
        sender.join()
    assert set_at and set_at[0] < main_back, "the event waited for the main thread"


def test_install_outside_the_main_thread_installs_nothing():
    result: list[bool] = []
    drain = DrainSignal()
    t = threading.Thread(target=lambda: result.append(drain.install()))
    t.start()
    t.join()
    assert result == [False]
    assert signal.getsignal(signal.SIGTERM) != drain._handler
    drain.restore()  # harmless when nothing was installed
