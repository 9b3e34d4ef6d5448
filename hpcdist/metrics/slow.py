"""An injected slow rank, for demonstrations and tests of the straggler finding.

``HPCDIST_SLOW=rank:R,factor:F`` makes rank R's compute phase take F times as long: after
each compute it sleeps ``(F - 1) x`` the compute's own duration (:func:`slowdown`). The
sleep happens inside the compute phase, so the engine books it as compute time of rank
R, exactly as a slower core, a busier node or a heavier partition would appear; the
other ranks wait for it in the reduction.

:func:`slow_hook` delivers it through the engine's superstep hook without touching the
engine: on its first call for a program it wraps the program's ``compute``
(:func:`slow_program`). Superstep 0 therefore runs at full speed; every later one is
slowed. A run that builds a new program mid-way (a rebalanced run,
:mod:`hpcdist.graph.rebalance`) gets it wrapped too, from its second superstep on.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

from hpcdist.runtime.errors import InputError

if TYPE_CHECKING:
    from mpi4py import MPI

__all__ = ["SlowSpec", "ENV_VAR", "parse_slow", "slow_spec", "slowdown", "slow_hook", "slow_program"]

#: The environment variable read by :func:`slow_spec`.
ENV_VAR = "HPCDIST_SLOW"


@dataclass(frozen=True)
class SlowSpec:
    """Rank ``rank`` runs ``factor`` times slower in its compute phase."""

    rank: int
    factor: float


def parse_slow(text: str | None) -> SlowSpec | None:
    """Parse ``"rank:R,factor:F"`` (either order, spaces allowed); None for None or ``""``.

    Raises
    ------
    InputError
        Unknown or missing keys, a rank that is not a non-negative integer, a factor
        that is not a number >= 1.
    """
    if text is None or not text.strip():
        return None
    values: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition(":")
        key = key.strip().lower()
        if not sep or key not in ("rank", "factor") or key in values:
            raise InputError(f"{ENV_VAR} must look like rank:R,factor:F, got {text!r}")
        values[key] = value.strip()
    if set(values) != {"rank", "factor"}:
        raise InputError(f"{ENV_VAR} must look like rank:R,factor:F, got {text!r}")
    try:
        rank = int(values["rank"])
        factor = float(values["factor"])
    except ValueError:
        raise InputError(f"{ENV_VAR}: rank must be an integer and factor a number, got {text!r}") from None
    if rank < 0 or not factor >= 1.0 or factor == float("inf"):
        raise InputError(f"{ENV_VAR}: rank must be >= 0 and factor a finite number >= 1, got {text!r}")
    return SlowSpec(rank, factor)


def slow_spec(environ: Mapping[str, str] | None = None) -> SlowSpec | None:
    """The slow-rank request in ``$HPCDIST_SLOW`` (None when unset)."""
    env = os.environ if environ is None else environ
    return parse_slow(env.get(ENV_VAR))


def slowdown(compute_s: float, spec: SlowSpec | None = None, rank: int | None = None) -> float:
    """Sleep ``(factor - 1) x compute_s`` when ``rank`` is the slow one; return the seconds slept.

    Parameters
    ----------
    compute_s : float
        This rank's compute time of the superstep.
    spec : SlowSpec, optional
        Default: ``$HPCDIST_SLOW`` (read on every call; pass it in a loop).
    rank : int, optional
        Default: this process's rank in ``COMM_WORLD``.
    """
    if spec is None:
        spec = slow_spec()
    if rank is None:
        from hpcdist.runtime.comm import world_rank_and_size

        rank = world_rank_and_size()[0]
    if spec is None or rank != spec.rank or spec.factor <= 1.0 or compute_s <= 0:
        return 0.0
    extra = (spec.factor - 1.0) * compute_s
    time.sleep(extra)
    return extra


def slow_hook(
    comm: "MPI.Intracomm",
    spec: SlowSpec | None = None,
    *,
    inner: Callable[[int, Any], None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Callable[[int, Any], None] | None:
    """A superstep hook that slows one rank's compute; chains ``inner`` (e.g. the checkpoint hook).

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        Whose rank numbers ``spec.rank`` refers to.
    spec : SlowSpec, optional
        Default: :func:`slow_spec` (``$HPCDIST_SLOW``), read collectively: a malformed
        value raises the same :class:`InputError` on every rank.
    inner : callable, optional
        ``inner(superstep, program)``, called after the slowdown is in place.
    environ : mapping, optional
        Instead of ``os.environ``.

    Returns
    -------
    callable or None
        ``hook(superstep, program)`` for ``run_bsp(on_superstep=...)``; ``inner`` itself
        when no slowdown is asked for (so it costs nothing then).
    """
    if spec is None:
        from hpcdist.runtime.errors import collective

        with collective(comm):  # a malformed $HPCDIST_SLOW: one message from every rank, not an abort
            spec = slow_spec(environ)
    rank = comm.Get_rank()
    if spec is None or spec.factor <= 1.0 or rank != spec.rank:
        return inner
    seen: list[Any] = [None]  # the program last wrapped (weakly: a rebalanced run drops it)
    last = [time.perf_counter()]

    def hook(superstep: int, program: Any) -> None:
        ref = seen[0]
        if ref is None or ref() is not program:
            # By identity, not id(): a new program (after a rebalance) may reuse a freed one's id.
            if slow_program(program, spec, rank):
                seen[0] = _ref(program)
            else:  # a program with __slots__: slow the hook instead (books as exchange)
                slowdown(time.perf_counter() - last[0], spec, rank)
        if inner is not None:
            inner(superstep, program)
        last[0] = time.perf_counter()

    return hook


def slow_program(program: Any, spec: SlowSpec | None, rank: int) -> bool:
    """Wrap ``program.compute`` so that it sleeps :func:`slowdown` after each call on the slow rank.

    Returns False when the program does not allow an instance attribute ``compute``
    (``__slots__``); True otherwise (also when ``rank`` is not the slow one: nothing to do).
    """
    if spec is None or spec.factor <= 1.0 or rank != spec.rank:
        return True
    compute = program.compute

    def slow_compute(step: int) -> Any:
        t0 = time.perf_counter()
        out = compute(step)
        slowdown(time.perf_counter() - t0, spec, rank)
        return out

    try:
        program.compute = slow_compute  # an instance attribute shadows the method
    except AttributeError:
        return False
    return True


def _ref(obj: Any) -> Callable[[], Any]:
    """A weak reference to ``obj``, or a strong one where it cannot be weakly referenced."""
    import weakref

    try:
        return weakref.ref(obj)
    except TypeError:
        return lambda: obj
