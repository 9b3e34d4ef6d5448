"""``hpcdist partition SPEC --parts K --method M``: how well a partitioner splits a graph.

Prints vertices, edges and ghosts per part, balance, edge cut and the bytes of one
halo exchange. ``K`` may differ from the number of ranks running the command.
"""

from __future__ import annotations

import argparse
import json

from hpcdist.runtime.errors import InputError, collective

__all__ = ["HELP", "add_arguments", "run"]

HELP = "report the quality of a vertex partition (balance, edge cut, ghosts, exchange bytes)"

METHODS = ("block", "metis", "hash", "auto")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC", help="graph file or generator spec (as for `hpcdist graph --input`)")
    p.add_argument("--parts", "-k", default=None, metavar="K", help="number of parts (default: the rank count)")
    p.add_argument("--method", "-m", default="block", metavar="{block,metis,hash,auto}", help="partitioner (default block)")
    p.add_argument("--undirected", action="store_true", help="add both directions of every edge")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    """Partition and report. Collective over ``COMM_WORLD``."""
    from hpcdist.graph.distgraph import evaluate_partition
    from hpcdist.graph.io import read_edges
    from hpcdist.runtime.comm import MPI, as_comm
    from hpcdist.runtime.logs import echo

    comm = as_comm(MPI.COMM_WORLD)
    try:
        with collective(comm):
            parts = comm.Get_size()
            if args.parts is not None:
                try:
                    parts = int(args.parts)
                except ValueError:
                    raise InputError(f"--parts expects an integer, got {args.parts!r}") from None
            if parts < 1:
                raise InputError(f"--parts must be at least 1, got {parts}")
            if args.method.lower() not in METHODS:
                raise InputError(f"unknown partitioner {args.method!r}; choose one of {', '.join(METHODS)}")
        edges = read_edges(args.spec, comm, undirected=args.undirected, weighted=False)
        report = evaluate_partition(edges, comm, parts, args.method.lower())
        if args.json:
            echo(comm, json.dumps({"input": args.spec, **report.as_dict()}))
        else:
            for line in report.lines():
                echo(comm, line)
    finally:
        comm.Free()
    return 0
