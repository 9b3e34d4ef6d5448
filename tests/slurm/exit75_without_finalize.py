"""A job step for tests/slurm: on the first run every rank leaves with exit code 75 *without*
MPI_Finalize (as a rank that ``os._exit(75)``s after writing a checkpoint would), which leaves
MPICH's shared-memory segment in /dev/shm; the requeued run must still start and complete.

    sbatch jobs/slurm-farm.sbatch tests/slurm/exit75_without_finalize.py
"""

import os

from mpi4py import MPI

comm = MPI.COMM_WORLD
comm.Barrier()  # MPI is fully up: the segment exists
restart = int(os.environ.get("SLURM_RESTART_COUNT", "0"))
if restart == 0:
    print(f"rank {comm.rank}: leaving with 75, without MPI_Finalize", flush=True)
    os._exit(75)
total = comm.allreduce(1)
if comm.rank == 0:
    print(f"RESUMED restart {restart}: {total} ranks", flush=True)
