"""The real ``Farm`` surviving a worker SIGKILLed mid-run, in-job, under ULFM.

usage (see docs/farm.md, "In-job recovery (ULFM)")::

    OMPIRUN=$(tools/ulfm/setup-venv.sh)
    OPAL_PREFIX=$PWD/.venv/ompi $OMPIRUN --with-ft ulfm --mca pml ob1 --mca btl tcp,self \\
        --mca btl_tcp_if_include lo --oversubscribe -n 3 \\
        .venv/ompi/bin/python tests/scripts/farm_ulfm_job.py --stamp /tmp/killed

``farm.map(work, range(--items))`` with one item per task; on rank ``--kill-rank`` (default:
the last) ``work`` SIGKILLs its own process when it starts its ``--kill-after``-th item,
once (the ``--stamp`` file records the monotonic time of death). The failure timeout is
60 s, so only ULFM can bring the lost items back quickly. After the ``with`` block (which
must complete normally) rank 0 prints one line ``FARM_ULFM {json}``: every result, the
dead ranks the farm reported, the latencies. Exit 0 (the verdict is in the JSON; mpirun's
status is unreliable after a failure). ``--kill-rank 0``: nobody dies (runs under MPICH too).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import time

import hpcdist as hd
from hpcdist.runtime.comm import MPI

p = argparse.ArgumentParser()
p.add_argument("--items", type=int, default=60)
p.add_argument("--sleep", type=float, default=0.02)
p.add_argument("--kill-rank", type=int, default=-1, help="-1: the last rank; 0: nobody dies")
p.add_argument("--kill-after", type=int, default=5)
p.add_argument("--stamp", required=True)
ARGS = p.parse_args()
RANK = MPI.COMM_WORLD.Get_rank()
KILL_RANK = MPI.COMM_WORLD.Get_size() - 1 if ARGS.kill_rank == -1 else ARGS.kill_rank
_started = 0


def work(x: int) -> int:
    global _started
    _started += 1
    if RANK == KILL_RANK and _started == ARGS.kill_after and not os.path.exists(ARGS.stamp):
        with open(ARGS.stamp, "w") as fh:
            fh.write(repr(time.monotonic()))
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(ARGS.sleep)
    return x * x


def main() -> None:
    verdict = None
    t0 = time.monotonic()
    with hd.Farm(heartbeat_interval=0.5, heartbeat_timeout=30.0, failure_timeout=60.0, progress=False) as farm:
        if farm is not None:
            results = list(farm.map(work, range(ARGS.items), chunksize=1))
            failures = farm.worker_failures
            verdict = {"ulfm": farm.ulfm, "results": results, "failures": failures}
    # Runs after the block: under ULFM only MPI_Finalize is skipped (an atexit hook ends the process).
    if verdict is None:
        return
    t_kill = float(open(ARGS.stamp).read()) if os.path.exists(ARGS.stamp) else None
    first = verdict["failures"][0] if verdict["failures"] else {}
    ms = lambda a, b: None if a is None or b is None else round(1000 * (b - a), 3)  # noqa: E731
    correct = verdict["results"] == [i * i for i in range(ARGS.items)]
    dead = sorted(f["rank"] for f in verdict["failures"])
    verdict.update(
        size=MPI.COMM_WORLD.Get_size(),
        correct=correct,
        dead=dead,
        kill_rank=KILL_RANK,
        killed=t_kill is not None,
        kill_to_detect_ms=ms(t_kill, first.get("detected")),
        detect_to_requeue_ms=first.get("detect_to_requeue_ms"),
        kill_to_requeue_ms=ms(t_kill, first.get("requeued")),
        run_s=round(time.monotonic() - t0, 3),
    )
    expected_dead = [KILL_RANK] if KILL_RANK > 0 else []
    verdict["ok"] = bool(correct and dead == expected_dead and (verdict["ulfm"] or not expected_dead))
    print("FARM_ULFM " + json.dumps(verdict), flush=True)


main()
