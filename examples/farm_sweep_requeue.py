"""A parameter sweep that survives a drain and a requeue: a journal, and a drain on SIGTERM/SIGUSR1.

    python examples/farm_sweep_requeue.py --journal sweep.h5 --output sweep.json
    mpiexec -n 3 hpcdist exec examples/farm_sweep_requeue.py --journal sweep.h5 --output sweep.json
    sbatch jobs/slurm-farm.sbatch        # under Slurm: signalled -> exit 75 -> requeued -> resumed

The sweep of ``examples/farm_sweep.py``, made restartable. Every completed point is
recorded in the journal before its result is used. On ``SIGTERM`` or ``SIGUSR1`` the farm
drains and every rank exits with 75 (``hpcdist.farm.walltime.EXIT_REQUEUE``, "try again
later"); the job script requeues the job on that code, and the rerun with the same
journal skips the points already done and writes the same ``--output`` as an
uninterrupted run (JSON: the grid, the values, the best point).

``--sleep S`` makes each point take S seconds longer (to watch a drain); ``--log FILE``
appends one line per point actually computed (tests count them).
"""

import argparse
import json
import math
import os
import signal
import time

import hpcdist as hd

SLEEP = 0.0  # module global, set on every rank from --sleep: it must not be part of a point's journal key
LOG = None


def simulate(alpha: float, beta: float) -> float:
    """A stand-in for an expensive simulation: the integral of exp(-alpha x) sin(beta x) on [0, 10]."""
    if SLEEP:
        time.sleep(SLEEP)
    n = 20_000
    h = 10.0 / n
    value = sum(math.exp(-alpha * i * h) * math.sin(beta * i * h) for i in range(n)) * h
    if LOG:
        # One write(2) with O_APPEND: lines of concurrent workers never interleave.
        fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{alpha} {beta}\n".encode())
        finally:
            os.close(fd)
    return value


def main() -> None:
    global SLEEP, LOG
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--journal", required=True, help="the farm's journal (HDF5); a rerun skips what it holds")
    p.add_argument("--output", required=True, help="results, as JSON, written when the sweep is complete")
    p.add_argument("--grid", type=int, default=8, help="GRID x GRID points (default 8)")
    p.add_argument("--sleep", type=float, default=0.0, help="extra seconds per point")
    p.add_argument("--log", help="append one line per point computed")
    args = p.parse_args()
    SLEEP, LOG = args.sleep, args.log

    grid = [(a / 4, b / 2) for a in range(1, args.grid + 1) for b in range(1, args.grid + 1)]
    restart = os.environ.get("SLURM_RESTART_COUNT", "0")
    # SIGUSR1 as well as SIGTERM: `sbatch --signal=B:USR1@T` warns the job T seconds before its limit.
    with hd.Farm(retries=1, journal=args.journal, drain_signals=(signal.SIGTERM, signal.SIGUSR1)) as farm:
        if farm is not None:
            values = list(farm.map(simulate, [a for a, _ in grid], [b for _, b in grid]))
            best = max(zip(values, grid))
            tmp = args.output + ".tmp"
            with open(tmp, "w") as fh:
                json.dump({"grid": grid, "values": values, "best": [best[0], list(best[1])]}, fh)
            os.replace(tmp, args.output)
            print(f"{len(values)} runs on {farm.n_workers} worker(s), {farm.skipped} from the journal "
                  f"(restart {restart}); best {best[0]:.4f} at alpha, beta = {best[1]}", flush=True)


if __name__ == "__main__":
    main()
