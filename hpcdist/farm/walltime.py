"""Knowing when the job's time runs out, and draining when the scheduler says so.

Three small pieces the farm's coordinator uses, each testable without Slurm:

* :func:`allocation_end`: when the Slurm allocation ends (``SLURM_JOB_END_TIME``, else
  ``squeue -h -j $SLURM_JOB_ID -o %e``, else unknown);
* :class:`Walltime`: how much time remains before that end, minus a safety margin, and
  whether a task of a given expected duration still fits;
* :class:`DrainSignal`: turns ``SIGTERM``/``SIGUSR1`` into a flag the coordinator polls,
  so that it drains (starts no new task, lets the running ones finish or requeues them,
  flushes the journal) and exits with :data:`EXIT_REQUEUE`.

Job scripts
-----------
Ask Slurm for a warning signal ahead of the limit and requeue on the farm's exit code::

    #SBATCH --time=02:00:00
    #SBATCH --signal=B:USR1@120      # B: the batch shell gets it too; see below
    #SBATCH --requeue
    srun python sweep.py &           # in the background, so that the shell can forward signals
    wait $!
    status=$?
    [ $status -eq 75 ] && scontrol requeue $SLURM_JOB_ID
    exit $status

Facts that shaped this module (measured with Slurm 22.05, see
``/work/shared/reference/fault-tolerance.md``): ``--signal=B:USR1@60`` reached the batch
shell 69-80 s before the limit, i.e. Slurm may signal up to 60 s earlier than asked, so
a drain is a normal event well before the end, not an emergency at it; without ``B:``
only the job steps get the signal. At the time limit Slurm sends ``SIGTERM``, then
``SIGKILL`` after ``KillWait`` seconds (30 by default): the margin of :class:`Walltime`
should cover what a drain needs (30 s by default). The journal makes a ``SIGKILL`` that
arrives anyway harmless: the requeued job skips what was recorded.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import threading
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping

from hpcdist.runtime.logs import get_logger
from hpcdist.runtime.preemption import EXIT_REQUEUE  # the same code for graph runs and farms

__all__ = ["EXIT_REQUEUE", "allocation_end", "Walltime", "DrainSignal", "DEFAULT_MARGIN_S"]

log = get_logger(__name__)


#: Seconds kept free before the allocation's end for draining and flushing the journal.
DEFAULT_MARGIN_S = 30.0

#: ``squeue`` answers for jobs without a known end.
_NO_END = {"", "N/A", "NONE", "UNKNOWN", "UNLIMITED", "INFINITE"}


def _parse_epoch(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def _parse_squeue_time(text: str) -> float | None:
    """``2026-11-25T19:00:00`` (local time, as squeue prints it) to epoch seconds."""
    text = text.strip()
    if text.upper() in _NO_END:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()  # naive: interpreted in local time, like squeue's
    except ValueError:
        return _parse_epoch(text)


def allocation_end(
    environ: Mapping[str, str] | None = None,
    run: Callable[..., Any] = subprocess.run,
) -> float | None:
    """When the Slurm allocation ends, in epoch seconds; None outside Slurm or when unknown.

    Parameters
    ----------
    environ : mapping, optional
        The environment to read (``os.environ`` when None).
    run : callable
        Runs ``squeue``; ``subprocess.run``'s signature. Tests inject a fake.

    Returns
    -------
    float or None
        ``SLURM_JOB_END_TIME`` when set (Slurm 21.08+ exports it to batch jobs), else
        the end time ``squeue -h -j $SLURM_JOB_ID -o %e`` reports, else None (no Slurm,
        no ``squeue``, no time limit, or an answer that does not parse).

    Notes
    -----
    Reads the environment and may start one ``squeue``: call it once per job on the
    coordinator, not per task. The end can move (``scontrol update TimeLimit=``).
    """
    env = os.environ if environ is None else environ
    end = _parse_epoch(env.get("SLURM_JOB_END_TIME", "").strip())
    if end is not None:
        return end
    job_id = env.get("SLURM_JOB_ID", "").strip()
    if not job_id:
        return None
    try:
        done = run(["squeue", "-h", "-j", job_id, "-o", "%e"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        log.info("squeue cannot tell when job %s ends: %s", job_id, exc)
        return None
    if getattr(done, "returncode", 1) != 0:
        log.info("squeue cannot tell when job %s ends: exit status %s", job_id, getattr(done, "returncode", None))
        return None
    out = getattr(done, "stdout", "") or ""
    if isinstance(out, bytes):
        out = out.decode("utf-8", "replace")
    lines = [line for line in str(out).splitlines() if line.strip()]
    return _parse_squeue_time(lines[0]) if lines else None


class Walltime:
    """The time left before the allocation ends, less a safety margin.

    Pure arithmetic on a known end: the caller passes ``now`` (``time.time()``), so the
    class is tested without clocks or Slurm.

    Parameters
    ----------
    end : float or None
        Epoch seconds when the allocation ends; None for no limit.
    margin_s : float
        Seconds kept free before ``end`` for draining and flushing (default 30).

    Examples
    --------
    >>> wt = Walltime(end=1000.0, margin_s=30.0)
    >>> wt.remaining(now=900.0)
    70.0
    >>> wt.fits(60.0, now=900.0), wt.fits(80.0, now=900.0), wt.fits(None, now=900.0)
    (True, False, True)
    """

    def __init__(self, end: float | None, margin_s: float = DEFAULT_MARGIN_S) -> None:
        if margin_s < 0 or not math.isfinite(margin_s):
            raise ValueError(f"margin_s must be a finite number >= 0, got {margin_s}")
        if end is not None and not math.isfinite(end):
            end = None
        self.end = end
        self.margin_s = float(margin_s)

    @classmethod
    def from_slurm(
        cls,
        margin_s: float = DEFAULT_MARGIN_S,
        environ: Mapping[str, str] | None = None,
        run: Callable[..., Any] = subprocess.run,
    ) -> "Walltime":
        """The allocation's walltime as :func:`allocation_end` finds it (no limit outside Slurm)."""
        return cls(allocation_end(environ, run), margin_s)

    @classmethod
    def after(cls, seconds: float, now: float, margin_s: float = DEFAULT_MARGIN_S) -> "Walltime":
        """A walltime of ``seconds`` from ``now`` (``Farm(walltime=seconds)``)."""
        return cls(now + float(seconds), margin_s)

    def remaining(self, now: float) -> float:
        """Seconds left for work at ``now``: ``end - margin - now``, never below 0; inf without an end."""
        if self.end is None:
            return math.inf
        return max(0.0, self.end - self.margin_s - now)

    def fits(self, expected_s: float | None, now: float) -> bool:
        """Whether a task expected to take ``expected_s`` seconds can finish in time.

        An unknown duration (None) fits while any time remains; no task fits once the
        time is up, even one expected to take no time.
        """
        left = self.remaining(now)
        if left <= 0:
            return False
        return expected_s is None or expected_s <= left

    def expired(self, now: float) -> bool:
        """True once no time is left for work."""
        return self.remaining(now) <= 0

    def __repr__(self) -> str:
        return f"Walltime(end={self.end!r}, margin_s={self.margin_s!r})"


