"""``hpcdist jobs render KIND``: a Slurm job script for a given size, from the scripts in ``jobs/``.

The four scripts in the project's ``jobs/`` folder (``slurm-cpu.sbatch``,
``slurm-farm.sbatch``, ``slurm-gpu.sbatch``, ``slurm-checkpoint.sbatch``) are the
templates: rendering rewrites only their ``#SBATCH`` header values, the default of
``srun --mpi`` and the command the job runs, and leaves every other line as written
(``srun --kill-on-bad-exit=1``, the signal trap, the requeue on exit 75). The script
bodies therefore exist once, in ``jobs/``; a template that no longer has a line this
module rewrites is reported as such instead of being rendered half-way.

Where the templates are found: next to the package, ``<hpcdist>/../jobs`` (a source
checkout or an editable install, ``pip install -e .``), or in the folder given with
``--templates``. A wheel installed without the source tree does not carry them, and the
command says so.

Serial: run it on a login node, not under ``mpiexec``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from hpcdist.runtime.errors import InputError

__all__ = ["HELP", "KINDS", "MPI_PLUGINS", "add_arguments", "run", "JobOptions", "render_script", "find_templates",
           "parse_time", "default_mpi_plugin"]

HELP = "write a Slurm job script (jobs/*.sbatch) for a given size: hpcdist jobs render KIND --nodes N ..."

#: Kind of job -> its template in jobs/.
KINDS = {
    "cpu": "slurm-cpu.sbatch",
    "farm": "slurm-farm.sbatch",
    "gpu": "slurm-gpu.sbatch",
    "checkpoint": "slurm-checkpoint.sbatch",
}
#: The values of ``srun --mpi`` this command writes (see /work/shared/reference/slurm-local.md).
MPI_PLUGINS = ("pmi2", "pmix", "none")
#: Slurm may send the ``--signal`` warning up to this much earlier than asked (measured, jobs/README.md).
SIGNAL_SLACK_S = 60

_SBATCH = re.compile(r"^#SBATCH\s+--([\w-]+)(?:=(\S*))?\s*$")
_MPI_DEFAULT = re.compile(r'(--mpi="\$\{HPCDIST_SRUN_MPI:-)([\w-]+)(\}")')
_DEFAULT_COMMAND = re.compile(r"^\[ \$# -gt 0 \] \|\| set -- .*$", re.M)
_STRICT_MODE = re.compile(r"^set -euo pipefail$", re.M)
_SRUN_GPUS = re.compile(r"--gpus-per-task=\S+ --gpu-bind=per_task:\d+")
_SIGNAL_LEAD = re.compile(r"@(\d+)$")
# Values that go into an #SBATCH line unquoted: no spaces, no shell or comment characters.
_NAME = re.compile(r"^[\w.+-]+$")
_NAME_LIST = re.compile(r"^[\w.+-]+(,[\w.+-]+)*$")
_MEM = re.compile(r"^[1-9]\d*[KMGT]?$")
_GPUS = re.compile(r"^(?:[A-Za-z_][\w.-]*:)?([1-9]\d*)$")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)
    r = sub.add_parser("render", help="write a job script from jobs/slurm-KIND.sbatch",
                       description="Write a Slurm job script: the template jobs/slurm-KIND.sbatch with its #SBATCH "
                       "values, srun's --mpi and the job's command replaced. Options not given keep the "
                       "template's values. Options given to sbatch itself still override the #SBATCH lines.")
    r.add_argument("kind", choices=tuple(KINDS), metavar="KIND", help="cpu, farm, gpu or checkpoint")
    r.add_argument("--nodes", "-N", type=int, metavar="N", help="nodes (default: the template's)")
    r.add_argument("--ntasks-per-node", type=int, metavar="K",
                   help="MPI ranks per node (default: the template's); the job has N*K ranks")
    r.add_argument("--time", "-t", metavar="TIME",
                   help="time limit: MIN, MIN:SEC, H:M:S, D-H, D-H:M or D-H:M:S (default: the template's)")
    r.add_argument("--partition", "-p", metavar="NAME", help="partition(s), comma separated (default: the cluster's)")
    r.add_argument("--account", "-A", metavar="NAME", help="account to charge (default: the cluster's)")
    r.add_argument("--gpus-per-task", metavar="[TYPE:]G", help="gpu kind only: GPUs per rank (default 1)")
    r.add_argument("--cpus-per-task", "-c", type=int, metavar="C", help="cores per rank (default: the template's)")
    r.add_argument("--mem", metavar="SIZE", help="memory per node, e.g. 16G (default: the cluster's)")
    r.add_argument("--job-name", "-J", metavar="NAME", help="job name (default: the template's)")
    r.add_argument("--mpi", choices=MPI_PLUGINS,
                   help="srun --mpi (default: pmi2 for MPICH, pmix for Open MPI, from the MPI mpi4py uses)")
    r.add_argument("--input", "-i", metavar="SPEC",
                   help="cpu, gpu, checkpoint: the graph, added as --input SPEC; farm: the sweep script run by "
                        "`hpcdist exec`")
    r.add_argument("--args", metavar="'ARGS'",
                   help="the job's command, one shell-quoted string: cpu/gpu: the hpcdist command (default "
                        "'info'); checkpoint: '[ALGO] --output OUT.h5 ...'; farm: the sweep script's arguments. "
                        "Write --args='--opt ...' when it starts with a dash")
    r.add_argument("--templates", metavar="DIR", help="folder of the slurm-*.sbatch templates (default: jobs/ of "
                   "the source tree hpcdist is installed from)")
    r.add_argument("-o", "--output", metavar="FILE", help="write the script here (default: standard output)")


@dataclass(frozen=True)
class JobOptions:
    """What ``hpcdist jobs render`` may change in a template; None keeps the template's value.

    ``args`` is the job's command as a list of words (see :func:`render_script`).
    """

    nodes: int | None = None
    ntasks_per_node: int | None = None
    time: str | None = None
    partition: str | None = None
    account: str | None = None
    gpus_per_task: str | None = None
    cpus_per_task: int | None = None
    mem: str | None = None
    job_name: str | None = None
    mpi: str | None = None
    input: str | None = None
    args: tuple[str, ...] | None = None


def find_templates(directory: str | os.PathLike | None = None) -> Path:
    """The folder holding ``slurm-*.sbatch``: ``directory`` if given, else ``jobs/`` beside the package.

    The templates belong to the source tree, not to the installed package: a source
    checkout or an editable install finds them at ``<package>/../jobs``.

    Raises
    ------
    InputError
        When the folder has none of the templates.
    """
    import hpcdist

    folder = Path(directory) if directory is not None else Path(hpcdist.__file__).resolve().parent.parent / "jobs"
    if not any((folder / name).is_file() for name in KINDS.values()):
        how = ("" if directory is not None else
               ": hpcdist is installed without its source tree; install it from a checkout with "
               "`pip install -e .`, or pass --templates /path/to/hpcdist/jobs")
        raise InputError(f"no job script templates ({', '.join(KINDS.values())}) in {folder}{how}")
    return folder


def parse_time(text: str) -> int:
    """Seconds in a Slurm time limit: MIN, MIN:SEC, H:M:S, D-H, D-H:M or D-H:M:S.

    Raises
    ------
    InputError
        On any other form, a field out of range, or a limit of zero.
    """
    bad = InputError(f"--time {text!r}: not a Slurm time limit; use MIN, MIN:SEC, H:M:S, D-H, D-H:M or D-H:M:S "
                     "(e.g. 30, 2:00:00, 1-12)")
    m = re.fullmatch(r"(?:(\d+)-)?(\d+(?::\d+){0,2})", text.strip())
    if not m:
        raise bad
    days = int(m.group(1)) if m.group(1) is not None else None
    fields = [int(x) for x in m.group(2).split(":")]
    if days is None:
        # Slurm reads a lone number as minutes and two fields as minutes:seconds.
        unit = {1: (60,), 2: (60, 1), 3: (3600, 60, 1)}[len(fields)]
        limits = {1: (None,), 2: (None, 60), 3: (None, 60, 60)}[len(fields)]
        seconds = 0
    else:
        unit = (3600, 60, 1)[: len(fields)]
        limits = (24, 60, 60)[: len(fields)]
        seconds = days * 86400
    for value, scale, limit in zip(fields, unit, limits):
        if limit is not None and value >= limit:
            raise bad
        seconds += value * scale
    if seconds <= 0:
        raise InputError(f"--time {text!r}: the time limit must be positive")
    return seconds


def _format_time(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hms = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days}-{hms}" if days else hms


def default_mpi_plugin() -> str:
    """The ``srun --mpi`` for the MPI that mpi4py uses here: pmix for Open MPI, pmi2 otherwise.

    The MPICH wheel forms one world under ``srun --mpi=pmi2`` and refuses pmix; Open MPI
    speaks PMIx only (see jobs/README.md). Initialises MPI in this process (as ``hpcdist info``).
    """
    from hpcdist.runtime.comm import MPI

    return "pmix" if MPI.get_vendor()[0] == "Open MPI" else "pmi2"


def _header(lines: list[str]) -> tuple[int, int, dict[str, int]]:
    """First and last index of the #SBATCH block and the line of each option in it."""
    where = {}
    for i, line in enumerate(lines):
        m = _SBATCH.match(line)
        if m:
            where.setdefault(m.group(1), i)
    if not where:
        raise InputError("no #SBATCH lines")
    return min(where.values()), max(where.values()), where


