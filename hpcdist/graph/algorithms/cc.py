"""Connected components (weakly connected for directed graphs) on the BSP engine.

Each rank first joins its local subgraph (its owned vertices, their in-edges and the
ghosts at their other ends) with a union-find, so every vertex starts pointing at the
smallest member of its local component; a block or METIS partition leaves little for
the distributed phase. Then FastSV (Zhang, Azad, Hu, "FastSV: a distributed-memory
connected component algorithm with fast convergence", 2020) runs across ranks on the
parent pointers ``f`` (one superstep per iteration):

* ``gf = f[f]``: each rank asks the owners of its vertices' parents (one request and one
  reply all-to-all of the distinct parents);
* ``mngf[u] = min(gf[v])`` over the neighbours ``v`` of ``u`` (both edge directions),
  taken over ``u``'s whole local component, which holds its neighbours (a pass over the
  columns, not the edges, and a minimum never larger, so FastSV converges as fast): the
  forward halo exchange brings the ghosts' ``gf``, and the reverse halo exchange
  min-combines the ghosts' minima at their owners (skipped where every edge is stored
  both ways: then each owner's component holds all of its vertex's neighbours too);
* stochastic hooking ``f[f[u]] = min(f[f[u]], mngf[u])`` (an all-to-all to the owners
  of the parents), aggressive hooking ``f[u] = min(f[u], mngf[u])`` and shortcutting
  ``f[u] = min(f[u], gf[u])``.

Pointer jumping makes the number of iterations grow with the log of the component
diameter rather than the diameter. Pointers are compared by the input id of the vertex
they point to (a partition-independent order) and routed by its new global id, so each
pointer is a pair. When nothing changes, every component is a star around its
smallest-input-id member; the output label, the smallest *original* id of the
component, is then reduced at the directory block of that root.
"""

from __future__ import annotations

import time
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from hpcdist.graph.bsp import LocalStep, Resume, SuperstepHook, run_bsp
from hpcdist.graph.results import VertexResult

if TYPE_CHECKING:
    from hpcdist.graph.distgraph import DistGraph
    from hpcdist.graph.gas import VertexCutGraph
    from hpcdist.runtime.backend import Backend

__all__ = ["connected_components", "CCProgram", "component_summary", "component_labels"]


