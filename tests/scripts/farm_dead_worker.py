"""A farm whose worker dies (os._exit) inside a task; run with ``mpiexec -disable-auto-cleanup``.

usage: farm_dead_worker.py MARKER_PATH. The first rank to run ``fragile`` writes the
marker and exits at once, as a segfault or the OOM killer would end it. The farm must
notice, run the task again on a survivor, finish every task, and end without hanging.
"""

import os
import sys
import time

import hpcdist as hd
from hpcdist.runtime.comm import MPI


def fragile(marker):
    if not os.path.exists(marker):
        with open(marker, "w") as fh:
            fh.write(str(MPI.COMM_WORLD.Get_rank()))
        os._exit(3)
    return "survived"


def square(x):
    time.sleep(0.01)
    return x * x


def main() -> None:
    marker = sys.argv[1]
    with hd.Farm(heartbeat_interval=0.1, heartbeat_timeout=0.5, failure_timeout=1.0) as farm:
        if farm is not None:
            t0 = time.monotonic()
            first = farm.submit(fragile, marker)
            rest = [farm.submit(square, i) for i in range(30)]
            assert first.result(timeout=60) == "survived"
            assert [f.result(timeout=60) for f in rest] == [i * i for i in range(30)]
            dead = int(open(marker).read())
            status = {w.rank: w.status.value for w in farm.workers()}
            info = farm.task(first.id)
            print(f"RESULT OK dead={dead} status={status[dead]} attempts={info.attempts} "
                  f"retries_used={info.errors_used} took={time.monotonic() - t0:.1f}", flush=True)


main()
