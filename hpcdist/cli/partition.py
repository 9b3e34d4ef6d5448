"""``hpcdist partition SPEC --parts K --method M``: how well a partitioner splits a graph.

Vertex partitioners (block, metis, hash, auto) report vertices, edges and ghosts per
part, balance, edge cut and the bytes of one halo exchange; edge partitioners
(vertex-cut, dbh, hybrid; :mod:`hpcdist.graph.vertexcut`) report edges, masters and
mirrors per part, replication factor and the bytes of one gather + scatter.
``--compare`` puts block, metis, hash, vertex-cut, dbh and hybrid side by side. ``K``
may differ from the number of ranks running the command.
"""

from __future__ import annotations

import argparse
import json

from hpcdist.graph.partition import ALL_METHODS, EDGE_METHODS, HYBRID_THRESHOLD
from hpcdist.runtime.errors import InputError, collective

__all__ = ["HELP", "add_arguments", "run"]

HELP = "report the quality of a vertex or edge partition (balance, cut, replication, traffic)"

METHODS = ALL_METHODS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC", help="graph file or generator spec (as for `hpcdist graph --input`)")
    p.add_argument("--parts", "-k", default=None, metavar="K",
                   help="number of parts, 1 to the vertex count (default: the rank count)")
    # default None, not "block": --compare must tell a given --method from the default
    p.add_argument("--method", "--partitioner", "-m", dest="method", default=None,
                   metavar="{" + ",".join(METHODS) + "}", help="partitioner (default block)")
    p.add_argument("--hybrid-threshold", default=None, metavar="D",
                   help=f"hybrid and --compare: in-degree above which a vertex's in-edges are spread "
                        f"(default {HYBRID_THRESHOLD})")
    p.add_argument("--compare", action="store_true",
                   help="compare block, metis, hash, vertex-cut, dbh and hybrid in one table (no --method)")
    p.add_argument("--undirected", action="store_true", help="add both directions of every edge")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def _int_option(value: str | None, name: str, default: int, low: int) -> int:
    if value is None:
        return default
    try:
        out = int(value)
    except ValueError:
        raise InputError(f"{name} expects an integer, got {value!r}") from None
    if out < low:
        raise InputError(f"{name} must be at least {low}, got {out}")
    return out


def run(args: argparse.Namespace) -> int:
    """Partition and report. Collective over ``COMM_WORLD``."""
    from hpcdist.graph.distgraph import evaluate_partition
    from hpcdist.graph.io import read_edges
    from hpcdist.graph.vertexcut import compare_partitioners, comparison_lines, evaluate_edge_partition
    from hpcdist.runtime.comm import MPI, as_comm
    from hpcdist.runtime.logs import echo

    comm = as_comm(MPI.COMM_WORLD)
    try:
        with collective(comm):
            parts = _int_option(args.parts, "--parts", comm.Get_size(), 1)
            threshold = _int_option(args.hybrid_threshold, "--hybrid-threshold", HYBRID_THRESHOLD, 0)
            if args.compare and args.method is not None:
                raise InputError(f"--compare reports every partitioner; leave out --method {args.method}")
            method = (args.method or "block").lower()
            if method not in METHODS:
                raise InputError(f"unknown partitioner {args.method!r}; choose one of {', '.join(METHODS)}")
            if args.hybrid_threshold is not None and not args.compare and method != "hybrid":
                raise InputError(f"--hybrid-threshold applies to --method hybrid (or --compare) only, not {method}")
        edges = read_edges(args.spec, comm, undirected=args.undirected, weighted=False)
        with collective(comm):
            # n_vertices is the same on every rank; collective() still keeps the exit together
            if parts > edges.n_vertices:
                given = (f"--parts {parts:,}" if args.parts is not None
                         else f"the default --parts (the rank count, {parts})")
                raise InputError(f"{given} is more than the {edges.n_vertices:,} vertices of {args.spec}: "
                                 f"at most {edges.n_vertices:,} parts can each hold a vertex")
        if args.compare:
            rows = compare_partitioners(edges, comm, parts, threshold=threshold)
            if args.json:
                echo(comm, json.dumps({"input": args.spec, "parts": parts, "n_vertices": edges.n_vertices,
                                       "hybrid_threshold": threshold, "rows": [r.as_dict() for r in rows]}))
            else:
                title = f"{args.spec}: {edges.n_vertices:,} vertices, {parts} parts (hybrid threshold {threshold})"
                for line in comparison_lines(rows, title):
                    echo(comm, line)
            return 0
        if method in EDGE_METHODS:
            report = evaluate_edge_partition(edges, comm, parts, method, threshold)
        else:
            report = evaluate_partition(edges, comm, parts, method)
        if args.json:
            echo(comm, json.dumps({"input": args.spec, **report.as_dict()}))
        else:
            for line in report.lines():
                echo(comm, line)
    finally:
        comm.Free()
    return 0
