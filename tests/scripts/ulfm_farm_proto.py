"""A task farm that survives a dead worker with ULFM: the prototype for the farm's coordinator.

Only mpi4py and :mod:`hpcdist.runtime.ulfm`, not the farm. Rank 0 hands out ``--tasks``
tasks (``i -> i * i`` after a short sleep), at most ``--depth`` per worker; worker
``--kill-rank`` SIGKILLs itself right after receiving its ``--kill-after``-th task, with
tasks in flight. The coordinator notices through the exception of its pending receive,
finds the dead rank, sends that rank's tasks to the survivors at once, finishes, prints
one line ``ULFM_SUMMARY {json}`` and ends through ``hard_exit`` (0 when every result is
correct).

``--mode`` picks how the coordinator waits, to check where the failure surfaces:
``recv`` a blocking ``recv(ANY_SOURCE)``; ``test`` an ``irecv(ANY_SOURCE)`` polled with
``test()``; ``probe`` ``improbe(ANY_SOURCE)`` polling, as the farm's transport does.

Run (see docs/fault-tolerance-ulfm.md)::

    OMPI=$(tools/ulfm/setup-venv.sh)
    $OMPI --with-ft ulfm --mca pml ob1 --mca btl tcp,self --mca btl_tcp_if_include lo --oversubscribe \
        -n 3 .venv/ompi/bin/python tests/scripts/ulfm_farm_proto.py --mode probe

Without ULFM (MPICH, or Open MPI without ``--with-ft ulfm``) rank 0 prints the summary
with ``"ulfm_supported": false`` and every rank exits 3 before anything is killed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from collections import deque

from mpi4py import MPI

from hpcdist.runtime.ulfm import failed_ranks, hard_exit, is_process_failure, prepare, ulfm_supported

TAG_TASK, TAG_RESULT, TAG_STOP, TAG_BYE = 1, 2, 3, 4
EXIT_NO_ULFM = 3


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--tasks", type=int, default=40)
    p.add_argument("--sleep", type=float, default=0.01, help="seconds each task takes")
    p.add_argument("--depth", type=int, default=2, help="tasks in flight per worker")
    p.add_argument("--kill-rank", type=int, default=-1, help="worker that dies (-1: the last rank; 0: none)")
    p.add_argument("--kill-after", type=int, default=3, help="it dies on receiving its N-th task")
    p.add_argument("--mode", choices=("recv", "test", "probe"), default="recv")
    p.add_argument("--stamp", default="", help="file where the dying worker writes its monotonic time of death")
    return p.parse_args()


def worker(comm: MPI.Comm, args: argparse.Namespace, kill_rank: int) -> None:
    received = 0
    while True:
        status = MPI.Status()
        msg = comm.recv(source=0, tag=MPI.ANY_TAG, status=status)
        if status.Get_tag() == TAG_STOP:
            # ssend: returns once rank 0 has matched it, so the bye is not lost in our own buffers by os._exit.
            comm.ssend(None, dest=0, tag=TAG_BYE)
            hard_exit(0)
        received += 1
        if comm.Get_rank() == kill_rank and received == args.kill_after:
            if args.stamp:
                with open(args.stamp, "w") as fh:
                    fh.write(repr(time.monotonic()))
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(args.sleep)
        task_id = msg
        comm.send((task_id, task_id * task_id), dest=0, tag=TAG_RESULT)


class Coordinator:
    def __init__(self, comm: MPI.Comm, args: argparse.Namespace) -> None:
        self.comm, self.args = comm, args
        self.pending = deque(range(args.tasks))
        self.live = list(range(1, comm.Get_size()))
        self.dead: set[int] = set()
        self.inflight: dict[int, list[int]] = {r: [] for r in self.live}
        self.results: dict[int, int] = {}
        self.duplicates = 0
        self.late = 0  # results of a rank already handled as dead
        self.requeued: list[int] = []
        self.detections: list[dict] = []  # one per failure handled

    def send_task(self, rank: int, task_id: int) -> None:
        # Book first: if the send itself raises because ``rank`` is dead, the task is already where failure
        # handling looks for it.
        self.inflight[rank].append(task_id)
        self.comm.send(task_id, dest=rank, tag=TAG_TASK)

    def dispatch(self) -> None:
        for rank in list(self.live):
            while self.pending and len(self.inflight[rank]) < self.args.depth:
                self.send_task(rank, self.pending.popleft())

    def on_result(self, msg: tuple[int, int], rank: int) -> None:
        task_id, value = msg
        if rank in self.dead:
            # Sent before it died, received after its tasks went elsewhere (ULFM still hands over what
            # had arrived): ignored, as the farm's scheduler ignores a lost worker's late results.
            self.late += 1
            return
        if task_id in self.inflight.get(rank, []):
            self.inflight[rank].remove(task_id)
        if task_id in self.results:
            self.duplicates += 1
        self.results[task_id] = value

    def on_failure(self, exc: MPI.Exception) -> None:
        t_detect = time.monotonic()
        new = [r for r in failed_ranks(self.comm) if r not in self.dead]
        lost: list[int] = []
        for rank in new:
            self.dead.add(rank)
            self.live.remove(rank)
            lost += [t for t in self.inflight.pop(rank) if t not in self.results]
        # Send the lost tasks to the survivors now, beyond their usual depth: waiting for a free slot would add up
        # to a whole task's time to the recovery.
        for i, task_id in enumerate(lost):
            if not self.live:
                raise RuntimeError("every worker died")
            self.send_task(self.live[i % len(self.live)], task_id)
        t_requeue = time.monotonic()
        self.requeued += lost
        self.detections.append({"error_class": exc.Get_error_class(), "new_dead": new, "lost": lost,
                                "t_detect": t_detect, "t_requeue": t_requeue})

    def run(self) -> None:
        comm, req = self.comm, None
        while len(self.results) < self.args.tasks:
            try:
                self.dispatch()
                status = MPI.Status()
                if self.args.mode == "recv":
                    msg = comm.recv(source=MPI.ANY_SOURCE, tag=TAG_RESULT, status=status)
                elif self.args.mode == "test":
                    if req is None:
                        req = comm.irecv(source=MPI.ANY_SOURCE, tag=TAG_RESULT)
                    done, msg = req.test(status=status)
                    if not done:
                        time.sleep(0.0002)
                        continue
                    req = None
                else:
                    handle = comm.improbe(source=MPI.ANY_SOURCE, tag=TAG_RESULT, status=status)
                    if handle is None:
                        time.sleep(0.0002)
                        continue
                    msg = handle.recv()
                self.on_result(msg, status.Get_source())
            except MPI.Exception as exc:
                if not is_process_failure(exc):
                    raise
                if req is not None and exc.Get_error_class() != MPI.ERR_PROC_FAILED_PENDING:
                    req = None  # completed in error: post a new one. A PENDING request stays valid after the ack.
                self.on_failure(exc)

    def finish(self) -> None:
        """Stop the live workers and wait for their bye (a failure now only means one bye fewer)."""
        for rank in self.live:
            try:
                self.comm.send(None, dest=rank, tag=TAG_STOP)
            except MPI.Exception as exc:
                if not is_process_failure(exc):
                    raise
        waiting = set(self.live)
        while waiting:
            status = MPI.Status()
            try:
                self.comm.recv(source=MPI.ANY_SOURCE, tag=TAG_BYE, status=status)
                waiting.discard(status.Get_source())
            except MPI.Exception as exc:
                if not is_process_failure(exc):
                    raise
                waiting -= set(failed_ranks(self.comm))


def main() -> None:
    args = parse()
    comm = prepare(MPI.COMM_WORLD.Dup())
    size = comm.Get_size()
    supported = ulfm_supported(comm)
    if not supported or size < 2:
        if comm.Get_rank() == 0:
            print("ULFM_SUMMARY " + json.dumps({"ok": False, "ulfm_supported": supported, "size": size,
                                                "vendor": MPI.get_vendor()[0]}), flush=True)
        # Nobody failed: a normal finalize is safe here, and leaves MPICH no shared memory behind.
        comm.Free()
        raise SystemExit(EXIT_NO_ULFM)
    kill_rank = size - 1 if args.kill_rank == -1 else args.kill_rank
    if comm.Get_rank() != 0:
        worker(comm, args, kill_rank)
        return
    t0 = time.monotonic()
    coord = Coordinator(comm, args)
    coord.run()
    t_done = time.monotonic()
    coord.finish()
    t_kill = None
    if args.stamp and os.path.exists(args.stamp):
        with open(args.stamp) as fh:
            t_kill = float(fh.read())
    first = coord.detections[0] if coord.detections else None
    ms = lambda a, b: None if a is None or b is None else round(1000 * (b - a), 3)  # noqa: E731
    correct = all(coord.results.get(i) == i * i for i in range(args.tasks))
    summary = {
        "ok": correct and coord.duplicates == 0 and (kill_rank == 0 or coord.dead == {kill_rank}),
        "ulfm_supported": True,
        "mode": args.mode,
        "size": size,
        "tasks": args.tasks,
        "correct": correct,
        "duplicates": coord.duplicates,
        "late_results": coord.late,
        "dead": sorted(coord.dead),
        "requeued": coord.requeued,
        "error_classes": [d["error_class"] for d in coord.detections],
        "kill_to_detect_ms": ms(t_kill, first and first["t_detect"]),
        "detect_to_requeue_ms": ms(first and first["t_detect"], first and first["t_requeue"]),
        "kill_to_requeue_ms": ms(t_kill, first and first["t_requeue"]),
        "run_s": round(t_done - t0, 3),
    }
    print("ULFM_SUMMARY " + json.dumps(summary), flush=True)
    # The results are printed (our "durable"): leave without MPI_Finalize, which may hang on the dead rank.
    hard_exit(0 if summary["ok"] else 1)


if __name__ == "__main__":
    main()
