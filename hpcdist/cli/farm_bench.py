"""``hpcdist farm-bench``: the task farm against ``mpi4py.futures`` and bare MPI, in one job.

The benchmark code lives in the source tree's ``benchmarks/`` folder (next to the
``hpcdist`` package), not in the installed package; this command finds it there.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["HELP", "add_arguments", "run"]

HELP = "benchmark the task farm against mpi4py.futures and bare MPI (run with mpiexec -n 3)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="tiny sizes and one repeat: seconds, for a test")
    p.add_argument("--repeats", type=int, default=None, metavar="K",
                   help="repeats per measurement (default 5; 1 with --quick)")
    p.add_argument("--output", default=None, metavar="PATH",
                   help="JSON report (default benchmarks/results/farm-<hostname>-<date>.json)")
    p.add_argument("--table", action="store_true", help="print only the markdown table, no progress lines")
    p.add_argument("--only", default=None, metavar="NAMES",
                   help="comma-separated measurements to run (default: all; see benchmarks/farm_bench.py)")


def _benchmarks() -> ModuleType:
    import hpcdist
    from hpcdist.runtime.errors import HpcdistError

    root = Path(hpcdist.__file__).resolve().parent.parent
    if not (root / "benchmarks" / "farm_bench.py").is_file():
        raise HpcdistError(f"farm-bench needs the source tree: no benchmarks/farm_bench.py under {root}")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))  # every rank, so that workers unpickle the benchmark tasks
    return importlib.import_module("benchmarks.farm_bench")


def run(args: argparse.Namespace) -> int:
    """Run the benchmarks; rank 0 writes the JSON and prints the table. Collective over ``COMM_WORLD``."""
    from dataclasses import replace
    from pathlib import Path

    from hpcdist.runtime.context import Context
    from hpcdist.runtime.errors import InputError, collective
    from hpcdist.runtime.logs import echo

    with Context(backend="numpy", discover_gpus=False) as ctx:
        with collective(ctx.comm):
            if ctx.size < 2:
                raise InputError("farm-bench needs a coordinator and workers: mpiexec -n 3 hpcdist farm-bench")
            if args.repeats is not None and args.repeats < 1:
                raise InputError(f"--repeats must be at least 1, got {args.repeats}")
            if args.output and Path(args.output).is_dir():  # found now, not after the whole benchmark
                raise InputError("the output file is a directory", path=args.output)
            bench = _benchmarks()
            only = None if args.only is None else [m.strip() for m in args.only.split(",") if m.strip()]
            unknown = sorted(set(only or ()) - set(bench.MEASUREMENTS))
            if unknown or only == []:
                raise InputError(f"--only: unknown measurement {', '.join(unknown) or '(none given)'}; "
                                 f"choose from {', '.join(bench.MEASUREMENTS)}")
        sizes = bench.QUICK if args.quick else bench.SIZES
        if args.repeats is not None:
            sizes = replace(sizes, repeats=args.repeats)
        say = None if args.table else (lambda text: echo(ctx.comm, f"farm-bench: {text}"))
        report = bench.run_benchmarks(ctx.comm, sizes, log=say, only=only)
        if report is not None:
            machine = report["machine"]
            output = Path(args.output) if args.output else bench.default_output(machine["hostname"], machine["date"])
            bench.write_report(report, output)
            for problem in bench.check_report(report):  # every number must be positive and finite
                echo(ctx.comm, f"farm-bench: warning: {problem}", file=sys.stderr)
            table = bench.format_table(report)
            echo(ctx.comm, table if args.table else f"{table}\n\nfarm-bench: wrote {output}")
    return 0