class CCProgram:
    """FastSV connected components as a :class:`~hpcdist.graph.bsp.VertexProgram`."""

    name = "cc"

    def __init__(self, graph: "DistGraph", kernels: ModuleType) -> None:
        from hpcdist.runtime.comm import MPI

        g = self.graph = graph
        self.k = kernels
        no, nl = g.n_owned, g.n_local
        self.keys = g.column_input_ids()
        self.l2g = g.local_to_global
        t_indptr, t_rows, _ = g.local_out(kernels)  # built once per graph, shared with BFS and SSSP
        root = self.root = kernels.local_components(g.in_indptr, g.in_indices, nl, self.keys, t_indptr, t_rows)
        self.fkey = self.keys[root[:no]].copy()  # input id of the parent (the comparison key)
        self.fptr = self.l2g[root[:no]].copy()  # new global id of the parent (the route)
        self.gk = np.empty(nl, dtype=np.int64)
        self.gp = np.empty(nl, dtype=np.int64)
        self.mk = np.empty(nl, dtype=np.int64)
        self.mp = np.empty(nl, dtype=np.int64)
        self.changed = -1
        self.owned = np.arange(no, dtype=np.int64)  # cc_combine's index where every owned vertex takes part
        # numba compiles (or loads) these variants here, in the set-up: calls with no work.
        # Before the allreduce, which the ranks leave together, so that no rank waits for
        # another's loads in the first superstep (there, the grandparents' hashing alone
        # was 9 of its 11 ms on p2p-Gnutella04 at two ranks).
        t0 = time.perf_counter()
        kernels.cc_component_min(root[:0], self.gk[:0], self.gp[:0], self.mk[:0], self.mp[:0])
        kernels.cc_combine(g.halo.layout.send_index[:0], self.gk[:0], self.gp[:0], self.mk, self.mp)
        kernels.unique_inverse(self.fptr[:0], sort=False)
        self.warm_up_seconds = time.perf_counter() - t0
        # With no edge between ranks (one rank, or parts that are unions of components),
        # the local components are the components: the one superstep confirms it, without work.
        crossing = np.array([nl - no], dtype=np.int64)
        g.comm.Allreduce(MPI.IN_PLACE, crossing, op=MPI.SUM)
        self.local_is_final = int(crossing[0]) == 0
        # Every edge stored both ways (checked, not the caller's directed=False): each row
        # already sees all its neighbours, so nothing is pushed to the ghosts and sent back.
        self.symmetric = not self.local_is_final and g.is_symmetric(kernels)

    def _grandparents(self) -> None:
        """``(gk, gp)[:n_owned] = f[f]``: parents' parents from their owners."""
        from hpcdist.graph.exchange import rank_order, redistribute
        from hpcdist.graph.partition import part_of

        g = self.graph
        no, rank = g.n_owned, g.rank
        # in first-seen order: the owners are found per value and the asks grouped by
        # owner (rank_order), so no order of the values is needed, and sorting the
        # distinct ones (tens of thousands on RMAT) was most of the hashing's time
        uniq, inv = self.k.unique_inverse(self.fptr, sort=False)
        owners = part_of(uniq, g.bounds)
        ans_k = np.empty(uniq.shape[0], dtype=np.int64)
        ans_p = np.empty(uniq.shape[0], dtype=np.int64)
        here = owners == rank
        ans_k[here] = self.fkey[uniq[here] - g.start]
        ans_p[here] = self.fptr[uniq[here] - g.start]
        far = np.flatnonzero(~here)
        asked, who = redistribute(g.comm, owners[far], uniq[far], np.full(far.shape[0], rank, dtype=np.int64))
        rk, rp = redistribute(g.comm, who, self.fkey[asked - g.start], self.fptr[asked - g.start])
        # redistribute returns items grouped by the sender's rank, in the order sent
        back = far[rank_order(owners[far], g.size)]
        ans_k[back], ans_p[back] = rk, rp
        self.gk[:no] = ans_k[inv]
        self.gp[:no] = ans_p[inv]

    def exchange_values(self, superstep: int) -> np.ndarray | None:
        if self.local_is_final:
            return None
        self._grandparents()
        return self.gk  # the engine's halo exchange fills the ghosts' keys

    def compute(self, superstep: int) -> LocalStep:
        from hpcdist.graph.exchange import redistribute
        from hpcdist.graph.partition import part_of

        g, k = self.graph, self.k
        if self.local_is_final:
            return LocalStep(counts=[0], active=0)
        no = g.n_owned
        g.halo.exchange(self.gp)
        mk, mp = self.mk, self.mp
        k.cc_component_min(self.root, self.gk, self.gp, mk, mp)
        if not self.symmetric:  # the ghosts' minima go to their owners, combined by key
            rk = g.halo.reverse_gather(mk).copy()  # the buffer is shared by int64 channels
            rp = g.halo.reverse_gather(mp)
            k.cc_combine(g.halo.layout.send_index, rk, rp, mk, mp)
        new_k, new_p = self.fkey.copy(), self.fptr.copy()
        # stochastic hooking: the parent's parent moves to mngf where that is smaller
        hook = np.flatnonzero(mk[:no] < self.gk[:no])
        target = self.fptr[hook]
        t, hk, hp = redistribute(g.comm, part_of(target, g.bounds), target, mk[hook], mp[hook])
        k.cc_combine(t - g.start, hk, hp, new_k, new_p)
        # aggressive hooking and shortcutting: every owned vertex, in one compiled pass each
        # (boolean selections of the lowered ones cost a millisecond a superstep at RMAT 18)
        k.cc_combine(self.owned, mk[:no], mp[:no], new_k, new_p)
        k.cc_combine(self.owned, self.gk[:no], self.gp[:no], new_k, new_p)
        changed = int(np.count_nonzero(new_k != self.fkey))
        self.fkey, self.fptr = new_k, new_p
        return LocalStep(counts=[changed], active=changed)

    def apply(self, superstep: int, sums: list[float], counts: list[int]) -> bool:
        self.changed = int(counts[0])
        return self.changed == 0

    def state(self) -> dict[str, np.ndarray]:
        return {"parent": self.fkey}

    def scalars(self) -> dict[str, int]:
        return {"changed": self.changed}

    def restore(self, state: dict[str, np.ndarray], scalars: dict[str, int]) -> None:
        from hpcdist.graph.distgraph import directory_lookup

        g = self.graph
        self.changed = int(scalars["changed"])
        if self.local_is_final:  # the set-up's local answer is final: a run that was cut short adds nothing
            return
        self.fkey = np.array(state["parent"], dtype=np.int64)
        # the route (new id) of each parent, which depends on this run's partition
        self.fptr = directory_lookup(g.comm, self.fkey, g.n_vertices, g.partition.block_new_ids)


