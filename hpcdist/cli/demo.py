"""``hpcdist demo``: a short SPMD run on a built-in default.

Each rank integrates ``4 / (1 + x^2)`` over its own slice of [0, 1] with the midpoint
rule, the partial sums meet in an allreduce, and rank 0 checks the result against
pi. It exercises the runtime end to end: context, topology, backend, collective
error agreement, rank-0 output.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from hpcdist.runtime.errors import InputError, collective
from hpcdist.runtime.ranges import owned_range

__all__ = ["HELP", "add_arguments", "run", "integrate_slice", "sample_count"]

CHUNK = 1 << 20  # bounds each rank's temporary memory to a few MiB


HELP = "a short SPMD run that checks a distributed computation against a serial one"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--samples", type=sample_count, default=20_000_000, metavar="N",
                   help="midpoint samples in all, an integer such as 20000000 or 2e7 (default 2e7)")


def sample_count(text: str) -> int:
    """``--samples``: an integer, also in exponent form (``2e7``) when the value is integral.

    Raises
    ------
    argparse.ArgumentTypeError
        For text that is not an integral number.
    """
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    # beyond 2^53 a float no longer holds every integer: 1e23 would silently become another count
    if not (value.is_integer() and abs(value) <= 2**53):
        raise argparse.ArgumentTypeError(f"expected an integer such as 20000000 or 2e7, got {text!r}")
    return int(value)


def integrate_slice(start: int, stop: int, n: int) -> float:
    """Midpoint-rule sum of ``4/(1+x^2)/n`` over samples ``start..stop-1`` of ``n``."""
    total = 0.0
    for lo in range(start, stop, CHUNK):
        i = np.arange(lo, min(lo + CHUNK, stop), dtype=np.float64)
        x = (i + 0.5) / n
        total += float(np.sum(4.0 / (1.0 + x * x)))
    return total / n


def run(args: argparse.Namespace) -> int:
    """Run the demo. Collective over ``COMM_WORLD``."""
    from hpcdist.runtime.comm import MPI
    from hpcdist.runtime.context import Context
    from hpcdist.runtime.logs import echo, get_logger

    log = get_logger(__name__)
    with Context() as ctx:
        with collective(ctx.comm):
            if args.samples < ctx.size:
                raise InputError(f"--samples {args.samples} is smaller than the {ctx.size} ranks")
        start, stop = owned_range(args.samples, ctx.size, ctx.rank)
        ctx.comm.Barrier()
        t0 = time.perf_counter()
        partial = integrate_slice(start, stop, args.samples)
        elapsed = time.perf_counter() - t0
        estimate = ctx.comm.allreduce(partial, op=MPI.SUM)
        slowest = ctx.comm.allreduce(elapsed, op=MPI.MAX)
        log.info("integrated samples %d..%d in %.3f s", start, stop, elapsed)
        error = abs(estimate - math.pi)
        # The midpoint rule's error bound for this integrand is 1/(6 n^2) plus rounding.
        ok = error < 1.0 / (6 * args.samples**2) + 1e-12 * math.sqrt(args.samples)
        echo(ctx.comm, f"hpcdist demo: {ctx.size} ranks on {ctx.topology.n_nodes} node(s), backend {ctx.backend.name}")
        echo(ctx.comm, f"  pi ~ {estimate:.15f}  error {error:.2e}  ({'ok' if ok else 'WRONG'})")
        echo(ctx.comm, f"  {args.samples:,} samples in {slowest * 1e3:.1f} ms ({args.samples / slowest / 1e6:.0f} M samples/s)")
    return 0 if ok else 1
