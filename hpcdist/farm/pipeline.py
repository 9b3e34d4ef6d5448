"""Pipelines: chains of tasks linked by ``after=``.

``farm.submit(g, after=[f_future])`` runs ``g(result_of_f)`` once ``f`` completed; a
failed, timed-out or cancelled ``f`` fails ``g`` with ``DependencyFailed``.
:func:`run_stages` builds such chains for a list of items.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

__all__ = ["run_stages"]


def run_stages(farm: Any, stages: Sequence[Callable[..., Any]], items: Iterable[Any], **submit_kw: Any) -> list:
    """Push every item through ``stages`` (``stages[-1](...stages[1](stages[0](item)))``).

    Each item's stages form a chain of tasks; chains run concurrently, so item 2's first
    stage does not wait for item 1's last. Coordinator only.

    Parameters
    ----------
    farm : Farm
    stages : sequence of callables
        Stage ``k + 1`` receives stage ``k``'s result as its only argument.
    items : iterable
        The first stage's arguments, one per chain.
    **submit_kw
        Passed to every :meth:`Farm.submit` (``priority``, ``timeout``, ``retries``...).

    Returns
    -------
    list of futures
        The last stage's future of each item, in item order.
    """
    if not stages:
        raise ValueError("run_stages needs at least one stage")
    last = []
    for item in items:
        fut = farm.submit(stages[0], item, **submit_kw)
        for stage in stages[1:]:
            fut = farm.submit(stage, after=[fut], **submit_kw)
        last.append(fut)
    return last
