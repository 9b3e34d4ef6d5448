"""A small farm job with a metrics file and a status directory, for tests/launch/test_farm_report.py.

Usage: mpiexec -n N python tests/scripts/farm_metrics_job.py METRICS RUNDIR SECONDS

Runs about SECONDS of 5 ms tasks (the last worker's take twice as long: an EWMA drift),
switches the strategy halfway, and ends with a few tasks of a second function.
"""

from __future__ import annotations

import sys
import time

from mpi4py import MPI

import hpcdist as hd


def work(x):
    rank, size = MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size()
    time.sleep(0.010 if size > 2 and rank == size - 1 else 0.005)
    return x


def tail(x):
    time.sleep(0.001 * (1 + x % 3))
    return x


def main() -> None:
    metrics, rundir, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    with hd.Farm(metrics=metrics, status_dir=rundir, heartbeat_interval=0.1) as farm:
        if farm is not None:
            end = time.monotonic() + seconds
            switched = False
            i = 0
            while time.monotonic() < end:
                batch = [farm.submit(work, i + k) for k in range(20)]
                [f.result() for f in batch]
                i += 20
                if not switched and time.monotonic() > end - seconds / 2:
                    farm.set_strategy("round_robin")
                    switched = True
            print(sum(farm.map(tail, range(100), chunksize=5)), flush=True)
            print(f"submitted {i}", flush=True)


if __name__ == "__main__":
    main()
