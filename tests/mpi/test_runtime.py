"""The runtime at 1, 2, 3 and 4 ranks (run under mpiexec by tests/run_suite.py)."""

import io

import pytest
from mpi4py import MPI

from hpcdist.runtime.context import Context
from hpcdist.runtime.errors import CollectiveError, InputError, agree, collective
from hpcdist.runtime.logs import setup_logging

pytestmark = pytest.mark.mpi


def test_context_roles_and_private_communicator(comm):
    with Context(comm) as ctx:
        assert (ctx.rank, ctx.size) == (comm.rank, comm.size)
        assert MPI.Comm.Compare(ctx.comm, comm) == MPI.CONGRUENT  # a duplicate, not the same handle
        assert ctx.coordinator == 0 and ctx.is_coordinator == (comm.rank == 0)
        assert list(ctx.worker_ranks) == list(range(1, comm.size))
        assert ctx.backend.name in ("numba", "numpy") and not ctx.device.is_gpu
    assert ctx.comm == MPI.COMM_NULL  # freed on leaving the block


def test_topology_on_one_node(comm):
    with Context(comm, discover_gpus=False) as ctx:
        t = ctx.topology
        assert t.n_nodes == 1 and t.node_index == 0
        assert t.local_size == comm.size and t.local_rank == comm.rank
        hosts = comm.allgather(t.hostname)
        assert len(set(hosts)) == 1


def test_context_on_a_subcommunicator(comm):
    # hpcdist embedded in a larger program: run on the even ranks only.
    sub = comm.Split(comm.rank % 2, comm.rank)
    with Context(sub) as ctx:
        assert ctx.size == (comm.size + 1 - comm.rank % 2) // 2
        assert ctx.rank == comm.rank // 2
    sub.Free()


@pytest.mark.parametrize("failing", [0, 1, 2, 3])
def test_every_rank_raises_the_error_one_rank_found(comm, failing):
    failing %= comm.size
    with pytest.raises(InputError) as info:
        with collective(comm):
            if comm.rank == failing:
                raise InputError("negative weight -1.0", path="g.gr", line=40 + failing)
    err = info.value
    assert err.collective and err.origin_rank == failing and err.n_ranks_failed == 1
    assert str(err) == f"g.gr:{40 + failing}: negative weight -1.0"


def test_lowest_rank_wins_and_failures_are_counted(comm):
    with pytest.raises(InputError) as info:
        with collective(comm):
            if comm.rank >= comm.size // 2:
                raise InputError(f"bad line on rank {comm.rank}")
    assert str(info.value) == f"bad line on rank {comm.size // 2}"
    assert info.value.n_ranks_failed == comm.size - comm.size // 2


def test_foreign_error_travels_as_text(comm):
    with pytest.raises(CollectiveError, match="ValueError: not a number"):
        with collective(comm, catch=(ValueError,)):
            if comm.rank == comm.size - 1:
                raise ValueError("not a number")


def test_no_error_costs_nothing_and_raises_nothing(comm):
    agree(comm, None)
    with collective(comm):
        pass


def test_log_prefix_names_rank_and_size(comm):
    buf = io.StringIO()
    setup_logging("INFO", comm=comm, stream=buf)
    import logging

    logging.getLogger("hpcdist.test").info("hello")
    assert buf.getvalue().startswith(f"[{comm.rank}/{comm.size} ")
    setup_logging("WARNING")


def test_auto_backend_is_agreed_over_ranks(comm):
    import types

    from hpcdist.runtime.backend import resolve_backend
    from hpcdist.runtime.devices import CPU, Device

    fake_cupy = types.SimpleNamespace(__name__="cupy")
    importer = lambda name: fake_cupy if name == "cupy" else __import__(name)  # noqa: E731
    gpu = Device(kind="gpu", index=0, name="Fake", n_visible=1)
    # Only rank 0 has a GPU: CuPy only when rank 0 is alone, else every rank runs on the CPU.
    mine = gpu if comm.rank == 0 else CPU
    b = resolve_backend("auto", mine, comm, importer=importer)
    if comm.size == 1:
        assert b.name == "cupy" and b.device.is_gpu
    else:
        assert b.name in ("numba", "numpy") and not b.device.is_gpu
    assert len(set(comm.allgather(b.name))) == 1
