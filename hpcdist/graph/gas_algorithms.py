"""PageRank, BFS, connected components and SSSP by gather-apply-scatter on a vertex-cut.

The algorithms of :mod:`hpcdist.graph.algorithms` for a :class:`~hpcdist.graph.gas.VertexCutGraph`
(edges placed by ``vertex-cut``, ``dbh`` or ``hybrid``; every vertex a master plus
mirrors). Each superstep is *scatter* (masters -> source mirrors, one neighbourhood
collective), local work on the part's edges, *gather* (destination mirrors -> masters,
one neighbourhood collective, combined with ``min`` or ``+``) and *apply* at the
masters, then one small allreduce that decides whether to go on.

Results equal the edge-cut algorithms' (and scipy's):

* :func:`bfs_gas`: hop distance (int64, -1 unreached) and the parent (original id of
  the in-neighbour on the previous level with the smallest parent key, the edge-cut
  rule: highest global out-degree, then smallest input id); direction-optimizing:
  top-down levels walk only the frontier's out-edges (the local edges grouped by
  source, :meth:`VertexCutGraph.local_out`), bottom-up levels
  check the unreached destinations' in-edges against the frontier flags; either way
  the min of the candidate parents is gathered.
* :func:`connected_components_gas`: the smallest original id of each (weakly)
  connected component, by FastSV (as :mod:`hpcdist.graph.algorithms.cc`) on parent
  pointers named by input id; a pointer is routed to its master by its hash, so no
  table is needed. Both edge directions count: the grandparents are scattered to both
  kinds of mirror and the minima gathered back from both.
* :func:`sssp_gas`: rounds that relax the vertices whose distance changed, the lowest
  pending bucket ``floor(dist / delta)`` of them at a time, as delta-stepping orders its
  work (``delta`` by default the edge-cut's ``auto_delta``). The result is the fixed
  point of ``d[v] = min(d[v], d[u] + w)`` reached from above, which is unique, so the
  distances are bit for bit Dijkstra's.
* :func:`pagerank_gas`: PageRank (networkx semantics, weighted when the graph is); the
  in-edge sums of a vertex are split over parts and are added exactly in fixed point,
  so the values are the same bits on every rank count and edge partitioner; they
  agree with the edge-cut run (floating-point sums) to rounding, not bit for bit.

All return a :class:`VertexCutResult`: a :class:`~hpcdist.graph.results.VertexResult`
whose ``graph`` is the vertex-cut graph, so ``block_values()``, ``gather_arrays()``,
``top()`` and ``to_h5()`` write the same layout as an edge-cut run. Local compute is numpy.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from hpcdist.graph.bsp import BSPRun, SuperstepMetrics
from hpcdist.graph.results import VertexResult
from hpcdist.runtime.errors import InputError, collective

if TYPE_CHECKING:
    from hpcdist.graph.gas import VertexCutGraph

__all__ = ["VertexCutResult", "pagerank_gas", "bfs_gas", "connected_components_gas", "sssp_gas", "validate_bfs_gas"]

_NONE = np.iinfo(np.int64).max  # "no candidate" in min-gathers of ids


class VertexCutResult(VertexResult):
    """A :class:`VertexResult` on a :class:`~hpcdist.graph.gas.VertexCutGraph`: the same
    output (``to_h5`` datasets ``result``, ``vertex_ids`` and the extras, in input order),
    with the edge partitioner and its replication factor in the attributes."""

    def attributes(self, setup_seconds: float | None = None) -> dict[str, Any]:
        """The HDF5 attributes of :meth:`VertexResult.attributes` plus the edge partition's.

        Parameters
        ----------
        setup_seconds : float, optional
            Read-and-partition time (default: the graph's build time).

        Returns
        -------
        dict
            The run's attributes (algorithm, sizes, ranks, timings, scalar params) with
            ``partitioner`` the edge partitioner, plus ``replication_factor``
            (``(masters + mirrors) / n``) and, for ``hybrid``, ``hybrid_threshold``.
        """
        attrs = super().attributes(setup_seconds)
        g = self.graph
        attrs["partitioner"] = g.method
        attrs["replication_factor"] = float(g.replication_factor)
        if g.threshold is not None:
            attrs["hybrid_threshold"] = int(g.threshold)
        return attrs


class _Steps:
    """Times and counts the supersteps of a GAS loop into the engine's :class:`BSPRun`
    records (what ``--metrics`` and the CLI summary read)."""

    def __init__(self, graph: "VertexCutGraph", name: str, progress: bool) -> None:
        self.comm = graph.comm
        self.metrics: list[SuperstepMetrics] = []
        self.bar = None
        if progress and self.comm.Get_rank() == 0:
            from tqdm import tqdm

            self.bar = tqdm(desc=name, unit="step", leave=False)
        self.comm.Barrier()
        self.t_start = time.perf_counter()
        self.exchange_s = 0.0

    def exchange(self, fn, *args):
        """Run one collective phase, counting its time as exchange time."""
        t = time.perf_counter()
        out = fn(*args)
        self.exchange_s += time.perf_counter() - t
        return out

    def reduce(self, local: np.ndarray, op=None) -> np.ndarray:
        """One allreduce (SUM by default) of this superstep's counts, timed as reduce time."""
        from hpcdist.runtime.comm import MPI

        t = time.perf_counter()
        out = np.empty_like(local)
        self.comm.Allreduce(local, out, op=MPI.SUM if op is None else op)
        self.reduce_s += time.perf_counter() - t
        return out

    def sums(self, arrays: list[np.ndarray]) -> list[float]:
        """Reproducible global sums of ``arrays`` (:func:`hpcdist.graph.reduce.reproducible_sums`:
        the same bits on every rank count), timed as reduce time."""
        from hpcdist.graph.reduce import reproducible_sums
        from hpcdist.kernels import numpy_ref

        t = time.perf_counter()
        out, _ = reproducible_sums(self.comm, arrays, numpy_ref)
        self.reduce_s += time.perf_counter() - t
        return out

    def begin(self) -> None:
        self.t0 = time.perf_counter()
        self.exchange_s = 0.0
        self.reduce_s = 0.0

    def end(self, step: int, bytes_sent: int, active: int) -> None:
        total = time.perf_counter() - self.t0
        self.metrics.append(SuperstepMetrics(step, total - self.exchange_s - self.reduce_s, self.exchange_s,
                                             self.reduce_s, int(bytes_sent), int(active)))
        if self.bar is not None:
            self.bar.update(1)

    def finish(self, converged: bool) -> BSPRun:
        from hpcdist.runtime.comm import MPI

        if self.bar is not None:
            self.bar.close()
        seconds = self.comm.allreduce(time.perf_counter() - self.t_start, op=MPI.MAX)
        return BSPRun(supersteps=len(self.metrics), converged=converged, seconds=float(seconds),
                      metrics=self.metrics)


def _sync_bytes(graph: "VertexCutGraph", itemsize: int, scatter: bool = True, gather: bool = True) -> int:
    """Bytes this rank sends in one scatter and/or gather of ``itemsize``-byte values."""
    n = (graph.scatter_plan.layout.n_send if scatter else 0) + (graph.gather_plan.layout.n_ghost if gather else 0)
    return n * itemsize if graph.size > 1 else 0


def _alltoall_bytes(graph: "VertexCutGraph", dest: np.ndarray, itemsize: int) -> int:
    """Bytes this rank sends in one :func:`hpcdist.graph.exchange.redistribute` of
    ``itemsize``-byte items to ranks ``dest``: the items for other ranks and the int64
    counts it sends them first."""
    if graph.size == 1:
        return 0
    return itemsize * int(np.count_nonzero(dest != graph.rank)) + 8 * (graph.size - 1)


def _edges_of(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the edges of ``rows`` in a CSR, and the row of each."""
    starts = indptr[rows]
    lens = indptr[rows + 1] - starts
    total = int(lens.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    shift = starts - (np.cumsum(lens) - lens)
    return np.repeat(shift, lens) + np.arange(total, dtype=np.int64), np.repeat(rows, lens)


def _combine_min(graph: "VertexCutGraph", cand: np.ndarray, empty) -> np.ndarray:
    """Gather with ``min``: lower ``cand[:n_owned]`` by every destination mirror's partial;
    return the masters that received a partial other than ``empty`` (unsorted, repeats)."""
    lay = graph.gather_plan.layout
    recv = graph.gather_plan.reverse_gather(cand)
    if not recv.shape[0]:
        return np.empty(0, dtype=np.int64)
    got = recv != empty
    idx = lay.send_index[got]
    np.minimum.at(cand, idx, recv[got])
    return idx


# ---------------------------------------------------------------------------------------
# BFS


def bfs_gas(graph: "VertexCutGraph", source: int, *, direction: str = "auto", alpha: float | None = None,
            beta: float | None = None, progress: bool = False) -> VertexCutResult:
    """Breadth-first search from ``source`` (original id) along the edges' direction,
    direction-optimizing as the edge-cut :func:`hpcdist.graph.algorithms.bfs.bfs`.

    Collective over ``graph.comm``. One superstep per level; the masters of the frontier
    flag themselves and the flags are scattered to the source mirrors. Then

    * **top-down**: every part walks its frontier vertices' local out-edges
      (:meth:`VertexCutGraph.local_out`) and keeps, per destination, the smallest parent
      key (:func:`hpcdist.graph.algorithms.bfs.parent_keys`: global out-degree down, input
      id up) among the frontier sources;
    * **bottom-up**: the masters' reached flags are scattered to the destination mirrors
      too, and every part checks the in-edges of its still-unreached destinations
      against the frontier flags (the edges of reached destinations are dropped for good,
      so later bottom-up levels look at fewer), keeping the same per-destination minimum.

    Either way the mirrors' candidates are min-gathered, and the unreached masters with
    a candidate join the next level with it as parent: the parent is the in-neighbour on
    the previous level with the smallest key in both directions, so the distances
    and parents do not depend on the direction (nor on the rank count or partitioner).
    ``auto`` switches with Beamer's rule on global counts, the edge-cut's: bottom-up when
    the frontier's out-edges exceed the unreached vertices' in-edges / ``alpha`` (and
    the frontier grows), back top-down when the frontier shrinks below ``n / beta`` and
    its out-edges no longer exceed those in-edges.

    Parameters
    ----------
    graph : VertexCutGraph
    source : int
    direction : {"auto", "top-down", "bottom-up"}
    alpha, beta : float, optional
        Beamer's thresholds (default: the edge-cut's ``ALPHA``, ``BETA``).
    progress : bool

    Returns
    -------
    VertexCutResult
        As :func:`hpcdist.graph.algorithms.bfs.bfs`: ``values`` the hop distance (int64,
        -1 unreached), ``extras["parent"]`` the original id of the parent (the
        in-neighbour on the previous level of highest out-degree, the smallest input id
        among equals; -1 for the root and the unreached). ``params``: ``source``, ``direction``, ``levels``,
        ``reached``, ``edges_traversed``, ``edges_examined``, ``teps``, ``directions``
        (``T``/``B`` per level).
    """
    from hpcdist.graph.algorithms.bfs import ALPHA, BETA
    from hpcdist.runtime.comm import MPI

    g = graph
    with collective(g.comm):
        if direction not in ("auto", "top-down", "bottom-up"):
            raise InputError(f"bfs: direction must be auto, top-down or bottom-up, got {direction!r}")
    alpha = ALPHA if alpha is None else float(alpha)
    beta = BETA if beta is None else float(beta)
    no = g.n_owned
    src_local = g.locate(source, "bfs: source vertex")
    keys = g.derived("bfs_parent_keys", lambda: _bfs_parent_key_columns(g))
    indptr, out_dst, _ = g.local_out()
    in_deg = g.derived("in_degree", lambda: np.rint(g.gather_sum(
        np.bincount(g.dst_local, minlength=g.n_gather).astype(np.float64))).astype(np.int64))
    flag = np.zeros(g.n_scatter, dtype=np.uint8)
    seen = np.zeros(g.n_gather, dtype=np.uint8)  # bottom-up: reached, at masters and destination mirrors
    cand = np.full(g.n_gather, _NONE, dtype=np.int64)
    dist = np.full(no, -1, dtype=np.int64)
    parent = np.full(no, -1, dtype=np.int64)  # input id of the parent
    id_mask = (1 << max(1, int(g.n_vertices - 1).bit_length())) - 1
    frontier = np.empty(0, dtype=np.int64)
    if src_local >= 0:
        dist[src_local] = 0
        frontier = np.array([src_local], dtype=np.int64)
    first = g.comm.allreduce(np.array([int(g.out_degree[frontier].sum()), int(in_deg[frontier].sum())],
                                      dtype=np.int64), op=MPI.SUM)
    out_edges = int(first[0])
    n_f, m_u = 1, int(g.n_edges - first[1])
    todo = np.arange(g.dst_local.shape[0], dtype=np.int64)  # bottom-up: edges whose destination is unreached
    steps = _Steps(g, "bfs", progress)
    top_down_bytes = _sync_bytes(g, 1, scatter=True, gather=False) + _sync_bytes(g, 8, scatter=False, gather=True)
    bottom_up_bytes = top_down_bytes + (g.gather_plan.layout.n_send if g.size > 1 else 0)
    mode = "B" if direction == "bottom-up" else "T"
    modes: list[str] = []
    level, reached, examined = 0, 1, 0
    converged = False
    while True:
        steps.begin()
        flag[:no][frontier] = 1
        steps.exchange(g.scatter, flag)
        if mode == "T":
            active = np.concatenate([frontier, no + np.flatnonzero(flag[no:])])
            pos, rows = _edges_of(indptr, active)
            d = out_dst[pos]
            np.minimum.at(cand, d, keys[rows])
            looked = pos.shape[0]
        else:
            seen[:no] = dist >= 0
            steps.exchange(g.scatter_dst, seen)
            todo = todo[seen[g.dst_local[todo]] == 0]
            hit = todo[flag[g.src_local[todo]] == 1]
            d = g.dst_local[hit]
            np.minimum.at(cand, d, keys[g.src_local[hit]])
            looked = todo.shape[0]
        remote = steps.exchange(_combine_min, g, cand, _NONE)
        touched = np.unique(np.concatenate([d[d < no], remote]))
        new = touched[(dist[touched] < 0) & (cand[touched] != _NONE)]
        dist[new] = level + 1
        parent[new] = cand[new] & id_mask  # the key's low bits: the input id
        cand[d] = _NONE
        cand[touched] = _NONE
        flag[:no][frontier] = 0
        frontier = new
        counts = steps.reduce(np.array([new.shape[0], int(g.out_degree[new].sum()), looked,
                                        top_down_bytes if mode == "T" else bottom_up_bytes,
                                        int(in_deg[new].sum())], dtype=np.int64))
        modes.append(mode)
        new_n_f = int(counts[0])
        reached += new_n_f
        out_edges += int(counts[1])
        examined += int(counts[2])
        level += 1
        steps.end(level - 1, int(counts[3]), new_n_f)
        if new_n_f == 0:
            converged = True
            break
        m_f, m_u = int(counts[1]), m_u - int(counts[4])
        if direction == "auto":
            # Beamer's rule, as the edge-cut BFS applies it
            if mode == "T":
                mode = "B" if m_f > m_u / alpha and new_n_f > n_f else "T"
            else:
                mode = "T" if new_n_f < g.n_vertices / beta and new_n_f < n_f and m_f < m_u else "B"
        n_f = new_n_f
    run = steps.finish(converged)
    edges = out_edges if g.directed else out_edges // 2
    return VertexCutResult(
        graph=g, values=dist, algorithm="bfs", iterations=run.supersteps, converged=run.converged,
        seconds=run.seconds, run=run,
        params={"source": int(source), "backend": "numpy", "direction": direction, "levels": level,
                "reached": reached, "edges_traversed": edges, "edges_examined": examined,
                "teps": edges / run.seconds if run.seconds > 0 else 0.0, "directions": "".join(modes),
                "replication_factor": float(g.replication_factor)},
        extras={"parent": g.input_to_original(parent)},
    )


def _bfs_parent_key_columns(g: "VertexCutGraph") -> np.ndarray:
    """The edge-cut BFS's parent key (:func:`hpcdist.graph.algorithms.bfs.parent_keys`:
    global out-degree down, input id up) of every scatter-space vertex. Collective (one
    scatter)."""
    from hpcdist.graph.algorithms.bfs import parent_keys

    keys = np.zeros(g.n_scatter, dtype=np.int64)
    keys[: g.n_owned] = parent_keys(g.out_degree, g.owned_input_ids, g.n_vertices)
    return g.scatter(keys)


def validate_bfs_gas(result: VertexCutResult) -> list[str]:
    """Graph500-style checks of a :func:`bfs_gas` result (those of
    :func:`hpcdist.graph.algorithms.bfs.validate_bfs`); the problems found (empty: valid).

    Collective over ``result.graph.comm``. The distances go to both kinds of mirror and
    the parents to the destination mirrors; each part checks its edges, and the
    per-vertex findings are OR-gathered to the masters.
    """
    g = result.graph
    no = g.n_owned
    parent = result.extras["parent"]  # original ids
    d_src = np.empty(g.n_scatter, dtype=np.int64)
    d_src[:no] = result.values
    g.scatter(d_src)
    d_dst = np.empty(g.n_gather, dtype=np.int64)
    d_dst[:no] = result.values
    g.scatter_dst(d_dst)
    p_dst = np.empty(g.n_gather, dtype=np.int64)
    p_dst[:no] = parent
    g.scatter_dst(p_dst)
    orig = g.derived("scatter_original_ids", lambda: g.scatter(np.concatenate(
        [g.owned_original_ids(), np.zeros(g.n_scatter - no, dtype=np.int64)])))
    s, t = g.src_local, g.dst_local
    # 2: some in-edge of v comes from the parent, which sits one level up
    tree = (orig[s] == p_dst[t]) & (p_dst[t] >= 0) & (d_src[s] >= 0) & (d_src[s] == d_dst[t] - 1)
    # 3: no edge leaves the tree, and no edge skips a level
    bad = (d_src[s] >= 0) & ((d_dst[t] < 0) | (d_dst[t] > d_src[s] + 1))
    has_tree = _gather_any(g, tree, t)
    bad_v = _gather_any(g, bad, t)
    d = result.values
    own_orig = g.owned_original_ids()
    source = result.params["source"]
    problems: list[str] = []

    def report(what: str, mask: np.ndarray) -> None:
        if mask.any():
            first = int(np.flatnonzero(mask)[0])
            problems.append(f"{what}: {int(mask.sum())} vertices (first: {int(own_orig[first])})")

    is_root = own_orig == source
    report("root without distance 0 or with a parent", is_root & ((d != 0) | (parent != -1)))
    report("distance 0 off the root", ~is_root & (d == 0))
    report("reached vertex without a parent", ~is_root & (d > 0) & (parent < 0))
    report("unreached vertex with a parent", (d < 0) & (parent != -1))
    report("parent is not an in-neighbour one level up", (d > 0) & (parent >= 0) & ~has_tree)
    report("edge from a reached vertex to one unreached or more than one level down", bad_v)
    merged = [p for part in g.comm.allgather(problems) for p in part]
    if len(merged) > 10:
        merged = merged[:10] + [f"... and {len(merged) - 10} more"]
    return merged


def _gather_any(g: "VertexCutGraph", edge_mask: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Per master: whether any of its in-edges, on any part, has ``edge_mask`` set."""
    flags = np.zeros(g.n_gather, dtype=np.int64)
    flags[dst[edge_mask]] = -1
    return g.gather_min(flags) == -1


