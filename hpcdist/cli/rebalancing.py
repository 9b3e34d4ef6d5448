"""The rebalancing options of ``hpcdist graph ALGORITHM`` and the glue to the driver.

``--rebalance`` runs the algorithm through :func:`hpcdist.graph.rebalance.run_with_rebalancing`:
between supersteps, when the ranks' compute imbalance over a window exceeds
``--rebalance-threshold``, the part boundaries move away from the slow ranks and the
run continues with identical results. Rank 0 prints one line per rebalance.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, Callable

from hpcdist.runtime.errors import InputError

if TYPE_CHECKING:
    from hpcdist.graph.distgraph import DistGraph
    from hpcdist.graph.rebalance import RebalancePolicy
    from hpcdist.graph.results import VertexResult

__all__ = ["add_arguments", "policy", "validate", "run", "summary_lines"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--rebalance``, ``--rebalance-threshold``, ``--rebalance-window`` and ``--rebalance-max`` to ``p``."""
    g = p.add_argument_group("rebalancing between supersteps (docs/metrics.md)")
    g.add_argument("--rebalance", action="store_true",
                   help="move the part boundaries away from slow ranks when the compute imbalance exceeds "
                        "--rebalance-threshold (results stay identical)")
    g.add_argument("--rebalance-threshold", default="1.2", metavar="F",
                   help="max/mean of the ranks' compute seconds over the window that triggers a rebalance "
                        "(default 1.2)")
    g.add_argument("--rebalance-window", default="3", metavar="K",
                   help="supersteps the imbalance is measured over (default 3)")
    g.add_argument("--rebalance-max", default="3", metavar="N", help="at most N rebalances per run (default 3)")


def _number(value: str, option: str, kind: type) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        what = "an integer" if kind is int else "a number"
        raise InputError(f"{option} expects {what}, got {value!r}") from None


def policy(args: argparse.Namespace) -> "RebalancePolicy | None":
    """The policy the options ask for; None without ``--rebalance``. Raises InputError (call under ``collective``)."""
    from hpcdist.graph.rebalance import RebalancePolicy

    threshold = _number(args.rebalance_threshold, "--rebalance-threshold", float)
    window = _number(args.rebalance_window, "--rebalance-window", int)
    most = _number(args.rebalance_max, "--rebalance-max", int)
    pol = RebalancePolicy(threshold=threshold, window=window, max_rebalances=most)
    return pol if args.rebalance else None


def validate(args: argparse.Namespace) -> None:
    """Check the rebalancing options before any work starts (raise InputError; call under ``collective``)."""
    from hpcdist.graph.partition import EDGE_METHODS

    policy(args)
    if not args.rebalance:
        return
    if str(getattr(args, "partitioner", "")).lower() in EDGE_METHODS:
        raise InputError(f"--rebalance moves the boundaries of a vertex partition; --partitioner "
                         f"{args.partitioner} is an edge partition")
    if getattr(args, "roots", None) is not None:
        raise InputError("--rebalance works with one --source, not with --roots")


def run(
    args: argparse.Namespace,
    graph: "DistGraph",
    call: Callable[[Any, Any], "VertexResult"],
    on_superstep: Any,
    resume: Any,
) -> "VertexResult":
    """Run ``call(on_superstep, resume)``, through the rebalancing driver when ``--rebalance`` is given.

    Collective over ``graph.comm``. ``on_superstep`` (checkpoints, the injected slow
    rank) becomes the driver's inner hook, so the slowdown is measured.
    """
    from hpcdist.graph.rebalance import run_with_rebalancing
    from hpcdist.runtime.errors import collective

    with collective(graph.comm):
        pol = policy(args)
    if pol is None:
        return call(on_superstep, resume)
    return run_with_rebalancing(graph, call, policy=pol, on_superstep=on_superstep, resume=resume, announce=True)


def summary_lines(result: "VertexResult") -> list[str]:
    """Lines about the rebalances of a run, with the imbalance measured after each; [] when none."""
    from hpcdist.graph.rebalance import rebalance_lines

    lines = rebalance_lines(getattr(result, "run", None))
    if not lines:
        return []
    total = sum(r.migration_seconds for r in result.run.rebalances)
    return [f"rebalancing: {len(lines)} rebalance(s), {1e3 * total:.1f} ms migrating", *[f"  {x}" for x in lines]]
