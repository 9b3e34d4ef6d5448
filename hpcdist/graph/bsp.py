"""The bulk-synchronous superstep loop every graph algorithm runs on.

One superstep: the halo exchange of the values the program publishes, the local
compute (a kernel over owned vertices), then one pair of small collectives that
reduce the program's global values reproducibly (:mod:`hpcdist.graph.reduce`) and
decide convergence. The engine times each phase, counts bytes and active vertices,
shows progress on rank 0 and calls a hook after every superstep (where checkpoints
go). Algorithms are :class:`VertexProgram` objects: what to compute, not how to loop.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Callable, Protocol, Sequence

import numpy as np

from hpcdist.graph.reduce import reduce_fixed, reproducible_sums
from hpcdist.runtime.logs import get_logger

if TYPE_CHECKING:
    from hpcdist.graph.distgraph import DistGraph

__all__ = ["LocalStep", "VertexProgram", "SuperstepMetrics", "BSPRun", "Resume", "run_bsp", "SuperstepHook",
           "lossy_exchange_refusal"]

log = get_logger(__name__)


@dataclass
class LocalStep:
    """What one rank's compute phase hands to the global reduction.

    Attributes
    ----------
    sums : sequence of numpy.ndarray of float64
        Terms of global float sums (reduced reproducibly: same bits on any partition).
    counts : sequence of int
        Integers to sum exactly.
    active : int
        Vertices of this rank still active (changed, in the frontier, ...).
    limbs, exponents, overflow, fallback
        The one-collective alternative to ``sums``: fixed-point limb sums a fused kernel
        computed at scale ``2^-exponent`` (:func:`hpcdist.graph.reduce.reduce_fixed`);
        if any rank's ``overflow`` is non-zero, ``fallback()`` returns the term arrays
        and the engine reduces them with :func:`~hpcdist.graph.reduce.reproducible_sums`.
    """

    sums: Sequence[np.ndarray] = ()
    counts: Sequence[int] = ()
    active: int = 0
    limbs: Sequence[np.ndarray] = ()
    exponents: Sequence[int] = ()
    overflow: int = 0
    fallback: Callable[[], Sequence[np.ndarray]] | None = None


class VertexProgram(Protocol):
    """An algorithm as the BSP engine sees it.

    A program may also have ``compute_interior(superstep)``: the part of
    :meth:`compute` that reads no ghost slot, which the engine runs while the halo
    messages are in flight (the optimizer in use, more than one rank); :meth:`compute`
    then does the rest. Results must not depend on whether it was called. An attribute
    ``exchange_binary = True`` promises that the published values are 0/1 bytes (a
    frontier): the optimizer then sends fixed-size bitmaps in one round.

    A program with ``publishes_frontier = True`` (BFS) publishes no values but its
    frontier: ``exchange_frontier(superstep)`` returns ``(bits, queue, n_queue, owned)``, the
    owned vertices in the frontier as local ids and a bitmap of one bit per local column,
    whose ghost bits the engine fills from their owners' frontiers; ``owned`` says whether
    the owned bits already hold the frontier too (the engine may read them instead of the queue)
    (:mod:`hpcdist.graph.frontier_exchange`; the ``exchange`` argument does not apply). It
    returns None for a superstep whose ghost bits the program set itself (BFS's first: the
    source, known to every rank), which then exchanges nothing. Such a program may also
    have ``advance(superstep)``: the local part of :meth:`apply` that puts the next
    frontier in place (idempotent; :meth:`apply` calls it too). Where every rank neighbours
    every other (``FrontierExchange.carries``) and a superstep reduces counts alone, the
    engine then calls it after :meth:`compute`, sends the next frontier with the counts in
    the same messages, and skips the allreduce: one collective a superstep. A superstep's
    ``bytes_sent`` are those of the exchanges it ran.

    ``exchange_lossy_ok = True`` declares that the program's results tolerate published
    float64 values rounded to float32 (``run_bsp(..., exchange_precision="float32")``);
    a method ``lossy_exchange_refusal(dtype) -> str | None`` may still refuse it for the
    run's parameters (PageRank with a tolerance tighter than the rounding allows), with the
    reason as the message. It is called on every rank and may communicate.
    """

    name: str

    def exchange_values(self, superstep: int) -> np.ndarray | None:
        """The local vector (owned then ghost slots) whose ghosts to fill now, or None.

        A program that fills its ghosts itself here (SSSP's frontier values) returns None
        and may report the bytes as an attribute ``exchanged_bytes = (sent, plain)``, which
        the superstep's metrics then show."""

    def compute(self, superstep: int) -> LocalStep:
        """Local work on owned vertices, reading ghost values."""

    def apply(self, superstep: int, sums: list[float], counts: list[int]) -> bool:
        """Take the global values; prepare the next superstep; True when converged."""

    def state(self) -> dict[str, np.ndarray]:
        """Per-vertex arrays (length ``n_owned``, owned order) a checkpoint needs to resume
        after this superstep. Stored by global vertex id, so any rank count can restore them."""

    def scalars(self) -> dict[str, float | int]:
        """Global values (equal on every rank, JSON-able) that complete :meth:`state`."""

    def restore(self, state: dict[str, np.ndarray], scalars: dict[str, float | int]) -> None:
        """Take back what :meth:`state` and :meth:`scalars` gave (arrays in this rank's
        owned order, perhaps written by another rank count) and prepare the next superstep."""


def lossy_exchange_refusal(program: VertexProgram, precision: str) -> str | None:
    """Why ``program`` cannot run with halo values of ``precision``, or None when it can.

    ``float64`` is exact and always allowed. ``float32`` needs a program that declares it
    tolerates rounded values (``exchange_lossy_ok``) and whose own check
    (``lossy_exchange_refusal(dtype)``, if it has one) accepts the run's parameters.
    Called on every rank (the program's check may communicate).
    """
    if precision == "float64":
        return None
    if not getattr(program, "exchange_lossy_ok", False):
        return (f"exchange_precision={precision!r} does not apply to {program.name}: its results must be exact, "
                "so its halo values travel in full precision (float32 is for PageRank)")
    check = getattr(program, "lossy_exchange_refusal", None)
    return None if check is None else check(np.dtype(precision))


@dataclass
class Resume:
    """Where a resumed run picks up: the superstep that completed last and its state.

    Attributes
    ----------
    superstep : int
        The loop continues at ``superstep + 1``.
    state : dict of str to numpy.ndarray
        Per-vertex arrays of the owned vertices (see :meth:`VertexProgram.state`).
    scalars : dict
        See :meth:`VertexProgram.scalars`.
    """

    superstep: int
    state: dict[str, np.ndarray]
    scalars: dict[str, float | int]


#: ``hook(superstep, program)`` called on every rank after each superstep (checkpoints,
#: fault injection, signals). It may raise to end the run; every rank must then raise.
SuperstepHook = Callable[[int, "VertexProgram"], None]


@dataclass
class SuperstepMetrics:
    """One superstep, as this rank measured it (bytes and active are global).

    ``exchange_s`` is the time spent in the exchange (encoding, the collectives and the
    waits, decoding), not counting the interior compute that ran while the messages were
    in flight (``overlap_s``, which ``compute_s`` includes). ``bytes_sent`` is what all
    ranks sent (headers included); ``bytes_dense`` what the plain exchange of every ghost
    value would have sent (equal to ``bytes_sent`` with ``exchange="dense"``).
    """

    superstep: int
    compute_s: float
    exchange_s: float
    reduce_s: float
    bytes_sent: int
    active: int
    bytes_dense: int = 0
    overlap_s: float = 0.0


@dataclass
class BSPRun:
    """The outcome of a run of the loop."""

    supersteps: int
    converged: bool
    seconds: float
    metrics: list[SuperstepMetrics] = field(default_factory=list)
    resumed_from: int | None = None

    def metrics_dicts(self) -> list[dict]:
        return [asdict(m) for m in self.metrics]

    def phase_seconds(self) -> dict[str, float]:
        return {
            "compute": sum(m.compute_s for m in self.metrics),
            "exchange": sum(m.exchange_s for m in self.metrics),
            "reduce": sum(m.reduce_s for m in self.metrics),
        }


def run_bsp(
    graph: "DistGraph",
    program: VertexProgram,
    *,
    max_supersteps: int,
    kernels: ModuleType,
    progress: bool = False,
    on_superstep: SuperstepHook | None = None,
    resume: Resume | None = None,
    exchange: str = "auto",
    exchange_precision: str = "float64",
    agreed: bool = False,
) -> BSPRun:
    """Run ``program`` on ``graph`` until it converges or ``max_supersteps`` pass.

    Collective over ``graph.comm``.

    Parameters
    ----------
    graph : DistGraph
    program : VertexProgram
    max_supersteps : int
    kernels : module
        The backend's kernel module (used for the reproducible reductions).
    progress : bool
        Show a progress bar on rank 0 (tqdm, on stderr).
    on_superstep : callable, optional
        ``hook(superstep, program)`` after every superstep that did not converge, on
        every rank: the place for checkpoints (it reads ``program.state()`` and
        ``program.scalars()``).
    resume : Resume, optional
        Restore the program from a checkpoint and continue after ``resume.superstep``;
        the result equals an uninterrupted run's. Superstep numbers (and
        ``max_supersteps``) count from the start of the original run.
    exchange : {"auto", "sparse", "dense"}
        ``sparse``: the communication optimizer (:mod:`hpcdist.graph.sparse_exchange`):
        only changed values, in the smallest exact encoding per neighbour, and, for
        programs with a ``compute_interior(superstep)`` method, their ghost-free work
        while the messages are in flight. ``dense``: the plain exchange of every ghost
        value. ``auto`` (default): the optimizer for frontier programs
        (``exchange_binary``: bitmaps, 87 % fewer bytes on RMAT BFS), the plain exchange
        for value programs, where measured on shared memory the encoding cost more time
        than the 7-30 % of bytes it saved (benchmarks/README.md); programs that exchange
        themselves (SSSP's frontier values, see ``exchange_values``) do so. Results are
        identical.
    exchange_precision : {"float64", "float32"}
        ``float32`` (opt-in, for programs with ``exchange_lossy_ok``: PageRank): the
        published float64 values are rounded to float32 before every exchange, in place,
        owned slots included, and travel as 4 bytes. Every rank then computes from the same
        rounded values, so results still do not depend on the rank count (or on
        ``exchange``), but differ from the float64 run's within the program's tolerance.
        With ``dense`` (and ``auto``) the rounded values go in one persistent collective
        of fixed size; with ``sparse`` through the optimizer's encodings. Other programs,
        and parameters the program refuses, raise one InputError on every rank.
    agreed : bool
        The caller has already made every rank agree that ``exchange`` and
        ``exchange_precision`` suit ``program`` (BFS checks its arguments in the allreduce
        that finds its source): they are still checked, but without the allreduce that
        makes the ranks raise together, which costs a search a few microseconds.

    Returns
    -------
    BSPRun
        Supersteps run (counting those before a resume), whether the program converged, the wall time of the loop
        (slowest rank) and per-superstep metrics.
    """
    from hpcdist.graph.frontier_exchange import CARRY_WORDS
    from hpcdist.graph.sparse_exchange import EXCHANGE_MODES, EXCHANGE_PRECISIONS, SparseExchange
    from hpcdist.runtime.comm import MPI
    from hpcdist.runtime.errors import InputError, collective

    comm = graph.comm
    with nullcontext() if agreed else collective(comm):
        if exchange not in EXCHANGE_MODES:
            raise InputError(f"exchange must be one of {', '.join(EXCHANGE_MODES)}, got {exchange!r}")
        if exchange_precision not in EXCHANGE_PRECISIONS:
            raise InputError(f"exchange_precision must be one of {', '.join(EXCHANGE_PRECISIONS)}, "
                             f"got {exchange_precision!r}")
        reason = lossy_exchange_refusal(program, exchange_precision)
        if reason is not None:
            raise InputError(reason)
    binary = bool(getattr(program, "exchange_binary", False))
    narrow = exchange_precision == "float32"
    # a program that publishes its frontier as a list sends bitmaps built from it
    frontier = bool(getattr(program, "publishes_frontier", False))
    if frontier:
        exchange = "frontier"
    elif exchange == "auto":
        exchange = "sparse" if binary else "dense"
    # The interior needs no ghost; alone, a rank has no ghosts, so there is nothing to overlap.
    overlap = exchange in ("sparse", "frontier") and comm.Get_size() > 1 and hasattr(program, "compute_interior")
    channel = graph.halo.frontier() if frontier and comm.Get_size() > 1 else None
    # Where every rank neighbours every other, the next superstep's frontier carries this
    # one's counts: one collective a superstep, not an exchange and an allreduce. Only a
    # program that can step to its next frontier before it sees the counts (``advance``).
    fuse = channel is not None and channel.carries and hasattr(program, "advance")
    sparse: SparseExchange | None = None
    bar = None
    if progress and comm.Get_rank() == 0:
        from tqdm import tqdm

        bar = tqdm(total=max_supersteps, desc=program.name, unit="step", leave=False)
    metrics: list[SuperstepMetrics] = []
    converged = False
    if exchange == "sparse" or narrow:  # float32 values travel through the optimizer's fixed-size channel
        sparse = SparseExchange(graph.halo, kernels)
    try:  # from here on, its persistent requests are freed whatever raises
        # The agreement above is an allreduce, which the ranks leave together; a barrier
        # realigns them only after set-up that may take longer on some.
        aligned = not progress  # the progress bar is set up on rank 0 alone
        if sparse is not None:
            sparse.warm_up(binary=binary, precision=exchange_precision)
            aligned = False
        if overlap and hasattr(program, "prepare_overlap"):
            program.prepare_overlap()  # type: ignore[attr-defined]
            aligned = False
        if not aligned:
            comm.Barrier()
        t_start = time.perf_counter()
        first = 0
        if resume is not None:
            program.restore(resume.state, resume.scalars)
            first = resume.superstep + 1
        ahead = False  # whether this superstep's ghost bits came with the previous one's counts
        # asked once: a traversal's supersteps take tens of microseconds, on cold caches
        chatty = comm.Get_rank() == 0 and log.isEnabledFor(logging.DEBUG)
        for step in range(first, max_supersteps):
            t0 = time.perf_counter()
            values = program.exchange_values(step)
            sent = dense = 0
            interior_s = 0.0
            front = program.exchange_frontier(step) if frontier and not ahead else None  # type: ignore[attr-defined]
            if ahead:
                dense = channel.dense_bytes  # type: ignore[union-attr]
            elif front is not None and channel is not None:
                if channel.plan is not graph.halo:  # a new plan (rebalanced graph)
                    channel = graph.halo.frontier()
                bits, queue, n_queue, owned_bits = front
                channel.start(queue, n_queue, kernels, bits if owned_bits else None)
                if overlap:
                    ti = time.perf_counter()
                    program.compute_interior(step)  # type: ignore[attr-defined]
                    interior_s = time.perf_counter() - ti
                channel.finish(bits, kernels)
                sent, dense = channel.bytes_sent, channel.dense_bytes
            elif channel is not None:  # the program set the ghosts' bits itself: nothing travels
                dense = channel.dense_bytes
            elif values is not None and exchange == "dense" and not narrow:
                graph.halo.exchange(values)
                sent = dense = graph.halo.bytes_sent
            elif values is None and hasattr(program, "exchanged_bytes"):  # the program exchanged itself
                sent, dense = program.exchanged_bytes  # type: ignore[attr-defined]
            elif values is not None:
                if sparse is None or sparse.plan is not graph.halo:  # a new plan (rebalanced graph): start afresh
                    if sparse is not None:
                        sparse.close()
                    sparse = SparseExchange(graph.halo, kernels)
                sparse.start(values, binary=binary, precision=exchange_precision, changes=exchange == "sparse")
                if overlap:
                    ti = time.perf_counter()
                    program.compute_interior(step)  # type: ignore[attr-defined]
                    interior_s = time.perf_counter() - ti
                sparse.finish()
                sent, dense = sparse.bytes_sent, sparse.dense_bytes
            t1 = time.perf_counter()
            local = program.compute(step)
            t2 = time.perf_counter()
            n_counts = len(local.counts)
            fused_s = 0.0
            if fuse and channel is not None and channel.plan is not graph.halo:  # a new plan (rebalanced graph)
                channel = graph.halo.frontier()
                fuse = channel.carries
            # the same choice on every rank: the counts' number and the sums' are the program's
            ahead = fuse and not local.sums and not local.limbs and n_counts + 3 <= CARRY_WORDS
            if ahead:
                assert channel is not None
                sent += channel.bytes_sent
            extra = [*local.counts, local.active, sent, dense]
            if ahead:
                assert channel is not None
                tf = time.perf_counter()
                program.advance(step)  # type: ignore[attr-defined]
                bits, queue, n_queue, owned_bits = program.exchange_frontier(step + 1)  # type: ignore[attr-defined]
                own = np.array(extra, dtype=np.int64)
                channel.start(queue, n_queue, kernels, bits if owned_bits else None, carry=own)
                channel.finish(bits, kernels, carry=own)  # own: now the sums over all ranks
                sums, counts = [], own.tolist()
                fused_s = time.perf_counter() - tf
            elif local.limbs:
                sums, counts, overflowed = reduce_fixed(comm, local.limbs, local.exponents, extra, local.overflow)
                if overflowed:  # some term broke the agreed bound: every rank redoes it
                    assert local.fallback is not None
                    sums, _ = reproducible_sums(comm, list(local.fallback()), kernels)
            else:
                sums, counts = reproducible_sums(comm, list(local.sums), kernels, counts=extra)
            converged = program.apply(step, sums, counts[:n_counts])
            t3 = time.perf_counter()
            m = SuperstepMetrics(step, t2 - t1 + interior_s, t1 - t0 - interior_s + fused_s, t3 - t2 - fused_s,
                                 counts[n_counts + 1],
                                 counts[n_counts], bytes_dense=counts[n_counts + 2], overlap_s=interior_s)
            metrics.append(m)
            if bar is not None:
                bar.update(1)
            if chatty:
                log.debug("%s superstep %d: active %d, %.3f ms", program.name, step, m.active, 1e3 * (t3 - t0))
            if converged:
                break
            # Not after the last superstep: a run resumed from there would do one more.
            if on_superstep is not None:
                on_superstep(step, program)
                if ahead and channel is not None and channel.plan is not graph.halo:
                    ahead = False  # the hook rebalanced the graph: the bits came in the old layout
    finally:
        if bar is not None:
            bar.close()
        if sparse is not None:
            sparse.close()
    seconds = np.array([time.perf_counter() - t_start])
    comm.Allreduce(MPI.IN_PLACE, seconds, op=MPI.MAX)
    return BSPRun(supersteps=first + len(metrics), converged=converged, seconds=float(seconds[0]), metrics=metrics,
                  resumed_from=None if resume is None else resume.superstep)
