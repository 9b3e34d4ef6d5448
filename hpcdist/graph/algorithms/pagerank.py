"""PageRank by power iteration, as ``networkx.pagerank`` defines it, on the BSP engine.

Per superstep: each rank publishes ``x[u] / out_weight[u]`` of its owned vertices,
the halo exchange fills the ghosts, a pull kernel sums each vertex's in-edges (in
input-id order of the sources), and the update

    x_new = alpha * (A^T x / S + dangling_mass * dangling_weights) + (1 - alpha) * p

follows networkx's operation order. The dangling mass and the L1 change are global
sums, reduced reproducibly, so the result is bit-identical on every rank count and
partitioner. Convergence: L1 change < n * tol (networkx's test).
"""

from __future__ import annotations

import time
from types import ModuleType
from typing import TYPE_CHECKING, Mapping

import numpy as np

from hpcdist.graph.bsp import LocalStep, Resume, SuperstepHook, run_bsp
from hpcdist.graph.reduce import reproducible_sums
from hpcdist.graph.results import VertexResult
from hpcdist.runtime.errors import InputError, collective

if TYPE_CHECKING:
    from mpi4py import MPI

    from hpcdist.graph.distgraph import DistGraph
    from hpcdist.runtime.backend import Backend

__all__ = ["pagerank", "check_parameters", "PageRankProgram", "resolve_kernels", "share_cores", "pull_plan", "column_keys"]

#: Fixed-point scale of PageRank's global sums: every term (a rank, a change of rank,
#: dangling mass) lies below 2^1 for a probability vector.
SCALE_EXP = 1


def resolve_kernels(backend: "str | Backend | None", comm) -> ModuleType:
    """The kernel module for a backend request, agreed over ``comm`` for ``auto``.

    Graph kernels run on the CPU: ``auto`` means numba when it imports, else numpy.
    Collective over ``comm``.
    """
    from hpcdist.kernels import kernels_for
    from hpcdist.runtime.backend import Backend, resolve_backend
    from hpcdist.runtime.devices import CPU

    if isinstance(backend, Backend):
        name = backend.name
    else:
        with collective(comm):
            name = resolve_backend(backend or "auto", CPU, comm).name
    with collective(comm):
        module = kernels_for(name)
    if name == "numba":
        share_cores(comm)
    return module


