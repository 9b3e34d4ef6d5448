"""``hpcdist convert IN OUT.h5``: any graph input into hpcdist's HDF5 CSR.

Every rank reads its share of the input, sends each edge to the owner of its source
vertex, sorts and collapses its rows, and writes them into one file
(:func:`hpcdist.graph.hdf5csr.write_csr`). Later runs read that file in parallel slices.
"""

from __future__ import annotations

import argparse
import os
import time

__all__ = ["HELP", "add_arguments", "run"]

HELP = "convert a graph (edge list, .mtx, .gr, .h5 or a generator spec) to hpcdist's HDF5 CSR"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="IN", help="a graph file (.txt[.gz], .el, .tsv, .mtx[.gz], .gr, .h5) or a "
                   "generator spec (rmat:SCALE[:EF[:SEED]], er:N:AVGDEG[:SEED], grid2d:N)")
    p.add_argument("output", metavar="OUT.h5", help="the HDF5 CSR file to write")
    p.add_argument("--undirected", action="store_true", help="add the reverse of every edge")
    p.add_argument("--weights", action=argparse.BooleanOptionalAction, default=None,
                   help="keep weights (--weights: weight 1 where the input has none; --no-weights: drop them; "
                   "default: keep the input's)")
    p.add_argument("--memory-limit", default=None, metavar="BYTES",
                   help="memory per rank to assume for the pre-load check (e.g. 2G; default: "
                   "MemAvailable / ranks on the node)")


def run(args: argparse.Namespace) -> int:
    """Convert. Collective over ``COMM_WORLD``."""
    from hpcdist.graph.hdf5csr import is_hdf5_path, write_csr
    from hpcdist.graph.io import estimate_peak_bytes, read_edges
    from hpcdist.graph.memory import format_bytes, parse_bytes
    from hpcdist.runtime.comm import MPI
    from hpcdist.runtime.context import Context
    from hpcdist.runtime.errors import InputError, collective
    from hpcdist.runtime.logs import echo
    from hpcdist.runtime.paths import check_output_path

    with Context(backend="numpy", discover_gpus=False) as ctx:
        comm = ctx.comm
        with collective(comm):
            check_output_path(args.output, inputs=[args.input], probe=ctx.rank == 0)
            if not is_hdf5_path(args.output.lower()):
                # the readers tell formats by the name: HDF5 under another name would not read back
                raise InputError("convert writes HDF5 CSR: give an output name ending in .h5 or .hdf5",
                                 path=args.output)
            if args.memory_limit is not None:
                parse_bytes(args.memory_limit)
        peak = estimate_peak_bytes(args.input, comm, undirected=args.undirected, weighted=args.weights)
        comm.Barrier()
        t0 = time.perf_counter()
        edges = read_edges(args.input, comm, undirected=args.undirected, weighted=args.weights,
                           memory_limit=args.memory_limit)
        n_in = comm.allreduce(edges.n_local_edges, op=MPI.SUM)
        t_read = time.perf_counter() - t0
        m = write_csr(comm, args.output, edges, {"source": os.path.basename(args.input)})
        elapsed = time.perf_counter() - t0
        nbytes = os.path.getsize(args.output) if ctx.rank == 0 else 0
        echo(comm, f"{args.input} -> {args.output}: {edges.n_vertices} vertices, {m} edges "
                   f"({n_in - m} duplicates collapsed), {'directed' if edges.directed else 'undirected'}, "
                   f"{'weighted' if edges.weights is not None else 'unweighted'}; {ctx.size} ranks, "
                   f"est. peak {format_bytes(peak)} per rank; read {t_read:.2f} s, total {elapsed:.2f} s, "
                   f"{nbytes / 2**20:.1f} MiB")
    return 0
