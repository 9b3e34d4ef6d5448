"""The distributed graph: each rank's owned vertices, their in-edges, ghosts and halo plan.

Built from any distribution of the edges (:func:`from_edgelist`): the edges travel to
their destination's directory block, duplicates collapse there, the vertices are
partitioned and renumbered (:mod:`hpcdist.graph.partition`), and each edge moves to
the rank that owns its destination. Every rank then holds

* its owned vertices: new global ids ``start:stop`` (local ids ``0..n_owned-1``);
* ghosts: the remote sources of its in-edges (local ids ``n_owned..``), sorted by
  new global id, hence grouped by owner;
* a local CSR of the in-edges of each owned vertex, each row sorted by the source's
  **input id** — an order that does not depend on the partition, so per-vertex sums
  come out bit-identical for every partitioner and rank count;
* out-degree and out-weight of its owned vertices (summed in a fixed order too);
* the halo plan that fills ghost values in one neighbourhood collective.

Memory per rank is O(n/p + m/p + ghosts); no rank ever holds the whole graph.
"""

from __future__ import annotations

import operator
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

import numpy as np

from hpcdist.graph.edgelist import EdgeList
from hpcdist.graph.exchange import rank_order, redistribute
from hpcdist.graph.halo import HaloPlan, build_layout
from hpcdist.graph.partition import (
    PartitionReport,
    block_owner,
    compute_partition,
    part_of,
    partition_quality,
)
from hpcdist.runtime.errors import InputError, collective
from hpcdist.runtime.ranges import owned_range

if TYPE_CHECKING:
    from mpi4py import MPI

__all__ = ["DistGraph", "Migration", "from_edgelist", "from_edges", "from_csr", "dedupe_edges", "directory_lookup",
           "sorted_find", "evaluate_partition"]


def pair_order(major: np.ndarray, minor: np.ndarray) -> np.ndarray:
    """A permutation sorting by ``(major, minor)`` (non-negative ints; ties in any order).

    One int64 key and a plain sort where the ranges allow it: numpy's ``lexsort`` is
    several times slower, and this sort dominates building a graph.
    """
    if major.shape[0] == 0:
        return np.empty(0, dtype=np.int64)
    lo = int(major.min())
    span_major = int(major.max()) - lo + 1
    span_minor = int(minor.max()) + 1
    if span_major * span_minor < 2**62:
        return np.argsort((major - lo) * np.int64(span_minor) + minor)
    return np.lexsort((minor, major))