def share_cores(comm) -> int:
    """Give each rank's numba threads its share of the node's cores; returns the thread count.

    Ranks on one node would otherwise each start one thread per core and oversubscribe
    it. An explicit ``NUMBA_NUM_THREADS`` below the share is kept. Collective over ``comm``.
    """
    import os

    import numba

    from hpcdist.runtime.topology import discover_topology

    local = discover_topology(comm).local_size
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, min(numba.config.NUMBA_NUM_THREADS, cores // max(local, 1)))
    numba.set_num_threads(threads)
    return threads


def column_keys(graph: "DistGraph") -> np.ndarray:
    """Input id of every local column (owned, then ghosts), the in-edges' summation key.

    Collective over ``graph.comm`` (one halo exchange; the ids travel as float64, exact
    below 2^53).
    """
    keys = np.zeros(graph.n_local, dtype=np.float64)
    keys[: graph.n_owned] = graph.owned_input_ids
    graph.halo.exchange(keys)
    return keys.astype(np.int64)


def pull_plan(graph: "DistGraph", kernels: ModuleType, weighted: bool) -> tuple[object, float]:
    """The kernels' pull plan for the graph's in-edge CSR (see ``make_pull``), built once per graph.

    The plan is kept on the graph, so repeated runs skip the repacking. Returns the plan
    and the seconds it took to build (0.0 when cached). Collective over ``graph.comm``
    (every rank takes the same branch: the cache is filled on all ranks at once).
    """
    import time

    cache = graph.__dict__.setdefault("_pull_plans", {})
    key = (kernels.NAME, bool(weighted))
    if key in cache:
        return cache[key], 0.0
    t0 = time.perf_counter()
    keys = graph.__dict__.get("_pull_column_keys")
    if keys is None:
        keys = graph.__dict__["_pull_column_keys"] = column_keys(graph)
    plan = kernels.make_pull(graph.in_indptr, graph.in_indices, graph.in_weights if weighted else None, keys)
    cache[key] = plan
    return plan, time.perf_counter() - t0


class SplitPull:
    """The pull of :func:`pull_plan` in two parts: interior rows (in-edges from owned
    columns only, computable before the ghosts arrive) and boundary rows.

    Each part is the kernels' pull plan of the sub-CSR of its rows, so every row's sum
    runs over the same edges in the same order as the whole plan's: the same bits.
    Built without communication (from the column keys :func:`pull_plan` kept).
    """

    def __init__(self, graph: "DistGraph", kernels: ModuleType, weighted: bool) -> None:
        no = graph.n_owned
        indptr, indices = graph.in_indptr, graph.in_indices
        keys = graph.__dict__["_pull_column_keys"]
        deg = np.diff(indptr)
        row_of_edge = np.repeat(np.arange(no, dtype=np.int64), deg)
        has_ghost = np.bincount(row_of_edge[indices >= no], minlength=no) > 0
        self.interior = np.flatnonzero(~has_ghost)
        self.boundary = np.flatnonzero(has_ghost)
        data = graph.in_weights if weighted else None

        def part(rows: np.ndarray, n_cols: int) -> object:
            keep = np.repeat(np.isin(np.arange(no), rows), deg)
            sub_ptr = np.concatenate([[0], np.cumsum(deg[rows])]).astype(indptr.dtype)
            return kernels.make_pull(sub_ptr, indices[keep], None if data is None else data[keep], keys[:n_cols])

        # interior rows read owned columns only: a plan over those never touches a ghost slot
        self.pull_interior = part(self.interior, no)
        self.pull_boundary = part(self.boundary, keys.shape[0])
        self.y_interior = np.empty(self.interior.shape[0])
        self.y_boundary = np.empty(self.boundary.shape[0])


def split_pull(graph: "DistGraph", kernels: ModuleType, weighted: bool) -> SplitPull:
    """The :class:`SplitPull` of the graph's in-edge CSR, kept on the graph. Call
    :func:`pull_plan` first (it keeps the column keys)."""
    cache = graph.__dict__.setdefault("_pull_plans", {})
    key = (kernels.NAME, bool(weighted), "split")
    if key not in cache:
        cache[key] = SplitPull(graph, kernels, weighted)
    return cache[key]


#: Safety factor of the float32 rule (see :meth:`PageRankProgram.lossy_exchange_refusal`):
#: 2 for the difference of two rounding errors, 2 for margin.
LOSSY_FACTOR = 4.0


class PageRankProgram:
    """PageRank as a :class:`~hpcdist.graph.bsp.VertexProgram`.

    It tolerates float32 halo values (``exchange_lossy_ok``) when the tolerance allows
    them: see :meth:`lossy_exchange_refusal`.
    """

    name = "pagerank"
    exchange_lossy_ok = True

    def __init__(
        self,
        graph: "DistGraph",
        kernels: ModuleType,
        *,
        alpha: float,
        tol: float,
        personalization: np.ndarray | None,
        dangling: np.ndarray | None,
        nstart: np.ndarray | None,
        weighted: bool,
    ) -> None:
        g = self.graph = graph
        self.k = kernels
        self.alpha = float(alpha)
        self.tol = float(tol)
        n, no = g.n_vertices, g.n_owned
        self.pull, self.pull_seconds = pull_plan(g, kernels, weighted)
        self.weighted = weighted
        self.split: SplitPull | None = None
        self.interior_done = False
        out_w = g.out_weight if weighted else g.out_degree.astype(np.float64)
        # networkx: S = row sums; S[S != 0] = 1 / S; dangling where S == 0.
        self.inv_out = np.zeros(no, dtype=np.float64)
        nz = out_w != 0
        self.inv_out[nz] = 1.0 / out_w[nz]
        self.dangling_idx = np.flatnonzero(~nz)
        self.is_dangling = (~nz).astype(np.uint8)
        self.p = self._normalised(personalization, n, "personalization")
        self.dw = self.p if dangling is None else self._normalised(dangling, n, "dangling")
        self.x = np.full(no, 1.0 / n) if nstart is None else self._normalised(nstart, n, "nstart", allow_zero=False)
        self.x_new = np.empty(no)
        self.y = np.empty(no)
        self.contrib = np.zeros(g.n_local)
        (self.dangling_mass,), _ = reproducible_sums(g.comm, [self.x[self.dangling_idx]], kernels)
        self._publish()
        self.err = float("inf")
        t0 = time.perf_counter()
        self._warm_up()
        self.warm_up_seconds = time.perf_counter() - t0

    def _warm_up(self) -> None:
        """Run the kernels once into scratch buffers.

        numba compiles (or loads from its cache) on the first call; doing that here puts
        the cost in the set-up (``warm_up_seconds``) instead of the first superstep's time.
        """
        y = np.empty_like(self.y)
        self.pull(self.contrib, y)
        self.k.pagerank_step(y, self.dw, self.dangling_mass, self.p, self.alpha, self.inv_out, self.is_dangling,
                             self.x, np.empty_like(self.x_new), self.contrib.copy(), 2.0**-SCALE_EXP)

    def lossy_exchange_refusal(self, dtype: np.dtype) -> str | None:
        """Why float halo values of ``dtype`` would break this run's tolerance, or None.

        The rule, for unit roundoff ``u`` (``2^-24`` for float32): accept when
        ``alpha < 1``, the personalization and dangling weights are non-negative, and
        ``n * tol >= 4 * u * alpha / (1 - alpha)``.

        Why: rounding the published ``contrib = x / out_weight`` to ``dtype`` changes each
        by at most ``u`` relatively, so the pull's sums change by at most ``u * |x|_1 = u``
        in L1 (each ``x[v]`` is spread over ``v``'s out-edges), and one iteration's update
        by at most ``alpha * u``. The update is an L1 contraction by ``alpha`` (column-
        stochastic for non-negative weights), so (1) the L1 change between iterations,
        which networkx's test compares with ``n * tol``, settles below
        ``2 * u * alpha / (1 - alpha)`` (two rounding errors per difference); the factor
        4 leaves it at most half of ``n * tol``, so the run still converges; and (2) the
        result lies within ``alpha / (1 - alpha) * (n * tol + u)`` in L1 of the exact
        PageRank, against ``alpha / (1 - alpha) * n * tol`` for the float64 run: the
        rounding adds at most a quarter of ``n * tol``. The two runs differ by at most
        ``alpha / (1 - alpha) * (2 * n * tol + u)``. Collective over the graph's
        communicator (the sign check).
        """
        from hpcdist.runtime.comm import MPI

        u = float(np.finfo(dtype).eps) / 2
        n = self.graph.n_vertices
        if self.alpha >= 1.0:
            return (f"pagerank: exchange_precision={dtype.name!r} needs alpha < 1 (got {self.alpha:g}): "
                    "without damping the rounding error is not bounded")
        signed = bool(np.any(self.p < 0) or np.any(self.dw < 0))
        if self.graph.comm.allreduce(signed, op=MPI.LOR):
            return (f"pagerank: exchange_precision={dtype.name!r} needs non-negative personalization and dangling "
                    "weights: the rounding bound assumes a probability vector")
        # contrib = x / out_weight <= 1 / out_weight: a tiny out-weight would round to inf, not within u
        largest = self.graph.comm.allreduce(float(np.max(self.inv_out, initial=0.0)), op=MPI.MAX)
        if largest > float(np.finfo(dtype).max):
            return (f"pagerank: exchange_precision={dtype.name!r}: an out-weight below 1 / {float(np.finfo(dtype).max):.3g} "
                    f"would make a contribution overflow {dtype.name}; keep float64 halo values")
        floor = LOSSY_FACTOR * u * self.alpha / (1.0 - self.alpha)
        if n * self.tol < floor:
            return (f"pagerank: tol={self.tol:g} is tighter than {dtype.name} halo values can honour on {n:,} vertices "
                    f"at alpha={self.alpha:g}: they need n * tol >= 4 * 2^{int(np.log2(u))} * alpha / (1 - alpha), "
                    f"i.e. tol >= {floor / n:.3g} (or keep float64 halo values)")
        return None

    def _normalised(self, values: np.ndarray | None, n: int, what: str, allow_zero: bool = False) -> np.ndarray:
        if values is None:
            return np.full(self.graph.n_owned, 1.0 / n)
        (total,), _ = reproducible_sums(self.graph.comm, [values], self.k)
        with collective(self.graph.comm):
            if total == 0:
                raise InputError(f"pagerank: the {what} values sum to zero")
        return values / total

    def _publish(self) -> None:
        self.k.scale_by(self.x, self.inv_out, self.contrib)

    def exchange_values(self, superstep: int) -> np.ndarray:
        return self.contrib

    def prepare_overlap(self) -> None:
        """Build the interior/boundary pull (the engine calls this before an overlapped run)."""
        t0 = time.perf_counter()
        self.split = split_pull(self.graph, self.k, self.weighted)
        sp = self.split
        sp.pull_interior(self.contrib, sp.y_interior)  # numba compiles or loads here, not in a superstep
        sp.pull_boundary(self.contrib, sp.y_boundary)
        self.warm_up_seconds += time.perf_counter() - t0

    def compute_interior(self, superstep: int) -> None:
        """The pull of the rows without ghost in-edges, while the ghosts are in flight."""
        if self.split is None:
            self.prepare_overlap()
        sp = self.split
        sp.pull_interior(self.contrib, sp.y_interior)
        self.interior_done = True

    def compute(self, superstep: int) -> LocalStep:
        k = self.k
        if self.interior_done:
            sp = self.split
            sp.pull_boundary(self.contrib, sp.y_boundary)
            self.y[sp.interior] = sp.y_interior
            self.y[sp.boundary] = sp.y_boundary
            self.interior_done = False
        else:
            self.pull(self.contrib, self.y)
        # One fused pass: new ranks, the values to publish next, and the fixed-point limbs
        # of the L1 change and the dangling mass. Ranks are probabilities, so every term
        # lies below 2 = 2^SCALE_EXP; the engine falls back to a measured scale otherwise.
        out = k.pagerank_step(self.y, self.dw, self.dangling_mass, self.p, self.alpha, self.inv_out,
                              self.is_dangling, self.x, self.x_new, self.contrib, 2.0**-SCALE_EXP)
        return LocalStep(limbs=[out[0:3], out[3:6]], exponents=[SCALE_EXP, SCALE_EXP], overflow=int(out[6]),
                         fallback=self._terms, active=self.graph.n_owned)

    def _terms(self) -> list[np.ndarray]:
        return [np.abs(self.x_new - self.x), self.x_new[self.dangling_idx]]

    def apply(self, superstep: int, sums: list[float], counts: list[int]) -> bool:
        self.err, self.dangling_mass = sums
        self.x, self.x_new = self.x_new, self.x  # contrib was written by the fused kernel
        return self.err < self.graph.n_vertices * self.tol

    def state(self) -> dict[str, np.ndarray]:
        return {"x": self.x}

    def scalars(self) -> dict[str, float]:
        # float repr round-trips exactly through JSON, so a resumed run is bit-identical.
        return {"dangling_mass": float(self.dangling_mass), "err": float(self.err)}

    def restore(self, state: dict[str, np.ndarray], scalars: dict[str, float]) -> None:
        self.x = np.array(state["x"], dtype=np.float64)
        self.dangling_mass = float(scalars["dangling_mass"])
        self.err = float(scalars["err"])
        self._publish()


def check_parameters(comm: "MPI.Intracomm", alpha: float, tol: float, max_iter: int) -> None:
    """Refuse bad PageRank parameters with one InputError on every rank of ``comm``.

    Shared by the edge-cut (:func:`pagerank`) and the gather-apply-scatter runs.
    """
    with collective(comm):
        if not 0.0 <= alpha <= 1.0:
            raise InputError(f"pagerank: alpha must lie in [0, 1], got {alpha}")
        if not tol > 0:
            raise InputError(f"pagerank: tol must be positive, got {tol}")
        if max_iter < 1:
            raise InputError(f"pagerank: max_iter must be at least 1, got {max_iter}")


def pagerank(
    graph: "DistGraph",
    alpha: float = 0.85,
    personalization: Mapping[int, float] | None = None,
    max_iter: int = 100,
    tol: float = 1.0e-6,
    nstart: Mapping[int, float] | None = None,
    weighted: bool | None = None,
    dangling: Mapping[int, float] | None = None,
    *,
    backend: "str | Backend | None" = "auto",
    progress: bool = False,
    on_superstep: SuperstepHook | None = None,
    resume: Resume | None = None,
    exchange: str = "auto",
    exchange_precision: str = "float64",
) -> VertexResult:
    """PageRank of every vertex, with the parameters and semantics of ``networkx.pagerank``.

    Collective over ``graph.comm``.

    Parameters
    ----------
    graph : DistGraph
    alpha : float
        Damping factor.
    personalization : mapping of original id to float, optional
        Teleport distribution (normalised; ids absent from the graph are ignored); uniform
        when None.
    max_iter : int
        Most supersteps. Unlike networkx, not converging is reported in the result's
        ``converged`` attribute, not raised.
    tol : float
        Stop once the L1 change of an iteration is below ``n * tol``.
    nstart : mapping of original id to float, optional
        Starting vector (normalised); uniform when None.
    weighted : bool, optional
        Use edge weights (default: when the graph has them, as networkx does).
    dangling : mapping of original id to float, optional
        Where the rank of dangling vertices (no out-weight) goes; ``personalization``
        when None.
    backend : {"auto", "numba", "numpy"} or Backend
        Kernels for the local compute; identical results either way.
    progress : bool
        Progress bar on rank 0.
    on_superstep : callable, optional
        ``hook(superstep, program)`` after each superstep (checkpoints).
    resume : Resume, optional
        Continue from a checkpoint's state (see :class:`hpcdist.graph.bsp.Resume`).
    exchange : {"auto", "sparse", "dense"}
        The halo exchange (see :func:`hpcdist.graph.bsp.run_bsp`); identical results.
    exchange_precision : {"float64", "float32"}
        ``float32`` (opt-in): the published contributions are rounded to float32 on every
        rank and travel as 4 bytes. Results stay bit-identical for every rank count and
        ``exchange``, and lie within ``alpha / (1 - alpha) * (2 * n * tol + 2^-24)`` (L1)
        of the float64 run's. Refused (InputError) when ``tol`` is tighter than the
        rounding allows: :meth:`PageRankProgram.lossy_exchange_refusal` gives the rule.

    Returns
    -------
    VertexResult
    """
    comm = graph.comm
    check_parameters(comm, alpha, tol, max_iter)
    kernels = resolve_kernels(backend, comm)
    use_weights = graph.weighted if weighted is None else bool(weighted and graph.weighted)

    def owned(mapping: Mapping[int, float] | None) -> np.ndarray | None:
        if mapping is None:
            return None
        return graph.from_input_layout(graph.block_values_from_mapping(mapping))

    program = PageRankProgram(
        graph,
        kernels,
        alpha=alpha,
        tol=tol,
        personalization=owned(personalization),
        dangling=owned(dangling),
        nstart=owned(nstart),
        weighted=use_weights,
    )
    run = run_bsp(graph, program, max_supersteps=max_iter, kernels=kernels, progress=progress, on_superstep=on_superstep,
                  resume=resume, exchange=exchange, exchange_precision=exchange_precision)
    return VertexResult(
        graph=graph,
        values=program.x.copy(),
        algorithm="pagerank",
        iterations=run.supersteps,
        converged=run.converged,
        seconds=run.seconds,
        run=run,
        params={"alpha": float(alpha), "tol": float(tol), "max_iter": int(max_iter), "backend": kernels.NAME,
                "weighted": use_weights, "final_error": float(program.err), "exchange_precision": exchange_precision,
                "pull": program.pull.describe(), "pull_plan_seconds": program.pull_seconds,
                "warm_up_seconds": program.warm_up_seconds},
    )
