"""Breadth-first search on the BSP engine: direction-optimizing, deterministic parents.

One superstep is one BFS level. Every rank keeps its owned frontier as a list (the
queue the previous level filled); with more than one rank the engine's frontier channel
(:mod:`hpcdist.graph.frontier_exchange`) turns the owners' queues into the ghosts' bits of
each rank's frontier bitmap (with ``exchange="sparse"`` or ``"dense"`` the owners keep a
flag byte per vertex instead, which the halo exchange copies). Then every rank reaches its owned
vertices in one of two directions (Beamer, Asanovic, Patterson, "Direction-optimizing
breadth-first search", SC 2012):

* **top-down** (small frontiers): the frontier's local columns (the owned queue, then
  the ghosts) push along the transposed local CSR (:meth:`DistGraph.local_out`), so
  the out-edges of a vertex are walked where they are stored, at their destinations'
  owners, and nothing travels back;
* **bottom-up** (large frontiers): each unreached owned vertex scans its in-edges for a
  frontier vertex (a bitmap, one bit per local column, so that it stays in cache) and
  stops at the first.

The switch follows Beamer's rule on global counts the engine reduces anyway: go
bottom-up when the frontier's out-edges exceed the unreached vertices' in-edges / alpha,
back top-down when the frontier shrinks below n / beta, unless its out-edges still
exceed those in-edges (then even scanning every unreached row whole costs less).

The parent of a vertex is defined as its in-neighbour on the previous level with the
smallest *parent key* (:func:`parent_keys`): the highest global out-degree, ties broken
by the smallest input id. BFS keeps a copy of the in-edge rows sorted by that key (built
once per graph, with the ghosts' degrees from one halo exchange, and reused by later
roots), so bottom-up's first hit is the parent and, on a power-law graph, usually the
first or second in-neighbour it looks at: a hub, which is in the frontier early (the
trick of Beamer's and the GAP benchmark's). Top-down takes the minimum key over the
pushes. The key depends only on global degrees and ids: both directions, every rank
count and every partitioner (vertex-cut included, :func:`hpcdist.graph.gas_algorithms.bfs_gas`)
give the same tree. Output: hop distance (int64, -1 unreached) and the parent's
original id (-1 for the root and unreached vertices).
"""

from __future__ import annotations

import time
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from hpcdist.graph.bsp import LocalStep, Resume, SuperstepHook, run_bsp
from hpcdist.graph.distgraph import sorted_find
from hpcdist.graph.results import VertexResult
from hpcdist.runtime.errors import InputError, agree, collective

if TYPE_CHECKING:
    from hpcdist.graph.distgraph import DistGraph
    from hpcdist.runtime.backend import Backend

__all__ = ["bfs", "BFSProgram", "parent_keys", "bfs_plan", "validate_bfs", "random_roots", "harmonic_mean",
           "TOP_DOWN", "BOTTOM_UP"]

TOP_DOWN, BOTTOM_UP = 0, 1
#: Beamer et al.'s switching parameters (their tuned values).
ALPHA, BETA = 14, 24


def parent_keys(out_degree: np.ndarray, input_ids: np.ndarray, n_vertices: int) -> np.ndarray:
    """The BFS parent order as one int64 per vertex: higher out-degree first, then smaller input id.

    ``key = (cap - min(out_degree, cap)) << b | input_id`` with ``b`` the bits of
    ``n_vertices - 1`` and ``cap = 2**(63 - b) - 1`` (degrees beyond it tie, and the input
    id decides). A function of global quantities only, so every rank count and
    partitioner orders the same way.
    """
    id_bits = max(1, int(n_vertices - 1).bit_length())
    cap = (1 << (63 - id_bits)) - 1
    deg = np.minimum(np.asarray(out_degree, dtype=np.int64), cap)
    return ((cap - deg) << id_bits) | np.asarray(input_ids, dtype=np.int64)


