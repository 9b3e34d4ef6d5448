"""``hpcdist checkpoint ls DIR`` and ``hpcdist checkpoint verify DIR``: inspect a checkpoint directory.

``ls`` reads manifests and file sizes only (fast on any size); ``verify`` reads every
rank file completely and checks every checksum. Both run on rank 0 of however many
ranks they are launched with; the others wait.

Exit status: 0 when all is well; 1 when ``verify`` finds a damaged checkpoint (or
none committed); 2 on bad input (a missing directory), with one message.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

__all__ = ["HELP", "add_arguments", "run"]

HELP = "list (ls) or fully verify (verify) the checkpoints in a directory"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("ls", "verify"),
                   help="ls: one line per checkpoint (manifests and sizes only); verify: read everything, check "
                   "every checksum, exit 1 if any committed checkpoint is bad")
    p.add_argument("directory", metavar="DIR", help="the checkpoint directory (as given to --checkpoint-dir)")
    p.add_argument("--json", action="store_true", help="ls: print JSON instead of a table")


def _status(info, problems: list[str]) -> str:
    if not info.committed:
        return "uncommitted"
    if problems:
        return "BAD"
    return "ok"


def _row(info, problems: list[str]) -> dict:
    from hpcdist.graph.memory import format_bytes

    algorithm = info.meta.get("algorithm", "-") if isinstance(info.meta, dict) else "-"
    created = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(info.created)) if info.created else "-"
    return {
        "name": info.name, "seq": info.seq, "step": info.step,
        "ranks": info.ranks if info.usable else None, "total": info.total if info.usable else None,
        "algorithm": str(algorithm), "bytes": info.nbytes if info.usable else None,
        "size": format_bytes(info.nbytes) if info.usable else "-", "created": created,
        "committed": info.committed, "status": _status(info, problems), "problems": problems,
    }


def _table(rows: list[dict]) -> list[str]:
    head = ("NAME", "STEP", "RANKS", "TOTAL", "ALGORITHM", "SIZE", "CREATED (UTC)", "STATUS")
    cells = [head] + [(r["name"], str(r["step"]), "-" if r["ranks"] is None else str(r["ranks"]),
                       "-" if r["total"] is None else str(r["total"]), r["algorithm"], r["size"], r["created"],
                       r["status"]) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(head))).rstrip() for c in cells]
    for r in rows:
        for p in r["problems"]:
            if r["committed"]:
                lines.append(f"  {r['name']}: {p}")
    return lines


def _ls(directory: str, as_json: bool) -> tuple[list[str], int]:
    from hpcdist.checkpoint import list_checkpoints, quick_check

    found = list_checkpoints(directory, uncommitted=True)
    rows = [_row(info, quick_check(info) if info.committed else []) for info in found]
    if as_json:
        return [json.dumps({"directory": directory, "checkpoints": rows}, indent=1)], 0
    if not rows:
        return [f"no checkpoints in {directory}"], 0
    n_ok = sum(r["status"] == "ok" for r in rows)
    return _table(rows) + [f"{len(rows)} checkpoint(s) in {directory}, {n_ok} committed with all files present "
                           f"(checksums not read: run `hpcdist checkpoint verify {directory}`)"], 0


def _verify(directory: str) -> tuple[list[str], int, str | None]:
    from hpcdist.checkpoint import list_checkpoints, verify_checkpoint

    found = list_checkpoints(directory, uncommitted=True)
    lines: list[str] = []
    bad: list[str] = []
    n_committed = 0
    for info in found:
        if not info.committed:
            lines.append(f"{info.name}: uncommitted (a save that did not finish; ignored, deleted by the next save)")
            continue
        n_committed += 1
        t0 = time.perf_counter()
        problems = verify_checkpoint(info)
        if problems:
            lines.append(f"{info.name}: BAD")
            lines += [f"  {p}" for p in problems]
            bad.append(problems[0])
        else:
            lines.append(f"{info.name}: ok (step {info.step}, {info.ranks} rank files, {info.nbytes} bytes verified "
                         f"in {time.perf_counter() - t0:.2f} s)")
    if n_committed == 0:
        return lines, 1, f"no committed checkpoint in {directory}"
    if bad:
        return lines, 1, (f"{len(bad)} of {n_committed} committed checkpoint(s) in {directory} are damaged; "
                          f"first problem: {bad[0]}")
    lines.append(f"all {n_committed} committed checkpoint(s) in {directory} verified")
    return lines, 0, None


def run(args: argparse.Namespace) -> int:
    """List or verify. Collective over ``COMM_WORLD``; rank 0 does the work."""
    from hpcdist.runtime.comm import MPI
    from hpcdist.runtime.errors import collective
    from hpcdist.runtime.logs import echo

    comm = MPI.COMM_WORLD
    result: tuple = ([], 0, None)
    with collective(comm):  # a missing directory ends every rank with one message (exit 2)
        if comm.Get_rank() == 0:
            if args.action == "ls":
                lines, code = _ls(args.directory, args.json)
                result = (lines, code, None)
            else:
                result = _verify(args.directory)
    lines, code, message = result
    for line in lines:
        echo(comm, line)
    if message and comm.Get_rank() == 0:
        sys.stderr.write(f"hpcdist: error: {message}\n")
        sys.stderr.flush()
    return int(comm.bcast(code, root=0))
