"""``hpcdist`` entry point: argument parsing, logging set-up and the error policy.

Error policy, the same for every command:

* an :class:`~hpcdist.runtime.errors.HpcdistError` that all ranks agreed on prints
  one message on rank 0 and every rank exits with its ``exit_code`` (2);
* one found by a single rank prints its message there and aborts the job;
* anything else is a bug: the abort guard prints the traceback once and aborts.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

from hpcdist import __version__
from hpcdist.runtime.errors import HpcdistError
from hpcdist.runtime.logs import LEVELS

__all__ = ["main", "build_parser"]

# Launchers set these before MPI starts; reading them keeps `--help` printed once
# per job without initialising MPI just for that.
_LAUNCHER_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID")


def _launcher_rank() -> int:
    for var in _LAUNCHER_RANK_VARS:
        value = os.environ.get(var)
        if value and value.isdigit():
            return int(value)
    return 0


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--log-level",
        type=str.upper,
        choices=LEVELS,
        default=argparse.SUPPRESS,
        help="log level of the rank-prefixed logs (default: $HPCDIST_LOG_LEVEL or WARNING)",
    )


#: Every command: (name, module under hpcdist.cli). A command module defines HELP,
#: add_arguments(parser) and run(args) -> int. "exec" lives here, in main.
COMMANDS = (
    ("info", "info"),
    ("exec", None),
    ("demo", "demo"),
    ("convert", "convert"),
    ("partition", "partition"),
    ("graph", "graph"),
    ("farm-bench", "farm_bench"),
    ("checkpoint", "checkpoint"),
    ("report", "report"),
    ("status", "status"),
    ("jobs", "jobs"),
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, one sub-parser per command."""
    import importlib
    import importlib.util

    parser = argparse.ArgumentParser(
        prog="hpcdist",
        description="MPI-native distributed processing. Launch with mpiexec/srun: "
        "`mpiexec -n 4 hpcdist info`.",
    )
    parser.add_argument("--version", action="version", version=f"hpcdist {__version__}")
    _add_common(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS:
        if module_name is None:
            help_text, add_arguments, run = EXEC_HELP, _exec_arguments, _exec_run
        else:
            full = f"hpcdist.cli.{module_name}"
            if importlib.util.find_spec(full) is None:
                continue  # a command whose module is not written yet
            module = importlib.import_module(full)
            help_text, add_arguments, run = module.HELP, module.add_arguments, module.run
        p = sub.add_parser(name, help=help_text, description=help_text)
        _add_common(p)
        add_arguments(p)
        p.set_defaults(func=run)
    return parser


EXEC_HELP = "run a Python script so that an error on any rank ends the whole job"


def _exec_arguments(p: argparse.ArgumentParser) -> None:
    p.usage = "hpcdist exec [-h] (script.py | -m MODULE | -c CODE) [args ...]"
    p.add_argument("program", nargs=argparse.REMAINDER, help="script.py, -m MODULE or -c CODE, then its arguments")


def _exec_run(args: argparse.Namespace) -> int:
    from hpcdist.runtime.abort import run_program
    from hpcdist.runtime.comm import MPI
    from hpcdist.runtime.errors import InputError, collective

    program = args.program
    with collective(MPI.COMM_WORLD):  # every rank sees the same file system; agree anyway
        if not program:
            raise InputError("hpcdist exec: give a script, -m MODULE or -c CODE")
        if program[0] in ("-m", "-c") and len(program) < 2:
            raise InputError(f"hpcdist exec {program[0]}: missing {'module name' if program[0] == '-m' else 'code'}")
        if program[0] not in ("-m", "-c") and not os.path.isfile(program[0]):
            raise InputError(f"hpcdist exec: no such file: {program[0]}")
        if program[0] == "-m" and not _module_exists(program[1]):
            raise InputError(f"hpcdist exec -m: no module named {program[1]!r}")
    return run_program(program)


#: Commands that never use MPI: they check the environment on their own, without starting MPI.
_SERIAL_COMMANDS = ("report", "status", "jobs")


def _check_environment(log_level: str | None, command: str | None = None) -> None:
    """Set up logging and read every ``HPCDIST_*`` setting (and the config file) once, up front.

    Under a launcher all ranks do it inside one agreement: a typo in the environment is
    then one message and the same exit status on every rank, not an abort per rank.
    """
    from hpcdist.graph.memory import parse_bytes
    from hpcdist.runtime.errors import InputError
    from hpcdist.runtime.faults import faults
    from hpcdist.runtime.logs import setup_logging
    from hpcdist.runtime.settings import load_settings

    def check() -> None:
        setup_logging(log_level)
        settings = load_settings()
        if settings.memory_limit is not None:
            try:
                parse_bytes(settings.memory_limit)
            except HpcdistError as exc:
                raise InputError(f"{settings.sources.get('memory_limit', 'memory_limit')}: {exc}") from None
        faults()

    if command in _SERIAL_COMMANDS or not any(os.environ.get(var) for var in _LAUNCHER_RANK_VARS):
        check()
        return
    from hpcdist.runtime.comm import MPI
    from hpcdist.runtime.errors import collective

    with collective(MPI.COMM_WORLD):
        check()


def _module_exists(name: str) -> bool:
    import importlib.util

    try:  # the top-level name only: finding a submodule would import its package outside the abort guard
        return importlib.util.find_spec(name.partition(".")[0]) is not None
    except (ImportError, ValueError):  # a parent package that is missing, or an empty name
        return False


def _split_exec(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """Split ``[opts] exec PROGRAM ...`` so that the program's own options are not parsed."""
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "exec":
            rest = argv[i + 1 :]
            if not rest or rest[0] in ("-h", "--help"):
                return argv, None
            return argv[: i + 1], rest
        if word == "--log-level":
            i += 2
            continue
        if not word.startswith("-"):
            break
        i += 1
    return argv, None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``hpcdist`` command line; returns the exit status."""
    from hpcdist.runtime.abort import abort_job, install_excepthook

    install_excepthook()
    argv = list(sys.argv[1:] if argv is None else argv)
    head, program = _split_exec(argv)
    parser = build_parser()
    quiet = _launcher_rank() != 0
    saved = sys.stdout, sys.stderr
    if quiet:  # --help, --version and a usage error print once per job (every rank parses the same line)
        sys.stdout = sys.stderr = open(os.devnull, "w")
    try:
        args = parser.parse_args(head)
    finally:
        if quiet:
            sys.stdout.close()
            sys.stdout, sys.stderr = saved
    if program is not None:
        args.program = program
    if not getattr(args, "command", None):
        if not quiet:
            parser.print_help()
        return 2

    try:
        _check_environment(getattr(args, "log_level", None), getattr(args, "command", None))
        return int(args.func(args) or 0)
    except HpcdistError as exc:
        from hpcdist.runtime.comm import world_rank_and_size

        rank, size = world_rank_and_size()
        if exc.collective or size == 1:
            if rank == 0:
                sys.stderr.write(f"hpcdist: error: {exc}\n")
                sys.stderr.flush()
            return exc.exit_code
        abort_job(exc, exc.exit_code)
        raise  # not reached: abort_job ends the process


if __name__ == "__main__":
    sys.exit(main())