class _Plan:
    """What BFS builds once per graph and keeps for later roots (not timed in TEPS, as
    Graph500 does not time its construction): the parent key of every local column,
    the in-edge rows sorted by it, the transposed CSR and the search's work buffers."""

    def __init__(self, g: "DistGraph", kernels: ModuleType | None) -> None:
        if kernels is None:
            from hpcdist.kernels import numpy_ref as kernels
        self.n_owned = g.n_owned
        deg = np.zeros(g.n_local, dtype=np.int64)
        deg[: g.n_owned] = g.out_degree
        g.halo.exchange(deg)  # the ghosts' global out-degrees, once
        self.col_key = parent_keys(deg, g.column_input_ids(), g.n_vertices)
        self.col_input_ids = g.column_input_ids()
        self.col_original_ids = g.column_original_ids()
        self.in_indices = kernels.bfs_sort_rows(g.in_indptr, g.in_indices, self.col_key)
        self.t_indptr, self.t_rows, _ = g.local_out(kernels)
        index = self.in_indices.dtype  # int32 where the columns fit: half the bytes to move
        in_deg = g.in_degree()
        self.in_deg = in_deg.astype(index) if in_deg.shape[0] == 0 or in_deg.max() <= np.iinfo(index).max else in_deg
        # symmetric storage (an undirected graph): the kernels read one degree array
        self.out_deg = self.in_deg[:0] if np.array_equal(g.out_degree, in_deg) else g.out_degree
        # each row's first (smallest-key) column, -1 for an empty row, in a dense array
        # that bottom-up probes before the row
        self.first = np.full(g.n_owned, -1, dtype=index)
        full = in_deg > 0
        self.first[full] = self.in_indices[g.in_indptr[:-1][full]]
        # Work buffers, reused by every search: fresh pages cost a page fault each, which
        # at scale 18 was a fifth of a whole search.
        self.flags = np.zeros(g.n_local, dtype=np.uint8)  # the frontier the halo exchange sends
        # bottom-up's frontier probe, and the next level's (bottom-up writes it)
        self.bits = [np.zeros((g.n_local + 63) // 64, dtype=np.uint64) for _ in range(2)]
        self.queues = [np.empty(g.n_local, dtype=index), np.empty(g.n_local, dtype=index)]
        self.todo = np.empty(g.n_owned, dtype=index)
        # the first bottom-up level's candidates: the vertices with in-edges (on RMAT a
        # third of the vertices has none, and skipping them cost a mispredicted branch)
        self.candidates = np.flatnonzero(full).astype(index)
        self.parent = np.empty(g.n_owned, dtype=index)  # the parent's local column
        self.warm: set[str] = set()  # the kernel modules called once on these arrays
        # the ghosts by original id, for setting the root's copies without a pass
        ghosts = self.col_original_ids[g.n_owned:]
        self.ghost_by_original = np.argsort(ghosts, kind="stable")
        self.sorted_ghost_original = ghosts[self.ghost_by_original]

    def find_ghost(self, original_id: int) -> int:
        """Local column of the ghost ``original_id``, -1 if it is no ghost here (local)."""
        at = sorted_find(self.sorted_ghost_original, self.ghost_by_original, original_id)
        return -1 if at < 0 else self.n_owned + at


def bfs_plan(graph: "DistGraph", kernels: ModuleType | None = None) -> _Plan:
    """The graph's BFS plan, built on first use with ``kernels`` (the numpy reference when
    None; every backend builds the same arrays). Collective on first use (halo exchanges
    of the degrees and ids); it holds a second copy of the in-edge indices."""
    return graph.derived("bfs_plan", lambda: _Plan(graph, kernels))


class BFSProgram:
    """BFS as a :class:`~hpcdist.graph.bsp.VertexProgram` (one level per superstep).

    ``problem`` is this rank's error with the caller's arguments, or None: it travels in the
    allreduce that finds the source, and every rank raises the first rank's one there."""

    name = "bfs"
    #: the frontier flags are 0/1: the communication optimizer sends them as bitmaps
    exchange_binary = True

    def __init__(self, graph: "DistGraph", kernels: ModuleType, source_local: int, *, direction: str = "auto",
                 alpha: float = ALPHA, beta: float = BETA, frontier: bool = True, source: int | None = None,
                 problem: BaseException | None = None) -> None:
        from hpcdist.runtime.comm import MPI

        g = self.graph = graph
        self.k = kernels
        self.direction = direction
        self.alpha, self.beta = float(alpha), float(beta)
        plan = self.plan = bfs_plan(g, kernels)
        self.in_deg, self.out_deg = plan.in_deg, plan.out_deg
        # With ``frontier`` the engine sends bitmaps built from the queue and fills the
        # ghost bits (hpcdist.graph.frontier_exchange); otherwise the owner keeps a flag
        # byte per vertex for the value exchanges. Alone, a rank has no ghost to fill.
        self.publishes_frontier = bool(frontier)
        self.exchanging = g.comm.Get_size() > 1 and not self.publishes_frontier
        #: the queues the frontier channel gathers from owned bits (None: no channel)
        self.gather_min = g.halo.frontier().gather_min if self.publishes_frontier and g.comm.Get_size() > 1 else None
        self.dist = kernels.int64_full(g.n_owned, -1)
        self.parent = plan.parent  # read only where dist > 0, so never cleared
        self.bits, self.next_bits = plan.bits
        self.bits_ready = False  # whether a bottom-up level left the owned bits in self.bits
        if self.exchanging:
            plan.flags.fill(0)
        # The frontier's owned vertices (this level's queue, then the next one's), and
        # bottom-up's candidates: the plan's list at first (n_todo -1), then compacted to
        # the unreached ones by each bottom-up level, so later ones skip what is reached.
        self.queue, self.next_queue = plan.queues
        self.n_queue = 0
        self.n_todo = -1
        self.advanced = False  # whether advance() ran for the level not yet applied
        src = np.zeros(4, dtype=np.int64)
        src[3] = problem is not None
        if source_local >= 0:
            self.dist[source_local] = 0
            self.queue[0] = source_local
            self.n_queue = 1
            if self.exchanging:
                plan.flags[source_local] = 1
            src[:3] = g.out_degree[source_local], self.in_deg[source_local], 1
        # Before the allreduce, which the ranks leave together: a rank that loaded the
        # kernels more slowly would otherwise make the others wait in the first exchange,
        # and superstep 0 would show that wait (10-16 ms on p2p-Gnutella04, two ranks).
        t0 = time.perf_counter()
        if kernels.NAME not in plan.warm:
            self._warm_up()
            plan.warm.add(kernels.NAME)
        self.warm_up_seconds = time.perf_counter() - t0
        glob = np.empty_like(src)
        g.comm.Allreduce(src, glob, op=MPI.SUM)
        if glob[3]:  # some rank's arguments are wrong: every rank raises the first one's error
            agree(g.comm, problem)
        #: the ranks that own the source: 0 when it is not a vertex (the same on every rank)
        self.source_owners = int(glob[2])
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
        # The first level's frontier is the source, whose original id every rank knows:
        # its ghost copies are set here (after the warm-up, which writes the bitmap), and
        # superstep 0 exchanges nothing.
        self.ghosts_ready = self.publishes_frontier and g.comm.Get_size() > 1 and source is not None
        if self.ghosts_ready:
            fx = g.halo.frontier()  # an unpack of no message clears the ghosts' bits
            kernels.frontier_unpack(fx.recv[:0], fx.recv_word[:0], fx.recv_count[:0], self.bits, g.n_owned)
            col = plan.find_ghost(source)
            if col >= 0:
                self.bits[col >> 6] |= np.uint64(1 << (col & 63))

    def _warm_up(self) -> None:
        """Call each kernel once with no work: numba compiles (or loads from its cache) the
        variants for these very array types here, in the set-up of the first search, not
        in its first level."""
        k, g, p = self.k, self.graph, self.plan
        k.nonzero_positions(p.flags[:0])
        k.bfs_top_down(p.t_indptr, p.t_rows, self.queue, 0, p.col_key, self.dist, self.parent, 0, self.out_deg,
                       self.in_deg, self.next_queue, 0)
        k.bfs_bottom_up(g.in_indptr, p.in_indices, p.first, self.bits, self.next_bits, p.col_key, self.dist,
                        self.parent, 0, self.out_deg, self.in_deg, self.next_queue, p.candidates, p.todo, 0)
        self.next_bits.fill(0)
        k.bfs_bitmap(self.bits, self.queue, 0, p.flags[:0], 0)
        k.bfs_owned_bits(self.bits[:0], self.queue, 0, 0)
        k.bfs_top_down_bits(p.t_indptr, p.t_rows, self.bits, 0, 0, p.col_key, self.dist, self.parent, 0,
                            self.out_deg, self.in_deg, self.next_queue, np.zeros(5, dtype=np.int64))
        k.bfs_top_down_both(p.t_indptr, p.t_rows, self.queue, 0, self.bits, 0, 0, p.col_key, self.dist, self.parent,
                            0, self.out_deg, self.in_deg, self.next_queue, 0)
        if self.publishes_frontier and g.comm.Get_size() > 1:
            g.halo.frontier().warm_up(self.queue, self.bits, k)
        k.bfs_flags(p.flags, self.queue, 0, self.next_queue, 0)
        k.bfs_parent_ids(self.dist[:0], self.parent[:0], p.col_original_ids)

    def _first_mode(self) -> int:
        return BOTTOM_UP if self.direction == "bottom-up" else TOP_DOWN

    def exchange_values(self, superstep: int) -> np.ndarray | None:
        return self.plan.flags if self.exchanging else None

    def exchange_frontier(self, superstep: int) -> tuple[np.ndarray, np.ndarray, int, bool] | None:
        """The bitmap whose ghost bits the engine fills, the owned frontier, and whether
        the bitmap's owned bits hold it too (after a bottom-up level); None at the first
        superstep, whose ghost bits (the source's copies) are set already."""
        if self.ghosts_ready:  # the source's copies, set in __init__
            self.ghosts_ready = False
            return None
        if not self.publishes_frontier:
            return None
        if not self.bits_ready and self.gather_min is not None and self.n_queue >= self.gather_min:
            # owned bits from a large queue cost less than its publish, and let the channel
            # gather instead; a bottom-up level needs them anyway
            self.k.bfs_owned_bits(self.bits, self.queue, self.n_queue, self.graph.n_owned)
            self.bits_ready = True
        return self.bits, self.queue, self.n_queue, self.bits_ready

    def _push(self, cols: np.ndarray, n_cols: int, n_queue: int) -> np.ndarray:
        p = self.plan
        return self.k.bfs_top_down(p.t_indptr, p.t_rows, cols, n_cols, p.col_key, self.dist, self.parent,
                                   self.level, self.out_deg, self.in_deg, self.next_queue, n_queue)

    def compute_interior(self, superstep: int) -> None:
        """Top-down: push from the owned frontier while the ghosts' flags are in flight.

        :meth:`compute` then pushes from the ghosts: owned columns first, as without
        the overlap, so the split changes no result.
        """
        if self.mode == TOP_DOWN:
            self.interior_out = self._push(self.queue, self.n_queue, 0)

    def compute(self, superstep: int) -> LocalStep:
        k, g, p = self.k, self.graph, self.plan
        no = g.n_owned
        if self.mode == TOP_DOWN:
            ghost_bits = no < g.n_local and self.publishes_frontier  # the ghosts' frontier as bits
            if ghost_bits and self.interior_out is None:
                # Nothing overlapped the exchange (the engine sent it with the last level's
                # counts): the owned frontier, then the ghosts from their bits, in one call.
                # A compiled call costs 1-2 us, as much as a small level's work.
                out = k.bfs_top_down_both(p.t_indptr, p.t_rows, self.queue, self.n_queue, self.bits, no, g.n_local,
                                          p.col_key, self.dist, self.parent, self.level, self.out_deg, self.in_deg,
                                          self.next_queue, 0)
            else:
                out = self.interior_out if self.interior_out is not None else self._push(self.queue, self.n_queue, 0)
                if ghost_bits:  # then the ghosts in the frontier, straight from their bits
                    out = k.bfs_top_down_bits(p.t_indptr, p.t_rows, self.bits, no, g.n_local, p.col_key, self.dist,
                                              self.parent, self.level, self.out_deg, self.in_deg, self.next_queue, out)
                elif no < g.n_local:
                    ghosts = k.nonzero_positions(p.flags[no:]) + no
                    more = self._push(ghosts, ghosts.shape[0], int(out[4]))
                    out = np.concatenate([out[:4] + more[:4], more[4:]])
            self.interior_out = None
        else:
            if self.publishes_frontier:  # the ghost bits are in place: the owned ones, unless a bottom-up left them
                if not self.bits_ready:
                    k.bfs_owned_bits(self.bits, self.queue, self.n_queue, no)
            else:
                k.bfs_bitmap(self.bits, self.queue, -1 if self.bits_ready else self.n_queue,
                             p.flags if self.exchanging else p.flags[:0], no)
            out = k.bfs_bottom_up(g.in_indptr, p.in_indices, p.first, self.bits, self.next_bits, p.col_key, self.dist,
                                  self.parent, self.level, self.out_deg, self.in_deg, self.next_queue, p.candidates,
                                  p.todo, self.n_todo)
            self.n_todo = int(out[5])
        c = out.tolist()
        self.n_next = c[4]
        if self.exchanging:  # the owned flags: this level's off, the next one's on
            k.bfs_flags(p.flags, self.queue, self.n_queue, self.next_queue, self.n_next)
        return LocalStep(counts=c[:4], active=c[0])

    def advance(self, superstep: int) -> None:
        """The local half of :meth:`apply`: the level's new frontier becomes the queue (and,
        after bottom-up, the owned bits), so that the engine can send it before the global
        counts are known (with them: :mod:`hpcdist.graph.frontier_exchange`)."""
        if self.advanced:
            return
        self.advanced = True
        self.queue, self.next_queue = self.next_queue, self.queue
        self.n_queue = self.n_next
        self.bits_ready = self.mode == BOTTOM_UP
        if self.bits_ready:
            self.bits, self.next_bits = self.next_bits, self.bits

    def apply(self, superstep: int, sums: list[float], counts: list[int]) -> bool:
        n_f, m_f, in_f, examined = counts
        self.advance(superstep)
        self.advanced = False
        self.modes.append(self.mode)
        self.examined += examined
        self.reached += n_f
        self.out_edges += m_f
        self.level += 1
        m_u = self.m_u - in_f
        self.mode = self._next_mode(n_f, m_f, m_u)
        self.n_f, self.m_f, self.m_u = n_f, m_f, m_u
        return n_f == 0

    def _next_mode(self, n_f: int, m_f: int, m_u: int) -> int:
        if self.direction != "auto":
            return self._first_mode()
        if self.mode == TOP_DOWN:
            # the frontier's edges outweigh what checking the unreached vertices would cost
            return BOTTOM_UP if m_f > m_u / self.alpha and n_f > self.n_f else TOP_DOWN
        # Beamer's, and only while pushing the frontier's edges costs less than scanning
        # every unreached vertex's whole row would: late levels scan short candidate lists
        return (TOP_DOWN if n_f < self.graph.n_vertices / self.beta and n_f < self.n_f and m_f < m_u
                else BOTTOM_UP)

    def parent_ids(self, ids: np.ndarray) -> np.ndarray:
        """The parents as ``ids`` of their local columns (-1 for the root and unreached)."""
        return self.k.bfs_parent_ids(self.dist, self.parent, ids)

    def state(self) -> dict[str, np.ndarray]:
        return {"dist": self.dist, "parent": self.parent_ids(self.plan.col_input_ids)}

    def scalars(self) -> dict[str, int]:
        return {"level": self.level, "mode": self.mode, "n_f": self.n_f, "m_f": self.m_f, "m_u": self.m_u,
                "examined": self.examined, "reached": self.reached, "out_edges": self.out_edges,
                "modes": "".join("TB"[m] for m in self.modes)}

    def restore(self, state: dict[str, np.ndarray], scalars: dict[str, int]) -> None:
        p = self.plan
        self.dist = np.array(state["dist"], dtype=np.int64)
        # parents by input id -> their local columns (a parent is an in-neighbour: local)
        order = np.argsort(p.col_input_ids, kind="stable")
        tree = self.dist > 0
        where = np.searchsorted(p.col_input_ids[order], np.asarray(state["parent"], dtype=np.int64)[tree])
        self.parent[tree] = order[where]
        self.level = int(scalars["level"])
        self.mode = int(scalars["mode"])
        self.n_f, self.m_f, self.m_u = int(scalars["n_f"]), int(scalars["m_f"]), int(scalars["m_u"])
        self.examined = int(scalars["examined"])
        self.reached, self.out_edges = int(scalars["reached"]), int(scalars["out_edges"])
        self.modes = ["TB".index(c) for c in str(scalars["modes"])]
        front = np.flatnonzero(self.dist == self.level)
        self.n_queue = front.shape[0]
        self.queue[: self.n_queue] = front
        p.flags.fill(0)
        if self.exchanging:
            p.flags[front] = 1
        self.n_todo = -1
        self.bits_ready = False
        self.ghosts_ready = False
        self.advanced = False


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
        How the frontier reaches the ghosts; identical results. ``auto``: bitmaps
        built from each level's queue (:mod:`hpcdist.graph.frontier_exchange`), one bit
        per ghost and no pass over the ghosts; ``sparse``: a flag byte per vertex through
        the generic optimizer (:func:`hpcdist.graph.bsp.run_bsp`), which packs them into
        bitmaps; ``dense``: the flag bytes through the plain exchange.

    Returns
    -------
    VertexResult
        ``values``: hop distance (int64, -1 where unreachable); ``extras["parent"]``:
        original id of the BFS parent (-1 for the root and unreachable vertices), the
        in-neighbour on the previous level of highest out-degree, the smallest input id
        among equals (:func:`parent_keys`). ``params`` holds
        ``source``, ``levels``, ``reached``, ``edges_traversed`` (edges of the reached
        vertices, each undirected edge once for a symmetric graph, as Graph500 counts),
        ``edges_examined``, ``teps`` and ``directions`` (``T``/``B`` per level).
    """
    from hpcdist.graph.algorithms.pagerank import resolve_kernels

    comm = graph.comm
    # checked here, agreed on in the allreduce that finds the source (BFSProgram): a
    # collective of its own would cost every search an allreduce
    problem = None
    if direction not in ("auto", "top-down", "bottom-up"):
        problem = InputError(f"bfs: direction must be auto, top-down or bottom-up, got {direction!r}")
    elif exchange not in ("auto", "sparse", "dense"):
        problem = InputError(f"bfs: exchange must be one of auto, sparse, dense, got {exchange!r}")
    if isinstance(backend, str) or backend is None:
        # agreed once per graph and backend name: repeated roots (Graph500's 64) skip it
        kernels = graph.derived(("bfs_kernels", backend), lambda: resolve_kernels(backend, comm))
    else:
        kernels = resolve_kernels(backend, comm)

    src_local = graph.find_original(source)
    program = BFSProgram(graph, kernels, src_local, direction=direction, frontier=exchange == "auto", source=source,
                         problem=problem)
    if program.source_owners == 0:
        graph.locate(source, "bfs: source vertex")  # raises the graph's InputError on every rank
    run = run_bsp(graph, program, max_supersteps=graph.n_vertices + 1, kernels=kernels, progress=progress,
                  on_superstep=on_superstep, resume=resume, exchange=exchange, agreed=True)
    # every reached vertex was in exactly one level's counts: no pass over the vertices
    edges = program.out_edges if graph.directed else program.out_edges // 2
    levels = program.level  # the last superstep found nothing
    parent_orig = program.parent_ids(program.plan.col_original_ids)
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
