"""Edge partitioning (vertex-cut and hybrid-cut), replication metrics, and the comparison report.

A *vertex partition* (``block``, ``metis``, ``hash``; :mod:`hpcdist.graph.partition`)
gives every vertex one owner and stores each edge at its destination's owner; a remote
source becomes a ghost, and an edge whose endpoints have different owners is *cut*.

An *edge partition* assigns every edge to a part instead, and a vertex is *replicated*
on every part that holds one of its edges: one replica is the **master** (here the
vertex's hash owner, ``splitmix64(v) mod K``, so a master is found without a table) and
the others are **mirrors**. The quality measure is the replication factor,
``(masters + mirrors) / n``; its vertex-partition equivalent is ``1 + ghosts / n``.

Placements (pure functions of the edge and the degrees, so the result does not depend
on the number of ranks computing it):

``vertex-cut`` (2-D grid)
    The ``K`` parts form a ``pr x pc`` grid (:func:`grid_shape`, as square as ``K``
    allows). Vertex ``v``'s master cell is ``(row(v), col(v))``; edge ``(u, v)`` goes to
    cell ``(row(u), col(v))``. Every replica of ``v`` lies in row ``row(v)`` (its
    out-edges) or column ``col(v)`` (its in-edges), so a vertex has at most
    ``pr + pc - 1`` replicas, whatever its degree.
``dbh`` (degree-based hashing)
    Edge ``(u, v)`` goes to the master of its endpoint of lower total degree (ties: the
    lower id). High-degree vertices are the ones cut, which on power-law graphs is
    cheaper than cutting many low-degree ones.
``hybrid`` (PowerLyra's hybrid-cut)
    A vertex of in-degree at most ``threshold`` (default
    :data:`~hpcdist.graph.partition.HYBRID_THRESHOLD`, 100 as PowerLyra) keeps all its
    in-edges on its master (edge-cut); the in-edges of a higher-degree vertex go to
    their *source's* master (vertex-cut), spreading the hubs' edges.

Synchronisation per superstep (a pull-mode gather-apply-scatter, 8 bytes per value):
a mirror that holds in-edges of ``v`` sends its partial aggregate to the master
(*gather*), and the master sends the new value to every mirror that holds out-edges of
``v`` (*scatter*). A vertex partition is the special case with no gather (all in-edges
are at the owner) and one scatter value per ghost.

All counts are computed distributed: each rank places its share of the edges, and the
distinct ``(vertex, part)`` pairs travel to the vertex's directory rank (one
all-to-all) where duplicates from different ranks collapse; only ``O(K)`` sums are
reduced. No rank holds all the edges or an ``O(n)`` table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from hpcdist.graph.partition import (
    EDGE_METHODS,
    HYBRID_THRESHOLD,
    METIS_MAX_EDGES,
    PartitionReport,
    balance,
    block_owner,
    hash_parts,
)
from hpcdist.runtime.errors import InputError

if TYPE_CHECKING:
    from mpi4py import MPI

    from hpcdist.graph.edgelist import EdgeList

__all__ = [
    "VALUE_BYTES",
    "COMPARE_METHODS",
    "grid_shape",
    "master_parts",
    "grid_edge_parts",
    "dbh_edge_parts",
    "hybrid_edge_parts",
    "place_edges",
    "replica_counts",
    "EdgePartitionReport",
    "edge_partition_quality",
    "evaluate_edge_partition",
    "ComparisonRow",
    "row_from_vertex_report",
    "compare_partitioners",
    "comparison_lines",
]

#: Bytes per synchronised vertex value (float64).
VALUE_BYTES = 8
#: The methods ``hpcdist partition --compare`` reports, in table order.
COMPARE_METHODS = ("block", "metis", "hash") + EDGE_METHODS


# ---------------------------------------------------------------------------------------
# Pure placement arithmetic


def grid_shape(parts: int) -> tuple[int, int]:
    """The most square ``(pr, pc)`` with ``pr * pc == parts`` and ``pr <= pc``.

    A prime ``parts`` gives ``(1, parts)``: the grid bound ``pr + pc - 1`` is then
    ``parts`` and bounds nothing.
    """
    if parts < 1:
        raise ValueError(f"grid_shape: parts must be at least 1, got {parts}")
    pr = int(np.sqrt(parts))
    while parts % pr:
        pr -= 1
    return pr, parts // pr


def master_parts(ids: np.ndarray, parts: int) -> np.ndarray:
    """The part holding each vertex's master: its hash owner ``splitmix64(v) mod parts``."""
    return hash_parts(np.asarray(ids, dtype=np.int64), parts)


