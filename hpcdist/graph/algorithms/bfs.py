"""Breadth-first search on the BSP engine: direction-optimizing, deterministic parents.

One superstep is one BFS level. The owner of each vertex publishes whether it is in
the frontier (a byte per vertex; the halo exchange fills the ghosts), then every rank
reaches its owned vertices in one of two directions (Beamer, Asanovic, Patterson,
"Direction-optimizing breadth-first search", SC 2012):

* **top-down** (small frontiers): the frontier's local columns (owned and ghost, a
  sparse list) push along the transposed local CSR (:meth:`DistGraph.local_out`), so
  the out-edges of a vertex are walked where they are stored, at their destinations'
  owners, and nothing travels back;
* **bottom-up** (large frontiers): each unreached owned vertex scans its in-edges for a
  frontier vertex (the bitmap) and stops at the first.

The switch follows Beamer's rule on global counts the engine reduces anyway: go
bottom-up when the frontier's out-edges exceed the unreached vertices' in-edges / alpha,
back top-down when the frontier shrinks below n / beta.

The parent of a vertex is defined as its in-neighbour on the previous level with the
smallest input id. In-edge rows are sorted by input id, so bottom-up's first hit is it,
and top-down takes the minimum over the pushes: both directions, every rank count and
every partitioner give the same tree. Output: hop distance (int64, -1 unreached) and
the parent's original id (-1 for the root and unreached vertices).
"""

from __future__ import annotations

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

__all__ = ["bfs", "BFSProgram", "validate_bfs", "random_roots", "harmonic_mean", "TOP_DOWN", "BOTTOM_UP"]

TOP_DOWN, BOTTOM_UP = 0, 1
#: Beamer et al.'s switching parameters (their tuned values).
ALPHA, BETA = 14, 24


