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

Each phase is one neighbourhood collective: :meth:`VertexCutGraph.scatter`,
:meth:`~VertexCutGraph.gather_sum` and :meth:`~VertexCutGraph.gather_min`, and for
algorithms that use both edge directions (connected components) the converse pair
:meth:`~VertexCutGraph.scatter_dst` (master -> destination mirrors) and
:meth:`~VertexCutGraph.gather_src_min` (source mirrors -> master). The graph carries edge
weights (duplicates collapse to the smallest, as in ``DistGraph``) and the input's
original vertex ids, and offers the ``DistGraph`` methods a
:class:`~hpcdist.graph.results.VertexResult` needs, so results are written as edge-cut
ones are. The algorithms (BFS, CC, SSSP, PageRank) are in
:mod:`hpcdist.graph.gas_algorithms`; the engine (``DistGraph``, ``run_bsp``) is untouched.

Sums split over parts (PageRank's in-edge sums) use :meth:`~VertexCutGraph.gather_fixed_sum`:
each edge's term is cut into integer fixed-point limbs, summed per destination and
gathered as integers, so the total is exact and does not depend on where the edges lie
(the same bits on every rank count and every edge partitioner).

:func:`pagerank_vertex_cut` is unweighted PageRank (``networkx.pagerank`` semantics,
uniform teleport) on such a graph, a thin wrapper of
:func:`hpcdist.graph.gas_algorithms.pagerank_gas`; it agrees with
:func:`hpcdist.graph.pagerank` on the edge-cut graph to rounding (the edge-cut sums in
floating point, in order; the tests bound the difference by 1e-12).
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

__all__ = ["VertexCutGraph", "build_vertex_cut", "VertexCutPageRank", "pagerank_vertex_cut", "FIXED_BYTES"]


#: Bytes per destination mirror in one :meth:`VertexCutGraph.gather_fixed_sum`: a
#: fixed-point sum in two int64 words, ``hi * 2^31 + lo`` units of ``2^-92``.
FIXED_BYTES = 16
_MASK31 = np.int64((1 << 31) - 1)
_MASK22 = np.int64((1 << 22) - 1)


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
    weights : numpy.ndarray of float64 or None
        Weight of each local edge (aligned with ``src_local``), None for an unweighted
        graph; duplicates have collapsed to their smallest weight, as in ``DistGraph``.
    out_weight : numpy.ndarray of float64 or None
        Total out-weight of each master, summed in destination input-id order (the same
        bits as ``DistGraph.out_weight``).
    directed : bool
    name : str
        The input spec, for messages and output attributes.
    block_vertex_ids : numpy.ndarray of int64 or None
        Original ids of this rank's directory block (None: original ids = input ids).
    threshold : int or None
        ``hybrid``'s in-degree threshold.
    total_mirrors : int
        Mirrors on all ranks together.
    setup_seconds : float
        Time spent building (slowest rank).

    Masters are numbered in input order within each rank (the ``hash`` partition keeps
    input order), so ``owned_input_ids`` is increasing and the master of input id ``v``
    is ``master_parts(v, size)`` at local id ``searchsorted(owned_input_ids, v)``: a
    vertex can be routed to by its input id alone (:meth:`master_rank`, :meth:`master_local`).
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
    weights: np.ndarray | None = None
    out_weight: np.ndarray | None = None
    directed: bool = True
    name: str = ""
    block_vertex_ids: np.ndarray | None = None
    threshold: int | None = None
    total_mirrors: int = 0
    setup_seconds: float = 0.0

    # -- identity -----------------------------------------------------------------------
    @property
    def rank(self) -> int:
        """This rank in :attr:`comm` (the part it holds)."""
        return self.comm.Get_rank()

    @property
    def size(self) -> int:
        """Ranks of :attr:`comm`, which is also the number of parts."""
        return self.comm.Get_size()

    @property
    def weighted(self) -> bool:
        """Whether the edges carry weights (:attr:`weights` is not None)."""
        return self.weights is not None

    @property
    def replication_factor(self) -> float:
        """``(masters + mirrors) / n`` over all ranks."""
        return (self.n_vertices + self.total_mirrors) / self.n_vertices if self.n_vertices else 1.0

    @property
    def block_range(self) -> tuple[int, int]:
        """This rank's directory block of input ids."""
        return self.partition.block_start, self.partition.block_stop

    def block_original_ids(self) -> np.ndarray:
        """Original ids of this rank's directory block, in input order."""
        if self.block_vertex_ids is not None:
            return self.block_vertex_ids
        return np.arange(*self.block_range, dtype=np.int64)

    def master_rank(self, input_ids: np.ndarray) -> np.ndarray:
        """Rank holding the master of each input id (its hash owner)."""
        from hpcdist.graph.partition import hash_parts

        return hash_parts(np.asarray(input_ids, dtype=np.int64), self.size)

    def master_local(self, input_ids: np.ndarray) -> np.ndarray:
        """Local master id of input ids mastered on this rank."""
        return np.searchsorted(self.owned_input_ids, input_ids).astype(np.int64)

    def derived(self, key: object, build):
        """``build()`` once per graph and ``key``, kept (as ``DistGraph.derived``)."""
        cache = self.__dict__.setdefault("_derived", {})
        if key not in cache:
            cache[key] = build()
        return cache[key]

    # -- per-vertex values between layouts (the DistGraph names, for VertexResult) -----
    def to_input_layout(self, values: np.ndarray) -> np.ndarray:
        """Master values -> this rank's directory block, input order. Collective."""
        return self.to_block_values(values)

    def from_input_layout(self, values: np.ndarray) -> np.ndarray:
        """Directory-block values -> master values. Collective."""
        from hpcdist.graph.exchange import redistribute

        new_ids = self.partition.block_new_ids
        ids, vals = redistribute(self.comm, part_of(new_ids, self.bounds), new_ids, np.asarray(values))
        out = np.empty(self.n_owned, dtype=vals.dtype)
        out[ids - self.bounds[self.rank]] = vals
        return out

    def owned_original_ids(self) -> np.ndarray:
        """Original id of every master. Collective on first use."""
        def build() -> np.ndarray:
            if self.block_vertex_ids is None:
                return self.owned_input_ids.copy()
            return self.from_input_layout(self.block_original_ids().astype(np.int64, copy=False))

        return self.derived("owned_original_ids", build)

    def input_to_original(self, input_ids: np.ndarray) -> np.ndarray:
        """Original ids of input ids (any, on any rank); negative entries stay. Collective
        unless the original ids are the input ids."""
        from hpcdist.graph.distgraph import directory_lookup

        input_ids = np.asarray(input_ids, dtype=np.int64)
        if self.block_vertex_ids is None:
            return input_ids
        out = input_ids.copy()
        valid = input_ids >= 0
        out[valid] = directory_lookup(self.comm, input_ids[valid], self.n_vertices,
                                      self.block_original_ids().astype(np.int64, copy=False))
        return out

    def locate(self, original_id: int, what: str = "vertex") -> int:
        """Local master id of the vertex with ``original_id``, -1 where another rank masters
        it; one :class:`InputError` on every rank when no rank does (the message of
        ``DistGraph.locate``). Collective."""
        from hpcdist.runtime.comm import MPI

        local = -1
        try:
            ident = int(original_id)
        except (TypeError, ValueError):
            ident = None
        if ident is not None and -(2**63) <= ident < 2**63:
            hits = np.flatnonzero(self.owned_original_ids() == np.int64(ident))
            local = int(hits[0]) if hits.shape[0] else -1
        found = self.comm.allreduce(1 if local >= 0 else 0, op=MPI.SUM)
        with collective(self.comm):
            if found == 0:
                raise InputError(f"{what} {original_id} is not a vertex of {self.name or 'the graph'} "
                                 f"({self.n_vertices:,} vertices)")
        return local

    def scatter_input_ids(self) -> np.ndarray:
        """Input id of every scatter-space vertex (masters, then source mirrors). Collective
        on first use (one scatter)."""
        def build() -> np.ndarray:
            keys = np.zeros(self.n_scatter, dtype=np.int64)
            keys[: self.n_owned] = self.owned_input_ids
            return self.scatter(keys)

        return self.derived("scatter_input_ids", build)

    def local_out(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The local edges grouped by source: for each scatter-space vertex, its local
        out-edges, so that a frontier's edges are found without a pass over all edges.

        Returns
        -------
        indptr : numpy.ndarray of int64, shape (n_scatter + 1,)
        dst : numpy.ndarray of int64
            Destination of each edge, in the gather space.
        weights : numpy.ndarray of float64 or None
        """
        def build():
            order = np.argsort(self.src_local, kind="stable")
            indptr = np.zeros(self.n_scatter + 1, dtype=np.int64)
            np.cumsum(np.bincount(self.src_local, minlength=self.n_scatter), out=indptr[1:])
            w = None if self.weights is None else self.weights[order]
            return indptr, self.dst_local[order], w

        return self.derived("local_out", build)

    def summary_lines(self) -> list[str]:
        """What the CLI prints about the graph and its edge partition. Collective."""
        from hpcdist.graph.partition import balance
        from hpcdist.runtime.comm import MPI

        kind = ("directed" if self.directed else "undirected") + (", weighted" if self.weighted else "")
        edges = np.array(self.comm.allgather(int(self.src_local.shape[0])), dtype=np.int64)
        replicas = np.array(self.comm.allgather(self.n_owned + self.n_mirrors), dtype=np.int64)
        sync = int(self.comm.allreduce(self.sync_bytes, op=MPI.SUM))
        extra = f" (in-degree threshold {self.threshold})" if self.threshold is not None else ""
        return [
            f"graph {self.name}: {self.n_vertices:,} vertices, {self.n_edges:,} edges ({kind}), "
            f"{self.size} rank(s), distributed in {self.setup_seconds:.3f} s",
            f"partitioner {self.method}{extra} (edge partition, gather-apply-scatter): replication factor "
            f"{self.replication_factor:.3f} ({self.total_mirrors:,} mirrors), balance (max/mean) edges "
            f"{balance(edges):.3f}, vertex replicas {balance(replicas):.3f}, a scatter and a gather of "
            f"float64 values move {sync:,} bytes",
        ]

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

    def gather_min(self, values: np.ndarray) -> np.ndarray:
        """Mirrors -> masters: the minimum of every destination mirror's partial value and
        the master's own (``values``, length ``n_gather``).

        Returns the masters' minima (a new array of length ``n_owned``); ``values`` is
        left as it was. Minimum is exact, so the result does not depend on the order.
        """
        total = values[: self.n_owned].copy()
        recv = self.gather_plan.reverse_gather(values)
        if recv.shape[0]:
            np.minimum.at(total, self.gather_plan.layout.send_index, recv)
        return total

    def scatter_dst(self, values: np.ndarray) -> np.ndarray:
        """Masters -> destination mirrors: fill the mirror slots of a gather-space array
        (``values``, length ``n_gather``; the gather plan's forward exchange)."""
        return self.gather_plan.exchange(values)

    def edge_groups(self) -> tuple[np.ndarray, np.ndarray]:
        """The local edges as runs of one destination each (they are sorted by it):
        the first edge of each run and its destination (gather space)."""
        def build() -> tuple[np.ndarray, np.ndarray]:
            d = self.dst_local
            if d.shape[0] == 0:
                return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
            starts = np.flatnonzero(np.concatenate([[True], d[1:] != d[:-1]])).astype(np.int64)
            return starts, d[starts]

        return self.derived("edge_groups", build)

    def gather_fixed_sum(self, terms: np.ndarray) -> np.ndarray:
        """Per master, the sum of the edge ``terms`` of its in-edges on every part, exact
        up to one final rounding and the same bits wherever the edges lie. Collective
        (one gather).

        Each term ``t`` (``0 <= t``) is cut, on its own, into two integers: ``hi``, the
        integer part of ``t * 2^61``, and ``lo``, the next 31 bits (the bits below
        ``2^-92`` are dropped). Both are summed per destination as int64 over the run of
        its local edges, the partials travel as two int64 words (16 bytes per
        destination mirror, :data:`FIXED_BYTES`) and are added at the master as
        integers; there the total ``T * 2^-92`` is rounded to a double once (split into
        two parts that are exact doubles, so their one addition is correctly rounded).
        Integer addition is associative, so neither the placement of the edges nor the
        order of arrival changes a bit.

        Bounds, for the words to stay in int64: the terms of one vertex sum to below 4
        (``hi``), and no vertex has ``2^32`` in-edges or more (``lo``). PageRank's terms
        all together sum to about 1.

        Parameters
        ----------
        terms : numpy.ndarray of float64
            One non-negative term per local edge (aligned with ``dst_local``).

        Returns
        -------
        numpy.ndarray of float64, shape (n_owned,)
        """
        starts, dests = self.edge_groups()
        r = terms * 2.0**61
        hi = r.astype(np.int64)  # truncation; exact, as r's integer part is a double
        r -= hi
        r *= 2.0**31
        words = np.zeros((self.n_gather, 2), dtype=np.int64)
        if starts.shape[0]:
            words[dests, 0] = np.add.reduceat(hi, starts)
            words[dests, 1] = np.add.reduceat(r.astype(np.int64), starts)
        hi, lo = words[: self.n_owned, 0].copy(), words[: self.n_owned, 1].copy()
        # One 16-byte item per mirror. The halo plans build their MPI types uncommitted, which
        # a structured dtype needs; complex128 is predefined, and MPI moves its bytes as they are.
        recv = self.gather_plan.reverse_gather(words.view(np.complex128).reshape(-1))
        if recv.shape[0]:
            got = recv.view(np.int64).reshape(-1, 2)
            idx = self.gather_plan.layout.send_index
            np.add.at(hi, idx, got[:, 0])
            np.add.at(lo, idx, got[:, 1])
        # T = hi * 2^31 + lo = top * 2^53 + low with top < 2^41 and low < 2^53: both exact doubles
        hi += lo >> 31
        lo &= _MASK31
        top, low = hi >> 22, ((hi & _MASK22) << 31) | lo
        return top.astype(np.float64) * 2.0**-39 + low.astype(np.float64) * 2.0**-92

    def gather_src_min(self, values: np.ndarray) -> np.ndarray:
        """Source mirrors -> masters: ``values[:n_owned]`` lowered, in place, to the minimum
        of every source mirror's value (``values``, length ``n_scatter``; the scatter
        plan's reverse exchange). Returns ``values``."""
        return self.scatter_plan.reverse_exchange(values, np.minimum)

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
    import time

    from hpcdist.graph.distgraph import directory_lookup, pair_order
    from hpcdist.graph.exchange import redistribute
    from hpcdist.graph.halo import HaloPlan, build_layout
    from hpcdist.graph.partition import compute_partition
    from hpcdist.graph.vertexcut import _check, _dedupe_at_directory, _place_distributed
    from hpcdist.runtime.comm import MPI

    comm.Barrier()
    t0 = time.perf_counter()
    rank, size = comm.Get_rank(), comm.Get_size()
    _check(comm, method, size, threshold)
    n = el.n_vertices
    src, dst, w, in_degree = _dedupe_at_directory(el, comm, weights=True)
    weighted = w is not None
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

    # Out-degree (and out-weight) at the master (PageRank divides by it), counted before
    # edges move; the weights are summed in destination input-id order, as DistGraph does.
    out_weight = None
    if weighted:
        s_new, d_in, s_w = redistribute(comm, part_of(src_new, bounds), src_new, dst, w)
        order = pair_order(s_new, d_in)
        s_loc = s_new[order] - start
        out_degree = np.bincount(s_loc, minlength=n_owned).astype(np.int64)
        out_weight = np.bincount(s_loc, weights=s_w[order], minlength=n_owned).astype(np.float64)
        del s_new, d_in, s_w, order, s_loc
    else:
        u, c = np.unique(src_new, return_counts=True)
        u, c = redistribute(comm, part_of(u, bounds), u, c.astype(np.int64))
        out_degree = np.zeros(n_owned, dtype=np.int64)
        np.add.at(out_degree, u - start, c)

    # Edges to their part; each destination's partial sum runs in source input-id order.
    moved = redistribute(comm, edge_part, src_new, dst_new, src, *((w,) if weighted else ()))
    src_new, dst_new, src_in = moved[0], moved[1], moved[2]
    order = pair_order(dst_new, src_in)
    src_new, dst_new = src_new[order], dst_new[order]
    weights = moved[3][order] if weighted else None
    del order, src_in, src, dst, edge_part, moved, w

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
    n_mirrors = int(np.union1d(scatter_ghosts, gather_ghosts).shape[0])
    totals = np.array([src_local.shape[0], n_mirrors], dtype=np.int64)
    comm.Allreduce(MPI.IN_PLACE, totals, op=MPI.SUM)
    setup = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    return VertexCutGraph(
        comm=comm, method=method, n_vertices=n, n_edges=int(totals[0]), partition=part, bounds=bounds,
        n_owned=n_owned, src_local=src_local, dst_local=dst_local, out_degree=out_degree,
        owned_input_ids=owned_input_ids, scatter_plan=scatter_plan, gather_plan=gather_plan,
        scatter_plan_ghosts=scatter_ghosts, gather_plan_ghosts=gather_ghosts,
        weights=weights, out_weight=out_weight, directed=bool(el.directed), name=el.name,
        block_vertex_ids=el.vertex_ids, threshold=threshold if method == "hybrid" else None,
        total_mirrors=int(totals[1]), setup_seconds=float(setup),
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
        Bytes all ranks together send per superstep: one scatter of float64 values plus
        one gather of :data:`FIXED_BYTES`-byte fixed-point partial sums.
    """

    values: np.ndarray
    block_values: np.ndarray
    iterations: int
    converged: bool
    sync_bytes: int


def pagerank_vertex_cut(
    graph: VertexCutGraph, alpha: float = 0.85, max_iter: int = 100, tol: float = 1.0e-6
) -> VertexCutPageRank:
    """Unweighted PageRank by gather-apply-scatter, as ``networkx.pagerank`` (uniform
    personalization and dangling weights). Collective over ``graph.comm``.

    :func:`hpcdist.graph.gas_algorithms.pagerank_gas` with ``weighted=False``, its
    result repackaged: the same bits on every rank count and every edge partitioner,
    equal to the edge-cut :func:`hpcdist.graph.pagerank` to rounding.
    """
    from hpcdist.graph.gas_algorithms import pagerank_gas

    r = pagerank_gas(graph, alpha=alpha, max_iter=max_iter, tol=tol, weighted=False)
    return VertexCutPageRank(r.values, graph.to_block_values(r.values), r.iterations, r.converged,
                             int(r.params["bytes_per_superstep"]))