def component_labels(graph: "DistGraph | VertexCutGraph", root_key: np.ndarray,
                     kernels: ModuleType) -> tuple[np.ndarray, np.ndarray]:
    """Smallest original id of each owned vertex's (a master's) component, given the input id
    of its root, and the component sizes held at this rank's directory block (0 elsewhere).
    Collective.

    Each rank first folds its vertices by root (the smallest original id and the count
    per distinct root), so what travels is one item per component present here, not one
    per vertex: on RMAT most vertices share the giant component's root.
    """
    from hpcdist.graph.distgraph import directory_lookup
    from hpcdist.graph.exchange import redistribute
    from hpcdist.graph.partition import block_owner

    n = graph.n_vertices
    bstart, bstop = graph.block_range
    roots, inv = kernels.unique_inverse(root_key, sort=False)
    low = np.full(roots.shape[0], np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(low, inv, graph.owned_original_ids())
    count = np.bincount(inv, minlength=roots.shape[0]).astype(np.int64)
    rk, ro, rc = redistribute(graph.comm, block_owner(roots, n, graph.size), roots, low, count)
    best = np.full(bstop - bstart, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best, rk - bstart, ro)
    sizes = np.zeros(bstop - bstart, dtype=np.int64)
    np.add.at(sizes, rk - bstart, rc)
    return directory_lookup(graph.comm, roots, n, best)[inv], sizes


def component_summary(graph: "DistGraph", sizes: np.ndarray) -> dict[str, object]:
    """Number of components, the largest, and sizes by powers of two (``"2^k"``: sizes in
    ``[2^k, 2^(k+1))``). Collective; every rank gets the same dict."""
    from hpcdist.runtime.comm import MPI

    # frexp's exponent is floor(log2(size)) + 1, and 0 for the empty slots, which bin 0
    # takes: no mask over the block (a boolean selection cost 1 ms of 262 144 at RMAT 18)
    exponent = np.frexp(sizes.astype(np.float64))[1]
    hist = np.bincount(exponent, minlength=65)[1:65].astype(np.int64)
    total = np.empty_like(hist)
    graph.comm.Allreduce(hist, total, op=MPI.SUM)
    largest = int(graph.comm.allreduce(int(sizes.max(initial=0)), op=MPI.MAX))
    top = int(np.flatnonzero(total).max(initial=0))
    return {"components": int(total.sum()), "largest_component": largest,
            "size_histogram": {f"2^{b}": int(total[b]) for b in range(top + 1) if total[b]}}


def connected_components(
    graph: "DistGraph",
    *,
    max_iter: int | None = None,
    backend: "str | Backend | None" = "auto",
    progress: bool = False,
    on_superstep: SuperstepHook | None = None,
    resume: Resume | None = None,
    exchange: str = "auto",
) -> VertexResult:
    """Connected components; weakly connected for a directed graph (both edge directions count).

    Collective over ``graph.comm``.

    Parameters
    ----------
    graph : DistGraph
    max_iter : int, optional
        Most FastSV iterations (supersteps); by default ``n + 1``, which is never reached
        (every iteration that does not finish lowers some pointer).
    backend : {"auto", "numba", "numpy"} or Backend
        Kernels for the local work; identical results either way.
    progress : bool
        Progress bar on rank 0.
    on_superstep : callable, optional
        ``hook(superstep, program)`` after each iteration (checkpoints).
    resume : Resume, optional
        Continue from a checkpoint's state (see :class:`hpcdist.graph.bsp.Resume`).
    exchange : {"auto", "sparse", "dense"}
        The engine's halo exchange of the grandparent keys (see
        :func:`hpcdist.graph.bsp.run_bsp`); identical results.

    Returns
    -------
    VertexResult
        ``values``: the smallest original vertex id of each vertex's component (int64).
        ``params``: ``components``, ``largest_component``, ``size_histogram`` (a dict,
        also written as a string attribute ``size_histogram_json``).
    """
    import json

    from hpcdist.graph.algorithms.pagerank import resolve_kernels

    kernels = resolve_kernels(backend, graph.comm)
    program = CCProgram(graph, kernels)
    limit = graph.n_vertices + 1 if max_iter is None else int(max_iter)
    run = run_bsp(graph, program, max_supersteps=limit, kernels=kernels, progress=progress,
                  on_superstep=on_superstep, resume=resume, exchange=exchange)
    labels, sizes = component_labels(graph, program.fkey, kernels)
    summary = component_summary(graph, sizes)
    return VertexResult(
        graph=graph,
        values=labels,
        algorithm="cc",
        iterations=run.supersteps,
        converged=run.converged,
        seconds=run.seconds,
        run=run,
        params={"backend": kernels.NAME, **summary, "size_histogram_json": json.dumps(summary["size_histogram"]),
                "warm_up_seconds": program.warm_up_seconds},
    )
