"""Aggregation, serialization, the task runner and the single-rank farm: no MPI launcher needed."""

from __future__ import annotations

import pickle
import threading
import time

import numpy as np
import pytest

from hpcdist.farm.aggregation import majority, weighted_mean
from hpcdist.farm.apply import partition_bounds
from hpcdist.farm.runner import ChunkCall, Runner, Validated
from hpcdist.farm.serialization import dumps, loads, pack, pack_exception, unpack, unpack_exception
from hpcdist.farm.tasks import RemoteError, ResultRejected
from hpcdist.runtime.errors import InputError


def test_majority_counts_and_breaks_ties_by_first_appearance():
    assert majority([1, 2, 2, 3]) == 2
    assert majority(["b", "a", "a", "b"]) == "b"  # tie: the value seen first
    assert majority([[1], [2], [1]]) == [1]  # unhashable values vote by content
    a = np.array([1, 2])
    assert np.array_equal(majority([a, np.array([3]), a.copy()]), a)
    with pytest.raises(ValueError):
        majority([])


def test_weighted_mean_numbers_and_arrays():
    assert weighted_mean([1.0, 3.0]) == 2.0
    assert weighted_mean([1.0, 3.0], [3, 1]) == 1.5
    assert np.allclose(weighted_mean([np.ones(3), 3 * np.ones(3)], [1, 1]), 2 * np.ones(3))
    with pytest.raises(InputError):
        weighted_mean([1.0], [1, 2])
    with pytest.raises(InputError):
        weighted_mean([1.0, 2.0], [0, 0])


def test_arrays_go_out_of_band_without_copies():
    a = np.arange(1000, dtype=np.float64)
    data, buffers = dumps({"x": a})
    assert len(buffers) == 1 and len(data) < 500  # the array is not in the stream
    assert np.shares_memory(np.frombuffer(buffers[0], dtype=np.float64), a)
    assert np.array_equal(loads(data, buffers)["x"], a)


def test_channel_sends_small_messages_whole_and_large_ones_from_their_memory():
    from hpcdist.farm.serialization import INBAND_MAX, Channel, _wire
    from hpcdist.runtime.comm import MPI

    small = {"ids": [1, 2], "x": np.arange(10)}
    assert _wire(small)[1] == []  # one MPI message, the little array in band
    big = [np.arange(300_000, dtype=np.float64), "text", np.ones((10, 10))]
    header, parts = _wire(big)
    assert header[0] == 0 and len(parts) == 3  # header, then pickle + both arrays out of band
    assert np.shares_memory(np.frombuffer(parts[1], dtype=np.float64), big[0])  # sent from its own memory
    assert memoryview(parts[1]).nbytes > INBAND_MAX
    comm = MPI.COMM_SELF.Dup()
    try:
        chan = Channel(comm)
        assert chan.poll(0, 7) is None
        for obj in (small, big):
            sent = chan.isend(obj, 0, 7)
            deadline = time.monotonic() + 10
            while (msg := chan.poll(0, 7)) is None:
                assert time.monotonic() < deadline
            assert sent.test()[0] and msg[:2] == (0, 7)
            got = msg[2]
            if obj is small:
                assert got["ids"] == [1, 2] and np.array_equal(got["x"], small["x"])
            else:
                assert got[1] == "text" and np.array_equal(got[0], big[0]) and np.array_equal(got[2], big[2])
                got[0][0] = -1.0  # received into writable memory of its own
                assert big[0][0] == 0.0
        assert chan.poll(0, 7) is None
    finally:
        comm.Free()


def test_channel_drain_takes_every_waiting_message_whole_without_unpickling():
    from hpcdist.farm.serialization import Channel
    from hpcdist.runtime.comm import MPI

    comm = MPI.COMM_SELF.Dup()
    try:
        chan = Channel(comm)
        assert chan.drain(0) == 0
        # A large message (several MPI messages), a small one on another tag, and bytes
        # that are no pickle at all: drain must take each whole and never load it.
        junk = bytearray(b"\x80not a pickle")
        raw = comm.Isend((junk, MPI.BYTE), 0, 8)
        sends = [chan.isend([np.arange(300_000.0), "x"], 0, 7), chan.isend({"a": 1}, 0, 9)]
        assert chan.drain(0, 9) == 1  # one tag only
        assert chan.drain(0) == 2
        assert not comm.Iprobe(MPI.ANY_SOURCE, MPI.ANY_TAG)
        assert raw.Test() and all(s.test()[0] for s in sends)
        chan.isend("after", 0, 7)
        assert chan.recv(0, 7) == "after"  # the parts were all taken: the next message reads whole
    finally:
        comm.Free()


