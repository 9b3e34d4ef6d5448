"""Single-source shortest paths by delta-stepping on the BSP engine.

Vertices live in buckets ``floor(dist / delta)``. Each vertex carries two pending bits:
its light edges (``weight <= delta``) and its heavy edges still have to be relaxed from
its current distance. One superstep is one phase (Meyer and Sanders, "Delta-stepping: a
parallelizable shortest path algorithm", 2003):

* **light** phase of the smallest bucket ``b`` with light work pending, while no heavy
  work waits in a smaller bucket: the owners publish ``dist`` of those vertices (``inf``
  for the rest); the halo exchange fills the ghosts;
* otherwise the **heavy** phase of the smallest bucket with heavy work: the same for
  heavy edges, once the bucket has settled.

Every rank then relaxes the published vertices' out-edges it stores (the transposed
local CSR, :meth:`DistGraph.local_out`: each edge lives at its destination's owner)
into its owned vertices; an improved vertex gets both bits back. A light phase then
settles the bucket's light work between owned vertices on the spot (the *closure*,
``kernels.sssp_light_closure``: a work queue over the owned vertices of the bucket with
light work, relaxing their light edges stored here until nothing improves), instead of a
phase per hop: an owned vertex whose out-edges other ranks store keeps its light bit, so
that the next light phase publishes it to them. On one rank a bucket's light work takes
one phase. The next phase is
chosen from the global minimum buckets (one small ``MIN`` allreduce); the run ends when
nothing is pending anywhere. A vertex only ever gets the bits of the kinds of out-edges
it has (found once per graph and delta), so no phase runs without an edge to relax: on
unit weights, where every edge is light, there are no heavy phases at all.

Exactness: every improved vertex is relaxed again from its final distance, so the
result is a fixed point of ``d[v] = min(d[v], d[u] + w)`` reached from above, i.e. the
smallest path value over all paths with sums rounded left to right. That is unique
(``fl(x + w)`` is monotone in ``x``), so the order of relaxations, the rank count and
the partition do not change a bit, and the distances equal Dijkstra's (scipy's).
"""

from __future__ import annotations

import math
import time
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from hpcdist.graph.bsp import LocalStep, Resume, SuperstepHook, run_bsp
from hpcdist.graph.results import VertexResult
from hpcdist.runtime.errors import InputError, collective

if TYPE_CHECKING:
    from hpcdist.graph.distgraph import DistGraph
    from hpcdist.runtime.backend import Backend

__all__ = ["sssp", "SSSPProgram", "auto_delta", "LIGHT", "HEAVY"]

LIGHT, HEAVY = 1, 2  # pending bits, and the phase that clears each


def auto_delta(graph: "DistGraph", weights: np.ndarray | None, kernels: ModuleType | None = None) -> float:
    """A bucket width from the graph's statistics: ``4 * mean weight / mean out-degree``
    over the stored edges, ``mean weight`` when that is 0 or not finite, and 1.0 for a
    graph whose weights are all zero.

    Meyer and Sanders take ``delta ~ 1 / degree`` for weights in [0, 1]; scaling by the
    mean weight makes it unit-free. A wider bucket means fewer supersteps (each costs
    a halo exchange and two small collectives) at the price of some relaxations being
    repeated; the factor 4 favours fewer supersteps. Collective; the same bits on
    every rank count (the weight total is a reproducible sum, with ``kernels``' limbs).
    """
    from hpcdist.graph.reduce import reproducible_sums

    m = max(graph.n_edges, 1)
    if weights is None:
        mean_w = 1.0
    else:
        (total,), _ = reproducible_sums(graph.comm, [weights], kernels)
        mean_w = total / m
    mean_deg = m / max(graph.n_vertices, 1)
    delta = 4.0 * mean_w / mean_deg
    if not (math.isfinite(delta) and delta > 0):
        delta = mean_w
    if not (math.isfinite(delta) and delta > 0):
        delta = 1.0
    return float(delta)


