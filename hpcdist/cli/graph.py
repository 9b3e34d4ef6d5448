"""``hpcdist graph ALGORITHM``: run a graph algorithm on a partitioned graph.

One sub-command per algorithm (``pagerank`` now; ``bfs``, ``cc``, ``sssp`` join the
table :data:`ALGORITHMS`). Options are checked inside ``run`` rather than by argparse
``choices``/``type``, so a bad value gives one message from rank 0 and exit status 2
on every rank (argparse would print its error once per rank).
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

from hpcdist.runtime.errors import InputError, collective

__all__ = ["HELP", "add_arguments", "run", "ALGORITHMS"]

HELP = "run a graph algorithm (pagerank) on a graph partitioned over the ranks"

PARTITIONERS = ("block", "metis", "hash", "auto")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", "-i", required=True, metavar="SPEC",
                   help="graph file (.txt[.gz], .mtx[.gz], .gr, .h5) or generator (rmat:S[:EF[:SEED]], er:N:D[:SEED], grid2d:N)")
    p.add_argument("--output", "-o", metavar="OUT.h5", help="write dataset `result` and `vertex_ids` here")
    p.add_argument("--partitioner", default="auto", metavar="{block,metis,hash,auto}",
                   help="vertex partitioner (default auto: metis up to 2^20 edges, else block)")
    p.add_argument("--backend", default="auto", metavar="{numpy,numba,auto}", help="local compute kernels (default auto)")
    p.add_argument("--undirected", action="store_true", help="add both directions of every edge")
    p.add_argument("--progress", action="store_true", help="progress bar on rank 0")
    p.add_argument("--top", default="10", metavar="K", help="print the K highest-valued vertices (default 10)")


def _pagerank_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--alpha", default="0.85", help="damping factor (default 0.85)")
    p.add_argument("--tol", default="1e-6", help="stop when the L1 change < n * tol (default 1e-6, as networkx)")
    p.add_argument("--max-iter", default="100", help="most iterations (default 100)")


#: name -> (help, add_arguments, runner)
ALGORITHMS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], str]] = {
    "pagerank": ("PageRank by power iteration (networkx semantics)", _pagerank_arguments, "_run_pagerank"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="algorithm", metavar="ALGORITHM")
    for name, (help_text, add, _) in ALGORITHMS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add(p)


def _number(value: str, option: str, kind: type = float):
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise InputError(f"{option} expects {'an integer' if kind is int else 'a number'}, got {value!r}") from None


def run(args: argparse.Namespace) -> int:
    """Run the chosen algorithm. Collective over ``COMM_WORLD``."""
    from hpcdist.runtime.comm import MPI

    with collective(MPI.COMM_WORLD):
        if not getattr(args, "algorithm", None):
            raise InputError(f"hpcdist graph: name an algorithm: {', '.join(ALGORITHMS)}")
    return globals()[ALGORITHMS[args.algorithm][2]](args)


def _run_pagerank(args: argparse.Namespace) -> int:
    from hpcdist.graph import load, pagerank
    from hpcdist.runtime.comm import MPI
    from hpcdist.runtime.context import Context

    with collective(MPI.COMM_WORLD):
        alpha = _number(args.alpha, "--alpha")
        tol = _number(args.tol, "--tol")
        max_iter = _number(args.max_iter, "--max-iter", int)
        top = _number(args.top, "--top", int)
        if args.partitioner.lower() not in PARTITIONERS:
            raise InputError(f"unknown partitioner {args.partitioner!r}; choose one of {', '.join(PARTITIONERS)}")
        if args.backend.lower() not in ("numpy", "numba", "auto"):
            raise InputError(f"unknown backend {args.backend!r}; choose one of numpy, numba, auto")
    with Context(backend=args.backend.lower(), discover_gpus=False) as ctx:
        comm = ctx.comm
        comm.Barrier()
        t0 = time.perf_counter()
        graph = load(args.input, comm, undirected=args.undirected, partitioner=args.partitioner.lower())
        with graph:
            setup = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
            result = pagerank(graph, alpha=alpha, tol=tol, max_iter=max_iter, backend=ctx.backend, progress=args.progress)
            # The kernel's own plan and its first (compiling) call belong to the set-up, not the supersteps.
            prep = result.params.get("pull_plan_seconds", 0.0) + result.params.get("warm_up_seconds", 0.0)
            setup += comm.allreduce(prep, op=MPI.MAX)
            best = result.top(top) if top > 0 else []
            if args.output:
                result.to_h5(args.output, setup_seconds=setup)
            _summary(comm, graph, result, setup, best, args)
    return 0


def _summary(comm, graph, result, setup: float, best, args) -> None:
    from hpcdist.runtime.logs import echo

    run = result.run
    phases = run.phase_seconds() if run else {}
    steps = max(result.iterations, 1)
    # Phases per rank differ; report the slowest rank's totals.
    phases = {k: comm.allreduce(v, op=_max()) for k, v in phases.items()}
    for line in graph.summary_lines():
        echo(comm, line)
    echo(comm, f"set-up (read, partition, plan): {setup:.3f} s")
    status = "converged" if result.converged else "NOT converged"
    echo(comm, f"pagerank: {result.iterations} supersteps, {status} (L1 change {result.params['final_error']:.3e}, "
               f"tol {result.params['tol']:g} x n), backend {result.params['backend']}")
    echo(comm, f"  {result.seconds:.3f} s, {1e3 * result.seconds / steps:.3f} ms per superstep "
               f"(compute {1e3 * phases.get('compute', 0) / steps:.3f}, exchange {1e3 * phases.get('exchange', 0) / steps:.3f}, "
               f"reduce {1e3 * phases.get('reduce', 0) / steps:.3f} ms)")
    if best:
        echo(comm, f"top {len(best)} vertices (original id, pagerank):")
        for vid, value in best:
            echo(comm, f"  {vid:>12d}  {value:.10e}")
    if args.output:
        echo(comm, f"wrote {args.output}")


def _max():
    from hpcdist.runtime.comm import MPI

    return MPI.MAX
