"""A journaled farm job that can be killed and rerun: ``submit(..., key=...)`` and ``map``.

usage: farm_journal_job.py JOURNAL OUT [--n-submit N] [--n-map M] [--sleep S] [--pid-dir DIR]

Every task appends one line (``s I`` for a submitted task, ``m I`` for a map item) to
the file named by ``$FARM_JOB_LOG`` (when set) before it returns, so the test counts
executions per run. Results mix floats, strings and numpy arrays, and are a pure
function of the task's input, so a resumed run must write exactly the same ``OUT``
(a pickle) as an uninterrupted one. ``map`` runs with ``chunksize=None``: its chunks
differ from run to run, and a resume must still skip exactly the items journaled.
With ``--pid-dir`` every rank writes ``DIR/rank-R.pid`` before the farm starts.
The coordinator prints ``SKIPPED K`` (tasks and items answered by the journal) and
``DONE`` at the end.
"""

import argparse
import os
import pickle
import time

import numpy as np

import hpcdist as hd
from hpcdist.runtime.comm import MPI

SLEEP = 0.0


def _log(line):
    path = os.environ.get("FARM_JOB_LOG")
    if path:
        # One write(2) with O_APPEND: lines of concurrent workers never interleave.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{line}\n".encode())
        finally:
            os.close(fd)


def simulate(i, sleep):
    time.sleep(sleep)
    _log(f"s {i}")
    if i % 3 == 0:
        return np.arange(i, i + 50, dtype=np.float64) ** 0.5
    return {"i": i, "value": (i * 2654435761) % 1000003 / 7.0, "label": f"sample-{i}"}


def square(i):
    time.sleep(SLEEP)
    _log(f"m {i}")
    return (i, i * i, str(i)[::-1])


def main():
    global SLEEP
    p = argparse.ArgumentParser()
    p.add_argument("journal")
    p.add_argument("out")
    p.add_argument("--n-submit", type=int, default=150)
    p.add_argument("--n-map", type=int, default=150)
    p.add_argument("--sleep", type=float, default=0.004)
    p.add_argument("--pid-dir")
    args = p.parse_args()
    SLEEP = args.sleep  # module global: the map's items must not carry it (their key is fn + item)
    if args.pid_dir:  # before the farm: workers stay inside Farm.__enter__ until the end
        pid_file = os.path.join(args.pid_dir, f"rank-{MPI.COMM_WORLD.Get_rank()}.pid")
        with open(pid_file + ".tmp", "w") as fh:
            fh.write(str(os.getpid()))
        os.replace(pid_file + ".tmp", pid_file)
    with hd.Farm(journal=args.journal, heartbeat_interval=0.1, progress=False) as farm:
        if farm is not None:
            futures = [farm.submit(simulate, i, args.sleep, key=f"sim-{i}") for i in range(args.n_submit)]
            submitted = [f.result() for f in futures]
            mapped = list(farm.map(square, range(args.n_map)))
            with open(args.out + ".tmp", "wb") as fh:
                pickle.dump({"submit": submitted, "map": mapped}, fh, protocol=5)
            os.replace(args.out + ".tmp", args.out)
            print(f"SKIPPED {farm.skipped}", flush=True)
            print("DONE", flush=True)


if __name__ == "__main__":
    main()
