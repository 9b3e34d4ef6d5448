"""A farm task whose argument and result are each a 2.1 GiB uint8 array (over MPI's 2**31 count).

usage: mpiexec -n 2 python farm_large_payload.py. The worker receives the array, adds 1
in place and sends the same buffer back; the coordinator checks it block by block (no
full-size temporaries) and prints ``LARGE OK <bytes>``. Peak memory: about 4.2 GiB on
the coordinator (argument and result) and 2.1 GiB on the worker.
"""

import gc
import time

import numpy as np

import hpcdist as hd

NBYTES = 2_100 * 2**20  # 2.1 GiB > 2**31 - 1 bytes
BLOCK = 251 * 2**18  # a multiple of the pattern's period: every block holds the same values
PATTERN = (np.arange(BLOCK, dtype=np.int64) % 251).astype(np.uint8)


def bump(a, tag):
    a += 1  # in place: the received buffer is writable and is what goes back
    return {"array": a, "tag": tag, "nbytes": a.nbytes}


def blocks(a):
    for start in range(0, a.size, BLOCK):
        yield a[start:start + BLOCK], PATTERN[: min(BLOCK, a.size - start)]


def main():
    with hd.Farm(heartbeat_interval=0.5, heartbeat_timeout=60.0, progress=False) as farm:
        if farm is None:
            return
        assert farm.n_workers >= 1 and farm.ctx.size >= 2, "run with mpiexec -n 2"
        a = np.empty(NBYTES, dtype=np.uint8)
        for block, pattern in blocks(a):
            block[:] = pattern
        t0 = time.perf_counter()
        fut = farm.submit(bump, a, "big")
        del a  # the farm holds the argument only until it is sent
        out = fut.result(timeout=300)
        took = time.perf_counter() - t0
        gc.collect()
        r = out["array"]
        assert out["tag"] == "big" and out["nbytes"] == NBYTES and r.dtype == np.uint8 and r.size == NBYTES
        for block, pattern in blocks(r):
            assert np.array_equal(block, pattern + np.uint8(1)), "the array came back altered"
        del out, r
        print(f"LARGE OK {NBYTES} in {took:.1f} s", flush=True)


main()