def _value(lines: list[str], where: dict[str, int], key: str) -> str | None:
    if key not in where:
        return None
    return _SBATCH.match(lines[where[key]]).group(2)


def _check_name(option: str, value: str | None, pattern: re.Pattern, what: str) -> None:
    if value is not None and not pattern.match(value):
        raise InputError(f"{option} {value!r}: {what}")


def _check_command(words: list[str]) -> None:
    """Refuse a job command that ``hpcdist`` itself would refuse, with its own message."""
    from hpcdist.cli.main import _split_exec, build_parser

    if not words:
        return
    head, program = _split_exec(list(words))
    if any(w in ("-h", "--help") for w in head):  # a script's own -h after `exec` is its business
        raise InputError("--args: the job would only print a help text (-h/--help)")
    if "exec" in head and program is None:
        raise InputError("--args: `exec` needs a script, -m MODULE or -c CODE")
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(head)
    except SystemExit:
        message = (err.getvalue().strip().splitlines() or ["invalid"])[-1]
        message = re.sub(r"^[\w -]*: error: ", "", message)  # argparse's "hpcdist graph pagerank: error: "
        raise InputError(f"the job's command `hpcdist {shlex.join(words)}` is not valid: {message}") from None


def _command(kind: str, opts: JobOptions) -> list[str] | None:
    """The words the job passes to its template (its "$@"), or None for the template's default."""
    args = list(opts.args) if opts.args is not None else None
    if kind == "farm":
        if opts.input is None:
            if args is not None:
                raise InputError("farm: --args are the sweep script's arguments; name the script with --input")
            return None  # the template's own example sweep
        return [opts.input, *(args or [])]
    if opts.input is not None:
        if kind in ("cpu", "gpu") and (not args or args[0] != "graph"):
            raise InputError(f"{kind}: --input is the graph of a `graph ALGO` command; give it with "
                             "--args 'graph ALGO ...'")
        args = [*(args or []), "--input", opts.input]
    if kind == "checkpoint" and args:  # none: given to sbatch after the script, as the template's usage says
        algo, rest = (args[0], args[1:]) if not args[0].startswith("-") else ("pagerank", args)
        # What the template runs: graph ALGO --checkpoint-dir DIR --checkpoint-every K --resume ARGS.
        _check_command(["graph", algo, "--checkpoint-dir", "DIR", "--checkpoint-every", "10", "--resume", *rest])
    elif args is not None:
        _check_command(args)
    return args


