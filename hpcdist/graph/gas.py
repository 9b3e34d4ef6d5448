"""Running on an edge (vertex-cut) partition: gather-apply-scatter over the halo machinery.

A :class:`VertexCutGraph` stores each edge on the part an edge partitioner
(:mod:`hpcdist.graph.vertexcut`: ``vertex-cut``, ``dbh``, ``hybrid``) chose, with one part
per rank. Every vertex has a **master** on its hash owner; a rank holding edges of a
vertex it does not master keeps a **mirror** of it. Masters are renumbered so that rank
``r`` masters the contiguous new ids ``bounds[r]:bounds[r+1]`` (the ``hash`` vertex
partition's numbering), which makes mirrors the *ghosts* of a
:class:`~hpcdist.graph.halo.HaloPlan`. Two plans, because a mirror needs only what its
edges use (pull mode, the traffic :mod:`hpcdist.graph.vertexcut` reports):

* **scatter** (master -> mirrors): the forward :meth:`~HaloPlan.exchange` of the plan
  whose ghosts are the mirrors that are *sources* of local edges (they read the value);
* **gather** (mirrors -> master): :meth:`~HaloPlan.reverse_gather` of the plan whose
  ghosts are the mirrors that are *destinations* of local edges (they hold a partial
  aggregate), added into the master's own.

Each phase is one neighbourhood collective. The existing engine (``DistGraph``,
``run_bsp``) is untouched: vertex-cut execution lives here.

:func:`pagerank_vertex_cut` is PageRank (``networkx.pagerank`` semantics, unweighted,
uniform teleport) on such a graph; it agrees with :func:`hpcdist.graph.pagerank` on the
edge-cut graph to rounding (the per-vertex sums are split over parts, so the floating
point order differs; the tests bound the difference by 1e-12).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hpcdist.graph.partition import HYBRID_THRESHOLD, Partition, block_owner, part_of
from hpcdist.runtime.errors import InputError, collective

if TYPE_CHECKING:
    from mpi4py import MPI

    from hpcdist.graph.edgelist import EdgeList
    from hpcdist.graph.halo import HaloPlan

__all__ = ["VertexCutGraph", "build_vertex_cut", "VertexCutPageRank", "pagerank_vertex_cut"]


@dataclass
class VertexCutGraph:
    """One rank's part of an edge-partitioned graph.

    Attributes
    ----------
    comm : mpi4py.MPI.Intracomm
        Private duplicate, freed by :meth:`close`.
    method : str
        The edge partitioner.
    n_vertices, n_edges : int
        Global counts (edges after duplicates collapse).
    partition : Partition
        The master numbering (hash owners, contiguous new ids per rank).
    bounds : numpy.ndarray of int64, shape (size + 1,)
    n_owned : int
        Masters on this rank (local ids ``0..n_owned-1`` in both index spaces below).
    src_local : numpy.ndarray of int64
        Source of each local edge in the *scatter* space: masters, then the scatter
        plan's ghosts (source mirrors, sorted by new global id, hence grouped by master).
    dst_local : numpy.ndarray of int64
        Destination of each local edge in the *gather* space: masters, then the gather
        plan's ghosts (destination mirrors). Edges are sorted by destination, then
        source input id.
    out_degree : numpy.ndarray of int64
        Global out-degree of each master.
    owned_input_ids : numpy.ndarray of int64
        Input id of each master.
    scatter_plan, gather_plan : HaloPlan
    scatter_plan_ghosts, gather_plan_ghosts : numpy.ndarray of int64
        New global ids of each plan's mirrors, ascending.
    """

    comm: "MPI.Intracomm"
    method: str
    n_vertices: int
    n_edges: int
    partition: Partition
    bounds: np.ndarray
    n_owned: int
    src_local: np.ndarray
    dst_local: np.ndarray
    out_degree: np.ndarray
    owned_input_ids: np.ndarray
    scatter_plan: "HaloPlan"
    gather_plan: "HaloPlan"
    scatter_plan_ghosts: np.ndarray
    gather_plan_ghosts: np.ndarray

    @property
    def n_scatter(self) -> int:
        """Length of a scatter-space array: masters + source mirrors."""
        return self.n_owned + self.scatter_plan.n_ghost

    @property
    def n_gather(self) -> int:
        """Length of a gather-space array: masters + destination mirrors."""
        return self.n_owned + self.gather_plan.n_ghost

    @property
    def n_mirrors(self) -> int:
        """Distinct mirrors on this rank (a mirror may be in both spaces)."""
        return int(np.union1d(self.scatter_plan_ghosts, self.gather_plan_ghosts).shape[0])

    def scatter(self, values: np.ndarray) -> np.ndarray:
        """Masters -> mirrors: fill the mirror slots of ``values`` (length ``n_scatter``)."""
        return self.scatter_plan.exchange(values)

    def gather_sum(self, values: np.ndarray) -> np.ndarray:
        """Mirrors -> masters: add every mirror's partial value (``values``, length
        ``n_gather``) into its master's.

        Returns the masters' totals (a new array of length ``n_owned``); ``values`` is
        left as it was. The partials arrive grouped by rank, ascending, so the sum is the
        same on every run with the same rank count.
        """
        total = values[: self.n_owned].copy()
        recv = self.gather_plan.reverse_gather(values)
        if recv.shape[0]:
            np.add.at(total, self.gather_plan.layout.send_index, recv)
        return total

    @property
    def sync_bytes(self) -> int:
        """Bytes this rank sends in one scatter plus one gather of float64 values."""
        return 8 * (self.scatter_plan.layout.n_send + self.gather_plan.layout.n_ghost)

    def to_block_values(self, owned_values: np.ndarray) -> np.ndarray:
        """Master values rearranged into this rank's directory block (input-id order)."""
        from hpcdist.graph.exchange import redistribute

        n, size = self.n_vertices, self.comm.Get_size()
        ids, vals = redistribute(self.comm, block_owner(self.owned_input_ids, n, size), self.owned_input_ids,
                                 np.ascontiguousarray(owned_values))
        out = np.empty(self.partition.block_stop - self.partition.block_start, dtype=vals.dtype)
        out[ids - self.partition.block_start] = vals
        return out

    def close(self) -> None:
        """Free the plans and the private communicator. Collective; idempotent."""
        from hpcdist.runtime.comm import MPI

        if MPI.Is_finalized() or self.comm == MPI.COMM_NULL:
            return
        self.scatter_plan.close()
        self.gather_plan.close()
        self.comm.Free()

    def __enter__(self) -> "VertexCutGraph":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_vertex_cut(
    edgelist: "EdgeList",
    comm: "MPI.Intracomm | None" = None,
    method: str = "vertex-cut",
    threshold: int = HYBRID_THRESHOLD,
) -> VertexCutGraph:
    """Place the edges with an edge partitioner, one part per rank, and build the plans.

    Collective over ``comm``. Memory per rank O(n/p + local edges + mirrors).

    Parameters
    ----------
    edgelist : EdgeList
        This rank's share of the edges (duplicates collapse first).
    comm : mpi4py.MPI.Intracomm, optional
        ``COMM_WORLD`` when None; the graph keeps a private duplicate.
    method : {"vertex-cut", "dbh", "hybrid"}
    threshold : int
        ``hybrid``'s in-degree threshold.
    """
    from hpcdist.runtime.comm import as_comm

    comm = as_comm(comm)
    try:
        return _build(comm, edgelist, (method or "").lower(), threshold)
    except BaseException:
        comm.Free()
        raise