def grid_edge_parts(src: np.ndarray, dst: np.ndarray, parts: int) -> np.ndarray:
    """2-D placement: edge ``(u, v)`` to grid cell ``(row(master(u)), col(master(v)))``."""
    _, pc = grid_shape(parts)
    row = master_parts(src, parts) // pc
    col = master_parts(dst, parts) % pc
    return (row * pc + col).astype(np.int64)


def dbh_edge_parts(
    src: np.ndarray, dst: np.ndarray, deg_src: np.ndarray, deg_dst: np.ndarray, parts: int
) -> np.ndarray:
    """Degree-based hashing: each edge to the master of its lower-degree endpoint.

    Ties go to the lower id, so that ``(u, v)`` and ``(v, u)`` land together.
    """
    src, dst = np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)
    deg_src, deg_dst = np.asarray(deg_src), np.asarray(deg_dst)
    take_src = (deg_src < deg_dst) | ((deg_src == deg_dst) & (src <= dst))
    return master_parts(np.where(take_src, src, dst), parts)


def hybrid_edge_parts(
    src: np.ndarray, dst: np.ndarray, in_deg_dst: np.ndarray, parts: int, threshold: int = HYBRID_THRESHOLD
) -> np.ndarray:
    """PowerLyra's hybrid-cut: an in-edge of a vertex of in-degree <= ``threshold`` goes to
    the destination's master, one of a higher-degree vertex to the source's master."""
    high = np.asarray(in_deg_dst) > threshold
    return master_parts(np.where(high, src, dst), parts)


def place_edges(
    method: str,
    src: np.ndarray,
    dst: np.ndarray,
    parts: int,
    *,
    in_deg_dst: np.ndarray | None = None,
    deg_src: np.ndarray | None = None,
    deg_dst: np.ndarray | None = None,
    threshold: int = HYBRID_THRESHOLD,
) -> np.ndarray:
    """The part of each edge under ``method`` (one of :data:`EDGE_METHODS`).

    Parameters
    ----------
    method : {"vertex-cut", "dbh", "hybrid"}
    src, dst : numpy.ndarray of int64
        The edges (deduplicated, for the degrees to mean what they say).
    parts : int
    in_deg_dst : numpy.ndarray, optional
        In-degree of each edge's destination (``hybrid``).
    deg_src, deg_dst : numpy.ndarray, optional
        Total (in + out) degree of each edge's endpoints (``dbh``).
    threshold : int
        ``hybrid``'s in-degree threshold.
    """
    if method == "vertex-cut":
        return grid_edge_parts(src, dst, parts)
    if method == "dbh":
        if deg_src is None or deg_dst is None:
            raise ValueError("place_edges: dbh needs deg_src and deg_dst")
        return dbh_edge_parts(src, dst, deg_src, deg_dst, parts)
    if method == "hybrid":
        if in_deg_dst is None:
            raise ValueError("place_edges: hybrid needs in_deg_dst")
        return hybrid_edge_parts(src, dst, in_deg_dst, parts, threshold)
    raise ValueError(f"place_edges: unknown edge partitioner {method!r}")


def _mirror_keys(src: np.ndarray, dst: np.ndarray, edge_part: np.ndarray, parts: int) -> np.ndarray:
    """Distinct mirror records of these edges: ``((v * parts + p) * 2 + role)``.

    ``role`` is 0 where ``v`` is a source on part ``p`` (the part needs ``v``'s value:
    scatter) and 1 where it is a destination (the part holds a partial aggregate of
    ``v``: gather). Pairs with ``p == master(v)`` are masters, not mirrors, and dropped.
    """
    k = np.int64(parts)
    edge_part = np.asarray(edge_part, dtype=np.int64)
    out = []
    for ids, role in ((np.asarray(src, dtype=np.int64), 0), (np.asarray(dst, dtype=np.int64), 1)):
        mirror = edge_part != master_parts(ids, parts)
        out.append((ids[mirror] * k + edge_part[mirror]) * 2 + role)
    return np.unique(np.concatenate(out))


