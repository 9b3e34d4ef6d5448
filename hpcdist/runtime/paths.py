"""Output paths checked before a run, so that a finished run never loses its result.

Every command that writes a file (``hpcdist graph -o``, ``--metrics``, ``convert``,
``report -o``) checks its output path up front with :func:`check_output_path`: a
mistake then costs a second, not the whole run, and an output that names one of the
inputs is refused instead of overwriting it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from hpcdist.runtime.errors import InputError

__all__ = ["check_output_path", "same_file"]


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` name the same file (through links; by path when either is missing)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_output_path(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike | None] = (),
                      what: str = "output file", probe: bool = True) -> None:
    """Refuse an output path that the run could not write, or that would overwrite an input.

    Parameters
    ----------
    path : str or path-like
        Where the command will write (atomically: ``PATH.tmp``, then a rename).
    inputs : iterable of paths
        The command's input files; None entries and generator specs (no such file) are
        ignored unless they name ``path`` itself.
    what : str
        Names the path in the message (``output file``, ``metrics file``).
    probe : bool
        Create and remove a probe file beside ``path``: the one test that tells whether
        this process may write there (permissions, read-only mounts, ``/proc``). On a
        shared file system call it on one rank, inside a collective agreement.

    Raises
    ------
    InputError
        Naming the path and the problem.
    """
    p = Path(path)
    for src in inputs:
        if src is not None and str(src) and same_file(p, src):
            raise InputError(f"the {what} would overwrite the input {src}", path=str(p))
    if p.is_dir():
        raise InputError(f"the {what} is a directory", path=str(p))
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"the {what}'s directory does not exist", path=str(p))
    if probe:
        name = parent / f".{p.name}.probe-{os.getpid()}"
        try:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise InputError(f"cannot write the {what} there ({exc.strerror or exc})", path=str(p)) from None
        os.close(fd)
        os.unlink(name)
