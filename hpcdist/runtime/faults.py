"""Fault injection for tests and drills: ``HPCDIST_FAULT`` kills, fails or hangs one rank on purpose.

Syntax (several specs separated by ``;``; keys in any order)::

    HPCDIST_FAULT="rank:2,superstep:5,kind:kill"
    HPCDIST_FAULT="rank:1,phase:checkpoint-write,kind:kill; rank:0,superstep:9,kind:hang"
    HPCDIST_FAULT="rank:1,superstep:29,phase:checkpoint-write,kind:kill"   # the checkpoint of superstep 29

* ``rank``: the rank (in the communicator the caller passes its rank of) that fails,
  or ``*`` for every rank;
* ``superstep:S`` (fires in :meth:`Faults.at_superstep`), or ``phase:NAME`` with NAME
  one of :data:`PHASES` (fires in :meth:`Faults.at_phase`, every time), or both (fires
  in that phase only at superstep S: the step the phase's caller passes, else the last
  superstep :meth:`Faults.at_superstep` saw);
* ``kind``: ``kill`` (``SIGKILL`` to itself: no cleanup, no ``finally``, like an OOM
  kill or a node loss), ``raise`` (:class:`InjectedFault`, an ordinary exception) or
  ``hang`` (sleeps forever, like a deadlock or a stuck file system).

A malformed value raises :class:`~hpcdist.runtime.errors.InputError` naming the bad
part, so that a typo never silently injects nothing. Without ``HPCDIST_FAULT`` the
hooks cost a set lookup.

(The variable is read here rather than in :mod:`hpcdist.runtime.settings` because it
is a test harness switch, not a setting: no config file should ever carry it.)
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Mapping

from hpcdist.runtime.errors import InputError

__all__ = ["ENV_VAR", "KINDS", "PHASES", "FaultSpec", "Faults", "InjectedFault", "faults", "parse_faults"]

ENV_VAR = "HPCDIST_FAULT"
KINDS = ("kill", "raise", "hang")
#: Places that call :meth:`Faults.at_phase`. ``checkpoint-write``: a rank in the middle of
#: writing its checkpoint file (some data written, nothing synced or renamed);
#: ``checkpoint-commit``: rank 0 with every rank file durable, just before the manifest rename.
PHASES = ("checkpoint-write", "checkpoint-commit")


class InjectedFault(RuntimeError):
    """The exception a ``kind:raise`` fault raises."""


@dataclass(frozen=True)
class FaultSpec:
    """One parsed fault: which rank, when (a superstep or a phase) and what happens.

    Attributes
    ----------
    rank : int or None
        None means every rank.
    kind : str
        ``kill``, ``raise`` or ``hang``.
    superstep : int or None
    phase : str or None
    """

    rank: int | None
    kind: str
    superstep: int | None = None
    phase: str | None = None

    def matches_rank(self, rank: int) -> bool:
        return self.rank is None or self.rank == rank

    def describe(self) -> str:
        when = " ".join(w for w in (f"phase {self.phase}" if self.phase else "",
                                    f"superstep {self.superstep}" if self.superstep is not None else "") if w)
        who = "every rank" if self.rank is None else f"rank {self.rank}"
        return f"{self.kind} on {who} at {when}"


def _parse_int(name: str, value: str, part: str, text: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise InputError(f"{ENV_VAR}: {name} must be an integer, got {part!r} in {text!r}") from None
    if number < 0:
        raise InputError(f"{ENV_VAR}: {name} must not be negative, got {part!r} in {text!r}")
    return number


def _parse_one(spec: str, text: str) -> FaultSpec:
    fields: dict[str, str] = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            raise InputError(f"{ENV_VAR}: empty field in {spec!r} (expected key:value pairs separated by commas)")
        key, sep, value = part.partition(":")
        key, value = key.strip().lower(), value.strip()
        if not sep or not value:
            raise InputError(f"{ENV_VAR}: {part!r} is not key:value in {text!r}")
        if key not in ("rank", "superstep", "phase", "kind"):
            raise InputError(f"{ENV_VAR}: unknown key {key!r} in {part!r}; use rank, superstep, phase and kind")
        if key in fields:
            raise InputError(f"{ENV_VAR}: {key} given twice in {spec!r}")
        fields[key] = value
    if "rank" not in fields:
        raise InputError(f"{ENV_VAR}: {spec!r} has no rank (e.g. rank:1)")
    if "kind" not in fields:
        raise InputError(f"{ENV_VAR}: {spec!r} has no kind (kind:kill, kind:raise or kind:hang)")
    kind = fields["kind"].lower()
    if kind not in KINDS:
        raise InputError(f"{ENV_VAR}: unknown kind {fields['kind']!r} in {spec!r}; choose one of {', '.join(KINDS)}")
    if "superstep" not in fields and "phase" not in fields:
        raise InputError(f"{ENV_VAR}: {spec!r} needs superstep:S, phase:NAME or both (when to fail)")
    rank = None if fields["rank"] in ("*", "all") else _parse_int("rank", fields["rank"], f"rank:{fields['rank']}", spec)
    step = None
    if "superstep" in fields:
        step = _parse_int("superstep", fields["superstep"], f"superstep:{fields['superstep']}", spec)
    phase = None
    if "phase" in fields:
        phase = fields["phase"].lower()
        if phase not in PHASES:
            raise InputError(f"{ENV_VAR}: unknown phase {fields['phase']!r} in {spec!r}; "
                             f"choose one of {', '.join(PHASES)}")
    return FaultSpec(rank=rank, kind=kind, superstep=step, phase=phase)


def parse_faults(text: str | None) -> tuple[FaultSpec, ...]:
    """Parse an ``HPCDIST_FAULT`` value (empty or None: no faults).

    Raises
    ------
    InputError
        Naming the malformed part.
    """
    if text is None or not text.strip():
        return ()
    specs = [s.strip() for s in text.split(";")]
    return tuple(_parse_one(s, text) for s in specs if s)


class Faults:
    """The faults to inject in this process; the hooks do nothing unless a spec matches.

    Parameters
    ----------
    specs : sequence of FaultSpec
    """

    def __init__(self, specs: tuple[FaultSpec, ...] | list[FaultSpec] = ()) -> None:
        self.specs = tuple(specs)
        self._by_step = {s.superstep for s in self.specs if s.superstep is not None and s.phase is None}
        self._by_phase = {s.phase for s in self.specs if s.phase is not None}
        self.superstep: int | None = None  # the last superstep at_superstep saw

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "Faults":
        """The faults ``environ[HPCDIST_FAULT]`` asks for (none when unset)."""
        return cls(parse_faults(environ.get(ENV_VAR)))

    @classmethod
    def parse(cls, text: str | None) -> "Faults":
        """The faults of an ``HPCDIST_FAULT``-style string."""
        return cls(parse_faults(text))

    def __bool__(self) -> bool:
        return bool(self.specs)

    def __repr__(self) -> str:
        return f"Faults({'; '.join(s.describe() for s in self.specs) or 'none'})"

    def at_superstep(self, rank: int, superstep: int) -> None:
        """Fire the superstep-only faults of ``rank`` at ``superstep`` (call once per superstep).

        Also remembers ``superstep`` for the faults that name a phase and a superstep.
        """
        self.superstep = superstep
        if superstep not in self._by_step:
            return
        for spec in self.specs:
            if spec.superstep == superstep and spec.phase is None and spec.matches_rank(rank):
                _fire(spec, rank)

    def at_phase(self, rank: int, phase: str, superstep: int | None = None) -> None:
        """Fire the faults of ``rank`` at ``phase`` (one of :data:`PHASES`).

        Parameters
        ----------
        rank : int
        phase : str
        superstep : int, optional
            The step the phase works on (a checkpoint's step); matched against specs
            that also name a superstep. Default: the last one :meth:`at_superstep` saw.
        """
        if phase not in self._by_phase:
            return
        step = self.superstep if superstep is None else superstep
        for spec in self.specs:
            if (spec.phase == phase and spec.matches_rank(rank)
                    and (spec.superstep is None or spec.superstep == step)):
                _fire(spec, rank)


def _fire(spec: FaultSpec, rank: int) -> None:
    # One line on stderr first: a test reading the job's output can tell an injected
    # death from a real one.
    sys.stderr.write(f"hpcdist: injected fault: {spec.describe()} (this is rank {rank}, pid {os.getpid()})\n")
    sys.stderr.flush()
    if spec.kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(60)  # SIGKILL is delivered at once; never return into the caller meanwhile
    elif spec.kind == "raise":
        raise InjectedFault(f"injected fault ({ENV_VAR}): {spec.describe()}, rank {rank}")
    else:
        while True:
            time.sleep(3600)


@functools.lru_cache(maxsize=1)
def faults() -> Faults:
    """The process's :class:`Faults` from ``os.environ``, parsed once.

    Raises
    ------
    InputError
        When ``HPCDIST_FAULT`` is malformed (on every call until fixed; nothing is cached then).
    """
    return Faults.from_env(os.environ)
