"""The hand-off between graph inputs and the graph engine: one rank's share of the edges.

Readers and generators (``hpcdist.graph.io``, ``hpcdist.graph.generators``) produce an
:class:`EdgeList` on every rank; the engine (``hpcdist.graph.from_edgelist``)
redistributes the edges to their owners, collapses duplicates and builds the local
CSR and the halo plan. No rank ever needs the whole graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["EdgeList"]


@dataclass
class EdgeList:
    """This rank's share of a graph's edges, in global vertex ids 0..n-1.

    Attributes
    ----------
    n_vertices : int
        Number of vertices of the whole graph (the same on every rank).
    src, dst : numpy.ndarray of int64
        This rank's edges (any subset of the graph's edges; together the ranks hold
        all of them). Directed arcs ``src -> dst``. With ``--undirected`` the reader
        has already added both directions. Duplicates may still be present (the
        engine collapses them, keeping the smallest weight); self-loops are kept.
    weights : numpy.ndarray of float64 or None
        One finite, non-negative weight per edge, or None for an unweighted graph.
    directed : bool
        False when the input was symmetrised (``--undirected``) or is symmetric by format.
    vertex_ids : numpy.ndarray of int64 or None
        Original ids of the vertices in ``owned_range(n_vertices, size, rank)``
        (:func:`hpcdist.runtime.ranges.owned_range`), in order; None when the
        original ids are 0..n-1 (generated graphs, HDF5 CSR without ids).
    name : str
        The input spec or path, for messages and output attributes.
    """

    n_vertices: int
    src: np.ndarray
    dst: np.ndarray
    weights: np.ndarray | None
    directed: bool
    vertex_ids: np.ndarray | None
    name: str

    def __post_init__(self) -> None:
        self.src = np.ascontiguousarray(self.src, dtype=np.int64)
        self.dst = np.ascontiguousarray(self.dst, dtype=np.int64)
        if self.src.shape != self.dst.shape or self.src.ndim != 1:
            raise ValueError("EdgeList: src and dst must be 1-D arrays of equal length")
        if self.weights is not None:
            self.weights = np.ascontiguousarray(self.weights, dtype=np.float64)
            if self.weights.shape != self.src.shape:
                raise ValueError("EdgeList: weights must have one value per edge")
        if self.vertex_ids is not None:
            self.vertex_ids = np.ascontiguousarray(self.vertex_ids, dtype=np.int64)

    @property
    def n_local_edges(self) -> int:
        return int(self.src.shape[0])

    @property
    def weighted(self) -> bool:
        return self.weights is not None