def dedupe_edges(
    src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Sort edges by (dst, src) and keep one per pair, with the smallest of its weights."""
    order = pair_order(dst, src)
    src, dst = src[order], dst[order]
    w = None if weights is None else weights[order]
    if src.shape[0] > 1:
        first = np.empty(src.shape[0], dtype=bool)
        first[0] = True
        np.not_equal(src[1:], src[:-1], out=first[1:])
        first[1:] |= dst[1:] != dst[:-1]
        starts = np.flatnonzero(first)
        if w is not None:
            w = np.minimum.reduceat(w, starts)
        src, dst = src[starts], dst[starts]
    return src, dst, w


def sorted_find(sorted_ids: np.ndarray, order: np.ndarray, original_id: object) -> int:
    """``order[i]`` where ``sorted_ids[i] == original_id`` (a binary search); -1 where no
    item is, or where ``original_id`` is no integer (a float or a string is none: 2.5
    must not find vertex 2) that an int64 can hold. Local."""
    try:
        ident = operator.index(original_id)  # type: ignore[arg-type]
    except TypeError:
        return -1
    if not -(2**63) <= ident < 2**63:  # no int64 id can match, and numpy would overflow
        return -1
    at = int(np.searchsorted(sorted_ids, ident))
    if at < sorted_ids.shape[0] and sorted_ids[at] == ident:
        return int(order[at])
    return -1


def directory_lookup(comm: "MPI.Intracomm", ids: np.ndarray, n: int, table: np.ndarray) -> np.ndarray:
    """``table`` entries for input ids held in directory blocks (``owned_range`` of ``n``).

    Collective over ``comm``: two all-to-alls, volume O(len(ids)).
    """
    rank, size = comm.Get_rank(), comm.Get_size()
    block_start = owned_range(n, size, rank)[0]
    ids = np.asarray(ids, dtype=np.int64)
    if size == 1:  # the one block is here: no owners to find, nothing to ask
        return table[ids - block_start]
    owners = block_owner(ids, n, size)
    who = np.full(ids.shape[0], rank, dtype=np.int64)
    asked, asker = redistribute(comm, owners, ids, who)
    (answers,) = redistribute(comm, asker, table[asked - block_start])
    out = np.empty(ids.shape[0], dtype=table.dtype)
    out[rank_order(owners, size)] = answers
    return out


@dataclass
class Migration:
    """What :meth:`DistGraph.move_bounds` moved.

    Attributes
    ----------
    values : dict of str to numpy.ndarray
        The carried per-vertex arrays, in the new owned order.
    moved_vertices, moved_edges : int
        Owned vertices and stored in-edges that changed rank (all ranks together).
    seconds : float
        Slowest rank.
    """

    values: dict[str, np.ndarray] = field(default_factory=dict)
    moved_vertices: int = 0
    moved_edges: int = 0
    seconds: float = 0.0


class DistGraph:
    """One rank's part of a partitioned graph. Build it with :func:`from_edges`,
    :func:`from_csr`, :func:`from_edgelist` or :func:`hpcdist.graph.load`.

    Attributes
    ----------
    comm : mpi4py.MPI.Intracomm
        The graph's private communicator (freed by :meth:`close`).
    n_vertices, n_edges : int
        Global counts (edges after duplicates collapse).
    directed, weighted : bool
    name : str
        The input spec, for messages and output attributes.
    partition : Partition
        The vertex partition and the directory block of this rank.
    report : PartitionReport
        Balance, cut, ghosts, bytes per exchange.
    bounds : numpy.ndarray of int64, shape (size + 1,)
        Rank ``r`` owns new global ids ``bounds[r]:bounds[r+1]``.
    start, stop, n_owned, n_ghost : int
    owned_input_ids : numpy.ndarray of int64
        Input id (0..n-1, the reader's numbering) of each owned vertex.
    ghost_global : numpy.ndarray of int64
        New global id of each ghost (local ids ``n_owned + i``), increasing.
    in_indptr, in_indices, in_weights
        CSR of the in-edges of owned vertices: row = local destination, column = local
        source (owned or ghost); rows sorted by the sources' input ids. ``in_weights``
        is None for an unweighted graph.
    out_degree : numpy.ndarray of int64
    out_weight : numpy.ndarray of float64
        Number and total weight of out-edges of each owned vertex.
    halo : HaloPlan
    block_vertex_ids : numpy.ndarray of int64 or None
        Original ids of the directory block's vertices (None: original ids = input ids).
    setup_seconds : float
        Time spent building (redistribute, partition, plan), slowest rank.
    """

    comm: "MPI.Intracomm"

    def __init__(self, **fields: object) -> None:
        self.__dict__.update(fields)

    # -- identity and layout ------------------------------------------------------------
    @property
    def rank(self) -> int:
        return self.comm.Get_rank()

    @property
    def size(self) -> int:
        return self.comm.Get_size()

    @property
    def n_local(self) -> int:
        """Owned plus ghost vertices: the length of a local value vector."""
        return self.n_owned + self.n_ghost

    @property
    def local_to_global(self) -> np.ndarray:
        """New global id of every local vertex (owned, then ghosts)."""
        return np.concatenate([np.arange(self.start, self.stop, dtype=np.int64), self.ghost_global])

    def global_to_local(self, ids: np.ndarray) -> np.ndarray:
        """Local id of each new global id (owned or ghost); -1 where neither."""
        ids = np.asarray(ids, dtype=np.int64)
        out = np.full(ids.shape, -1, dtype=np.int64)
        owned = (ids >= self.start) & (ids < self.stop)
        out[owned] = ids[owned] - self.start
        pos = np.searchsorted(self.ghost_global, ids)
        pos_c = np.minimum(pos, max(self.n_ghost - 1, 0))
        is_ghost = ~owned & (self.n_ghost > 0)
        if self.n_ghost:
            is_ghost &= self.ghost_global[pos_c] == ids
        out[is_ghost] = self.n_owned + pos[is_ghost]
        return out

    def owner_of(self, ids: np.ndarray) -> np.ndarray:
        """Rank owning each new global id."""
        return part_of(ids, self.bounds)

    @property
    def block_range(self) -> tuple[int, int]:
        """This rank's directory block of input ids."""
        return self.partition.block_start, self.partition.block_stop

    def block_original_ids(self) -> np.ndarray:
        """Original ids of this rank's directory block, in input order."""
        if self.block_vertex_ids is not None:
            return self.block_vertex_ids
        return np.arange(*self.block_range, dtype=np.int64)

    # -- moving per-vertex values between layouts ---------------------------------------
    def to_input_layout(self, values: np.ndarray) -> np.ndarray:
        """Per-vertex values of owned vertices -> the same values for this rank's directory block.

        Collective over ``comm``. The directory layout is the reader's input order,
        the same for every partitioner, which is what output files use.
        """
        values = np.asarray(values)
        bstart, bstop = self.block_range
        dest = block_owner(self.owned_input_ids, self.n_vertices, self.size)
        ids, vals = redistribute(self.comm, dest, self.owned_input_ids, values[: self.n_owned])
        out = np.empty(bstop - bstart, dtype=values.dtype)
        out[ids - bstart] = vals
        return out

    def from_input_layout(self, values: np.ndarray) -> np.ndarray:
        """Per-vertex values of the directory block -> values of the owned vertices.

        Collective over ``comm``.
        """
        values = np.asarray(values)
        new_ids = self.partition.block_new_ids
        ids, vals = redistribute(self.comm, part_of(new_ids, self.bounds), new_ids, values)
        out = np.empty(self.n_owned, dtype=values.dtype)
        out[ids - self.start] = vals
        return out

    def block_values_from_mapping(self, mapping: Mapping[int, float], default: float = 0.0) -> np.ndarray:
        """Values for this rank's directory block from ``{original id: value}``.

        Ids absent from the graph are ignored, as ``networkx.pagerank`` does. Local: every
        rank holds the (small) mapping.
        """
        orig = self.block_original_ids()
        out = np.full(orig.shape[0], default, dtype=np.float64)
        if not mapping or orig.shape[0] == 0:
            return out
        keys = np.fromiter((int(k) for k in mapping.keys()), dtype=np.int64, count=len(mapping))
        vals = np.fromiter((float(v) for v in mapping.values()), dtype=np.float64, count=len(mapping))
        order = np.argsort(keys, kind="stable")
        keys, vals = keys[order], vals[order]
        pos = np.minimum(np.searchsorted(keys, orig), keys.shape[0] - 1)
        hit = keys[pos] == orig
        out[hit] = vals[pos[hit]]
        return out

    # -- derived per-graph data, built once and kept (collective on first use) ----------
    def derived(self, key: object, build):
        """``build()`` once per graph and ``key``, kept on the graph for later calls.

        Every rank asks at the same point of the same algorithm, so a collective
        ``build`` runs on all ranks at once; later calls are local.
        """
        cache = self.__dict__.setdefault("_derived", {})
        if key not in cache:
            cache[key] = build()
        return cache[key]

    def column_input_ids(self) -> np.ndarray:
        """Input id of every local vertex (owned, then ghosts), int64.

        The partition-independent key of a column: in-edge rows are sorted by it, and
        traversals break ties by it. Collective on first use (one halo exchange).
        """
        def build() -> np.ndarray:
            keys = np.empty(self.n_local, dtype=np.int64)
            keys[: self.n_owned] = self.owned_input_ids
            self.halo.exchange(keys)
            return keys

        return self.derived("column_input_ids", build)

    def owned_original_ids(self) -> np.ndarray:
        """Original id of every owned vertex (owned order), int64. Collective on first use."""
        def build() -> np.ndarray:
            if self.block_vertex_ids is None:
                return self.owned_input_ids.copy()
            return self.from_input_layout(self.block_original_ids().astype(np.int64, copy=False))

        return self.derived("owned_original_ids", build)

    def column_original_ids(self) -> np.ndarray:
        """Original id of every local vertex (owned, then ghosts). Collective on first use."""
        def build() -> np.ndarray:
            ids = np.empty(self.n_local, dtype=np.int64)
            ids[: self.n_owned] = self.owned_original_ids()
            self.halo.exchange(ids)
            return ids

        return self.derived("column_original_ids", build)

    def in_degree(self) -> np.ndarray:
        """Number of stored in-edges of each owned vertex (int64)."""
        return self.derived("in_degree", lambda: np.diff(self.in_indptr))

    def local_out(self, kernels=None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The local in-edge CSR transposed: for each local vertex (owned or ghost), its
        out-edges into owned vertices.

        Together over the ranks, the rows of vertex ``u`` on its owner and on every rank
        that holds it as a ghost are all of ``u``'s out-edges, each stored once (at the
        destination's owner). Push-style algorithms publish a value of ``u`` by the
        forward halo exchange and every holder relaxes its share of ``u``'s out-edges
        into its owned vertices; no update ever has to travel back.

        Built once (``kernels.transpose_csr``, the numpy reference when None) and kept
        on the graph. Local.

        Returns
        -------
        indptr : numpy.ndarray of int64, shape (n_local + 1,)
        rows : numpy.ndarray
            Owned destination (local id) of each edge, increasing within each row; the
            in-CSR's index dtype.
        weights : numpy.ndarray of float64 or None
        """
        def build():
            k = kernels
            if k is None:
                from hpcdist.kernels import numpy_ref as k
            return k.transpose_csr(self.in_indptr, self.in_indices, self.in_weights, self.n_local)

        return self.derived("local_out", build)

    def is_symmetric(self, kernels=None) -> bool:
        """Whether every edge ``u -> v`` of the graph has its reverse ``v -> u`` (whatever
        ``directed`` says: that is the caller's claim). Collective on first use, then kept.

        Checked, not assumed: each rank hashes its stored edges and their reverses under a
        key drawn for this check, the ranks XOR both, and the two agree for a symmetric edge
        set; for any other they differ but with probability 2^-64 (the edges are a set).
        One pass over the local edges (``kernels``: numpy's when None).
        """
        def build() -> bool:
            import os

            from hpcdist.runtime.comm import MPI

            k = kernels
            if k is None:
                from hpcdist.kernels import numpy_ref as k
            key = self.comm.bcast(int.from_bytes(os.urandom(8), "little") if self.rank == 0 else None, root=0)
            l2g = self.local_to_global
            sums = k.edge_set_hashes(self.in_indptr, self.in_indices, l2g[: self.n_owned], l2g, key)
            self.comm.Allreduce(MPI.IN_PLACE, sums, op=MPI.BXOR)
            return bool(sums[0] == sums[1])

        return self.derived("is_symmetric", build)

    def find_original(self, original_id: int) -> int:
        """Local id of the owned vertex with original id ``original_id``, or -1 if this rank
        does not own it (or it is no integer). Local after the first call, which sorts the
        owned ids once (collective if :meth:`owned_original_ids` is not built yet); see
        :meth:`locate` for the collective check."""
        def build() -> tuple[np.ndarray, np.ndarray]:
            ids = self.owned_original_ids()
            order = np.argsort(ids, kind="stable")
            return ids[order], order

        return sorted_find(*self.derived("owned_by_original", build), original_id)

    def locate(self, original_id: int, what: str = "vertex") -> int:
        """Like :meth:`find_original`, raising one :class:`InputError` on every rank when no
        rank owns the id. Collective."""
        from hpcdist.runtime.comm import MPI

        local = self.find_original(original_id)
        found = np.array([1 if local >= 0 else 0], dtype=np.int64)
        self.comm.Allreduce(MPI.IN_PLACE, found, op=MPI.SUM)
        with collective(self.comm):
            if found[0] == 0:
                raise InputError(f"{what} {original_id} is not a vertex of {self.name or 'the graph'} "
                                 f"({self.n_vertices:,} vertices)")
        return local

    def input_to_original(self, input_ids: np.ndarray) -> np.ndarray:
        """Original ids of input ids (any, on any rank); negative entries stay as they are.

        Returns ``input_ids`` itself (as int64) where the original ids are the input ids.
        Collective (one directory look-up: two all-to-alls) unless the original ids are
        the input ids.
        """
        input_ids = np.asarray(input_ids, dtype=np.int64)
        if self.block_vertex_ids is None:
            return input_ids
        out = input_ids.copy()
        valid = input_ids >= 0
        out[valid] = directory_lookup(self.comm, input_ids[valid], self.n_vertices,
                                      self.block_original_ids().astype(np.int64, copy=False))
        return out

    # -- moving the part boundaries (rebalancing) ---------------------------------------
    def move_bounds(self, bounds: np.ndarray, values: Mapping[str, np.ndarray] | None = None) -> "Migration":
        """Give rank ``r`` the new ids ``bounds[r]:bounds[r+1]``, in place.

        The numbering stays: only the cuts between consecutive ranks move, so the rows
        that change owner (whole in-edge rows, and the owned vertices' input ids,
        out-degrees and out-weights) travel to their new rank in two all-to-alls, without
        re-reading the input; the rows that stay are not copied through MPI.
        Rows keep their order (by the sources' input ids), so per-vertex sums, and every
        algorithm's result, stay bit-identical. Ghosts, the halo plan and the partition
        report are rebuilt; values cached on the graph (pull plans, derived arrays) are
        dropped, so programs built on the old layout must be rebuilt.

        Collective over ``comm``.

        Parameters
        ----------
        bounds : array_like of int, shape (size + 1,)
            Non-decreasing, from 0 to ``n_vertices``; the same on every rank.
        values : mapping of str to numpy.ndarray, optional
            Per-vertex arrays of the owned vertices (owned order) to carry along (an
            algorithm's state).

        Returns
        -------
        Migration
            The carried ``values`` in the new owned order, the vertices and edges that
            changed rank (global counts) and the seconds it took (slowest rank).

        Raises
        ------
        InputError
            Malformed bounds, or bounds that differ between ranks (on every rank).
        """
        from hpcdist.runtime.comm import MPI

        comm = self.comm
        rank, size = comm.Get_rank(), comm.Get_size()
        comm.Barrier()
        t0 = time.perf_counter()
        new = np.asarray(bounds, dtype=np.int64).ravel()
        shape_ok = new.shape == (size + 1,)
        lo = np.zeros(size + 1, dtype=np.int64)
        hi = np.zeros(size + 1, dtype=np.int64)
        if shape_ok:
            comm.Allreduce(new, lo, op=MPI.MIN)
            comm.Allreduce(new, hi, op=MPI.MAX)
        agreed = comm.allreduce(bool(shape_ok and np.array_equal(lo, hi)), op=MPI.LAND)
        with collective(comm):
            if not shape_ok:
                raise InputError(f"move_bounds: expected {size + 1} bounds, got shape {np.shape(bounds)}")
            if not agreed:
                raise InputError("move_bounds: the ranks passed different bounds")
            if new[0] != 0 or new[-1] != self.n_vertices or np.any(np.diff(new) < 0):
                raise InputError(f"move_bounds: bounds must rise from 0 to {self.n_vertices}, got {new.tolist()}")
        values = dict(values or {})

        # Only the rows that change rank travel. Ranges are contiguous and ranks ordered, so
        # the new owned range is [from lower ranks] + [kept] + [from higher ranks], and what
        # arrives is grouped by source rank: already in new-id order, each row intact.
        no = self.n_owned
        start, stop = int(new[rank]), int(new[rank + 1])
        n_owned = stop - start
        kl = min(max(start, self.start), self.stop) - self.start  # kept: old local rows kl:kh
        kh = max(min(stop, self.stop), self.start) - self.start
        kh = max(kh, kl)
        dest_v = np.concatenate([part_of(np.arange(self.start, self.start + kl, dtype=np.int64), new),
                                 part_of(np.arange(self.start + kh, self.stop, dtype=np.int64), new)])
        leaving = np.r_[0:kl, kh:no]
        row_len_old = np.diff(self.in_indptr)
        names = sorted(values)
        per_vertex = [self.owned_input_ids, self.out_degree, self.out_weight, row_len_old.astype(np.int64),
                      *(np.asarray(values[k])[:no] for k in names)]
        got = redistribute(comm, dest_v, *(a[leaving] for a in per_vertex))
        n_low = int(np.clip(self.start - start, 0, n_owned))  # new ids below my old start came from lower ranks
        merged = [np.concatenate([r[:n_low], a[kl:kh], r[n_low:]]) for r, a in zip(got, per_vertex)]
        owned_input_ids, out_degree, out_weight, row_len = merged[:4]
        carried = dict(zip(names, merged[4:]))
        assert owned_input_ids.shape[0] == n_owned

        e_kl, e_kh = int(self.in_indptr[kl]), int(self.in_indptr[kh])
        l2g = self.local_to_global
        edge_leaving = np.r_[0:e_kl, e_kh:self.in_indices.shape[0]]
        dest_e = np.repeat(dest_v, row_len_old[leaving])
        weights = self.in_weights
        arrays = (l2g[self.in_indices[edge_leaving]],) + ((weights[edge_leaving],) if weights is not None else ())
        got = redistribute(comm, dest_e, *arrays)
        moved_edges = int(dest_e.shape[0])
        del dest_e, edge_leaving
        e_low = int(row_len[:n_low].sum())
        src_new = np.concatenate([got[0][:e_low], l2g[self.in_indices[e_kl:e_kh]], got[0][e_low:]])
        in_weights = None
        if weights is not None:
            in_weights = np.concatenate([got[1][:e_low], weights[e_kl:e_kh], got[1][e_low:]])
        del got, l2g
        in_indptr = np.zeros(n_owned + 1, dtype=np.int64)
        np.cumsum(row_len, out=in_indptr[1:])
        remote = (src_new < start) | (src_new >= stop)
        ghost_global, ghost_of = np.unique(src_new[remote], return_inverse=True)
        n_ghost = int(ghost_global.shape[0])
        index_dtype = np.int32 if n_owned + n_ghost < 2**31 else np.int64
        in_indices = (src_new - start).astype(index_dtype)
        in_indices[remote] = n_owned + ghost_of.astype(index_dtype)
        n_cut = int(np.count_nonzero(remote))
        del src_new, remote, ghost_of

        part = self.partition
        new_part = type(part)(part.method, part.parts, new, part.block_start, part.block_stop,
                              part_of(part.block_new_ids, new), part.block_new_ids)
        # The report from local counts: a rank's ghosts are exactly its distinct remote
        # sources, so no pass over the edges is needed (partition_quality's result, cheaper).
        mine = np.array([in_indices.shape[0], n_ghost, n_cut, dest_v.shape[0], moved_edges], dtype=np.int64)
        every = np.empty((size, mine.shape[0]), dtype=np.int64)
        comm.Allgather(mine, every)
        old_report = self.report
        report = PartitionReport(method=part.method, parts=part.parts, vertices=np.diff(new), edges=every[:, 0].copy(),
                                 ghosts=every[:, 1].copy(), n_vertices=self.n_vertices,
                                 n_edges=int(every[:, 0].sum()), cut_edges=int(every[:, 2].sum()),
                                 value_bytes=old_report.value_bytes, extra=dict(old_report.extra))
        halo = HaloPlan(comm, build_layout(comm, ghost_global, new))
        total = every[:, 3:].sum(axis=0)

        self.halo.close()
        # Cached per-layout values (pull plans, derived arrays) start afresh.
        for key in [k for k in self.__dict__ if k.startswith("_")]:
            del self.__dict__[key]
        self.__dict__.update(
            partition=new_part, report=report, bounds=new, start=start, stop=stop, n_owned=n_owned, n_ghost=n_ghost,
            owned_input_ids=owned_input_ids, ghost_global=ghost_global, in_indptr=in_indptr, in_indices=in_indices,
            in_weights=in_weights, out_degree=out_degree, out_weight=out_weight, halo=halo,
        )
        seconds = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
        return Migration(values=carried, moved_vertices=int(total[0]), moved_edges=int(total[1]),
                         seconds=float(seconds))

    # -- life cycle ---------------------------------------------------------------------
    def close(self) -> None:
        """Free the halo plan and the private communicator. Collective; idempotent."""
        from hpcdist.runtime.comm import MPI

        if getattr(self, "_closed", False) or MPI.Is_finalized():
            return
        self._closed = True
        self.halo.close()
        self.comm.Free()

    def __enter__(self) -> "DistGraph":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def summary_lines(self) -> list[str]:
        kind = ("directed" if self.directed else "undirected") + (", weighted" if self.weighted else "")
        return [
            f"graph {self.name}: {self.n_vertices:,} vertices, {self.n_edges:,} edges ({kind}), "
            f"{self.size} rank(s), distributed in {self.setup_seconds:.3f} s",
            *self.report.lines(per_part=self.size <= 16),
        ]

    def __repr__(self) -> str:
        return (
            f"DistGraph(n_vertices={self.n_vertices}, n_edges={self.n_edges}, rank={self.rank}/{self.size}, "
            f"owned={self.start}:{self.stop}, n_ghost={self.n_ghost}, partitioner={self.partition.method!r})"
        )


# ---------------------------------------------------------------------------------------
# Construction


def _validate(comm: "MPI.Intracomm", el: EdgeList) -> None:
    """Agree over ranks that the edge list is usable; raise one InputError otherwise."""
    with collective(comm):
        n = el.n_vertices
        where = el.name or "graph"
        if n <= 0:
            raise InputError(f"{where}: empty graph (no vertices)")
        for name, ids in (("source", el.src), ("destination", el.dst)):
            if ids.shape[0] and (int(ids.min()) < 0 or int(ids.max()) >= n):
                bad = int(ids[(ids < 0) | (ids >= n)][0])
                raise InputError(f"{where}: {name} vertex {bad} outside 0..{n - 1}")
        if el.weights is not None and el.weights.shape[0]:
            bad = ~np.isfinite(el.weights) | (el.weights < 0)
            if bad.any():
                raise InputError(f"{where}: edge weights must be finite and non-negative, got {el.weights[bad][0]}")
        bstart, bstop = owned_range(n, comm.Get_size(), comm.Get_rank())
        if el.vertex_ids is not None and el.vertex_ids.shape[0] != bstop - bstart:
            raise InputError(f"{where}: vertex_ids holds {el.vertex_ids.shape[0]} ids for a block of {bstop - bstart}")


def from_edgelist(
    edgelist: EdgeList,
    comm: "MPI.Intracomm | None" = None,
    partitioner: str = "block",
    *,
    locality: bool = True,
) -> DistGraph:
    """Partition and distribute a graph given as each rank's share of its edges.

    Collective over ``comm``.

    Parameters
    ----------
    edgelist : EdgeList
        This rank's edges in input ids 0..n-1 (any share; together all edges).
    comm : mpi4py.MPI.Intracomm, optional
        ``COMM_WORLD`` when None. The graph keeps a private duplicate.
    partitioner : {"block", "metis", "hash", "auto"}
    locality : bool
        Number each part's vertices by decreasing out-degree (else input order), so the
        pull kernel's reads of hot vertices hit cache. Results are the same either way.

    Returns
    -------
    DistGraph
    """
    from hpcdist.runtime.comm import as_comm

    comm = as_comm(comm)
    try:
        return _build(comm, edgelist, partitioner, locality)
    except BaseException:
        comm.Free()
        raise


def _build(comm: "MPI.Intracomm", el: EdgeList, partitioner: str, locality: bool) -> DistGraph:
    from hpcdist.runtime.comm import MPI

    comm.Barrier()
    t0 = time.perf_counter()
    _validate(comm, el)
    rank, size = comm.Get_rank(), comm.Get_size()
    n = el.n_vertices
    weighted = el.weights is not None
    bstart, bstop = owned_range(n, size, rank)

    # 1. Edges to their destination's directory block; duplicates collapse there.
    arrays = (el.src, el.dst) + ((el.weights,) if weighted else ())
    moved = redistribute(comm, block_owner(el.dst, n, size), *arrays)
    src, dst, w = dedupe_edges(moved[0], moved[1], moved[2] if weighted else None)
    del moved
    in_degree = np.bincount(dst - bstart, minlength=bstop - bstart).astype(np.int64)

    # 2. Partition and renumber; within a part, most-read (highest out-degree) first, for
    #    cache locality of the pull kernel's reads. Sums do not depend on the numbering.
    block_out_degree = np.zeros(bstop - bstart, dtype=np.int64)
    if locality:
        u, c = np.unique(src, return_counts=True)
        u, c = redistribute(comm, block_owner(u, n, size), u, c.astype(np.int64))
        np.add.at(block_out_degree, u - bstart, c)
        del u, c
    part = compute_partition(comm, partitioner, size, n, in_degree, (src, dst),
                             order_key=-block_out_degree if locality else None)
    bounds = part.bounds
    start, stop = int(bounds[rank]), int(bounds[rank + 1])
    dst_new = part.block_new_ids[dst - bstart]
    usrc, inv = np.unique(src, return_inverse=True)
    src_new = directory_lookup(comm, usrc, n, part.block_new_ids)[inv]
    del usrc, inv
    dst_part, src_part = part_of(dst_new, bounds), part_of(src_new, bounds)
    report = partition_quality(comm, part, src, dst_part, src_part, n)

    # 3. Out-degree and out-weight at the source's owner, summed in input-id order of the
    #    destinations so that the float sum is the same for every partition.
    if weighted:
        s_new, d_in, s_w = redistribute(comm, src_part, src_new, dst, w)
        order = pair_order(s_new, d_in)
        s_loc = s_new[order] - start
        out_degree = np.bincount(s_loc, minlength=stop - start).astype(np.int64)
        out_weight = np.bincount(s_loc, weights=s_w[order], minlength=stop - start).astype(np.float64)
        del s_new, d_in, s_w, order, s_loc
    else:
        u, c = np.unique(src_new, return_counts=True)
        u, c = redistribute(comm, part_of(u, bounds), u, c.astype(np.int64))
        out_degree = np.zeros(stop - start, dtype=np.int64)
        np.add.at(out_degree, u - start, c)
        out_weight = out_degree.astype(np.float64)

    # 4. Edges to the destination's owner; rows sorted by source input id.
    arrays = (dst_new, src_new, src) + ((w,) if weighted else ())
    moved = redistribute(comm, dst_part, *arrays)
    del dst_new, src_new, src, dst, w, dst_part, src_part
    dst_new, src_new, src_in = moved[0], moved[1], moved[2]
    order = pair_order(dst_new, src_in)
    dst_new, src_new = dst_new[order], src_new[order]
    in_weights = moved[3][order] if weighted else None
    del moved, order, src_in
    n_owned = stop - start
    in_indptr = np.zeros(n_owned + 1, dtype=np.int64)
    np.cumsum(np.bincount(dst_new - start, minlength=n_owned), out=in_indptr[1:])
    remote = (src_new < start) | (src_new >= stop)
    ghost_global = np.unique(src_new[remote])
    n_ghost = int(ghost_global.shape[0])
    index_dtype = np.int32 if n_owned + n_ghost < 2**31 else np.int64
    in_indices = np.where(remote, n_owned + np.searchsorted(ghost_global, src_new), src_new - start).astype(index_dtype)
    del dst_new, src_new, remote

    # 5. Input id of each owned vertex (for output order and partition-independent keys).
    new_ids, input_ids = redistribute(
        comm, part.owner(part.block_new_ids), part.block_new_ids, np.arange(bstart, bstop, dtype=np.int64)
    )
    owned_input_ids = np.empty(n_owned, dtype=np.int64)
    owned_input_ids[new_ids - start] = input_ids

    # 6. The halo plan.
    halo = HaloPlan(comm, build_layout(comm, ghost_global, bounds))
    n_edges = int(comm.allreduce(int(in_indices.shape[0]), op=MPI.SUM))
    setup = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    return DistGraph(
        comm=comm,
        n_vertices=n,
        n_edges=n_edges,
        directed=bool(el.directed),
        weighted=weighted,
        name=el.name,
        partition=part,
        report=report,
        bounds=bounds,
        start=start,
        stop=stop,
        n_owned=n_owned,
        n_ghost=n_ghost,
        owned_input_ids=owned_input_ids,
        ghost_global=ghost_global,
        in_indptr=in_indptr,
        in_indices=in_indices,
        in_weights=in_weights,
        out_degree=out_degree,
        out_weight=out_weight,
        halo=halo,
        block_vertex_ids=el.vertex_ids,
        setup_seconds=float(setup),
    )


def from_edges(
    src: np.ndarray,
    dst: np.ndarray,
    weights: np.ndarray | None = None,
    n: int | None = None,
    comm: "MPI.Intracomm | None" = None,
    *,
    partitioner: str = "block",
    vertex_ids: np.ndarray | None = None,
    directed: bool = True,
    name: str = "edges",
) -> DistGraph:
    """Build a :class:`DistGraph` from this rank's slice of the edges (global ids).

    Collective over ``comm``. No rank needs the whole graph: each passes any share of
    the edges; together they pass all of them. Duplicate edges collapse to one (the
    smallest weight wins); self-loops are kept.

    Parameters
    ----------
    src, dst : array_like of int
        This rank's edges ``src -> dst`` in ids ``0..n-1``.
    weights : array_like of float, optional
        One finite, non-negative weight per edge.
    n : int, optional
        Number of vertices; by default the largest id + 1 over all ranks.
    comm : mpi4py.MPI.Intracomm, optional
    partitioner : {"block", "metis", "hash", "auto"}
    vertex_ids : array_like of int, optional
        Original ids of the vertices in ``owned_range(n, size, rank)``, for output.
    directed : bool
    name : str
        A label for messages and output attributes.
    """
    from hpcdist.runtime.comm import MPI, as_comm

    src = np.asarray(src, dtype=np.int64).ravel()
    dst = np.asarray(dst, dtype=np.int64).ravel()
    if n is None:
        probe = as_comm(comm)
        try:
            local = max(int(src.max(initial=-1)), int(dst.max(initial=-1)))
            n = int(probe.allreduce(local, op=MPI.MAX)) + 1
        finally:
            probe.Free()
    el = EdgeList(
        n_vertices=int(n),
        src=src,
        dst=dst,
        weights=None if weights is None else np.asarray(weights, dtype=np.float64).ravel(),
        directed=directed,
        vertex_ids=vertex_ids,
        name=name,
    )
    return from_edgelist(el, comm, partitioner)


def from_csr(
    indptr: np.ndarray,
    indices: np.ndarray,
    weights: np.ndarray | None = None,
    n: int | None = None,
    comm: "MPI.Intracomm | None" = None,
    *,
    row_start: int | None = None,
    partitioner: str = "block",
    vertex_ids: np.ndarray | None = None,
    directed: bool = True,
    name: str = "csr",
) -> DistGraph:
    """Build a :class:`DistGraph` from this rank's contiguous rows of a CSR (rows = out-edges).

    Collective over ``comm``.

    Parameters
    ----------
    indptr : array_like of int64
        Offsets of this rank's rows (``len = rows + 1``; need not start at 0).
    indices : array_like of int
        Destination ids of this rank's rows' edges.
    weights : array_like of float, optional
    n : int, optional
        Number of vertices; by default the total row count.
    comm : mpi4py.MPI.Intracomm, optional
    row_start : int, optional
        Global id of this rank's first row; by default the rows of lower ranks come first.
    partitioner, vertex_ids, directed, name
        As for :func:`from_edges`.
    """
    from hpcdist.runtime.comm import MPI, as_comm

    indptr = np.asarray(indptr, dtype=np.int64)
    rows = indptr.shape[0] - 1
    if row_start is None or n is None:
        probe = as_comm(comm)
        try:
            if row_start is None:
                before = probe.exscan(rows, op=MPI.SUM)  # collective: every rank calls it
                row_start = int(before or 0) if probe.Get_rank() > 0 else 0
            if n is None:
                n = int(probe.allreduce(rows, op=MPI.SUM))
        finally:
            probe.Free()
    counts = np.diff(indptr)
    src = np.repeat(np.arange(row_start, row_start + rows, dtype=np.int64), counts)
    indices = np.asarray(indices, dtype=np.int64)
    n_local = int(indptr[-1] - indptr[0])
    # Either this rank's own indices, or a whole array indexed by global offsets.
    dst = indices[:n_local] if indices.shape[0] == n_local else indices[indptr[0] : indptr[-1]]
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64)
        weights = weights[:n_local] if weights.shape[0] == n_local else weights[indptr[0] : indptr[-1]]
    return from_edges(src, dst, weights, n, comm, partitioner=partitioner, vertex_ids=vertex_ids, directed=directed, name=name)


def evaluate_partition(
    edgelist: EdgeList, comm: "MPI.Intracomm", parts: int, method: str = "block"
) -> PartitionReport:
    """Partition quality for ``parts`` parts (any number, not only the rank count).

    Collective over ``comm``. Runs the partitioner exactly as :func:`from_edgelist`
    would, without building the graph: deduplicate, partition, renumber, count.
    """
    _validate(comm, edgelist)
    with collective(comm):
        if parts < 1:
            raise InputError(f"--parts must be at least 1, got {parts}")
        if parts > edgelist.n_vertices:  # per-part arrays would be as many as the parts, on every rank
            raise InputError(f"--parts {parts:,} is more than the {edgelist.n_vertices:,} vertices of the graph")
    rank, size = comm.Get_rank(), comm.Get_size()
    n = edgelist.n_vertices
    bstart, bstop = owned_range(n, size, rank)
    src, dst = redistribute(comm, block_owner(edgelist.dst, n, size), edgelist.src, edgelist.dst)
    src, dst, _ = dedupe_edges(src, dst, None)
    in_degree = np.bincount(dst - bstart, minlength=bstop - bstart).astype(np.int64)
    part = compute_partition(comm, method, parts, n, in_degree, (src, dst))
    dst_part = part.owner(part.block_new_ids[dst - bstart])
    usrc, inv = np.unique(src, return_inverse=True)
    src_part = part.owner(directory_lookup(comm, usrc, n, part.block_new_ids))[inv]
    return partition_quality(comm, part, src, dst_part, src_part, n)
