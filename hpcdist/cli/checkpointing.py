"""The checkpoint options of ``hpcdist graph ALGORITHM`` and the glue to the superstep hook.

Every algorithm gets the same options (:func:`add_checkpoint_arguments`) and the same
behaviour (:func:`checkpointing`): checkpoints by the chosen policy, ``--resume`` from
the newest valid checkpoint, and on ``SIGTERM``/``SIGUSR1`` a checkpoint after the
current superstep and exit status 75 for the job script to requeue.
"""

from __future__ import annotations

import argparse
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from hpcdist.runtime.errors import InputError, collective

if TYPE_CHECKING:
    from hpcdist.graph.distgraph import DistGraph
    from hpcdist.graph.recovery import Checkpointer

__all__ = ["add_checkpoint_arguments", "checkpointing", "checkpoint_summary"]


def add_checkpoint_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--checkpoint-dir``, ``--checkpoint-every``, ``--resume`` and the rest to ``p``."""
    g = p.add_argument_group("checkpoint and restart (docs/fault-tolerance.md)")
    g.add_argument("--checkpoint-dir", metavar="DIR",
                   help="write checkpoints here (one HDF5 file per rank plus a manifest); enables stop on "
                        "SIGTERM/SIGUSR1 with a checkpoint and exit status 75")
    g.add_argument("--checkpoint-every", metavar="K", help="checkpoint every K supersteps")
    g.add_argument("--checkpoint-interval", metavar="DURATION", help="checkpoint every DURATION (e.g. 90s, 5m)")
    g.add_argument("--checkpoint-mtbf", metavar="DURATION",
                   help="adaptive mode: mean time between failures for Young's interval sqrt(2 C MTBF)")
    g.add_argument("--checkpoint-overhead", default="0.03", metavar="F",
                   help="adaptive mode (the default): spend at most this share of the run on checkpoints "
                        "(default 0.03)")
    g.add_argument("--checkpoint-keep", default="2", metavar="N", help="keep the newest N checkpoints (default 2)")
    g.add_argument("--resume", action="store_true",
                   help="continue from the newest valid checkpoint in --checkpoint-dir (start afresh when none)")
    g.add_argument("--superstep-timeout", default="0", metavar="DURATION",
                   help="end the job when no superstep finishes within DURATION of the previous one (a hung "
                        "rank); counted from the first superstep; 0 = off")


def _int(value: str, option: str, least: int) -> int:
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise InputError(f"{option} expects an integer, got {value!r}") from None
    if out < least:
        raise InputError(f"{option} must be at least {least}, got {out}")
    return out


def _policy(args: argparse.Namespace):
    from hpcdist.graph.recovery import CheckpointPolicy, parse_duration

    chosen = [o for o, v in (("--checkpoint-every", args.checkpoint_every),
                             ("--checkpoint-interval", args.checkpoint_interval),
                             ("--checkpoint-mtbf", args.checkpoint_mtbf)) if v is not None]
    if len(chosen) > 1:
        raise InputError(f"choose one of {' and '.join(chosen)}")
    if chosen and not args.checkpoint_dir:
        raise InputError(f"{chosen[0]} needs --checkpoint-dir")
    try:
        overhead = float(args.checkpoint_overhead)
    except ValueError:
        raise InputError(f"--checkpoint-overhead expects a number, got {args.checkpoint_overhead!r}") from None
    return CheckpointPolicy(
        every=_int(args.checkpoint_every, "--checkpoint-every", 1) if args.checkpoint_every is not None else None,
        interval=parse_duration(args.checkpoint_interval, "--checkpoint-interval") if args.checkpoint_interval else None,
        mtbf=parse_duration(args.checkpoint_mtbf, "--checkpoint-mtbf") if args.checkpoint_mtbf else None,
        overhead=overhead,
    )


def validate(args: argparse.Namespace) -> None:
    """Check the checkpoint options before any work starts (raise InputError; call under collective)."""
    from hpcdist.graph.recovery import parse_duration

    _policy(args)
    _int(args.checkpoint_keep, "--checkpoint-keep", 1)
    if args.resume and not args.checkpoint_dir:
        raise InputError("--resume needs --checkpoint-dir")
    if str(args.superstep_timeout).strip() not in ("0", "0s", ""):
        parse_duration(args.superstep_timeout, "--superstep-timeout")


@contextmanager
def checkpointing(
    args: argparse.Namespace, graph: "DistGraph", algorithm: str, params: Mapping[str, Any]
) -> Iterator[tuple["Checkpointer | None", Any]]:
    """Yield ``(hook, resume)`` for an algorithm run: the superstep hook and the state to resume.

    ``hook`` is None when neither checkpoints, fault injection (``HPCDIST_FAULT``) nor a
    superstep timeout is asked for.

    Collective over ``graph.comm``. Stop signals are caught only while the block runs
    and only with ``--checkpoint-dir``. ``resume`` is None when ``--resume`` is not
    given or no checkpoint exists yet (the run then starts afresh, as a job's first
    attempt does).
    """
    from hpcdist.graph.recovery import Checkpointer, Watchdog, parse_duration
    from hpcdist.runtime.logs import echo
    from hpcdist.runtime.preemption import StopSignals

    comm = graph.comm
    with collective(comm):
        policy = _policy(args)
        keep = _int(args.checkpoint_keep, "--checkpoint-keep", 1)
        timeout = 0.0
        if str(args.superstep_timeout).strip() not in ("0", "0s", ""):
            timeout = parse_duration(args.superstep_timeout, "--superstep-timeout")
    from hpcdist.runtime.faults import faults

    if not (args.checkpoint_dir or timeout or faults()):
        # Nothing asked for: no hook, so a plain run pays no per-superstep agreement.
        yield None, None
        return
    store = None
    if args.checkpoint_dir:
        from hpcdist.checkpoint import CheckpointStore

        store = CheckpointStore(args.checkpoint_dir, comm, keep=keep)
        if not args.resume:
            # A fresh run's rotation would delete them: a requeued job that lost --resume
            # must not throw its progress away without a word.
            held = store.latest()
            with collective(comm):
                if held is not None:
                    raise InputError(
                        f"{args.checkpoint_dir} already holds checkpoints (the newest after superstep {held.step}, "
                        f"of {held.meta.get('algorithm', 'a run')}); pass --resume to continue from it, or give an "
                        "empty --checkpoint-dir (nothing was deleted)")
    with ExitStack() as stack:
        signals = stack.enter_context(StopSignals()) if store is not None else None
        watchdog = stack.enter_context(Watchdog(timeout)) if timeout else None
        hook = Checkpointer(graph, store, algorithm, params, policy, signals=signals, watchdog=watchdog)
        resume = hook.resume() if args.resume else None
        if args.resume:
            if resume is None:
                echo(comm, f"resume: no checkpoint in {args.checkpoint_dir} yet; starting from superstep 0")
            else:
                echo(comm, f"resume: continuing after superstep {resume.superstep} from {args.checkpoint_dir}")
        yield hook, resume


def checkpoint_summary(hook: "Checkpointer", seconds: float) -> str | None:
    """One line about the checkpoints a run wrote, or None when it wrote none."""
    if not hook.written:
        return None
    total = sum(hook.write_seconds)
    share = 100.0 * total / seconds if seconds > 0 else 0.0
    return (f"checkpoints: {len(hook.written)} written ({hook.policy.describe()}), last after superstep "
            f"{hook.written[-1]}, {1e3 * total / len(hook.written):.1f} ms each, {share:.1f} % of the run")
