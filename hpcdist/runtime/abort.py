"""The no-hang guarantee: an uncaught exception on one rank ends the whole job.

Without this, ``mpiexec -n 4 python script.py`` whose rank 2 raises hangs forever:
rank 2 blocks in ``MPI_Finalize`` at exit while the others wait in their next
collective or receive. hpcdist instead prints the original traceback once, tagged
with the failing rank, then one summary line, and calls ``MPI_Abort`` on
``COMM_WORLD`` so that the launcher tears down every rank within a fraction of a
second (MPICH) to a few seconds (Open MPI).

Two ways in:

* ``hpcdist exec script.py [args]`` (:func:`run_program`) guards everything the
  script does, including ``sys.exit(n)`` with a non-zero ``n`` on a single rank.
* ``import hpcdist`` installs :func:`install_excepthook`, which covers an uncaught
  exception that reaches the top level of the main thread after the import.
  It cannot cover a rank that calls ``sys.exit(n)``, ``os._exit`` or returns
  normally while the others still wait, nor exceptions in other threads.

Errors that every rank agreed on (:func:`hpcdist.runtime.errors.agree`) are not
aborts: they are printed once by rank 0 and every rank exits normally.
"""

from __future__ import annotations

import os
import runpy
import socket
import sys
import traceback
from types import TracebackType

from hpcdist.runtime.errors import EXIT_ERROR, HpcdistError

__all__ = ["install_excepthook", "abort_job", "run_program", "format_tagged_traceback"]

_previous_hook = None


def _tag(rank: int, size: int) -> str:
    return f"[{rank}/{size} {socket.gethostname()}]"


def format_tagged_traceback(exc: BaseException, rank: int, size: int, skip_frames: int = 0) -> str:
    """Format ``exc``'s traceback with every line prefixed by ``[rank/size host]``.

    Parameters
    ----------
    exc : BaseException
        The exception to format.
    rank, size : int
        The failing rank and the world size, for the tag.
    skip_frames : int
        Outer frames to drop (the guard's own frames).

    Returns
    -------
    str
        The tagged traceback followed by one summary line.
    """
    tb = exc.__traceback__
    for _ in range(skip_frames):
        if tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
    lines = traceback.format_exception(type(exc), exc, tb)
    tag = _tag(rank, size)
    body = "".join(f"{tag} {line}\n" for chunk in lines for line in chunk.rstrip("\n").split("\n"))
    summary = (
        f"hpcdist: rank {rank} of {size} on {socket.gethostname()} failed with "
        f"{type(exc).__name__}: {exc} -- aborting all {size} ranks"
    )
    return body + summary + "\n"


def abort_job(exc: BaseException, code: int = EXIT_ERROR, skip_frames: int = 0) -> None:
    """Print ``exc`` once, tagged with this rank, and abort every rank of the job.

    Falls back to printing only when MPI is not initialised or the job has one rank,
    so that a serial run ends the ordinary way. Does not return when it aborts.

    Parameters
    ----------
    exc : BaseException
        The exception that ended this rank.
    code : int
        The exit status that ``mpiexec`` reports.
    skip_frames : int
        Outer traceback frames to hide (the guard's own).
    """
    from hpcdist.runtime.comm import MPI, world_rank_and_size

    rank, size = world_rank_and_size()
    if size > 1 and rank != 0:
        _defer_to_rank_zero()
    try:
        if isinstance(exc, HpcdistError):
            where = f" on rank {rank} of {size}" if size > 1 else ""
            text = f"hpcdist: error{where}: {exc}\n"
        else:
            text = format_tagged_traceback(exc, rank, size, skip_frames)
        sys.stderr.write(text)
        sys.stderr.flush()
        sys.stdout.flush()
    except Exception:  # noqa: BLE001 - even a broken stderr must not stop the abort
        pass
    if size > 1:
        _let_launcher_forward_output()
        MPI.COMM_WORLD.Abort(code)
    # A singleton job has nobody to wait on it; exit without MPI_Finalize, which
    # could wait on requests the failed code left pending.
    os._exit(code)


#: Seconds to wait between printing and MPI_Abort. MPICH's launcher drops output that
#: is still in its forwarding pipe when the abort arrives (measured: 1 run in 20 lost
#: the traceback without this pause).
ABORT_GRACE_S = 0.25


