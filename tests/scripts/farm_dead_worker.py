"""A farm whose worker dies or stops inside a task; run with ``mpiexec -disable-auto-cleanup``.

usage: farm_dead_worker.py MARKER_PATH [stop]. The first rank to run ``fragile`` writes its
rank and pid to the marker, then exits at once, as a segfault or the OOM killer would end
it; or, with ``stop``, stops itself (SIGSTOP), as a debugger or a stray ``kill -STOP``
would: the process still exists but runs nothing. The farm must notice, run the task again
on a survivor, finish every task, and end without hanging. A stopped worker is continued by
rank 0 after the farm: it must find its shutdown waiting and end, or the job never ends.
"""

import os
import signal
import sys
import time

import hpcdist as hd
from hpcdist.runtime.comm import MPI


def fragile(marker, stop):
    if not os.path.exists(marker):
        with open(marker, "w") as fh:
            fh.write(f"{MPI.COMM_WORLD.Get_rank()} {os.getpid()}")
        if stop:
            os.kill(os.getpid(), signal.SIGSTOP)
            return "continued"
        os._exit(3)
    return "survived"


def square(x):
    time.sleep(0.01)
    return x * x


def main() -> None:
    marker, stop = sys.argv[1], sys.argv[2:] == ["stop"]
    with hd.Farm(heartbeat_interval=0.1, heartbeat_timeout=0.5, failure_timeout=1.0) as farm:
        if farm is not None:
            t0 = time.monotonic()
            first = farm.submit(fragile, marker, stop)
            rest = [farm.submit(square, i) for i in range(30)]
            assert first.result(timeout=60) == "survived"
            assert [f.result(timeout=60) for f in rest] == [i * i for i in range(30)]
            dead = int(open(marker).read().split()[0])
            status = {w.rank: w.status.value for w in farm.workers()}
            reason = {f["rank"]: f["reason"] for f in farm.worker_failures}.get(dead)
            info = farm.task(first.id)
            print(f"RESULT OK dead={dead} status={status[dead]} attempts={info.attempts} "
                  f"retries_used={info.errors_used} reason={reason!r} took={time.monotonic() - t0:.1f}", flush=True)
    if stop and MPI.COMM_WORLD.Get_rank() == 0:
        pid = int(open(marker).read().split()[1])
        os.kill(pid, signal.SIGCONT)
        print(f"CONTINUED {pid}", flush=True)


main()