# ---------------------------------------------------------------------------------------
# Connected components


def connected_components_gas(graph: "VertexCutGraph", *, max_iter: int | None = None,
                             progress: bool = False) -> VertexCutResult:
    """Connected components (weakly connected for a directed graph) by FastSV.

    Collective over ``graph.comm``. Parent pointers ``f`` live at the masters, named by
    the input id of the vertex they point to (the partition-independent order of
    :mod:`hpcdist.graph.algorithms.cc`). Per iteration (superstep):

    * ``gf = f[f]``: the distinct parents are asked at their masters (all-to-all);
    * ``mngf[u] = min(gf[v])`` over both directions of every edge: ``gf`` scattered to
      the source mirrors and to the destination mirrors, one pass over the part's edges
      lowering both ends, and the minima gathered back from both kinds of mirror;
    * stochastic hooking ``f[f[u]] = min(f[f[u]], mngf[u])`` (an all-to-all to the
      parents' masters), aggressive hooking ``f[u] = min(f[u], mngf[u])`` and
      shortcutting ``f[u] = min(f[u], gf[u])``.

    It ends when no pointer changes: every component is then a star around its smallest
    input id; the label, the component's smallest original id, is reduced at that
    root's directory rank.

    Returns
    -------
    VertexCutResult
        ``values``: smallest original id in the component (int64). ``params``:
        ``components``, ``largest_component``, ``size_histogram`` (and its JSON).
    """
    import json

    from hpcdist.graph.algorithms.cc import component_labels, component_summary
    from hpcdist.graph.exchange import rank_order, redistribute
    from hpcdist.kernels import numpy_ref

    g = graph
    no, rank = g.n_owned, g.rank
    f = g.owned_input_ids.copy()
    gs = np.empty(g.n_scatter, dtype=np.int64)
    gd = np.empty(g.n_gather, dtype=np.int64)
    s, t = g.src_local, g.dst_local
    limit = g.n_vertices + 1 if max_iter is None else int(max_iter)
    # scatter + scatter_dst, then gather_src_min + gather_min: every plan both ways
    sc, ga = g.scatter_plan.layout, g.gather_plan.layout
    halo_bytes = 8 * (sc.n_send + ga.n_send + sc.n_ghost + ga.n_ghost) if g.size > 1 else 0
    steps = _Steps(g, "cc", progress)
    converged = False
    for step in range(limit):
        steps.begin()
        # gf = f[f], asked at the parents' masters
        uniq, inv = np.unique(f, return_inverse=True)
        owners = g.master_rank(uniq)
        asked, who = steps.exchange(redistribute, g.comm, owners, uniq, np.full(uniq.shape[0], rank, dtype=np.int64))
        (ans,) = steps.exchange(redistribute, g.comm, who, f[g.master_local(asked)])
        got = np.empty(uniq.shape[0], dtype=np.int64)
        got[rank_order(owners, g.comm.Get_size())] = ans
        gf = got[inv]
        sent = halo_bytes + _alltoall_bytes(g, owners, 16) + _alltoall_bytes(g, who, 8)
        gs[:no] = gf
        gd[:no] = gf
        steps.exchange(g.scatter, gs)
        steps.exchange(g.scatter_dst, gd)
        ms, md = gs.copy(), gd.copy()
        np.minimum.at(md, t, gs[s])
        np.minimum.at(ms, s, gd[t])
        steps.exchange(g.gather_src_min, ms)
        mngf = np.minimum(ms[:no], steps.exchange(g.gather_min, md))
        new = f.copy()
        hook = np.flatnonzero(mngf < gf)
        target = f[hook]
        hook_to = g.master_rank(target)
        sent += _alltoall_bytes(g, hook_to, 16)
        tt, tv = steps.exchange(redistribute, g.comm, hook_to, target, mngf[hook])
        np.minimum.at(new, g.master_local(tt), tv)
        np.minimum(new, mngf, out=new)
        np.minimum(new, gf, out=new)
        changed = int(np.count_nonzero(new != f))
        f = new
        counts = steps.reduce(np.array([changed, sent], dtype=np.int64))
        steps.end(step, int(counts[1]), int(counts[0]))
        if counts[0] == 0:
            converged = True
            break
    run = steps.finish(converged)
    labels, sizes = component_labels(g, f, numpy_ref)
    summary = component_summary(g, sizes)  # type: ignore[arg-type]  # uses graph.comm only
    return VertexCutResult(
        graph=g, values=labels, algorithm="cc", iterations=run.supersteps, converged=run.converged,
        seconds=run.seconds, run=run,
        params={"backend": "numpy", **summary, "size_histogram_json": json.dumps(summary["size_histogram"]),
                "replication_factor": float(g.replication_factor)},
    )