class BFSProgram:
    """BFS as a :class:`~hpcdist.graph.bsp.VertexProgram` (one level per superstep)."""

    name = "bfs"
    #: the frontier flags are 0/1: the communication optimizer sends them as bitmaps
    exchange_binary = True

    def __init__(self, graph: "DistGraph", kernels: ModuleType, source_local: int, *, direction: str = "auto",
                 alpha: float = ALPHA, beta: float = BETA) -> None:
        from hpcdist.runtime.comm import MPI

        g = self.graph = graph
        self.k = kernels
        self.direction = direction
        self.alpha, self.beta = float(alpha), float(beta)
        self.keys = g.column_input_ids()
        self.t_indptr, self.t_rows, _ = g.local_out(kernels)
        self.in_deg = g.in_degree()
        self.dist = np.full(g.n_owned, -1, dtype=np.int64)
        self.parent = np.full(g.n_owned, -1, dtype=np.int64)  # input id of the parent
        # This level's frontier (owned flags; the exchange fills the ghosts), the next
        # one's, and bottom-up's candidates. Work buffers are kept on the graph and reused
        # by the next search: fresh pages cost a page fault each, which at scale 18 was a
        # fifth of a whole search.
        candidates = g.derived("bfs_candidates", lambda: np.flatnonzero(self.in_deg > 0))
        scratch = g.derived("bfs_scratch", lambda: [np.zeros(g.n_local, dtype=np.uint8),
                                                    np.zeros(g.n_local, dtype=np.uint8),
                                                    np.empty_like(candidates)])
        self.frontier, self.next, self.todo = scratch
        self.frontier.fill(0)
        # bottom-up's candidates: vertices with in-edges, compacted to the unreached ones
        # by each bottom-up level, so that later levels skip what earlier ones reached
        self.todo[:] = candidates
        self.n_todo = self.todo.shape[0]
        src = np.zeros(2, dtype=np.int64)
        if source_local >= 0:
            self.dist[source_local] = 0
            self.frontier[source_local] = 1
            src[:] = g.out_degree[source_local], self.in_deg[source_local]
        glob = np.empty_like(src)
        g.comm.Allreduce(src, glob, op=MPI.SUM)
        # Beamer's inputs, kept up to date from each level's global counts (no pass over
        # all vertices): frontier size, its out-edges, in-edges of the unreached vertices
        self.n_f, self.m_f, self.m_u = 1, int(glob[0]), int(g.n_edges - glob[1])
        self.level = 0
        self.mode = self._first_mode()
        self.modes: list[int] = []
        self.examined = 0
        self.reached = 1
        self.out_edges = self.m_f  # out-edges of all reached vertices (TEPS)
        self.interior_out: np.ndarray | None = None  # counts of the pushes compute_interior did
        t0 = time.perf_counter()
        self._warm_up()
        self.warm_up_seconds = time.perf_counter() - t0

    def _warm_up(self) -> None:
        """Call each kernel once with no work: numba compiles (or loads from its cache) the
        variants for these very array types here, in the set-up, not in the first level."""
        k, g = self.k, self.graph
        none = np.empty(0, dtype=np.int64)
        k.nonzero_positions(self.next[:0])
        k.bfs_top_down(self.t_indptr, self.t_rows, none, self.keys, self.dist, self.parent, 0, g.out_degree,
                       self.in_deg, self.next)
        k.bfs_bottom_up(g.in_indptr, g.in_indices, self.frontier, self.keys, self.dist, self.parent, 0,
                        g.out_degree, self.in_deg, self.next, self.todo, 0)

    def _first_mode(self) -> int:
        return BOTTOM_UP if self.direction == "bottom-up" else TOP_DOWN

    def exchange_values(self, superstep: int) -> np.ndarray:
        return self.frontier

    def compute_interior(self, superstep: int) -> None:
        """Top-down: push from the owned frontier columns while the ghosts' flags are in flight.

        The pushes from owned columns come first in :meth:`compute`'s single pass too
        (columns ascending), so splitting it here changes no result.
        """
        if self.mode != TOP_DOWN:
            return
        k, g = self.k, self.graph
        self.next.fill(0)
        cols = k.nonzero_positions(self.frontier[: g.n_owned])
        self.interior_out = k.bfs_top_down(self.t_indptr, self.t_rows, cols, self.keys, self.dist, self.parent,
                                           self.level, g.out_degree, self.in_deg, self.next)

    def compute(self, superstep: int) -> LocalStep:
        k, g = self.k, self.graph
        if self.mode == TOP_DOWN and self.interior_out is not None:
            cols = k.nonzero_positions(self.frontier[g.n_owned:]) + g.n_owned
            out = k.bfs_top_down(self.t_indptr, self.t_rows, cols, self.keys, self.dist, self.parent, self.level,
                                 g.out_degree, self.in_deg, self.next) + self.interior_out
            self.interior_out = None
            return LocalStep(counts=[int(x) for x in out[:4]], active=int(out[0]))
        self.next.fill(0)
        if self.mode == TOP_DOWN:
            cols = k.nonzero_positions(self.frontier)
            out = k.bfs_top_down(self.t_indptr, self.t_rows, cols, self.keys, self.dist, self.parent, self.level,
                                 g.out_degree, self.in_deg, self.next)
        else:
            out = k.bfs_bottom_up(g.in_indptr, g.in_indices, self.frontier, self.keys, self.dist, self.parent,
                                  self.level, g.out_degree, self.in_deg, self.next, self.todo, self.n_todo)
            self.n_todo = int(out[4])
        return LocalStep(counts=[int(x) for x in out[:4]], active=int(out[0]))

    def apply(self, superstep: int, sums: list[float], counts: list[int]) -> bool:
        n_f, m_f, in_f, examined = counts
        self.modes.append(self.mode)
        self.examined += examined
        self.reached += n_f
        self.out_edges += m_f
        self.level += 1
        m_u = self.m_u - in_f
        self.mode = self._next_mode(n_f, m_f, m_u)
        self.n_f, self.m_f, self.m_u = n_f, m_f, m_u
        self.frontier, self.next = self.next, self.frontier
        return n_f == 0

    def _next_mode(self, n_f: int, m_f: int, m_u: int) -> int:
        if self.direction != "auto":
            return self._first_mode()
        if self.mode == TOP_DOWN:
            # the frontier's edges outweigh what checking the unreached vertices would cost
            return BOTTOM_UP if m_f > m_u / self.alpha and n_f > self.n_f else TOP_DOWN
        return TOP_DOWN if n_f < self.graph.n_vertices / self.beta and n_f < self.n_f else BOTTOM_UP

    def state(self) -> dict[str, np.ndarray]:
        return {"dist": self.dist, "parent": self.parent}

    def scalars(self) -> dict[str, int]:
        return {"level": self.level, "mode": self.mode, "n_f": self.n_f, "m_f": self.m_f, "m_u": self.m_u,
                "examined": self.examined, "reached": self.reached, "out_edges": self.out_edges,
                "modes": "".join("TB"[m] for m in self.modes)}

    def restore(self, state: dict[str, np.ndarray], scalars: dict[str, int]) -> None:
        self.dist = np.array(state["dist"], dtype=np.int64)
        self.parent = np.array(state["parent"], dtype=np.int64)
        self.level = int(scalars["level"])
        self.mode = int(scalars["mode"])
        self.n_f, self.m_f, self.m_u = int(scalars["n_f"]), int(scalars["m_f"]), int(scalars["m_u"])
        self.examined = int(scalars["examined"])
        self.reached, self.out_edges = int(scalars["reached"]), int(scalars["out_edges"])
        self.modes = ["TB".index(c) for c in str(scalars["modes"])]
        self.frontier.fill(0)
        self.k.bfs_frontier(self.dist, self.level, self.frontier)
        rest = np.flatnonzero((self.in_deg > 0) & (self.dist < 0))
        self.todo[: rest.shape[0]] = rest
        self.n_todo = rest.shape[0]