def render_script(kind: str, opts: JobOptions, template: str, *, source: str = "", note: str = "") -> str:
    """The job script of ``kind`` for ``opts``, from the text of its template.

    Replaces the ``#SBATCH`` values (adding the options the template lacks), the
    default of ``srun --mpi="${HPCDIST_SRUN_MPI:-...}"`` (the environment variable
    still overrides it at run time), the GPU count on the gpu kind's ``srun`` line and
    the job's default command (``[ $# -gt 0 ] || set -- ...``: arguments given to
    ``sbatch`` after the script still replace it). Every other line stays as written.

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`.
    opts : JobOptions
        The values to write; None keeps the template's. ``opts.mpi`` None keeps the
        template's default (the CLI fills in :func:`default_mpi_plugin`).
    template : str
        The text of ``jobs/slurm-KIND.sbatch``.
    source : str, optional
        The template's name, for messages.
    note : str, optional
        A comment line inserted under the ``#!`` line (what rendered the script).

    Returns
    -------
    str
        The script.

    Raises
    ------
    InputError
        On an invalid option or combination of options, or a template that lacks a
        line this function rewrites.
    """
    if kind not in KINDS:
        raise InputError(f"unknown job kind {kind!r}; one of {', '.join(KINDS)}")
    for option, value in (("--nodes", opts.nodes), ("--ntasks-per-node", opts.ntasks_per_node),
                          ("--cpus-per-task", opts.cpus_per_task)):
        if value is not None and value <= 0:
            raise InputError(f"{option} {value}: must be a positive count")
    if opts.gpus_per_task is not None and kind != "gpu":
        raise InputError(f"--gpus-per-task is for the gpu kind (jobs/{KINDS['gpu']}); the {kind} job runs CPU ranks")
    _check_name("--gpus-per-task", opts.gpus_per_task, _GPUS, "use a positive count or TYPE:COUNT (e.g. 1, a100:2)")
    _check_name("--partition", opts.partition, _NAME_LIST, "use names of letters, digits and . _ + -, comma separated")
    _check_name("--account", opts.account, _NAME, "use letters, digits and . _ + -")
    _check_name("--job-name", opts.job_name, _NAME, "use letters, digits and . _ + - (no spaces)")
    _check_name("--mem", opts.mem, _MEM, "use a positive size with an optional unit K, M, G or T (e.g. 16G)")
    if opts.mpi is not None and opts.mpi not in MPI_PLUGINS:
        raise InputError(f"--mpi {opts.mpi!r}: one of {', '.join(MPI_PLUGINS)}")
    if opts.args is not None and any("\n" in w or "\0" in w for w in opts.args):
        raise InputError("--args: one line, please (no newline characters)")

    def broken(what: str) -> InputError:
        return InputError(f"not a template `hpcdist jobs render` understands: {what}", path=source or kind)

    lines = template.splitlines()
    try:
        first, last, where = _header(lines)
    except InputError:
        raise broken("no #SBATCH lines") from None

    # Ranks: always written as --nodes and --ntasks-per-node, the template's --ntasks spread over its nodes.
    t_nodes = int(_value(lines, where, "nodes") or 1)
    if "ntasks-per-node" in where:
        t_per_node = int(_value(lines, where, "ntasks-per-node"))
    elif "ntasks" in where:
        t_per_node = max(1, int(_value(lines, where, "ntasks")) // t_nodes)
    else:
        raise broken("no #SBATCH --ntasks or --ntasks-per-node line")
    nodes = opts.nodes if opts.nodes is not None else t_nodes
    per_node = opts.ntasks_per_node if opts.ntasks_per_node is not None else t_per_node
    ranks = nodes * per_node
    if kind == "farm" and ranks < 2:
        raise InputError(f"farm: {ranks} rank: the farm needs a coordinator and at least one worker (2 ranks or more)")
    mpi = opts.mpi
    if mpi == "none" and ranks > 1:
        raise InputError(f"--mpi none with {ranks} ranks: every rank would be an MPI world of its own, of size 1 "
                         f"({ranks} copies of the job); use pmi2 (MPICH) or pmix (Open MPI)")

    time_text = opts.time if opts.time is not None else _value(lines, where, "time")
    if time_text is not None:
        seconds = parse_time(time_text)
        signal = _value(lines, where, "signal")
        lead = _SIGNAL_LEAD.search(signal) if signal else None
        if lead and seconds <= int(lead.group(1)) + SIGNAL_SLACK_S:
            warn = int(lead.group(1))
            raise InputError(f"--time {time_text}: the {kind} job asks for its drain signal {warn} s before the "
                             f"limit (#SBATCH --signal={signal}), and Slurm may send it up to {SIGNAL_SLACK_S} s "
                             f"earlier: with this limit it would drain and requeue itself at once, over and over; "
                             f"ask for more than {warn + SIGNAL_SLACK_S} s")
        time_text = _format_time(seconds)

    values = {"job-name": opts.job_name, "nodes": str(nodes), "ntasks-per-node": str(per_node),
              "cpus-per-task": None if opts.cpus_per_task is None else str(opts.cpus_per_task),
              "gpus-per-task": opts.gpus_per_task, "time": time_text, "partition": opts.partition,
              "account": opts.account, "mem": opts.mem}
    header = lines[first:last + 1]
    out_header = []
    for line in header:
        m = _SBATCH.match(line)
        key = m.group(1) if m else None
        if key == "ntasks":
            key = "ntasks-per-node"  # the total follows from --nodes and --ntasks-per-node
        if key in values:
            value = values.pop(key)
            if value is None:
                out_header.append(line)
            else:
                out_header.append(f"#SBATCH --{key}={value}")
        else:
            out_header.append(line)
    out_header += [f"#SBATCH --{key}={value}" for key, value in values.items() if value is not None]
    body = "\n".join(lines[last + 1:])

    if mpi is not None:
        body, n = _MPI_DEFAULT.subn(lambda m: m.group(1) + mpi + m.group(3), body)
        if n == 0:
            raise broken('no srun --mpi="${HPCDIST_SRUN_MPI:-...}"')
    if kind == "gpu" and opts.gpus_per_task is not None:
        count = _GPUS.match(opts.gpus_per_task).group(1)
        body, n = _SRUN_GPUS.subn(f"--gpus-per-task={opts.gpus_per_task} --gpu-bind=per_task:{count}", body)
        if n == 0:
            raise broken("no `--gpus-per-task=G --gpu-bind=per_task:G` on the srun line")

    words = _command(kind, opts)
    if words is not None:
        line = f"[ $# -gt 0 ] || set -- {shlex.join(words)}   # the command rendered in; sbatch SCRIPT ARGS overrides it"
        if _DEFAULT_COMMAND.search(body):
            body = _DEFAULT_COMMAND.sub(lambda _: line, body, count=1)
        elif _STRICT_MODE.search(body):
            body = _STRICT_MODE.sub(lambda m: m.group(0) + "\n" + line, body, count=1)
        else:
            raise broken("no `set -euo pipefail` line to put the command after")

    pre = lines[:first]
    if note and pre and pre[0].startswith("#!"):
        pre = [pre[0], *(f"# {x}" for x in note.splitlines()), *pre[1:]]
    return "\n".join([*pre, *out_header, body]) + "\n"


def _note(args: argparse.Namespace, template: Path) -> str:
    from hpcdist import __version__

    words = ["hpcdist", "jobs", "render", args.kind]
    for name in ("nodes", "ntasks_per_node", "time", "partition", "account", "gpus_per_task", "cpus_per_task", "mem",
                 "job_name", "mpi", "input", "args"):
        value = getattr(args, name)
        if value is not None:
            words += [f"--{name.replace('_', '-')}={value}"]
    return (f"Rendered by `{shlex.join(words)}`\n(hpcdist {__version__}) from {template.name}; "
            "re-render rather than edit. sbatch's own options still override the #SBATCH lines.")


def run(args: argparse.Namespace) -> int:
    """Render ``args.kind``'s template and write it to ``args.output`` or standard output. Serial."""
    folder = find_templates(args.templates)
    path = folder / KINDS[args.kind]
    try:
        template = path.read_text()
    except OSError as exc:
        raise InputError(f"cannot read the template ({exc.strerror})", path=str(path)) from None
    try:
        words = None if args.args is None else tuple(shlex.split(args.args))
    except ValueError as exc:
        raise InputError(f"--args {args.args!r}: {exc} (one shell-quoted string)") from None
    mpi = args.mpi
    if mpi is None:
        mpi = default_mpi_plugin()
    opts = JobOptions(nodes=args.nodes, ntasks_per_node=args.ntasks_per_node, time=args.time,
                      partition=args.partition, account=args.account, gpus_per_task=args.gpus_per_task,
                      cpus_per_task=args.cpus_per_task, mem=args.mem, job_name=args.job_name, mpi=mpi,
                      input=args.input, args=words)
    text = render_script(args.kind, opts, template, source=str(path), note=_note(args, path))
    if args.output is None:
        sys.stdout.write(text)
        return 0
    out = Path(args.output)
    try:
        out.write_text(text)
        out.chmod(0o755)
    except OSError as exc:
        raise InputError(f"cannot write the job script ({exc.strerror})", path=str(out)) from None
    print(f"wrote {out} ({args.kind}: {_summary(text)}, srun --mpi={mpi})")
    return 0


def _summary(text: str) -> str:
    lines = text.splitlines()
    _, _, where = _header(lines)
    nodes, per_node = _value(lines, where, "nodes"), _value(lines, where, "ntasks-per-node")
    return f"{nodes} node(s) x {per_node} rank(s), time {_value(lines, where, 'time')}"

