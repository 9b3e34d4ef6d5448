"""Partitioned graphs: distribution, halo exchange, the BSP engine and algorithms.

>>> from hpcdist.graph import load, pagerank                      # doctest: +SKIP
>>> g = load("rmat:16", comm)           # every rank reads/generates its share
>>> pr = pagerank(g, tol=1e-10)         # collective; values stay distributed
>>> pr.to_h5("pr.h5")
>>> d = bfs(g, source=0); cc = connected_components(g); g.close()
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpcdist.graph import partition
from hpcdist.graph.algorithms.bfs import bfs
from hpcdist.graph.algorithms.cc import connected_components
from hpcdist.graph.algorithms.pagerank import pagerank
from hpcdist.graph.algorithms.sssp import sssp
from hpcdist.graph.distgraph import DistGraph, from_csr, from_edgelist, from_edges
from hpcdist.graph.edgelist import EdgeList
from hpcdist.graph.results import VertexResult

if TYPE_CHECKING:
    from mpi4py import MPI

__all__ = [
    "DistGraph",
    "EdgeList",
    "VertexResult",
    "bfs",
    "connected_components",
    "from_edges",
    "from_csr",
    "from_edgelist",
    "load",
    "pagerank",
    "partition",
    "sssp",
]


def load(
    spec: str,
    comm: "MPI.Intracomm | None" = None,
    *,
    undirected: bool = False,
    partitioner: str = "auto",
    weighted: bool | None = None,
) -> DistGraph:
    """Read or generate a graph and distribute it.

    Collective over ``comm``: :func:`hpcdist.graph.io.read_edges` followed by
    :func:`from_edgelist`.

    Parameters
    ----------
    spec : str
        A file (SNAP ``.txt[.gz]``, ``.mtx[.gz]``, ``.gr``, hpcdist ``.h5``) or a
        generator (``rmat:SCALE[:EF[:SEED]]``, ``er:N:AVGDEG[:SEED]``, ``grid2d:N``).
    comm : mpi4py.MPI.Intracomm, optional
    undirected : bool
        Add both directions of every edge.
    partitioner : {"auto", "block", "metis", "hash"}
    weighted : bool, optional
        Read weights (default: when the format has them).
    """
    from hpcdist.graph.io import read_edges
    from hpcdist.runtime.comm import as_comm

    own = as_comm(comm)
    try:
        edges = read_edges(spec, own, undirected=undirected, weighted=weighted)
        return from_edgelist(edges, own, partitioner)
    finally:
        own.Free()