def bfs(
    graph: "DistGraph",
    source: int,
    *,
    direction: str = "auto",
    backend: "str | Backend | None" = "auto",
    progress: bool = False,
    on_superstep: SuperstepHook | None = None,
    resume: Resume | None = None,
    exchange: str = "auto",
) -> VertexResult:
    """Breadth-first search from ``source`` along the edges' direction.

    Collective over ``graph.comm``.

    Parameters
    ----------
    graph : DistGraph
    source : int
        Original id of the root. An id that is not a vertex raises one
        :class:`~hpcdist.runtime.errors.InputError` on every rank.
    direction : {"auto", "top-down", "bottom-up"}
        ``auto`` switches per level (Beamer's heuristic); the others force one
        direction (for tests and measurements). The result is the same.
    backend : {"auto", "numba", "numpy"} or Backend
        Kernels for the local work; identical results either way.
    progress : bool
        Progress bar on rank 0.
    on_superstep : callable, optional
        ``hook(superstep, program)`` after each level (checkpoints).
    resume : Resume, optional
        Continue from a checkpoint's state (see :class:`hpcdist.graph.bsp.Resume`).
    exchange : {"auto", "sparse", "dense"}
        The halo exchange (see :func:`hpcdist.graph.bsp.run_bsp`); identical results.

    Returns
    -------
    VertexResult
        ``values``: hop distance (int64, -1 where unreachable); ``extras["parent"]``:
        original id of the BFS parent (-1 for the root and unreachable vertices), the
        in-neighbour on the previous level with the smallest input id. ``params`` holds
        ``source``, ``levels``, ``reached``, ``edges_traversed`` (edges of the reached
        vertices, each undirected edge once for a symmetric graph, as Graph500 counts),
        ``edges_examined``, ``teps`` and ``directions`` (``T``/``B`` per level).
    """
    from hpcdist.graph.algorithms.pagerank import resolve_kernels

    comm = graph.comm
    with collective(comm):
        if direction not in ("auto", "top-down", "bottom-up"):
            raise InputError(f"bfs: direction must be auto, top-down or bottom-up, got {direction!r}")
    kernels = resolve_kernels(backend, comm)
    src_local = graph.locate(source, "bfs: source vertex")
    program = BFSProgram(graph, kernels, src_local, direction=direction)
    run = run_bsp(graph, program, max_supersteps=graph.n_vertices + 1, kernels=kernels, progress=progress,
                  on_superstep=on_superstep, resume=resume, exchange=exchange)
    # every reached vertex was in exactly one level's counts: no pass over the vertices
    edges = program.out_edges if graph.directed else program.out_edges // 2
    levels = program.level  # the last superstep found nothing
    parent_orig = graph.input_to_original(program.parent)
    return VertexResult(
        graph=graph,
        values=program.dist,
        algorithm="bfs",
        iterations=run.supersteps,
        converged=run.converged,
        seconds=run.seconds,
        run=run,
        params={"source": int(source), "backend": kernels.NAME, "direction": direction, "levels": levels,
                "reached": program.reached, "edges_traversed": edges, "edges_examined": int(program.examined),
                "teps": edges / run.seconds if run.seconds > 0 else 0.0,
                "warm_up_seconds": program.warm_up_seconds,
                "directions": "".join("TB"[m] for m in program.modes)},
        extras={"parent": parent_orig},
    )


