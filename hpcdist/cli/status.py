"""``hpcdist status RUNDIR [--watch]``: show a running job's ``RUNDIR/status.json``.

The job's rank 0 rewrites the file atomically at most once a second
(:class:`hpcdist.metrics.status.StatusWriter`); this command only reads it, so it runs
anywhere the file system is visible (a login node), never under ``mpiexec``.
``--watch`` reprints the view every ``--interval`` seconds until the status says the job
ended (plain text, no terminal library), or until the job is known to be gone: on the
job's own host a rank 0 whose process no longer exists; elsewhere a status that has not
changed for the staleness limit (:func:`stale_limit`).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable, TextIO

from hpcdist.metrics.check import FieldError, check_value, check_version, describe_value
from hpcdist.runtime.errors import InputError

__all__ = ["HELP", "add_arguments", "run", "format_status", "check_status", "job_alive", "stale_limit", "watch",
           "STALE_LIMIT_S", "STALE_LIMIT_GAPS", "EXIT_GONE", "EXIT_STALE"]

HELP = "show the progress, rate, slowest rank and memory of a running job or farm (RUNDIR/status.json)"

#: A running job's status older than this is flagged: the job may be stuck or dead.
STALE_S = 30.0
#: ``--watch`` on a job whose process cannot be looked at from here (another host) stops
#: when the status has not changed for the longer of this many seconds and
#: ``STALE_LIMIT_GAPS`` times the longest gap between two updates it saw: the writer
#: rewrites the file about once a second, a graph run at least once per superstep.
STALE_LIMIT_S = 60.0
STALE_LIMIT_GAPS = 10
#: Exit status of ``--watch`` for a job whose process is gone without a final state
#: (the same as ``failed``: the job did not finish).
EXIT_GONE = 1
#: Exit status of ``--watch`` stopped by the staleness limit: the outcome is unknown.
EXIT_STALE = 3
#: Versions of the status format (hpcdist/metrics/status.py) that this command reads.
READ_VERSIONS = (1,)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("rundir", metavar="RUNDIR", help="the job's run directory (holds status.json)")
    p.add_argument("--watch", action="store_true", help="refresh until the job has finished")
    p.add_argument("--interval", default="1", metavar="S", help="seconds between refreshes with --watch (default 1)")
    p.add_argument("--stale-limit", default=None, metavar="S",
                   help="with --watch, stop (exit 3) when the status has not changed for S seconds; default: only "
                        f"for a job on another host, max({STALE_LIMIT_S:g} s, {STALE_LIMIT_GAPS}x the longest gap "
                        "between updates seen)")


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


def format_status(st: dict[str, Any], now: float | None = None, *, gone: bool = False) -> list[str]:
    """The terminal view of a status document (checked by :func:`check_status`), one string per line.

    ``gone``: the job's process is known to have ended (:func:`job_alive`), which a
    running state then says instead of "stale".
    """
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
        if state == "running" and not gone and progress is not None and total and done is not None and float(rate) > 0:
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
        stale = ""
        if state == "running" and gone:
            stale = "  (gone: the job's process no longer exists)"
        elif state == "running" and age > STALE_S:
            stale = "  (stale: the job may be stuck or gone)"
        lines.append(f"  updated      {_age(age)} ago{stale}")
    started = st.get("started")
    if started is not None:
        # an ended (or gone) job ran until its last update, not until now
        running = state == "running" and not gone
        end = float(updated) if not running and updated is not None else now
        lines.append(f"  {'running for' if running else 'ran for':<12} {_age(max(end - float(started), 0.0))}")
    return lines


def _check_pid(value: Any, where: str) -> None:
    check_value(value, "int", where)
    if value is not None and value <= 0:  # os.kill(0 or -1, ...) would mean a process group, or every process
        raise FieldError(where, "a positive integer (a process id)", describe_value(value))


#: The fields ``format_status`` reads and their types (docs/metrics.md); others are ignored.
_FIELDS: dict[str, Any] = {
    "format": "str", "version": "int", "state": "str", "what": "str", "unit": "str", "ranks": "int", "host": "str",
    "pid": _check_pid, "started": "num", "updated": "num", "progress": "num", "done": "int", "total": "int",
    "rate": "num", "slowest_rank": "int", "memory": "num", "pending": "int", "running": "int", "failed": "int",
    "workers": "int", "worker_memory_max": "num", "worker_memory_max_rank": "int"}


def check_status(st: dict[str, Any], path: str | os.PathLike) -> dict[str, Any]:
    """Check a status document's version and field types; return it.

    Raises
    ------
    InputError
        ``PATH: field X: expected ..., got ...`` at the first field (in file order) of the
        wrong type, or a format version this build does not read.
    """
    version = st.get("version")
    if _is_integer(version):  # a non-integer is reported by the field check below
        check_version("status", int(version), READ_VERSIONS, path)
    try:
        check_value(st, _FIELDS)
    except FieldError as exc:
        raise InputError(str(exc), path=str(path)) from None
    return st


def _is_integer(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer()


def _read(rundir: str | os.PathLike) -> dict[str, Any]:
    from hpcdist.metrics.status import STATUS_FILE, read_status

    return check_status(read_status(rundir), Path(rundir) / STATUS_FILE)


def job_alive(st: dict[str, Any]) -> bool | None:
    """Whether the process that writes the status (the job's rank 0) still exists.

    None when this cannot be told from here: the status names another host (or no host
    or pid). A zombie (killed, not yet reaped) counts as gone. A pid reused by another
    process since counts as alive; the staleness limit of ``--watch`` still applies then
    only when given (``--stale-limit``).
    """
    host, pid = st.get("host"), st.get("pid")
    if not host or pid is None or host != socket.gethostname():
        return None
    pid = int(pid)
    if os.path.isdir("/proc/self"):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except FileNotFoundError:
            return False
        except OSError:  # there, but not ours to read
            return True
        # "pid (comm) S ...": comm may hold spaces and parentheses, the state follows the last ')'
        state = stat[stat.rfind(b")") + 2:stat.rfind(b")") + 3]
        return state not in (b"Z", b"X", b"x")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def stale_limit(longest_gap: float) -> float:
    """Seconds without a change after which ``--watch`` gives up on a job it cannot look at.

    ``max(STALE_LIMIT_S, STALE_LIMIT_GAPS * longest_gap)``, where ``longest_gap`` is the
    longest time between two updates seen (from the file's own ``updated`` times, so the
    clocks of the two hosts need not agree).
    """
    return max(STALE_LIMIT_S, STALE_LIMIT_GAPS * longest_gap)


def watch(rundir: str | os.PathLike, st: dict[str, Any], interval: float, limit: float | None = None, *,
          read: Callable[[str | os.PathLike], dict[str, Any]] = _read, sleep: Callable[[float], None] = time.sleep,
          clock: Callable[[], float] = time.monotonic, alive: Callable[[dict[str, Any]], bool | None] = job_alive,
          out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Reprint the status every ``interval`` seconds until the job ended or is known to be gone.

    Parameters
    ----------
    rundir : path
    st : dict
        The status just printed.
    interval : float
        Seconds between reads.
    limit : float, optional
        Stop after this many seconds without a change of ``updated``, whatever the host.
        Default: :func:`stale_limit` for a job on another host; none for a job on this
        host, whose process is looked at instead.
    read, sleep, clock, alive, out, err
        For tests: the status reader, ``time.sleep``, a monotonic clock, :func:`job_alive`
        and the streams (default ``sys.stdout`` and ``sys.stderr``).

    Returns
    -------
    int
        0 finished, 1 failed (or another final state), :data:`EXIT_GONE` (1) the job's
        process is gone without a final state, :data:`EXIT_STALE` (3) the staleness limit.
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    seen, seen_at, longest_gap = st.get("updated"), clock(), 0.0
    while st.get("state") == "running":
        live = alive(st)
        if live is False:
            st = read(rundir)  # it may have written its final state just before it exited
            if st.get("state") != "running":
                out.write(f"\n--- {time.strftime('%H:%M:%S')}\n" + "\n".join(format_status(st)) + "\n")
                break
            updated = st.get("updated")
            when = f"last update {_age(max(time.time() - float(updated), 0.0))} ago" if updated is not None \
                else "no update yet"
            err.write(f"hpcdist status: the job (pid {st.get('pid')} on {st.get('host')}) is gone; {when}; it ended "
                      "without writing a final state (killed, or it crashed)\n")
            err.flush()
            return EXIT_GONE
        give_up = limit if limit is not None else (stale_limit(longest_gap) if live is None else None)
        if give_up is not None and clock() - seen_at > give_up:
            where = f"on {st.get('host')}" if st.get("host") else "(no host recorded)"
            err.write(f"hpcdist status: no update from the job {where} for {_age(clock() - seen_at)} "
                      f"(limit {_age(give_up)}); it may be stuck or gone; stopped watching\n")
            err.flush()
            return EXIT_STALE
        sleep(interval)
        st = read(rundir)
        updated = st.get("updated")
        if updated != seen:
            if updated is not None and seen is not None:
                longest_gap = max(longest_gap, float(updated) - float(seen))
            seen, seen_at = updated, clock()
        out.write(f"\n--- {time.strftime('%H:%M:%S')}\n" + "\n".join(format_status(st)) + "\n")
        out.flush()
    return 0 if st.get("state") == "finished" else 1


def run(args: argparse.Namespace) -> int:
    """Print the status once, or with ``--watch`` until the job has finished or is gone. Serial."""
    try:
        interval = float(args.interval)
    except ValueError:
        raise InputError(f"--interval expects a number, got {args.interval!r}") from None
    if not interval > 0:
        raise InputError(f"--interval must be positive, got {args.interval!r}")
    limit = None
    if args.stale_limit is not None:
        try:
            limit = float(args.stale_limit)
        except ValueError:
            raise InputError(f"--stale-limit expects seconds, got {args.stale_limit!r}") from None
        if not limit > 0 or limit == float("inf"):
            raise InputError(f"--stale-limit must be a positive number of seconds, got {args.stale_limit!r}")
    st = _read(args.rundir)
    print("\n".join(format_status(st, gone=st.get("state") == "running" and job_alive(st) is False)), flush=True)
    if not args.watch:
        return 0
    try:
        return watch(args.rundir, st, interval, limit)
    except KeyboardInterrupt:
        sys.stdout.write("\n")
        return 130