def replica_counts(src: np.ndarray, dst: np.ndarray, edge_part: np.ndarray, n: int, parts: int) -> dict[str, Any]:
    """Serial replication counts of a whole edge partition (the reference for the
    distributed :func:`edge_partition_quality`, and what the unit tests check by hand).

    Returns
    -------
    dict
        ``edges``, ``masters``, ``mirrors`` (per part, int64 arrays), ``n_mirrors``,
        ``gather`` and ``scatter`` (mirror values per superstep), ``cut_vertices``
        (vertices with at least one mirror).
    """
    keys = _mirror_keys(src, dst, edge_part, parts)
    pairs = np.unique(keys // 2)
    return {
        "edges": np.bincount(np.asarray(edge_part, dtype=np.int64), minlength=parts).astype(np.int64),
        "masters": np.bincount(master_parts(np.arange(n), parts), minlength=parts).astype(np.int64),
        "mirrors": np.bincount(pairs % parts, minlength=parts).astype(np.int64),
        "n_mirrors": int(pairs.shape[0]),
        "gather": int((keys & 1).sum()),
        "scatter": int(keys.shape[0] - (keys & 1).sum()),
        "cut_vertices": int(np.unique(pairs // parts).shape[0]),
    }


# ---------------------------------------------------------------------------------------
# Reports


@dataclass
class EdgePartitionReport:
    """How good an edge partition is: balance, replication and synchronisation traffic.

    Attributes
    ----------
    method : str
    parts : int
    edges, masters, mirrors : numpy.ndarray of int64, shape (parts,)
        Per part: edges placed there, vertex masters, vertex mirrors.
    n_vertices, n_edges : int
    gather_values, scatter_values : int
        Mirror values sent to masters / masters send to mirrors in one superstep.
    cut_vertices : int
        Vertices with at least one mirror.
    threshold : int or None
        ``hybrid``'s in-degree threshold.
    """

    method: str
    parts: int
    edges: np.ndarray
    masters: np.ndarray
    mirrors: np.ndarray
    n_vertices: int
    n_edges: int
    gather_values: int
    scatter_values: int
    cut_vertices: int
    threshold: int | None = None
    value_bytes: int = VALUE_BYTES
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def replicas(self) -> np.ndarray:
        """Vertex copies (masters + mirrors) per part: the vertex state each part holds."""
        return self.masters + self.mirrors

    @property
    def n_mirrors(self) -> int:
        return int(self.mirrors.sum())

    @property
    def replication_factor(self) -> float:
        return (self.n_vertices + self.n_mirrors) / self.n_vertices if self.n_vertices else 1.0

    @property
    def edge_balance(self) -> float:
        return balance(self.edges)

    @property
    def vertex_balance(self) -> float:
        return balance(self.replicas)

    @property
    def sync_bytes(self) -> int:
        """Bytes of one gather (mirror -> master) plus one scatter (master -> mirror)."""
        return (self.gather_values + self.scatter_values) * self.value_bytes

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "kind": "edge partition",
            "parts": self.parts,
            "n_vertices": self.n_vertices,
            "n_edges": self.n_edges,
            "edges": self.edges.tolist(),
            "masters": self.masters.tolist(),
            "mirrors": self.mirrors.tolist(),
            "n_mirrors": self.n_mirrors,
            "cut_vertices": self.cut_vertices,
            "replication_factor": self.replication_factor,
            "edge_balance": self.edge_balance,
            "vertex_balance": self.vertex_balance,
            "gather_values": self.gather_values,
            "scatter_values": self.scatter_values,
            "sync_bytes": self.sync_bytes,
            **({"hybrid_threshold": self.threshold} if self.threshold is not None else {}),
        }

    def lines(self, per_part: bool = True) -> list[str]:
        """Human-readable report lines."""
        from hpcdist.graph.partition import _bytes

        extra = f" (in-degree threshold {self.threshold})" if self.threshold is not None else ""
        out = [
            f"edge partition {self.method}{extra} into {self.parts} parts: "
            f"{self.n_vertices:,} vertices, {self.n_edges:,} edges",
            f"  balance (max/mean): edges {self.edge_balance:.3f}, vertex replicas {self.vertex_balance:.3f}",
            f"  replication factor {self.replication_factor:.3f}: {self.n_mirrors:,} mirrors, "
            f"{self.cut_vertices:,} vertices cut",
            f"  one superstep: gather {self.gather_values:,} + scatter {self.scatter_values:,} values "
            f"= {_bytes(self.sync_bytes)}",
        ]
        if per_part:
            out.append("  part      edges    masters    mirrors")
            shown = range(self.parts) if self.parts <= 16 else list(range(8)) + list(range(self.parts - 8, self.parts))
            for p in shown:
                out.append(f"  {p:4d} {self.edges[p]:10,d} {self.masters[p]:10,d} {self.mirrors[p]:10,d}")
        return out


def edge_partition_quality(
    comm: "MPI.Intracomm",
    method: str,
    src: np.ndarray,
    dst: np.ndarray,
    edge_part: np.ndarray,
    n: int,
    parts: int,
    threshold: int | None = None,
) -> EdgePartitionReport:
    """Replication, balance and traffic of an edge partition, from this rank's edges.

    Collective over ``comm``. The distinct mirror records of this rank's edges travel to
    their vertex's directory rank (``block_owner(v, n, size)``, one all-to-all), where
    records of the same ``(vertex, part)`` from different ranks collapse; the ``O(parts)``
    counts are then summed with one allreduce.

    Parameters
    ----------
    src, dst, edge_part : numpy.ndarray of int64
        This rank's share of the (deduplicated) edges and the part of each.
    n, parts : int
    """
    from hpcdist.graph.exchange import redistribute
    from hpcdist.runtime.comm import MPI
    from hpcdist.runtime.ranges import owned_range

    rank, size = comm.Get_rank(), comm.Get_size()
    keys = _mirror_keys(src, dst, edge_part, parts)
    vertex = keys // (2 * np.int64(parts))
    (keys,) = redistribute(comm, block_owner(vertex, n, size), keys)
    keys = np.unique(keys)
    pairs = np.unique(keys // 2)
    start, stop = owned_range(n, size, rank)
    local = np.zeros(3 * parts + 4, dtype=np.int64)
    local[:parts] = np.bincount(np.asarray(edge_part, dtype=np.int64), minlength=parts)
    # Masters of this rank's directory block: every vertex has one, edges or not.
    local[parts : 2 * parts] = np.bincount(master_parts(np.arange(start, stop), parts), minlength=parts)
    local[2 * parts : 3 * parts] = np.bincount(pairs % parts, minlength=parts)
    gather = int((keys & 1).sum())
    local[3 * parts] = gather
    local[3 * parts + 1] = keys.shape[0] - gather
    # The pairs of one vertex all sit on its directory rank, so distinct vertices add up.
    local[3 * parts + 2] = np.unique(pairs // parts).shape[0]
    local[3 * parts + 3] = np.asarray(src).shape[0]
    total = np.empty_like(local)
    comm.Allreduce(local, total, op=MPI.SUM)
    return EdgePartitionReport(
        method=method,
        parts=parts,
        edges=total[:parts],
        masters=total[parts : 2 * parts],
        mirrors=total[2 * parts : 3 * parts],
        n_vertices=n,
        n_edges=int(total[3 * parts + 3]),
        gather_values=int(total[3 * parts]),
        scatter_values=int(total[3 * parts + 1]),
        cut_vertices=int(total[3 * parts + 2]),
        threshold=threshold,
    )


def _check(comm: "MPI.Intracomm", method: str, parts: int, threshold: int, n_vertices: int | None = None) -> None:
    # n_vertices: the reports bound the part count by it; the engine (gas.py) passes
    # none, as its parts are the ranks, which may outnumber a tiny graph's vertices.
    from hpcdist.runtime.errors import collective

    with collective(comm):
        if method not in EDGE_METHODS:
            raise InputError(f"unknown edge partitioner {method!r}; choose one of {', '.join(EDGE_METHODS)}")
        if parts < 1:
            raise InputError(f"--parts must be at least 1, got {parts}")
        # Per-part arrays are replicated on every rank: an unbounded count would exhaust
        # memory long before the report, and a part without a vertex has no master.
        if n_vertices is not None and parts > n_vertices:
            raise InputError(f"--parts {parts:,} is more than the {n_vertices:,} vertices of the graph")
        if threshold < 0:
            raise InputError(f"--hybrid-threshold must be at least 0, got {threshold}")


def _dedupe_at_directory(
    el: "EdgeList", comm: "MPI.Intracomm", weights: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """Edges at their destination's directory rank, duplicates collapsed (as the graph
    engine stores them), and the in-degree of the directory block's vertices.

    Collective over ``comm``. Checks the edge list first (the engine's messages:
    negative weights, ids out of range).

    Parameters
    ----------
    el : EdgeList
        This rank's share of the edges.
    comm : mpi4py.MPI.Intracomm
    weights : bool
        Also move the edge weights (when ``el`` has them); duplicates keep the smallest,
        as ``DistGraph`` does.

    Returns
    -------
    src, dst : numpy.ndarray of int64
        Input ids, sorted by (dst, src), one edge per pair.
    w : numpy.ndarray of float64 or None
        The weight of each edge; None unless ``weights`` and ``el`` is weighted.
    in_degree : numpy.ndarray of int64
        In-degree of each vertex of this rank's directory block.
    """
    from hpcdist.graph.distgraph import _validate, dedupe_edges
    from hpcdist.graph.exchange import redistribute
    from hpcdist.runtime.ranges import owned_range

    _validate(comm, el)
    rank, size = comm.Get_rank(), comm.Get_size()
    n = el.n_vertices
    bstart, bstop = owned_range(n, size, rank)
    with_w = weights and el.weights is not None
    moved = redistribute(comm, block_owner(el.dst, n, size), el.src, el.dst, *((el.weights,) if with_w else ()))
    src, dst, w = dedupe_edges(moved[0], moved[1], moved[2] if with_w else None)
    in_degree = np.bincount(dst - bstart, minlength=bstop - bstart).astype(np.int64)
    return src, dst, w, in_degree


def _place_distributed(
    comm: "MPI.Intracomm",
    method: str,
    src: np.ndarray,
    dst: np.ndarray,
    in_degree: np.ndarray,
    n: int,
    parts: int,
    threshold: int,
) -> np.ndarray:
    """Parts of this rank's edges, which sit at their destination's directory rank."""
    from hpcdist.graph.distgraph import directory_lookup
    from hpcdist.graph.exchange import redistribute
    from hpcdist.runtime.ranges import owned_range

    rank, size = comm.Get_rank(), comm.Get_size()
    bstart, bstop = owned_range(n, size, rank)
    if method == "vertex-cut":
        return place_edges(method, src, dst, parts)
    if method == "hybrid":
        return place_edges(method, src, dst, parts, in_deg_dst=in_degree[dst - bstart], threshold=threshold)
    # dbh: total degree = in + out; out-degrees are summed at the source's directory rank,
    # then each distinct source asks for its degree there (the destinations are local).
    degree = in_degree.copy()
    u, c = np.unique(src, return_counts=True)
    u, c = redistribute(comm, block_owner(u, n, size), u, c.astype(np.int64))
    np.add.at(degree, u - bstart, c)
    usrc, inv = np.unique(src, return_inverse=True)
    deg_src = directory_lookup(comm, usrc, n, degree)[inv]
    return place_edges(method, src, dst, parts, deg_src=deg_src, deg_dst=degree[dst - bstart])


def evaluate_edge_partition(
    edgelist: "EdgeList",
    comm: "MPI.Intracomm",
    parts: int,
    method: str = "vertex-cut",
    threshold: int = HYBRID_THRESHOLD,
) -> EdgePartitionReport:
    """Place the edges with an edge partitioner and report its quality.

    Collective over ``comm``. The result depends only on the graph, ``parts``,
    ``method`` and ``threshold``, not on the number of ranks.

    Parameters
    ----------
    edgelist : EdgeList
        This rank's share of the edges (duplicates collapse first, as in the engine).
    parts : int
        Number of parts, 1 to the vertex count (any, not only the rank count).
    method : {"vertex-cut", "dbh", "hybrid"}
    threshold : int
        ``hybrid``: in-degree above which a vertex's in-edges are spread.

    Raises
    ------
    InputError
        Collectively, for an unknown method, a negative threshold or a part count
        outside 1..n_vertices.
    """
    method = (method or "").lower()
    _check(comm, method, parts, threshold, edgelist.n_vertices)
    src, dst, _, in_degree = _dedupe_at_directory(edgelist, comm)
    n = edgelist.n_vertices
    edge_part = _place_distributed(comm, method, src, dst, in_degree, n, parts, threshold)
    return edge_partition_quality(
        comm, method, src, dst, edge_part, n, parts, threshold if method == "hybrid" else None
    )


# ---------------------------------------------------------------------------------------
# The comparison


@dataclass
class ComparisonRow:
    """One partitioner's line of the comparison table (vertex and edge partitions alike).

    ``cut`` is the edge-cut fraction for a vertex partition and the fraction of vertices
    cut (with mirrors) for an edge partition; ``replication`` is ``1 + ghosts / n`` for a
    vertex partition and ``(masters + mirrors) / n`` for an edge partition.
    """

    method: str
    kind: str
    parts: int
    cut: float
    replication: float
    edge_balance: float
    vertex_balance: float
    sync_bytes: int
    skipped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        # A skipped row's NaNs become null: NaN is not JSON.
        return {k: (None if isinstance(v, float) and v != v else v) for k, v in self.__dict__.items()}


def row_from_vertex_report(r: PartitionReport) -> ComparisonRow:
    """The comparison row of a vertex partition's :class:`PartitionReport`."""
    n = r.n_vertices
    return ComparisonRow(
        method=r.method,
        kind="edge-cut",
        parts=r.parts,
        cut=r.edge_cut_fraction,
        replication=1.0 + r.n_ghosts / n if n else 1.0,
        edge_balance=r.edge_balance,
        vertex_balance=r.vertex_balance,
        # Every ghost receives its owner's value; the in-edges are all at the owner, so
        # nothing is gathered back.
        sync_bytes=r.n_ghosts * VALUE_BYTES,
    )


def _row_from_edge_report(r: EdgePartitionReport) -> ComparisonRow:
    return ComparisonRow(
        method=r.method,
        kind="vertex-cut",
        parts=r.parts,
        cut=r.cut_vertices / r.n_vertices if r.n_vertices else 0.0,
        replication=r.replication_factor,
        edge_balance=r.edge_balance,
        vertex_balance=r.vertex_balance,
        sync_bytes=r.sync_bytes,
    )


def compare_partitioners(
    edgelist: "EdgeList",
    comm: "MPI.Intracomm",
    parts: int,
    methods: tuple[str, ...] = COMPARE_METHODS,
    threshold: int = HYBRID_THRESHOLD,
) -> list[ComparisonRow]:
    """Evaluate each partitioner on the same edges; one row each, in ``methods`` order.

    Collective over ``comm``. ``metis`` is skipped (a row with ``skipped`` set) on
    graphs above :data:`~hpcdist.graph.partition.METIS_MAX_EDGES` edges, where it
    would refuse to run.
    """
    from hpcdist.graph.distgraph import evaluate_partition
    from hpcdist.runtime.comm import MPI

    _check(comm, "vertex-cut", parts, threshold, edgelist.n_vertices)
    rows: list[ComparisonRow] = []
    n_input = int(comm.allreduce(edgelist.n_local_edges, op=MPI.SUM))
    for method in methods:
        if method in EDGE_METHODS:
            rows.append(_row_from_edge_report(evaluate_edge_partition(edgelist, comm, parts, method, threshold)))
        elif method == "metis" and n_input > METIS_MAX_EDGES:
            nan = float("nan")
            rows.append(ComparisonRow(method, "edge-cut", parts, nan, nan, nan, nan, 0,
                                      skipped=f"more than {METIS_MAX_EDGES:,} edges"))
        else:
            rows.append(row_from_vertex_report(evaluate_partition(edgelist, comm, parts, method)))
    return rows


def comparison_lines(rows: list[ComparisonRow], title: str = "") -> list[str]:
    """The comparison as a text table."""
    from hpcdist.graph.partition import _bytes

    out = [title] if title else []
    out.append(f"{'method':<11} {'kind':<10} {'cut %':>7} {'replication':>11} {'edge bal':>8} "
               f"{'vertex bal':>10} {'sync/step':>11}")
    for r in rows:
        if r.skipped:
            out.append(f"{r.method:<11} {r.kind:<10} skipped: {r.skipped}")
            continue
        out.append(f"{r.method:<11} {r.kind:<10} {100 * r.cut:7.2f} {r.replication:11.3f} {r.edge_balance:8.3f} "
                   f"{r.vertex_balance:10.3f} {_bytes(r.sync_bytes):>11}")
    out.append("cut %: edges cut (edge-cut) or vertices with mirrors (vertex-cut); replication: 1 + ghosts/n "
               "or (masters + mirrors)/n;")
    out.append("vertex bal: owned vertices (edge-cut) or replicas (vertex-cut); sync/step: 8 B per ghost, "
               "or per mirror gathered + scattered")
    return out
