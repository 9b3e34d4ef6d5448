"""``hpcdist graph ALGORITHM``: run a graph algorithm on a partitioned graph.

One sub-command per algorithm (``pagerank``, ``bfs``, ``cc``, ``sssp``; the table
:data:`ALGORITHMS`). Options are checked inside ``run`` rather than by argparse
``choices``/``type``, so a bad value gives one message from rank 0 and exit status 2
on every rank (argparse would print its error once per rank).

Every algorithm runs through :func:`_run_algorithm` (read and partition, run, write,
summarise), the one place where options common to all of them take effect. With an
edge partitioner (``--partitioner vertex-cut``, ``dbh`` or ``hybrid``) the graph is a
:class:`~hpcdist.graph.gas.VertexCutGraph` and the algorithm its gather-apply-scatter
version (:mod:`hpcdist.graph.gas_algorithms`); options that have no meaning there
(checkpoints, the numba backend) are refused by name, not ignored.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any, Callable

from hpcdist.cli import rebalancing
from hpcdist.cli.checkpointing import add_checkpoint_arguments, checkpointing, checkpoint_summary, validate
from hpcdist.cli.exchange_option import add_arguments as add_exchange_arguments, exchange_keyword, precision_keyword
from hpcdist.graph.partition import EDGE_METHODS, METHODS
from hpcdist.runtime.errors import InputError, collective

if TYPE_CHECKING:
    from hpcdist.graph.results import VertexResult

__all__ = ["HELP", "add_arguments", "run", "ALGORITHMS"]

HELP = "run a graph algorithm (pagerank, bfs, cc, sssp) on a graph partitioned over the ranks"

# hpcdist.graph.partition is imported at start-up anyway (by hpcdist.cli.partition).
#: Vertex partitioners (DistGraph and the BSP engine).
VERTEX_PARTITIONERS = METHODS
#: Edge partitioners (VertexCutGraph and gather-apply-scatter); see hpcdist.graph.vertexcut.
EDGE_PARTITIONERS = EDGE_METHODS
PARTITIONERS = VERTEX_PARTITIONERS + EDGE_PARTITIONERS


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", "-i", required=True, metavar="SPEC",
                   help="graph file (.txt[.gz], .mtx[.gz], .gr, .h5) or generator (rmat:S[:EF[:SEED]], er:N:D[:SEED], grid2d:N)")
    p.add_argument("--output", "-o", metavar="OUT.h5", help="write dataset `result` and `vertex_ids` here")
    p.add_argument("--partitioner", default="auto", metavar="{" + ",".join(PARTITIONERS) + "}",
                   help="vertex partitioner (default auto: metis up to 2^20 edges, else block), or an edge "
                        "partitioner (vertex-cut: 2-D grid, dbh: degree-based hashing, hybrid: PowerLyra's "
                        "hybrid-cut), run by gather-apply-scatter")
    p.add_argument("--hybrid-threshold", metavar="T",
                   help="--partitioner hybrid: in-degree above which a vertex's in-edges are spread (default 100)")
    p.add_argument("--backend", default="auto", metavar="{numpy,numba,auto}", help="local compute kernels (default auto)")
    p.add_argument("--undirected", action="store_true", help="add both directions of every edge")
    p.add_argument("--progress", action="store_true", help="progress bar on rank 0")
    add_exchange_arguments(p)
    p.add_argument("--status-dir", metavar="DIR",
                   help="keep DIR/status.json current during the run, for `hpcdist status DIR` (docs/metrics.md)")
    p.add_argument("--metrics", metavar="FILE.json[l]",
                   help="write per-superstep metrics and findings (format: docs/metrics.md)")
    add_checkpoint_arguments(p)
    rebalancing.add_arguments(p)


def _pagerank_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--top", default="10", metavar="K", help="print the K highest-valued vertices (default 10)")
    p.add_argument("--alpha", default="0.85", help="damping factor (default 0.85)")
    p.add_argument("--tol", default="1e-6", help="stop when the L1 change < n * tol (default 1e-6, as networkx)")
    p.add_argument("--max-iter", default="100", help="most iterations (default 100)")


def _bfs_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--source", "-s", metavar="ID", help="original id of the root (or use --roots)")
    p.add_argument("--roots", metavar="K",
                   help="search from K random roots with out-degree > 0 (seeded; output and checks are per root, "
                        "the file holds the first)")
    p.add_argument("--seed", default="0", help="seed of the --roots draw (default 0)")
    p.add_argument("--validate", action="store_true", help="check each BFS tree the Graph500 way")
    p.add_argument("--direction", default="auto", metavar="{auto,top-down,bottom-up}",
                   help="per-level direction (default auto: direction-optimizing)")


def _cc_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)


def _sssp_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--source", "-s", required=True, metavar="ID", help="original id of the source")
    p.add_argument("--delta", metavar="D", help="delta-stepping bucket width (default: 4 x mean weight / mean degree)")
    p.add_argument("--weights", action="store_true",
                   help="read edge weights (a third column of an edge list; 1.0 where the input has none); "
                        "by default weights are used when the format has them")


#: name -> (help, add_arguments, runner)
ALGORITHMS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], str]] = {
    "pagerank": ("PageRank by power iteration (networkx semantics)", _pagerank_arguments, "_run_pagerank"),
    "bfs": ("breadth-first search: hop distances and a BFS tree (direction-optimizing)", _bfs_arguments, "_run_bfs"),
    "cc": ("connected components (weakly connected for directed graphs)", _cc_arguments, "_run_cc"),
    "sssp": ("single-source shortest paths (delta-stepping)", _sssp_arguments, "_run_sssp"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="algorithm", metavar="ALGORITHM")
    for name, (help_text, add, _) in ALGORITHMS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add(p)


def _number(value: str, option: str, kind: type = float):
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise InputError(f"{option} expects {'an integer' if kind is int else 'a number'}, got {value!r}") from None


def run(args: argparse.Namespace) -> int:
    """Run the chosen algorithm. Collective over ``COMM_WORLD``."""
    from hpcdist.runtime.comm import MPI

    with collective(MPI.COMM_WORLD):
        if not getattr(args, "algorithm", None):
            raise InputError(f"hpcdist graph: name an algorithm: {', '.join(ALGORITHMS)}")
    return globals()[ALGORITHMS[args.algorithm][2]](args)


#: ``call(graph, backend, on_superstep, resume) -> VertexResult``: one algorithm's run on a loaded graph.
AlgorithmCall = Callable[[Any, Any, Any, Any], "VertexResult"]


def _check_common(args: argparse.Namespace) -> None:
    if args.partitioner.lower() not in PARTITIONERS:
        raise InputError(f"unknown partitioner {args.partitioner!r}; choose one of {', '.join(PARTITIONERS)}")
    if args.hybrid_threshold is not None:
        if args.partitioner.lower() != "hybrid":
            raise InputError(f"--hybrid-threshold applies to --partitioner hybrid only, not {args.partitioner}")
        if _number(args.hybrid_threshold, "--hybrid-threshold", int) < 0:
            raise InputError(f"--hybrid-threshold must be at least 0, got {args.hybrid_threshold}")
    if args.backend.lower() not in ("numpy", "numba", "auto"):
        raise InputError(f"unknown backend {args.backend!r}; choose one of numpy, numba, auto")
    validate(args)
    rebalancing.validate(args)
    exchange_keyword(args)
    precision_keyword(args)
    # Checked now, not when the run is over and its result would be lost (one probe file per job).
    from hpcdist.runtime.comm import MPI
    from hpcdist.runtime.paths import check_output_path

    first = MPI.COMM_WORLD.Get_rank() == 0
    if args.output:
        check_output_path(args.output, inputs=[args.input], probe=first)
    if args.metrics:
        from hpcdist.metrics import check_metrics_path

        check_metrics_path(args.metrics, inputs=[args.input, args.output], probe=first)


#: ``vc_call(graph) -> VertexCutResult``: one algorithm's run on a loaded VertexCutGraph.
EdgePartitionCall = Callable[[Any], "VertexResult"]


def _is_edge_partition(args: argparse.Namespace) -> bool:
    return args.partitioner.lower() in EDGE_PARTITIONERS


def _check_edge_partition(args: argparse.Namespace, refused: list[tuple[str, bool]]) -> None:
    """Refuse, by name, the options an edge-partitioned (gather-apply-scatter) run cannot honour."""
    part = args.partitioner.lower()
    checkpoint = [
        ("--checkpoint-dir", bool(args.checkpoint_dir)),
        ("--checkpoint-every", args.checkpoint_every is not None),
        ("--checkpoint-interval", args.checkpoint_interval is not None),
        ("--checkpoint-mtbf", args.checkpoint_mtbf is not None),
        ("--checkpoint-keep", str(args.checkpoint_keep) != "2"),
        ("--checkpoint-overhead", str(args.checkpoint_overhead) != "0.03"),
        ("--resume", bool(args.resume)),
        ("--superstep-timeout", str(args.superstep_timeout).strip() not in ("0", "0s", "")),
    ]
    for option, given in checkpoint:
        if given:
            raise InputError(f"{option} does not apply to --partitioner {part}: runs on an edge partition "
                             "(gather-apply-scatter) have no checkpoints; use a vertex partitioner "
                             f"({', '.join(VERTEX_PARTITIONERS)})")
    engine_only = [("--status-dir", bool(args.status_dir)), ("--exchange", str(args.exchange).lower() != "auto"),
                   ("--exchange-precision", str(args.exchange_precision).lower() != "float64")]
    for option, given in engine_only:
        if given:
            raise InputError(f"{option} does not apply to --partitioner {part}: it belongs to the BSP engine of "
                             f"vertex partitions ({', '.join(VERTEX_PARTITIONERS)})")
    if args.backend.lower() == "numba":
        raise InputError(f"--backend numba does not apply to --partitioner {part}: gather-apply-scatter runs "
                         "compute with numpy (use --backend auto or numpy)")
    for option, given in refused:
        if given:
            raise InputError(f"{option} does not apply to --partitioner {part}")


def _run_algorithm(
    args: argparse.Namespace,
    name: str,
    call: AlgorithmCall,
    *,
    weighted: bool | None = None,
    report: Callable[[Any, Any, "VertexResult"], list[str]] | None = None,
    identity: dict[str, Any] | None = None,
    vc_call: EdgePartitionCall | None = None,
    vc_refused: list[tuple[str, bool]] | None = None,
) -> int:
    """Read and partition ``args.input``, run ``call``, write ``args.output``, print the summary.

    The common path of every ``hpcdist graph`` algorithm; options that apply to all of
    them take effect here: the checkpoint hook and the resume state
    (:mod:`hpcdist.cli.checkpointing`) are passed to ``call`` as ``on_superstep`` and
    ``resume``; a stop signal ends the run with a checkpoint and exit status 75.
    Collective over ``COMM_WORLD``.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options (already checked by the caller).
    name : str
        The algorithm, for messages.
    call : callable
        ``call(graph, backend, on_superstep, resume) -> VertexResult``.
    weighted : bool, optional
        Passed to :func:`hpcdist.graph.load` (False skips reading weights).
    report : callable, optional
        ``report(comm, graph, result) -> lines`` printed after the common summary;
        collective. ``result.params["failed"]`` true makes the exit status 1.
    identity : dict, optional
        The parameters that determine the result; a checkpoint written with other
        values is refused on ``--resume``.
    vc_call : callable, optional
        ``vc_call(graph) -> VertexCutResult``: the run on an edge partition
        (``--partitioner vertex-cut|dbh|hybrid``; the graph is a ``VertexCutGraph``).
    vc_refused : list of (option, given), optional
        The algorithm's own options an edge partition cannot honour; one given is refused.

    Returns
    -------
    int
        Exit status.
    """
    from hpcdist.graph import load
    from hpcdist.runtime.comm import MPI
    from hpcdist.runtime.context import Context
    from hpcdist.runtime.logs import echo
    from hpcdist.metrics import metrics_for_run, slow_hook, write_metrics
    from hpcdist.runtime.preemption import Preempted

    with collective(MPI.COMM_WORLD):
        _check_common(args)
        if _is_edge_partition(args):
            if vc_call is None:
                raise InputError(f"hpcdist graph {name} does not run on --partitioner {args.partitioner}")
            _check_edge_partition(args, vc_refused or [])
    if _is_edge_partition(args):
        assert vc_call is not None
        return _run_edge_partition(args, name, vc_call, weighted=weighted, report=report)
    with Context(backend=args.backend.lower(), discover_gpus=False) as ctx:
        comm = ctx.comm
        comm.Barrier()
        t0 = time.perf_counter()
        graph = load(args.input, comm, undirected=args.undirected, partitioner=args.partitioner.lower(),
                     weighted=weighted)
        with graph:
            setup = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
            try:
                with checkpointing(args, graph, name, identity or {}) as (hook, resume):
                    # An injected slow rank (HPCDIST_SLOW) wraps the hook; unset, the hook is unchanged.
                    on_superstep = slow_hook(comm, inner=hook)
                    status = None
                    if args.status_dir:
                        from hpcdist.metrics import superstep_status_hook

                        max_iter = getattr(args, "max_iter", None)
                        total = int(max_iter) if max_iter is not None and str(max_iter).isdigit() else None
                        status = on_superstep = superstep_status_hook(comm, args.status_dir, name, total=total,
                                                                      inner=on_superstep)
                    try:
                        # --rebalance: its hook is outermost, so an injected slowdown is inside what it measures.
                        result = rebalancing.run(args, graph, lambda h, r: call(graph, ctx.backend, h, r),
                                                 on_superstep, resume)
                    except BaseException:
                        if status is not None:
                            status.finish("failed")
                        raise
                    if status is not None:
                        status.finish(done=result.iterations)
            except Preempted as stop:
                echo(comm, f"{name}: {stop}")
                return stop.exit_code
            # The kernel's own plan and its first (compiling) call belong to the set-up, not the supersteps.
            prep = result.params.get("pull_plan_seconds", 0.0) + result.params.get("warm_up_seconds", 0.0)
            setup += comm.allreduce(prep, op=MPI.MAX)
            extra = report(comm, graph, result) if report is not None else []
            if args.output:
                result.to_h5(args.output, setup_seconds=setup)
            _summary(comm, graph, result, setup, name)
            if args.metrics:
                write_metrics(args.metrics, metrics_for_run(comm, graph, result, name), comm=comm)
                echo(comm, f"wrote {args.metrics}")
            saved = checkpoint_summary(hook, result.seconds) if hook is not None else None
            if saved:
                echo(comm, saved)
            for line in rebalancing.summary_lines(result):
                echo(comm, line)
            for line in extra:
                echo(comm, line)
            if args.output:
                echo(comm, f"wrote {args.output}")
            return 1 if result.params.get("failed") else 0


def _run_edge_partition(
    args: argparse.Namespace,
    name: str,
    vc_call: EdgePartitionCall,
    *,
    weighted: bool | None,
    report: Callable[[Any, Any, "VertexResult"], list[str]] | None,
) -> int:
    """:func:`_run_algorithm` on an edge partition: read, place the edges
    (:func:`hpcdist.graph.gas.build_vertex_cut`), run, write, summarise. Collective over
    ``COMM_WORLD``."""
    from types import SimpleNamespace

    from hpcdist.graph.gas import build_vertex_cut
    from hpcdist.graph.io import read_edges
    from hpcdist.graph.partition import HYBRID_THRESHOLD
    from hpcdist.metrics import metrics_for_run, write_metrics
    from hpcdist.runtime.comm import MPI
    from hpcdist.runtime.context import Context
    from hpcdist.runtime.logs import echo

    threshold = HYBRID_THRESHOLD if args.hybrid_threshold is None else int(args.hybrid_threshold)
    with Context(backend="numpy", discover_gpus=False) as ctx:
        comm = ctx.comm
        comm.Barrier()
        t0 = time.perf_counter()
        edges = read_edges(args.input, comm, undirected=args.undirected, weighted=weighted)
        graph = build_vertex_cut(edges, comm, args.partitioner.lower(), threshold)
        del edges
        with graph:
            setup = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
            result = vc_call(graph)
            extra = report(comm, graph, result) if report is not None else []
            if args.output:
                result.to_h5(args.output, setup_seconds=setup)
            _summary(comm, graph, result, setup, name)
            if args.metrics:
                # metrics reads a DistGraph's header fields; the partitioner is the edge one
                view = SimpleNamespace(n_vertices=graph.n_vertices, n_edges=graph.n_edges, name=graph.name,
                                       directed=graph.directed, weighted=graph.weighted,
                                       partition=SimpleNamespace(method=graph.method))
                write_metrics(args.metrics, metrics_for_run(comm, view, result, name), comm=comm)
                echo(comm, f"wrote {args.metrics}")
            for line in extra:
                echo(comm, line)
            if args.output:
                echo(comm, f"wrote {args.output}")
            return 1 if result.params.get("failed") else 0


def _run_pagerank(args: argparse.Namespace) -> int:
    from hpcdist.graph import pagerank
    from hpcdist.runtime.comm import MPI

    with collective(MPI.COMM_WORLD):
        alpha = _number(args.alpha, "--alpha")
        tol = _number(args.tol, "--tol")
        max_iter = _number(args.max_iter, "--max-iter", int)
        top = _number(args.top, "--top", int)
        if top < 0:
            raise InputError(f"--top must be at least 0, got {top}")
        precision = precision_keyword(args)

    def call(graph, backend, on_superstep, resume):
        return pagerank(graph, alpha=alpha, tol=tol, max_iter=max_iter, backend=backend, progress=args.progress,
                        on_superstep=on_superstep, resume=resume, **exchange_keyword(args), **precision)

    def report(comm, graph, result) -> list[str]:
        best = result.top(top) if top > 0 else []
        lines = [f"top {len(best)} vertices (original id, pagerank):"] if best else []
        return lines + [f"  {vid:>12d}  {value:.10e}" for vid, value in best]

    def vc_call(graph):
        from hpcdist.graph.gas_algorithms import pagerank_gas

        return pagerank_gas(graph, alpha=alpha, tol=tol, max_iter=max_iter, progress=args.progress)

    # A float32 run's checkpoint resumes only a float32 run (the rounding is part of the result); float64
    # runs keep the identity they always had, so their older checkpoints still resume.
    identity = {"alpha": alpha, **({} if precision["exchange_precision"] == "float64" else precision)}
    return _run_algorithm(args, "pagerank", call, report=report, identity=identity, vc_call=vc_call)


def _source(args: argparse.Namespace) -> int:
    if args.source is None:
        raise InputError("--source is required (the original id of the start vertex)")
    return _number(args.source, "--source", int)


def _run_bfs(args: argparse.Namespace) -> int:
    from hpcdist.graph.algorithms.bfs import bfs, harmonic_mean, random_roots, validate_bfs
    from hpcdist.runtime.comm import MPI

    with collective(MPI.COMM_WORLD):
        roots_k = None if args.roots is None else _number(args.roots, "--roots", int)
        source = _source(args) if roots_k is None else None
        seed = _number(args.seed, "--seed", int)
        if not 0 <= seed < 2**63:
            raise InputError(f"--seed must be a whole number from 0 to 2^63 - 1, got {args.seed}")
        if roots_k is not None and roots_k < 1:
            raise InputError(f"--roots must be at least 1, got {roots_k}")
        if roots_k is not None and args.source is not None:
            raise InputError("give --source or --roots, not both")
        if roots_k is not None and args.checkpoint_dir:
            raise InputError("--checkpoint-dir works with one --source, not with --roots")
        if args.direction not in ("auto", "top-down", "bottom-up"):
            raise InputError(f"unknown direction {args.direction!r}; choose one of auto, top-down, bottom-up")

    def call(graph, backend, on_superstep, resume):
        def one(root):
            return bfs(graph, root, direction=args.direction, backend=backend, progress=args.progress,
                       on_superstep=on_superstep, resume=resume, **exchange_keyword(args))

        return searches(graph, one, validate_bfs)

    def vc_call(graph):
        from hpcdist.graph.gas_algorithms import bfs_gas, validate_bfs_gas

        return searches(graph, lambda root: bfs_gas(graph, root, direction=args.direction, progress=args.progress),
                        validate_bfs_gas)

    def searches(graph, one, validate):
        # random_roots reads only what both graph kinds offer (out_degree, to_input_layout, ...)
        roots = [source] if roots_k is None else random_roots(graph, roots_k, seed)
        first = None
        rates, problems = [], []
        for root in roots:
            r = one(root)
            rates.append(r.params["teps"])
            if args.validate:
                problems += [f"root {root}: {p}" for p in validate(r)]
            if first is None:
                first = r
        assert first is not None
        first.params.update(roots=len(roots), teps_harmonic_mean=harmonic_mean(rates),
                            teps_min=min(rates), teps_max=max(rates), validated=bool(args.validate),
                            failed=bool(problems))
        first.params["_rates"], first.params["_roots"], first.params["_problems"] = rates, roots, problems
        return first

    def report(comm, graph, result) -> list[str]:
        p = result.params
        lines = [f"bfs from {p['source']}: reached {p['reached']:,} of {graph.n_vertices:,} vertices in "
                 f"{p['levels']} levels (directions {p['directions']}), {p['edges_traversed']:,} edges traversed, "
                 f"{p['edges_examined']:,} examined"]
        if p["roots"] > 1:
            lines.append(f"{p['roots']} roots: TEPS harmonic mean {p['teps_harmonic_mean']:.4g} "
                         f"(min {p['teps_min']:.4g}, max {p['teps_max']:.4g})")
        else:
            lines.append(f"TEPS {p['teps']:.4g}")
        if p["validated"]:
            if p["_problems"]:
                lines.append(f"validation FAILED ({len(p['_problems'])} problems):")
                lines += [f"  {x}" for x in p["_problems"][:20]]
            else:
                lines.append(f"validation passed ({p['roots']} root{'s' if p['roots'] > 1 else ''})")
        for key in ("_rates", "_roots", "_problems"):
            p.pop(key)
        return lines

    return _run_algorithm(args, "bfs", call, weighted=False, report=report, identity={"source": source},
                          vc_call=vc_call)


def _run_cc(args: argparse.Namespace) -> int:
    from hpcdist.graph import connected_components

    def call(graph, backend, on_superstep, resume):
        return connected_components(graph, backend=backend, progress=args.progress, on_superstep=on_superstep,
                                    resume=resume, **exchange_keyword(args))

    def report(comm, graph, result) -> list[str]:
        p = result.params
        kind = "weakly connected components" if graph.directed else "connected components"
        lines = [f"{p['components']:,} {kind}; largest {p['largest_component']:,} vertices "
                 f"({100.0 * p['largest_component'] / graph.n_vertices:.2f}%)",
                 "component sizes (size range: count):"]
        for label, count in p["size_histogram"].items():
            b = int(label[2:])
            span = f"{1 << b}" if b == 0 else f"{1 << b}-{(1 << (b + 1)) - 1}"
            lines.append(f"  {span:>21s}: {count:,}")
        return lines

    def vc_call(graph):
        from hpcdist.graph.gas_algorithms import connected_components_gas

        return connected_components_gas(graph, progress=args.progress)

    return _run_algorithm(args, "cc", call, weighted=False, report=report, vc_call=vc_call)


def _run_sssp(args: argparse.Namespace) -> int:
    import math

    from hpcdist.graph import sssp
    from hpcdist.runtime.comm import MPI

    with collective(MPI.COMM_WORLD):
        source = _source(args)
        delta = None if args.delta is None else _number(args.delta, "--delta")
        if delta is not None and not (math.isfinite(delta) and delta > 0):
            raise InputError(f"--delta must be a positive number, got {args.delta!r}")

    def call(graph, backend, on_superstep, resume):
        return sssp(graph, source, delta=delta, backend=backend, progress=args.progress, on_superstep=on_superstep,
                    resume=resume, **exchange_keyword(args))

    def vc_call(graph):
        from hpcdist.graph.gas_algorithms import sssp_gas

        return sssp_gas(graph, source, delta=delta, progress=args.progress)

    def report(comm, graph, result) -> list[str]:
        p = result.params
        finite = result.values[result.values != float("inf")]
        far = comm.allreduce(float(finite.max(initial=0.0)), op=MPI.MAX)
        head = f"sssp from {p['source']}: reached {p['reached']:,} of {graph.n_vertices:,} vertices, farthest at {far:.10g}; "
        kind = "weighted" if p["weighted"] else "unit weights"
        if "rounds" in p:  # gather-apply-scatter on an edge partition
            return [head + f"buckets of width {p['delta']:.6g} ({kind}), {p['rounds']} rounds, "
                           f"{p['edges_relaxed']:,} relaxations"]
        return [head + f"delta {p['delta']:.6g} ({kind}), "
                f"{p['light_phases']} light and {p['heavy_phases']} heavy phases, {p['edges_relaxed']:,} relaxations"]

    return _run_algorithm(args, "sssp", call, weighted=True if args.weights else None, report=report,
                          identity={"source": source, "delta": delta}, vc_call=vc_call)


def _summary(comm, graph, result, setup: float, name: str) -> None:
    from hpcdist.runtime.logs import echo

    run = result.run
    phases = run.phase_seconds() if run else {}
    steps = max(result.iterations, 1)
    # Phases per rank differ; report the slowest rank's totals.
    phases = {k: comm.allreduce(v, op=_max()) for k, v in phases.items()}
    for line in graph.summary_lines():
        echo(comm, line)
    echo(comm, f"set-up (read, partition, plan): {setup:.3f} s")
    if name == "pagerank":
        status = "converged" if result.converged else "NOT converged"
        echo(comm, f"pagerank: {result.iterations} supersteps, {status} (L1 change {result.params['final_error']:.3e}, "
                   f"tol {result.params['tol']:g} x n), backend {result.params['backend']}"
                   + (", float32 halo values" if result.params.get("exchange_precision") == "float32" else ""))
    else:
        status = "" if result.converged else ", NOT finished"
        echo(comm, f"{name}: {result.iterations} supersteps{status}, backend {result.params['backend']}")
    echo(comm, f"  {result.seconds:.3f} s, {1e3 * result.seconds / steps:.3f} ms per superstep "
               f"(compute {1e3 * phases.get('compute', 0) / steps:.3f}, exchange {1e3 * phases.get('exchange', 0) / steps:.3f}, "
               f"reduce {1e3 * phases.get('reduce', 0) / steps:.3f} ms)")


def _max():
    from hpcdist.runtime.comm import MPI

    return MPI.MAX
