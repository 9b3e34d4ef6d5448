"""``hpcdist status RUNDIR [--watch]``: show a running job's ``RUNDIR/status.json``.

The job's rank 0 rewrites the file atomically at most once a second
(:class:`hpcdist.metrics.status.StatusWriter`); this command only reads it, so it runs
anywhere the file system is visible (a login node), never under ``mpiexec``.
``--watch`` reprints the view every ``--interval`` seconds until the status says the job
ended (plain text, no terminal library).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from hpcdist.runtime.errors import InputError

__all__ = ["HELP", "add_arguments", "run", "format_status"]

HELP = "show the progress, rate, slowest rank and memory of a running job or farm (RUNDIR/status.json)"

#: A running job's status older than this is flagged: the job may be stuck or dead.
STALE_S = 30.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("rundir", metavar="RUNDIR", help="the job's run directory (holds status.json)")
    p.add_argument("--watch", action="store_true", help="refresh until the job has finished")
    p.add_argument("--interval", default="1", metavar="S", help="seconds between refreshes with --watch (default 1)")


def _age(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _bytes(n: float) -> str:
    for scale, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def format_status(st: dict[str, Any], now: float | None = None) -> list[str]:
    """The terminal view of a status document, one string per line."""
    now = time.time() if now is None else now
    state = str(st.get("state", "?"))
    what = st.get("what") or "job"
    lines = [f"{what}: {state}  ({st.get('ranks', '?')} rank(s), rank 0 on {st.get('host', '?')} pid {st.get('pid', '?')})"]
    progress = st.get("progress")
    done, total = st.get("done"), st.get("total")
    if progress is not None:
        width = 30
        filled = int(round(width * min(max(float(progress), 0.0), 1.0)))
        count = f" ({done}/{total})" if done is not None and total else ""
        lines.append(f"  progress     [{'#' * filled}{'.' * (width - filled)}] {100 * float(progress):5.1f}%{count}")
    elif done is not None:
        lines.append(f"  done         {done}")
    if any(st.get(k) is not None for k in ("pending", "running", "failed")):  # a task farm's queue
        lines.append(f"  tasks        {st.get('running', 0)} running, {st.get('pending', 0)} pending, "
                     f"{st.get('failed', 0)} failed")
    if st.get("workers") is not None:
        lines.append(f"  workers      {st['workers']}")
    rate = st.get("rate")
    if rate is not None:
        lines.append(f"  rate         {float(rate):.3g} {st.get('unit', 'per s')}")
        if state == "running" and progress is not None and total and done is not None and float(rate) > 0:
            lines.append(f"  remaining    about {_age((total - done) / float(rate))}")
    if st.get("slowest_rank") is not None:
        lines.append(f"  slowest rank {st['slowest_rank']}")
    if st.get("memory") is not None:
        lines.append(f"  memory       {_bytes(float(st['memory']))} (peak RSS, rank 0)")
    if st.get("worker_memory_max") is not None:
        lines.append(f"  worker RSS   {_bytes(float(st['worker_memory_max']))} (largest, rank "
                     f"{st.get('worker_memory_max_rank', '?')})")
    if st.get("message"):
        lines.append(f"  message      {st['message']}")
    updated = st.get("updated")
    if updated is not None:
        age = max(now - float(updated), 0.0)
        stale = "  (stale: the job may be stuck or gone)" if state == "running" and age > STALE_S else ""
        lines.append(f"  updated      {_age(age)} ago{stale}")
    started = st.get("started")
    if started is not None:
        # an ended job ran until its last update, not until now
        end = float(updated) if state != "running" and updated is not None else now
        lines.append(f"  {'running for' if state == 'running' else 'ran for':<12} {_age(max(end - float(started), 0.0))}")
    return lines


def run(args: argparse.Namespace) -> int:
    """Print the status once, or with ``--watch`` until the job has finished. Serial."""
    from hpcdist.metrics.status import read_status

    try:
        interval = float(args.interval)
    except ValueError:
        raise InputError(f"--interval expects a number, got {args.interval!r}") from None
    if not interval > 0:
        raise InputError(f"--interval must be positive, got {args.interval!r}")
    st = read_status(args.rundir)
    print("\n".join(format_status(st)), flush=True)
    if not args.watch:
        return 0
    try:
        while st.get("state") == "running":
            time.sleep(interval)
            st = read_status(args.rundir)
            print(f"\n--- {time.strftime('%H:%M:%S')}", flush=True)
            print("\n".join(format_status(st)), flush=True)
    except KeyboardInterrupt:
        sys.stdout.write("\n")
        return 130
    return 0 if st.get("state") == "finished" else 1