def _build(comm: "MPI.Intracomm", el: "EdgeList", method: str, threshold: int) -> VertexCutGraph:
    from hpcdist.graph.distgraph import directory_lookup, pair_order
    from hpcdist.graph.exchange import redistribute
    from hpcdist.graph.halo import HaloPlan, build_layout
    from hpcdist.graph.partition import compute_partition
    from hpcdist.graph.vertexcut import _check, _dedupe_at_directory, _place_distributed
    from hpcdist.runtime.comm import MPI

    rank, size = comm.Get_rank(), comm.Get_size()
    _check(comm, method, size, threshold)
    n = el.n_vertices
    src, dst, in_degree = _dedupe_at_directory(el, comm)
    edge_part = _place_distributed(comm, method, src, dst, in_degree, n, size, threshold)
    # Masters on hash owners: the "hash" vertex partition is exactly master_parts, and it
    # renumbers them into contiguous ranges, which the halo plans need.
    part = compute_partition(comm, "hash", size, n, in_degree, (src, dst))
    bounds = part.bounds
    start, stop = int(bounds[rank]), int(bounds[rank + 1])
    n_owned = stop - start
    dst_new = part.block_new_ids[dst - part.block_start]
    usrc, inv = np.unique(src, return_inverse=True)
    src_new = directory_lookup(comm, usrc, n, part.block_new_ids)[inv]
    del usrc, inv

    # Out-degree at the master (PageRank divides by it), counted before edges move.
    u, c = np.unique(src_new, return_counts=True)
    u, c = redistribute(comm, part_of(u, bounds), u, c.astype(np.int64))
    out_degree = np.zeros(n_owned, dtype=np.int64)
    np.add.at(out_degree, u - start, c)

    # Edges to their part; each destination's partial sum runs in source input-id order.
    src_new, dst_new, src_in = redistribute(comm, edge_part, src_new, dst_new, src)
    order = pair_order(dst_new, src_in)
    src_new, dst_new = src_new[order], dst_new[order]
    del order, src_in, src, dst, edge_part

    def local(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Local ids in one space (masters, then that space's mirrors) and the mirrors."""
        mine = (ids >= start) & (ids < stop)
        mirrors = np.unique(ids[~mine])
        return np.where(mine, ids - start, n_owned + np.searchsorted(mirrors, ids)).astype(np.int64), mirrors

    src_local, scatter_ghosts = local(src_new)
    dst_local, gather_ghosts = local(dst_new)
    new_ids, input_ids = redistribute(
        comm, part.owner(part.block_new_ids), part.block_new_ids,
        np.arange(part.block_start, part.block_stop, dtype=np.int64),
    )
    owned_input_ids = np.empty(n_owned, dtype=np.int64)
    owned_input_ids[new_ids - start] = input_ids
    scatter_plan = HaloPlan(comm, build_layout(comm, scatter_ghosts, bounds))
    gather_plan = HaloPlan(comm, build_layout(comm, gather_ghosts, bounds))
    n_edges = int(comm.allreduce(int(src_local.shape[0]), op=MPI.SUM))
    return VertexCutGraph(
        comm=comm, method=method, n_vertices=n, n_edges=n_edges, partition=part, bounds=bounds,
        n_owned=n_owned, src_local=src_local, dst_local=dst_local, out_degree=out_degree,
        owned_input_ids=owned_input_ids, scatter_plan=scatter_plan, gather_plan=gather_plan,
        scatter_plan_ghosts=scatter_ghosts, gather_plan_ghosts=gather_ghosts,
    )


@dataclass
class VertexCutPageRank:
    """PageRank on a vertex-cut graph.

    Attributes
    ----------
    values : numpy.ndarray of float64
        Rank of each master (local ids ``0..n_owned-1``).
    block_values : numpy.ndarray of float64
        The same values for this rank's directory block of input ids, in input order
        (what ``VertexResult.block_values()`` gives on an edge-cut graph).
    iterations : int
    converged : bool
    sync_bytes : int
        Bytes all ranks together send per superstep (one scatter plus one gather).
    """

    values: np.ndarray
    block_values: np.ndarray
    iterations: int
    converged: bool
    sync_bytes: int


def pagerank_vertex_cut(
    graph: VertexCutGraph, alpha: float = 0.85, max_iter: int = 100, tol: float = 1.0e-6
) -> VertexCutPageRank:
    """PageRank by gather-apply-scatter, as ``networkx.pagerank`` (unweighted, uniform
    personalization and dangling weights). Collective over ``graph.comm``.

    Per superstep: masters publish ``x[u] / out_degree[u]`` (*scatter* to mirrors), every
    part sums its in-edges into partial aggregates for the destinations it holds, the
    mirrors' partials go to the masters (*gather*), and the masters *apply*
    ``x = alpha * (y + dangling_mass / n) + (1 - alpha) / n``. Stops once the L1 change
    is below ``n * tol``.
    """
    from hpcdist.runtime.comm import MPI

    comm = graph.comm
    with collective(comm):
        if not 0.0 <= alpha <= 1.0:
            raise InputError(f"pagerank: alpha must lie in [0, 1], got {alpha}")
        if not tol > 0 or max_iter < 1:
            raise InputError(f"pagerank: tol must be positive and max_iter at least 1, got {tol}, {max_iter}")
    n, n_owned = graph.n_vertices, graph.n_owned
    p = 1.0 / n
    x = np.full(n_owned, p)
    dangling = graph.out_degree == 0
    inv_out = np.where(dangling, 0.0, 1.0 / np.maximum(graph.out_degree, 1))
    contrib = np.zeros(graph.n_scatter)
    converged, it = False, 0
    for it in range(1, max_iter + 1):
        np.multiply(x, inv_out, out=contrib[:n_owned])
        graph.scatter(contrib)
        partial = np.bincount(graph.dst_local, weights=contrib[graph.src_local], minlength=graph.n_gather)
        y = graph.gather_sum(partial)
        mass = comm.allreduce(float(x[dangling].sum()), op=MPI.SUM)
        x_new = alpha * (y + mass * p) + (1.0 - alpha) * p
        err = comm.allreduce(float(np.abs(x_new - x).sum()), op=MPI.SUM)
        x = x_new
        if err < n * tol:
            converged = True
            break
    sync = int(comm.allreduce(graph.sync_bytes, op=MPI.SUM))
    return VertexCutPageRank(x, graph.to_block_values(x), it, converged, sync)