#: Seconds a rank other than 0 waits before it prints and aborts. When every rank fails at
#: once (a syntax error, an import error, a watchdog that fires everywhere) rank 0's message
#: and abort come first and end the others: the job prints the error once, not once per rank.
#: A rank that fails alone ends the job this much later.
ABORT_DEFER_S = 1.0


def _defer_to_rank_zero() -> None:
    import time

    time.sleep(ABORT_DEFER_S)


def _let_launcher_forward_output() -> None:
    import time

    time.sleep(ABORT_GRACE_S)


def _hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    from hpcdist.runtime.comm import world_rank_and_size

    rank, size = world_rank_and_size()
    if isinstance(exc, HpcdistError) and exc.collective:
        # Every rank has this same error: one message, then a normal exit on all ranks.
        if rank == 0:
            sys.stderr.write(f"hpcdist: error: {exc}\n")
            sys.stderr.flush()
        return
    if size <= 1:
        (_previous_hook or sys.__excepthook__)(exc_type, exc, tb)
        return
    abort_job(exc, EXIT_ERROR)


def install_excepthook() -> None:
    """Make an uncaught exception on any rank abort the whole MPI job.

    Idempotent. Chains to the previous hook in a serial run.
    """
    global _previous_hook
    if sys.excepthook is _hook:
        return
    _previous_hook = sys.excepthook
    sys.excepthook = _hook


def _exit_status(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")  # sys.exit("message") prints its message
    return 1


def run_program(argv: list[str]) -> int:
    """Run a Python program (``script.py``, ``-m module`` or ``-c code``) under the guard.

    The program sees ``sys.argv`` as if it had been started by ``python`` itself.
    Any uncaught exception, and a ``sys.exit`` with a non-zero status on a single
    rank, aborts the whole job.

    Parameters
    ----------
    argv : list of str
        ``[script, args...]``, ``["-m", module, args...]`` or ``["-c", code, args...]``.

    Returns
    -------
    int
        The program's exit status when it ends normally on this rank.
    """
    argv = list(argv)
    try:
        if argv[0] == "-c":
            code = argv.pop(1)
            sys.argv[:] = argv
            globs = {"__name__": "__main__", "__builtins__": __builtins__}
            exec(compile(code, "<string>", "exec"), globs)  # noqa: S102 - the user's program
        elif argv[0] == "-m":
            del argv[0]
            sys.argv[:] = argv
            runpy.run_module(argv[0], run_name="__main__", alter_sys=True)
        else:
            path = argv[0]
            sys.argv[:] = argv
            sys.path.insert(0, os.path.dirname(os.path.realpath(path)))
            runpy.run_path(path, run_name="__main__")
    except SystemExit as exc:
        status = _exit_status(exc)
        # A collective exit (every rank leaves together, e.g. the farm's drain) needs no abort.
        if status and not getattr(exc, "collective", False):
            from hpcdist.runtime.comm import MPI, world_rank_and_size

            rank, size = world_rank_and_size()
            if size > 1:
                if rank != 0:
                    _defer_to_rank_zero()
                sys.stderr.write(f"hpcdist: rank {rank} of {size} exited with status {status} -- aborting all {size} ranks\n")
                sys.stderr.flush()
                _let_launcher_forward_output()
                MPI.COMM_WORLD.Abort(status)
        return status
    except KeyboardInterrupt as exc:
        abort_job(exc, 130, skip_frames=1)
    except HpcdistError as exc:
        if exc.collective:
            raise
        abort_job(exc, exc.exit_code)
    except BaseException as exc:  # noqa: BLE001 - the guard's whole purpose
        abort_job(exc, EXIT_ERROR, skip_frames=_guard_depth(exc))
    return 0


def _guard_depth(exc: BaseException) -> int:
    """Number of leading traceback frames that belong to this guard and to runpy."""
    here = os.path.abspath(__file__)
    depth = 0
    tb = exc.__traceback__
    while tb is not None:
        fname = tb.tb_frame.f_code.co_filename
        if fname != "<frozen runpy>" and os.path.basename(fname) != "runpy.py":
            if not fname.startswith("/") or os.path.abspath(fname) != here:
                break
        depth += 1
        tb = tb.tb_next
    return depth