def validate_bfs(result: VertexResult) -> list[str]:
    """Graph500-style checks of a BFS result; the problems found (empty: valid).

    Collective over ``result.graph.comm``. Checks, with one halo exchange of the
    distances and all work local (the in-edges of a vertex live on its owner):

    1. the root has distance 0 and no parent; every other reached vertex has a parent;
    2. each tree edge ``parent -> v`` is an edge of the graph and joins consecutive
       levels (so the parent pointers form a tree: distances fall by one to the root);
    3. every edge ``u -> v`` with ``u`` reached has ``v`` reached and
       ``dist[v] <= dist[u] + 1`` (the tree spans exactly the reachable vertices and
       levels are shortest);
    4. unreached vertices have no parent.

    Every rank gets the same list (at most 10 messages, then a count).
    """
    g = result.graph
    dist = np.empty(g.n_local, dtype=np.int64)
    dist[: g.n_owned] = result.values
    g.halo.exchange(dist)
    parent = result.extras["parent"]
    orig = g.column_original_ids()
    own_orig = orig[: g.n_owned]
    source = result.params["source"]
    problems: list[str] = []

    def report(what: str, mask: np.ndarray) -> None:
        if mask.any():
            first = int(np.flatnonzero(mask)[0])
            problems.append(f"{what}: {int(mask.sum())} vertices (first: {int(own_orig[first])})")

    d = dist[: g.n_owned]
    is_root = own_orig == source
    report("root without distance 0 or with a parent", is_root & ((d != 0) | (parent != -1)))
    report("distance 0 off the root", ~is_root & (d == 0))
    report("reached vertex without a parent", ~is_root & (d > 0) & (parent < 0))
    report("unreached vertex with a parent", (d < 0) & (parent != -1))
    lengths = np.diff(g.in_indptr)
    row = np.repeat(np.arange(g.n_owned, dtype=np.int64), lengths)
    col = g.in_indices.astype(np.int64)
    # 2: some in-edge of v comes from the parent, which sits one level up
    tree = (orig[col] == parent[row]) & (parent[row] >= 0) & (dist[col] == d[row] - 1)
    has_tree_edge = np.zeros(g.n_owned, dtype=bool)
    has_tree_edge[row[tree]] = True
    report("parent is not an in-neighbour one level up", (d > 0) & (parent >= 0) & ~has_tree_edge)
    # 3: no edge leaves the tree, and no edge skips a level
    from_reached = dist[col] >= 0
    bad_edge = from_reached & ((d[row] < 0) | (d[row] > dist[col] + 1))
    bad_v = np.zeros(g.n_owned, dtype=bool)
    bad_v[row[bad_edge]] = True
    report("edge from a reached vertex to one unreached or more than one level down", bad_v)
    gathered = g.comm.allgather(problems)
    merged = [p for part in gathered for p in part]
    if len(merged) > 10:
        merged = merged[:10] + [f"... and {len(merged) - 10} more"]
    return merged


def random_roots(graph: "DistGraph", count: int, seed: int = 0) -> list[int]:
    """``count`` distinct roots with out-degree > 0, drawn with ``seed``: the same original
    ids on every rank count and partitioner (Graph500's root choice; on a directed
    graph a root with only in-edges would traverse nothing, so out-edges are what count).

    Collective over ``graph.comm``. Raises InputError when the graph has fewer such
    vertices than asked for.
    """
    from hpcdist.graph.distgraph import directory_lookup
    from hpcdist.runtime.comm import MPI

    n = graph.n_vertices
    block_degree = graph.to_input_layout(graph.out_degree)
    eligible = int(graph.comm.allreduce(int(np.count_nonzero(block_degree)), op=MPI.SUM))
    with collective(graph.comm):
        if count < 1:
            raise InputError(f"--roots must be at least 1, got {count}")
        if eligible < count:
            raise InputError(f"bfs: asked for {count} roots but only {eligible} vertices have out-edges")
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    seen: set[int] = set()
    while len(chosen) < count:
        batch = rng.integers(0, n, size=max(4 * count, 64), dtype=np.int64)  # same draws on every rank
        deg = directory_lookup(graph.comm, batch, n, block_degree)
        for v, dv in zip(batch.tolist(), deg.tolist()):
            if dv > 0 and v not in seen:
                seen.add(v)
                chosen.append(v)
                if len(chosen) == count:
                    break
    return graph.input_to_original(np.array(chosen, dtype=np.int64)).tolist()


def harmonic_mean(values: list[float]) -> float:
    """Graph500's mean of rates: the harmonic mean (0.0 if any value is 0)."""
    if not values or any(v <= 0 for v in values):
        return 0.0
    return len(values) / sum(1.0 / v for v in values)
