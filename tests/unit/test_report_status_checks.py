"""The checks behind `hpcdist report` and `hpcdist status` on bad input, without a launcher.

The field checker, the liveness of a status file's process and ``status --watch``'s
staleness limit, driven by a fake clock (the default limit is a minute: too long for a
launched test).
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys

import pytest

from hpcdist.metrics.check import FieldError, check_value
from hpcdist.cli.status import EXIT_GONE, EXIT_STALE, STALE_LIMIT_GAPS, STALE_LIMIT_S, job_alive, stale_limit, watch


def test_check_value_names_the_first_wrong_field_in_file_order():
    spec = {"a": "int", "b": {"c": ("list", "num")}, "d": "str!"}
    check_value({"a": 1, "b": {"c": [1.5, None, 2]}, "d": "x", "other": object()}, spec)
    check_value({"a": 2.0, "b": None, "d": ""}, spec)  # an integral float is an integer; null stands for NaN
    with pytest.raises(FieldError, match=r"^field b\.c\[1\]: expected a finite number, got a string \(\"x\"\)$"):
        check_value({"b": {"c": [1, "x"]}, "a": "late"}, spec)  # b comes first in the file
    with pytest.raises(FieldError, match=r"^field d: expected a string, got nothing \(the field is missing\)$"):
        check_value({"a": 1}, spec)
    with pytest.raises(FieldError, match="field a: expected an integer, got true"):
        check_value({"a": True, "d": "x"}, spec)  # JSON true is not a number
    with pytest.raises(FieldError, match="field a: expected an integer, got the number 1.5"):
        check_value({"a": 1.5, "d": "x"}, spec)
    with pytest.raises(FieldError, match="expected a finite number, got Infinity"):
        check_value([float("inf")], ("list", "num"), "t")
    with pytest.raises(FieldError, match=r"^field x\[0\]: expected an object, got null$"):
        check_value([None], ("list", {"k": "int"}), "x")


def test_job_alive_for_this_process_a_finished_one_and_another_host():
    me = {"host": socket.gethostname(), "pid": os.getpid()}
    assert job_alive(me) is True
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert job_alive(dict(me, pid=child.pid)) is False
    assert job_alive(dict(me, host="another-host.invalid")) is None
    assert job_alive({"host": socket.gethostname()}) is None  # no pid: cannot tell


class FakeJob:
    """A status file on another host, updated every ``every`` seconds until ``stops`` (fake time)."""

    def __init__(self, every: float, stops: float) -> None:
        self.now, self.every, self.stops = 0.0, every, stops
        self.reads = 0

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s

    def read(self, rundir) -> dict:
        self.reads += 1
        last = min(self.now, self.stops) // self.every * self.every
        return {"state": "running", "what": "cc", "host": "another-host.invalid", "pid": 4242,
                "started": 1000.0, "updated": 1000.0 + last}


def _watch(job: FakeJob, limit=None) -> tuple[int, str]:
    err = io.StringIO()
    rc = watch("RUN", job.read("RUN"), 1.0, limit, read=job.read, sleep=job.sleep, clock=job.clock,
               alive=job_alive, out=io.StringIO(), err=err)
    return rc, err.getvalue()


def test_watch_gives_up_on_a_silent_job_on_another_host_after_the_limit():
    job = FakeJob(every=1.0, stops=5.0)
    rc, err = _watch(job)
    assert rc == EXIT_STALE
    assert err.count("stopped watching") == 1 and "on another-host.invalid" in err
    # the last change was seen at t=5 (gaps of 1 s): the limit is the floor, STALE_LIMIT_S
    assert stale_limit(1.0) == STALE_LIMIT_S
    assert 5.0 + STALE_LIMIT_S < job.now <= 5.0 + STALE_LIMIT_S + 2.0


def test_watch_limit_grows_with_the_gaps_between_updates():
    # a graph run with 30 s supersteps: a minute without an update is normal for it
    job = FakeJob(every=30.0, stops=120.0)
    rc, _ = _watch(job)
    assert rc == EXIT_STALE
    assert stale_limit(30.0) == STALE_LIMIT_GAPS * 30.0
    assert 120.0 + 300.0 < job.now <= 120.0 + 300.0 + 2.0
    job = FakeJob(every=1.0, stops=3.0)
    rc, err = _watch(job, limit=5.0)  # --stale-limit
    assert rc == EXIT_STALE and "(limit 5 s)" in err and job.now <= 3.0 + 5.0 + 2.0


def test_watch_of_a_gone_local_job_says_so_once_and_a_final_state_wins():
    me = socket.gethostname()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    running = {"state": "running", "what": "cc", "host": me, "pid": child.pid, "started": 1.0, "updated": 2.0}
    err, out = io.StringIO(), io.StringIO()
    rc = watch("RUN", running, 1.0, read=lambda _: running, sleep=lambda s: None, out=out, err=err)
    assert rc == EXIT_GONE and err.getvalue().count("is gone") == 1
    assert f"(pid {child.pid} on {me}) is gone; last update" in err.getvalue()
    # the job wrote "finished" and exited between two reads: that is not a death
    finished = dict(running, state="finished", updated=3.0)
    err = io.StringIO()
    rc = watch("RUN", running, 1.0, read=lambda _: finished, sleep=lambda s: None, out=io.StringIO(), err=err)
    assert rc == 0 and err.getvalue() == ""