# ---------------------------------------------------------------------------------------
# SSSP


def sssp_gas(graph: "VertexCutGraph", source: int, *, delta: float | None = None, weighted: bool | None = None,
             progress: bool = False) -> VertexCutResult:
    """Shortest-path distances from ``source`` (original id) along the edges' direction.

    Collective over ``graph.comm``. One superstep: the masters publish the distance of
    the vertices to relax (``inf`` for the rest), scattered to the source mirrors; each
    part relaxes the published vertices' local out-edges into per-destination minima,
    which are min-gathered; a master whose distance drops is relaxed again later. Only
    the pending vertices in the lowest bucket ``floor(dist / delta)`` are relaxed in a
    superstep (delta-stepping's order: a wider bucket means fewer supersteps and more
    repeated relaxations). Whatever ``delta``, the distances are bit for bit those of
    Dijkstra (scipy) and of :func:`hpcdist.graph.algorithms.sssp.sssp`.

    Parameters
    ----------
    graph : VertexCutGraph
        Weights finite and non-negative (refused by the builders otherwise).
    source : int
    delta : float, optional
        Bucket width; None: :func:`hpcdist.graph.algorithms.sssp.auto_delta`
        (``4 * mean weight / mean out-degree``, the edge-cut default, the same bits on
        any rank count and partition).
    weighted : bool, optional
        Use the edge weights (default: when the graph has them), else 1.0 each.

    Returns
    -------
    VertexCutResult
        ``values``: distance (float64, ``inf`` unreachable). ``params``: ``source``,
        ``delta`` (the width used), ``weighted``, ``reached``, ``rounds``, ``edges_relaxed``.
    """
    from hpcdist.runtime.comm import MPI

    g = graph
    with collective(g.comm):
        if delta is not None and not (isinstance(delta, (int, float)) and math.isfinite(delta) and delta > 0):
            raise InputError(f"sssp: delta must be a positive number, got {delta!r}")
    no = g.n_owned
    src_local = g.locate(source, "sssp: source vertex")
    use_weights = g.weighted if weighted is None else bool(weighted and g.weighted)
    indptr, out_dst, out_w = g.local_out()
    if not use_weights or out_w is None:
        out_w = np.ones(out_dst.shape[0])
    if delta is None:
        from hpcdist.graph.algorithms.sssp import auto_delta
        from hpcdist.kernels import numpy_ref

        # each edge is on one part, so g.weights are the stored edges, as edge-cut's in_weights;
        # auto_delta reads only comm, n_edges and n_vertices, which a VertexCutGraph has
        weights = g.weights if use_weights else None
        delta = g.derived(("auto_delta", use_weights),
                          lambda: auto_delta(g, weights, numpy_ref))  # type: ignore[arg-type]
    dist = np.full(no, np.inf)
    pending = np.zeros(no, dtype=bool)
    if src_local >= 0:
        dist[src_local] = 0.0
        pending[src_local] = True
    pub = np.full(g.n_scatter, np.inf)
    cand = np.full(g.n_gather, np.inf)
    per_step = _sync_bytes(g, 8)
    steps = _Steps(g, "sssp", progress)
    relaxed, step = 0, 0
    n_pending = 1
    while n_pending:
        steps.begin()
        sel = np.flatnonzero(pending)
        bucket = np.floor(dist[sel] / delta)
        lowest = steps.reduce(np.array([bucket.min(initial=np.inf)]), MPI.MIN)[0]
        sel = sel[bucket == lowest]
        pending[sel] = False
        pub[sel] = dist[sel]
        steps.exchange(g.scatter, pub)
        active = np.concatenate([sel, no + np.flatnonzero(pub[no:] != np.inf)])
        pos, rows = _edges_of(indptr, active)
        d = out_dst[pos]
        np.minimum.at(cand, d, pub[rows] + out_w[pos])
        remote = steps.exchange(_combine_min, g, cand, np.inf)
        touched = np.unique(np.concatenate([d[d < no], remote]))
        better = touched[cand[touched] < dist[touched]]
        dist[better] = cand[better]
        pending[better] = True
        cand[d] = np.inf
        cand[touched] = np.inf
        pub[sel] = np.inf
        counts = steps.reduce(np.array([np.count_nonzero(pending), pos.shape[0], per_step, sel.shape[0]],
                                       dtype=np.int64))
        n_pending = int(counts[0])
        relaxed += int(counts[1])
        steps.end(step, int(counts[2]), int(counts[3]))
        step += 1
    run = steps.finish(True)
    reached = int(g.comm.allreduce(int(np.count_nonzero(np.isfinite(dist))), op=MPI.SUM))
    return VertexCutResult(
        graph=g, values=dist, algorithm="sssp", iterations=run.supersteps, converged=True,
        seconds=run.seconds, run=run,
        params={"source": int(source), "delta": float(delta),
                "weighted": use_weights, "backend": "numpy", "reached": reached, "rounds": run.supersteps,
                "edges_relaxed": relaxed, "replication_factor": float(g.replication_factor)},
    )


