"""The pure parts of hpcdist.runtime.ulfm: what counts as a process failure, when ULFM is on, hard_exit."""

from __future__ import annotations

import subprocess
import sys

from mpi4py import MPI

from hpcdist.runtime import ulfm


def test_failure_classes_are_ulfm_only_or_empty():
    # Under MPICH mpi4py maps the missing ULFM classes to ERR_UNKNOWN; they must not count.
    assert MPI.ERR_UNKNOWN not in ulfm.PROCESS_FAILURE_CLASSES
    if MPI.get_vendor()[0] == "Open MPI":
        assert ulfm.PROCESS_FAILURE_CLASSES == {MPI.ERR_PROC_FAILED, MPI.ERR_PROC_FAILED_PENDING, MPI.ERR_REVOKED}


def test_is_process_failure():
    assert not ulfm.is_process_failure(ValueError("x"))
    assert not ulfm.is_process_failure(MPI.Exception(MPI.ERR_UNKNOWN))
    assert not ulfm.is_process_failure(MPI.Exception(MPI.ERR_OTHER))
    for code in ulfm.PROCESS_FAILURE_CLASSES:
        assert ulfm.is_process_failure(MPI.Exception(code))


def test_not_supported_without_the_launch_flag(monkeypatch):
    monkeypatch.delenv(ulfm.FT_ENV, raising=False)
    assert ulfm.ulfm_supported(MPI.COMM_SELF) is False


def test_supported_only_with_open_mpi(monkeypatch):
    monkeypatch.setenv(ulfm.FT_ENV, "1")
    assert ulfm.ulfm_supported(MPI.COMM_SELF) is (MPI.get_vendor()[0] == "Open MPI")


def test_prepare_and_failed_ranks_without_failures():
    comm = MPI.COMM_SELF.Dup()
    try:
        assert ulfm.prepare(comm) is comm
        assert comm.Get_errhandler() == MPI.ERRORS_RETURN
        assert ulfm.failed_ranks(comm) == []
    finally:
        comm.Free()


def test_hard_exit_flushes_and_skips_finalizers():
    code = (
        "import atexit, sys; from hpcdist.runtime.ulfm import hard_exit\n"
        "atexit.register(lambda: print('atexit ran'))\n"
        "sys.stdout.write('unflushed'); hard_exit(7)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 7
    assert proc.stdout == "unflushed"