def edge_kinds(graph: "DistGraph", kernels: ModuleType, t_indptr: np.ndarray, weights: np.ndarray,
               delta: float, weighted: bool) -> np.ndarray:
    """Per owned vertex: bit LIGHT if it has a light out-edge on any rank, bit HEAVY if a
    heavy one. A vertex's out-edges are spread over the ranks holding it (as owner or
    ghost); each holder marks its share and the reverse halo exchange ORs them at the
    owner. Kept on the graph per delta. Collective on first use."""
    def build() -> np.ndarray:
        kinds = kernels.sssp_edge_kinds(t_indptr, weights, delta)
        graph.halo.reverse_exchange(kinds, np.bitwise_or)
        return kinds[: graph.n_owned].copy()

    return graph.derived(("sssp_edge_kinds", float(delta), bool(weighted)), build)


def light_edges(graph: "DistGraph", t_indptr: np.ndarray, t_rows: np.ndarray, weights: np.ndarray, delta: float,
                weighted: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The transposed local CSR cut down to its light edges (``weight <= delta``), in the
    same order, for the light phases; None when they are more than half the edges (the
    light phases then filter the full rows, without a copy of most of the graph).

    A light phase scanned every out-edge of the vertices it publishes to relax the few
    light ones: with the automatic delta on RMAT, 7 % of the edges are light, and the light
    phases iterated 10.3 million edges to relax 0.75 million (scale 18). Kept on the graph
    per delta. Local.
    """
    def build() -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        light = weights <= delta
        n_light = int(np.count_nonzero(light))
        if 2 * n_light > weights.shape[0]:
            return None
        rows_of_edges = np.repeat(np.arange(t_indptr.shape[0] - 1), np.diff(t_indptr))
        indptr = np.zeros_like(t_indptr)
        np.cumsum(np.bincount(rows_of_edges[light], minlength=t_indptr.shape[0] - 1), out=indptr[1:])
        return indptr, t_rows[light], weights[light]

    return graph.derived(("sssp_light_edges", float(delta), bool(weighted)), build)


#: The light closure runs on a rank where at most this share of the owned vertices with
#: edges has out-edges on other ranks too. Above it, the remote vertices set the number of
#: phases anyway and the closure only costs: RMAT 18 on two ranks (85 % remote) ran 6-7 %
#: slower with it, a 300 x 300 grid on two ranks (1 %) 1.8x faster.
CLOSURE_MAX_REMOTE = 0.5


def closure_arrays(graph: "DistGraph") -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Per owned vertex: whether other ranks store some of its out-edges (it is a ghost
    there; uint8); the light closure's work queue and flags (int64 and uint8, zero); and
    whether this rank runs the closure (:data:`CLOSURE_MAX_REMOTE`; each rank decides for
    itself, as the results do not depend on it). Built once per graph and reused: the
    closure leaves its scratch zeroed. Local."""
    def build() -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        remote = np.zeros(graph.n_owned, dtype=np.uint8)
        remote[graph.halo.layout.send_index] = 1
        with_edges = graph.in_degree() > 0
        share = float(remote[with_edges].mean()) if with_edges.any() else 0.0
        return (remote, np.zeros(graph.n_owned, dtype=np.int64), np.zeros(graph.n_owned, dtype=np.uint8),
                share <= CLOSURE_MAX_REMOTE)

    return graph.derived("sssp_closure", build)


class SSSPProgram:
    """Delta-stepping as a :class:`~hpcdist.graph.bsp.VertexProgram` (one phase per superstep)."""

    name = "sssp"

    def __init__(self, graph: "DistGraph", kernels: ModuleType, source_local: int, delta: float,
                 weights: np.ndarray, weighted: bool = True, exchange: str = "auto") -> None:
        g = self.graph = graph
        self.k = kernels
        self.delta = float(delta)
        self.t_indptr, self.t_rows, _ = g.local_out(kernels)
        self.t_weights = weights
        self.kinds = edge_kinds(g, kernels, self.t_indptr, weights, self.delta, weighted)
        full = (self.t_indptr, self.t_rows, weights)
        light = light_edges(g, self.t_indptr, self.t_rows, weights, self.delta, weighted)
        #: the edges each kind of phase scans (its relaxation still checks the kind)
        self.edges = {LIGHT: full if light is None else light, HEAVY: full}
        self.dist = np.full(g.n_owned, np.inf)
        self.pending = np.zeros(g.n_owned, dtype=np.uint8)
        if source_local >= 0:
            self.dist[source_local] = 0.0
            self.pending[source_local] = self.kinds[source_local]
        # The vertices with pending bits as a bitmap, which the kernels keep: a phase
        # then visits what is pending (on RMAT 18 a sixth of the vertices on average),
        # not every vertex twice.
        self.pbits = kernels.pending_bits(self.pending)
        self.pub = np.full(g.n_local, np.inf)
        self.cols = np.empty(g.n_owned, dtype=np.int64)  # the owned part of the phase's frontier
        self.active = 0
        # With ``exchange="auto"`` the program sends its frontier's values itself, as
        # (place, value) pairs (hpcdist.graph.value_frontier): the engine's plain exchange
        # would send every ghost's value every phase. ``ghosts[:n_ghosts]`` are the ghost
        # columns the last exchange wrote (the rest hold inf).
        self.channel = g.halo.value_frontier() if exchange == "auto" and g.comm.Get_size() > 1 else None
        self.ghosts = np.empty(g.n_local - g.n_owned, dtype=np.int64)
        self.n_ghosts = 0
        #: (bytes sent, bytes of the plain exchange) of the last phase, when the program exchanges itself
        self.exchanged_bytes = (0, 0)
        self.relaxed = 0
        self.interior_relaxed: int | None = None  # edges compute_interior relaxed this phase
        # A light phase then settles the bucket between owned vertices here (the closure),
        # so that a phase is not spent per hop: the vertices whose out-edges other ranks
        # store (``remote``) still go to them in the next light phase.
        self.remote, self.ring, self.queued, self.closure = closure_arrays(g)
        self.n_seeds = np.zeros(1, dtype=np.int64)  # the closure's starting work, which the relaxations append
        self.phase_counts = {LIGHT: 0, HEAVY: 0}
        t0 = time.perf_counter()
        # numba compiles (or loads) these variants here, in the set-up: calls with no work
        kernels.nonzero_positions(self.pub[:0] != np.inf)
        kernels.sssp_relax(self.t_indptr, self.t_rows, self.t_weights, self.pub, np.empty(0, dtype=np.int64),
                           self.dist, self.delta, True, self.pending, self.kinds, self.pbits)
        kernels.sssp_publish(self.dist[:0], self.pending[:0], self.delta, 0, LIGHT, self.pub, self.cols, 0,
                             self.pbits[:0])
        kernels.sssp_light_closure(*self.edges[LIGHT], self.dist[:0], self.delta, 0, self.pending[:0], self.kinds,
                                   self.pbits[:0], self.remote[:0], self.ring[:0], self.queued[:0], 0)
        if self.channel is not None:
            self.channel.warm_up(self.pub, self.ghosts, kernels)
        self.warm_up_seconds = time.perf_counter() - t0
        self._decide()

    def _seeds(self) -> tuple | None:
        """What a light phase's relaxations need to hand the closure its starting work."""
        if self.phase != LIGHT or not self.closure:
            return None
        return self.remote, self.ring, self.queued, self.n_seeds, self.bucket

    def _decide(self) -> None:
        """The next phase and bucket from the global smallest pending buckets."""
        from hpcdist.runtime.comm import MPI

        local = self.k.sssp_buckets(self.dist, self.pending, self.delta, self.pbits)
        glob = np.empty_like(local)
        self.graph.comm.Allreduce(local, glob, op=MPI.MIN)
        light, heavy = int(glob[0]), int(glob[1])
        # a bucket's light work first; its heavy edges once it has settled
        self.phase, self.bucket = (LIGHT, light) if light <= heavy else (HEAVY, heavy)
        self.done = min(light, heavy) >= int(self.k.NO_BUCKET)
        if self.done:
            self._check_bucket_overflow()

    def _check_bucket_overflow(self) -> None:
        """Refuse a run whose pending vertices sit past the last bucket number (2^62).

        Their bucket reads as "none left", so the run would end with them unsettled: a
        delta far too small for the distances (``--delta 1e-17`` on a road network).
        Collective; costs one reduction, at the end of the run.
        """
        from hpcdist.runtime.comm import MPI

        stuck = self.pending != 0
        far = float(self.dist[stuck].min()) if stuck.any() else np.inf
        far = self.graph.comm.allreduce(far, op=MPI.MIN)
        with collective(self.graph.comm):
            if far < np.inf:
                raise InputError(
                    f"sssp: delta={self.delta:g} is too small for these distances: vertices at distance {far:g} "
                    f"fall past the last of the 2^62 buckets ({far / self.delta:.3g}); use a delta of at least "
                    f"{far / 2.0**60:.3g}, or leave it out for the automatic one")

    def exchange_values(self, superstep: int) -> np.ndarray | None:
        self.n_seeds[0] = 0
        self.active = self.k.sssp_publish(self.dist, self.pending, self.delta, self.bucket, self.phase, self.pub,
                                          self.cols, self.active, self.pbits)
        if self.channel is None:
            return self.pub
        self.n_ghosts = self.channel.exchange(self.pub, self.cols, self.active, np.inf, self.ghosts, self.n_ghosts,
                                              self.k)
        self.exchanged_bytes = (self.channel.bytes_sent, self.channel.dense_bytes)
        return None

    def compute_interior(self, superstep: int) -> None:
        """Relax the owned published vertices' edges while the ghosts' values are in flight.

        :meth:`compute`'s single pass relaxes the owned columns first too (columns
        ascending), so the split changes no result.
        """
        self.interior_relaxed = self.k.sssp_relax(*self.edges[self.phase], self.pub, self.cols[: self.active],
                                                  self.dist, self.delta, self.phase == LIGHT, self.pending,
                                                  self.kinds, self.pbits, self._seeds())

    def compute(self, superstep: int) -> LocalStep:
        k, g = self.k, self.graph
        no = g.n_owned
        # the ghosts the exchange filled (none alone), after the owned frontier
        if self.channel is not None:
            ghosts = self.ghosts[: self.n_ghosts]
        else:
            ghosts = k.nonzero_positions(self.pub[no:] != np.inf) + no if g.n_local > no else self.cols[:0]
        if self.interior_relaxed is not None:
            cols = ghosts
            relaxed = self.interior_relaxed
            self.interior_relaxed = None
        else:
            cols = np.concatenate([self.cols[: self.active], ghosts]) if ghosts.shape[0] else self.cols[: self.active]
            relaxed = 0
        relaxed += k.sssp_relax(*self.edges[self.phase], self.pub, cols, self.dist, self.delta, self.phase == LIGHT,
                                self.pending, self.kinds, self.pbits, self._seeds())
        if self.phase == LIGHT and self.closure:
            relaxed += k.sssp_light_closure(*self.edges[LIGHT], self.dist, self.delta, self.bucket, self.pending,
                                            self.kinds, self.pbits, self.remote, self.ring, self.queued,
                                            int(self.n_seeds[0]))
        self.phase_counts[self.phase] += 1
        self._decide()
        return LocalStep(counts=[relaxed], active=self.active)

    def apply(self, superstep: int, sums: list[float], counts: list[int]) -> bool:
        self.relaxed += int(counts[0])
        return self.done

    def state(self) -> dict[str, np.ndarray]:
        return {"dist": self.dist, "pending": self.pending}

    def scalars(self) -> dict[str, float | int]:
        return {"delta": self.delta, "phase": self.phase, "bucket": self.bucket, "done": int(self.done),
                "relaxed": self.relaxed, "light_phases": self.phase_counts[LIGHT],
                "heavy_phases": self.phase_counts[HEAVY]}

    def restore(self, state: dict[str, np.ndarray], scalars: dict[str, float | int]) -> None:
        self.dist = np.array(state["dist"], dtype=np.float64)
        self.pending = np.array(state["pending"], dtype=np.uint8)
        self.pbits = self.k.pending_bits(self.pending)
        self.pub[:] = np.inf
        self.active = 0
        self.n_ghosts = 0
        self.delta = float(scalars["delta"])
        self.phase, self.bucket = int(scalars["phase"]), int(scalars["bucket"])
        self.done = bool(scalars["done"])
        self.relaxed = int(scalars["relaxed"])
        self.phase_counts = {LIGHT: int(scalars["light_phases"]), HEAVY: int(scalars["heavy_phases"])}


def sssp(
    graph: "DistGraph",
    source: int,
    *,
    delta: float | None = None,
    weighted: bool | None = None,
    backend: "str | Backend | None" = "auto",
    progress: bool = False,
    on_superstep: SuperstepHook | None = None,
    resume: Resume | None = None,
    exchange: str = "auto",
) -> VertexResult:
    """Shortest-path distances from ``source`` along the edges' direction (delta-stepping).

    Collective over ``graph.comm``. The distances are exactly (bit for bit) those of
    Dijkstra's algorithm on the same weights, on any rank count and partitioner.

    Parameters
    ----------
    graph : DistGraph
        Edge weights must be finite and non-negative (the graph builders and readers
        refuse others). Zero weights and self-loops are fine. Duplicate edges have
        collapsed to the lightest.
    source : int
        Original id of the source; an id that is not a vertex raises one InputError.
    delta : float, optional
        Bucket width; :func:`auto_delta` when None. Any positive value gives the same
        distances; it only changes the number of supersteps.
    weighted : bool, optional
        Use the edge weights (default: when the graph has them); otherwise every edge
        weighs 1.0 (hop counts as floats).
    backend : {"auto", "numba", "numpy"} or Backend
    progress : bool
    on_superstep : callable, optional
        ``hook(superstep, program)`` after each phase (checkpoints).
    resume : Resume, optional
        Continue from a checkpoint's state (see :class:`hpcdist.graph.bsp.Resume`).
    exchange : {"auto", "sparse", "dense"}
        The halo exchange; identical results. ``auto``: each phase's frontier values alone,
        as (place, value) pairs (:mod:`hpcdist.graph.value_frontier`); ``dense`` and
        ``sparse``: the engine's exchanges (see :func:`hpcdist.graph.bsp.run_bsp`).

    Returns
    -------
    VertexResult
        ``values``: distance (float64, ``inf`` where unreachable). ``params``:
        ``source``, ``delta``, ``weighted``, ``reached``, ``light_phases``,
        ``heavy_phases``, ``edges_relaxed``.
    """
    from hpcdist.graph.algorithms.pagerank import resolve_kernels
    from hpcdist.runtime.comm import MPI

    comm = graph.comm
    with collective(comm):
        if delta is not None and not (isinstance(delta, (int, float)) and math.isfinite(delta) and delta > 0):
            raise InputError(f"sssp: delta must be a positive number, got {delta!r}")
    kernels = resolve_kernels(backend, comm)
    src_local = graph.locate(source, "sssp: source vertex")
    use_weights = graph.weighted if weighted is None else bool(weighted and graph.weighted)
    t_weights = graph.local_out(kernels)[2] if use_weights else None
    if t_weights is None:
        t_weights = graph.__dict__.setdefault("_unit_out_weights", np.ones(graph.in_indices.shape[0]))
    if delta is None:
        # a pass over every weight: once per graph
        delta = graph.derived(("auto_delta", use_weights),
                              lambda: auto_delta(graph, graph.in_weights if use_weights else None, kernels))
    program = SSSPProgram(graph, kernels, src_local, float(delta), t_weights, use_weights, exchange=exchange)
    run = run_bsp(graph, program, max_supersteps=2**62, kernels=kernels, progress=progress,
                  on_superstep=on_superstep, resume=resume, exchange=exchange)
    reached = int(comm.allreduce(int(np.count_nonzero(np.isfinite(program.dist))), op=MPI.SUM))
    return VertexResult(
        graph=graph,
        values=program.dist.copy(),
        algorithm="sssp",
        iterations=run.supersteps,
        converged=run.converged,
        seconds=run.seconds,
        run=run,
        params={"source": int(source), "delta": float(program.delta), "weighted": use_weights,
                "backend": kernels.NAME, "reached": reached,
                "light_phases": program.phase_counts[LIGHT], "heavy_phases": program.phase_counts[HEAVY],
                "warm_up_seconds": program.warm_up_seconds,
                "edges_relaxed": int(program.relaxed)},
    )