# ---------------------------------------------------------------------------------------
# PageRank


def pagerank_gas(graph: "VertexCutGraph", alpha: float = 0.85, max_iter: int = 100, tol: float = 1.0e-6,
                 weighted: bool | None = None, *, progress: bool = False) -> VertexCutResult:
    """PageRank as ``networkx.pagerank`` (uniform teleport and dangling weights; weighted
    when the graph is, unless ``weighted=False``). Collective over ``graph.comm``.

    Per superstep: masters publish ``x[u] / out_weight[u]`` (scatter), every part sums
    ``w * contribution`` over its in-edges per destination, the partials are added at
    the masters (gather) and the masters apply
    ``x = alpha * (y + dangling_mass / n) + (1 - alpha) / n``. Stops once the L1 change
    is below ``n * tol``.

    **Bit-identical across rank counts and edge partitioners** (``vertex-cut``, ``dbh``,
    ``hybrid`` give the same bits at 1, 2, 3, ... ranks): a vertex's in-edge sum is split
    over the parts holding its in-edges, so it is summed exactly in fixed point
    (:meth:`~hpcdist.graph.gas.VertexCutGraph.gather_fixed_sum`: each edge term cut into
    two integer limbs, the partials gathered as two int64 words) and rounded once; the
    L1 change and the next superstep's dangling mass are one reproducible sum
    (:func:`hpcdist.graph.reduce.reproducible_sums`: two small allreduces, as many as
    plain sums took). Against the edge-cut :func:`hpcdist.graph.pagerank`, which sums
    each vertex's in-edges in floating point, the values agree **to rounding only**
    (about 1e-16 relative per superstep), not bit for bit. The price: a gather moves 16
    bytes per destination mirror instead of 8 (``params["bytes_per_superstep"]``).

    Returns
    -------
    VertexCutResult
        ``params``: ``alpha``, ``tol``, ``max_iter``, ``weighted``, ``final_error``,
        ``bytes_per_superstep`` (all ranks, one scatter and one gather).
    """
    from hpcdist.graph.gas import FIXED_BYTES
    from hpcdist.graph.reduce import reproducible_sums
    from hpcdist.kernels import numpy_ref
    from hpcdist.runtime.comm import MPI

    from hpcdist.graph.algorithms.pagerank import check_parameters

    g = graph
    comm = g.comm
    check_parameters(comm, alpha, tol, max_iter)
    use_weights = g.weighted if weighted is None else bool(weighted and g.weighted)
    n, no = g.n_vertices, g.n_owned
    p = 1.0 / n
    out_w = g.out_weight if use_weights else g.out_degree.astype(np.float64)
    nz = out_w != 0
    inv_out = np.zeros(no)
    inv_out[nz] = 1.0 / out_w[nz]
    dangling = np.flatnonzero(~nz)
    edge_w = g.weights if use_weights else None
    x = np.full(no, p)
    contrib = np.zeros(g.n_scatter)
    per_step = int(comm.allreduce(_sync_bytes(g, 8, gather=False) + _sync_bytes(g, FIXED_BYTES, scatter=False),
                                  op=MPI.SUM))
    steps = _Steps(g, "pagerank", progress)
    (mass,), _ = reproducible_sums(comm, [x[dangling]], numpy_ref)
    converged, err = False, float("inf")
    for step in range(max_iter):
        steps.begin()
        np.multiply(x, inv_out, out=contrib[:no])
        steps.exchange(g.scatter, contrib)
        # each term is at most x[u] <= 1, and all of them sum to about 1 (gather_fixed_sum's bounds)
        terms = contrib[g.src_local] if edge_w is None else contrib[g.src_local] * edge_w
        y = steps.exchange(g.gather_fixed_sum, terms)
        x_new = alpha * (y + mass * p) + (1.0 - alpha) * p
        # the change and the next dangling mass as reproducible sums: the same bits on any rank count
        err, mass = steps.sums([np.abs(x_new - x), x_new[dangling]])
        x = x_new
        steps.end(step, per_step, n)
        if err < n * tol:
            converged = True
            break
    run = steps.finish(converged)
    return VertexCutResult(
        graph=g, values=x, algorithm="pagerank", iterations=run.supersteps, converged=converged,
        seconds=run.seconds, run=run,
        params={"alpha": float(alpha), "tol": float(tol), "max_iter": int(max_iter), "backend": "numpy",
                "weighted": use_weights, "final_error": err, "replication_factor": float(g.replication_factor),
                "bytes_per_superstep": per_step},
    )