class _FlagEvent(threading.Event):
    """A ``threading.Event`` that a signal handler may mark without taking its lock."""

    def mark(self) -> None:
        # Only the flag: ``is_set()`` answers True at once. Waking waiters needs the
        # event's lock, which the interrupted main thread may hold; the helper thread
        # of DrainSignal calls ``set()`` for that.
        self._flag = True  # type: ignore[attr-defined]


class DrainSignal:
    """Turn ``SIGTERM``/``SIGUSR1`` into a request to drain, without acting inside the handler.

    The Python-level handler only sets flags: the signal number, and the flag of
    :attr:`requested` (so ``requested.is_set()`` is True as soon as it ran). Waiters on
    :attr:`requested` are woken by a helper thread through ``signal.set_wakeup_fd``:
    calling ``Event.set()`` inside a handler could deadlock (the handler runs in the
    main thread, which may hold the event's lock at that instant), and the wake-up byte
    is written by the C-level handler at once, even while the main thread sits in a
    blocking MPI call that delays Python handlers.

    Parameters
    ----------
    signals : iterable of int
        The signals that request a drain (``SIGTERM``, ``SIGUSR1``).

    Attributes
    ----------
    requested : threading.Event
        Set once one of ``signals`` arrived.
    signum : int or None
        The last signal that arrived.
    count : int
        How many arrived (Slurm may send ``SIGUSR1``, then ``SIGTERM``).

    Notes
    -----
    :meth:`install` must run in the main thread (Python's rule for signal handlers);
    elsewhere it returns False and installs nothing. Previous handlers are not called
    (a drain replaces termination) and :meth:`restore` puts them back. Usable as a
    context manager.
    """

    def __init__(self, signals: Iterable[int] = (signal.SIGTERM, signal.SIGUSR1)) -> None:
        self.signals = tuple(signal.Signals(s) for s in signals)
        self.requested: threading.Event = _FlagEvent()
        self.signum: int | None = None
        self.count = 0
        self._previous: dict[int, Any] = {}
        self._previous_wakeup_fd = -1
        self._wakeup_set = False
        self._pipe: tuple[int, int] | None = None
        self._watcher: threading.Thread | None = None
        self._installed = False

    def _handler(self, signum: int, frame: object) -> None:
        # Flags only: see the class docstring.
        self.signum = signum
        self.count += 1
        self.requested.mark()  # type: ignore[attr-defined]

    def _watch(self, read_fd: int, forward_fd: int) -> None:
        while True:
            try:
                data = os.read(read_fd, 64)
            except OSError:
                return
            if not data:  # write end closed by restore()
                return
            mine = [b for b in data if b in self.signals]
            if forward_fd >= 0:  # someone else (asyncio) listened on the wake-up fd before us
                try:
                    os.write(forward_fd, data)
                except OSError:
                    pass
            if mine:
                if self.signum is None:  # the Python handler may not have run yet
                    self.signum = mine[-1]
                self.requested.set()

    def install(self) -> bool:
        """Install the handlers; True when installed, False outside the main thread.

        Returns
        -------
        bool
        """
        if self._installed:
            return True
        if threading.current_thread() is not threading.main_thread():
            log.warning("drain signals not installed: not in the main thread")
            return False
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)  # the C handler must never block on a full pipe
        try:
            self._previous_wakeup_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
            self._wakeup_set = True
            for s in self.signals:
                self._previous[s] = signal.signal(s, self._handler)
        except BaseException:
            self._undo_handlers()
            os.close(read_fd)
            os.close(write_fd)
            raise
        self._pipe = (read_fd, write_fd)
        self._watcher = threading.Thread(target=self._watch, args=(read_fd, self._previous_wakeup_fd),
                                         name="hpcdist-drain-signal", daemon=True)
        self._watcher.start()
        self._installed = True
        return True

    def _undo_handlers(self) -> None:
        for s, previous in self._previous.items():
            signal.signal(s, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()
        if self._wakeup_set:
            signal.set_wakeup_fd(self._previous_wakeup_fd)
            self._previous_wakeup_fd = -1
            self._wakeup_set = False

    def restore(self) -> None:
        """Put the previous handlers back and stop the helper thread; idempotent."""
        if not self._installed:
            return
        self._undo_handlers()
        assert self._pipe is not None
        read_fd, write_fd = self._pipe
        os.close(write_fd)  # the watcher reads end-of-file and returns
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        os.close(read_fd)
        self._pipe = None
        self._watcher = None
        self._installed = False

    def __enter__(self) -> "DrainSignal":
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def __repr__(self) -> str:
        names = ",".join(s.name for s in self.signals)
        return f"DrainSignal({names}, requested={self.requested.is_set()}, signum={self.signum})"