def test_envelope_reports_unpickling_errors_against_ids():
    env = pack([1, 2], "meta", [("fn", 1), ("fn", 2)])
    assert unpack(env) == ([1, 2], "meta", [("fn", 1), ("fn", 2)])
    bad = ([3], None, pickle.PickleBuffer(b"not a pickle"), [])
    ids, meta, objs = unpack(bad)
    assert ids == [3] and isinstance(objs, Exception)


class Unpicklable(Exception):
    def __init__(self, msg):
        super().__init__(msg)
        self.lock = threading.Lock()


def test_remote_exception_keeps_type_and_traceback_or_falls_back_to_text():
    try:
        raise KeyError("missing")
    except KeyError as exc:
        packed = pack_exception(exc, 3, "node7")
    exc = unpack_exception(pickle.loads(pickle.dumps(packed)))
    assert isinstance(exc, KeyError) and isinstance(exc.__cause__, RemoteError)
    assert "Remote traceback (rank 3 on node7)" in str(exc.__cause__) and "KeyError: 'missing'" in str(exc.__cause__)
    try:
        raise Unpicklable("holds a lock")
    except Unpicklable as e:
        packed = pack_exception(e, 2, "node1")
    exc = unpack_exception(pickle.loads(pickle.dumps(packed)))
    assert type(exc) is RemoteError and exc.rank == 2 and "Unpicklable: holds a lock" in str(exc)


def test_chunk_and_validated_wrappers_pickle():
    call = pickle.loads(pickle.dumps(ChunkCall(abs)))
    assert call([-1, -2]) == [1, 2]
    assert ChunkCall(pow, star=True)([(2, 3), (3, 2)]) == [8, 9]
    v = pickle.loads(pickle.dumps(Validated(abs, bool)))
    assert v(-3) == 3
    with pytest.raises(ResultRejected):
        v(0)


def _collect_runner():
    inbox, out = [], []
    lock = threading.Lock()

    def fetch():
        with lock:
            got = list(inbox)
            inbox.clear()
        return got

    runner = Runner(5, "h", fetch, out.extend)
    runner.start()

    def put(*items):
        with lock:
            inbox.extend(items)

    return runner, put, out


def _wait_for(cond, timeout=5.0):
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        time.sleep(0.001)
    return cond()


def test_runner_runs_in_order_and_reports_errors():
    runner, put, out = _collect_runner()
    try:
        put((1, (pow, (2, 3), {})), (2, (int, ("x",), {})), (3, (str, (4,), {})))
        assert _wait_for(lambda: len(out) == 3)
        assert [o[0] for o in out] == [1, 2, 3]
        assert out[0][1:3] == ("ok", 8) and out[2][1:3] == ("ok", "4")
        assert out[1][1] == "error" and "rank 5 on h" in out[1][2][1]
        assert runner.tasks_done == 3 and runner.ewma_s is not None
    finally:
        runner.stop()


def _spin(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "done"


def test_runner_cancels_queued_and_running_tasks():
    runner, put, out = _collect_runner()
    try:
        put((1, (_spin, (30.0,), {})), (2, (_spin, (30.0,), {})))
        assert _wait_for(lambda: runner.running_ids() == (1, 2))
        runner.cancel([2])
        assert _wait_for(lambda: (2, "cancelled", None, None) in out)
        t0 = time.monotonic()
        runner.cancel([1])
        assert _wait_for(lambda: (1, "cancelled", None, None) in out)
        assert time.monotonic() - t0 < 2
        runner.cancel([9])  # overtakes its task: dropped on arrival
        put((9, (_spin, (30.0,), {})), (10, (abs, (-1,), {})))
        assert _wait_for(lambda: any(o[0] == 10 for o in out))
        assert (9, "cancelled", None, None) in out
    finally:
        runner.stop()


def test_partition_bounds():
    assert partition_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert partition_bounds(0, 4) == []


def test_process_alive_tells_a_stopped_process_from_a_running_one():
    """A stopped process exists (the shutdown still reaches it) but is no proof that a
    silent worker is busy; a reaped one is neither."""
    import signal
    import subprocess
    import sys

    from hpcdist.farm.transport import process_alive

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert process_alive(proc.pid) and process_alive(proc.pid, stopped=False)
        proc.send_signal(signal.SIGSTOP)
        end = time.monotonic() + 10
        while process_alive(proc.pid, stopped=False):  # the state changes when the signal lands
            assert time.monotonic() < end, "the process never showed as stopped"
            time.sleep(0.01)
        assert process_alive(proc.pid)
        proc.send_signal(signal.SIGCONT)
        end = time.monotonic() + 10
        while not process_alive(proc.pid, stopped=False):
            assert time.monotonic() < end, "the process never showed as running again"
            time.sleep(0.01)
    finally:
        proc.kill()
        proc.wait()
    assert not process_alive(proc.pid) and not process_alive(proc.pid, stopped=False)
