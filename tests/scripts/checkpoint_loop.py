"""Save checkpoints in a loop, resuming from the newest valid one: the victim of the kill tests.

usage: checkpoint_loop.py DIR SAVES [TOTAL]

Restores the newest checkpoint in DIR (any rank count may have written it), checks
every restored item against the values the step must hold, then saves SAVES more
steps with keep=2. Rank 0 prints ``restored STEP`` and ``committed STEP`` lines.
HPCDIST_FAULT (e.g. ``rank:1,phase:checkpoint-write,kind:kill``) is honoured by the
store, so a test can kill a rank in the middle of writing its file.
"""

from __future__ import annotations

import sys

import numpy as np

import hpcdist  # noqa: F401 - the abort guard
from hpcdist.checkpoint import CheckpointStore
from hpcdist.runtime.comm import MPI


def expected(step: int, lo: int, hi: int) -> dict[str, np.ndarray]:
    idx = np.arange(lo, hi)
    return {"value": idx * 0.25 + step, "owner": (idx * 31 + step).astype(np.int64)}


def main(directory: str, saves: int, total: int) -> None:
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    bounds = np.linspace(0, total, size + 1).astype(np.int64)
    lo, hi = int(bounds[rank]), int(bounds[rank + 1])
    store = CheckpointStore(directory, comm, keep=2)
    meta = {"algorithm": "loop", "total": total}
    got = store.restore(meta, lo, hi)
    step = 0
    if got is not None:
        info, arrays = got
        step = info.step
        want = expected(step, lo, hi)
        ok = all(np.array_equal(arrays[k], want[k]) for k in want)
        if not comm.allreduce(ok, op=MPI.LAND):
            raise SystemExit(f"restored step {step} does not hold the values it was saved with")
        if rank == 0:
            print(f"restored {step} written by {info.ranks} ranks", flush=True)
    for step in range(step + 1, step + 1 + saves):
        store.save(step, expected(step, lo, hi), lo, total, meta)
        if rank == 0:
            print(f"committed {step}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 400_000)
