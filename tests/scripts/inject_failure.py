"""A job in which one rank raises while the others wait.

usage: inject_failure.py FAIL_RANK PHASE [KIND]
PHASE: collective (others wait in an allreduce), p2p (others wait in a recv from
the failing rank), startup (raise before any communication), none (no failure).
KIND: raise (default), exit3 (sys.exit(3) on the failing rank), agreed (an InputError
found on FAIL_RANK inside hpcdist.collective).
"""

import sys
import time

import hpcdist  # noqa: F401 - installs the abort guard for the `python script.py` launch
from hpcdist.runtime.comm import MPI

fail_rank, phase = int(sys.argv[1]), sys.argv[2]
kind = sys.argv[3] if len(sys.argv) > 3 else "raise"
comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()


def fail():
    if kind == "exit3":
        sys.exit(3)
    raise RuntimeError(f"injected failure on rank {rank}")


if kind == "agreed":
    with hpcdist.collective(comm):
        if rank == fail_rank:
            raise hpcdist.InputError("bad value 'x'", path="input.txt", line=7)
    print("not reached", flush=True)
    sys.exit(0)

if phase == "startup" and rank == fail_rank:
    fail()
comm.Barrier()
if phase == "collective":
    if rank == fail_rank:
        time.sleep(0.3)  # let the others block in the allreduce first
        fail()
    comm.allreduce(rank)
elif phase == "p2p":
    if rank == fail_rank:
        time.sleep(0.3)
        fail()
    # Every other rank waits for a message that the failing rank never sends.
    comm.recv(source=fail_rank, tag=7)
comm.Barrier()
print(f"rank {rank} finished", flush=True)
