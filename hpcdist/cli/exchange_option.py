"""``--exchange {auto,sparse,dense}``: the communication optimizer switch of ``hpcdist graph``.

``sparse`` runs the BSP engine's halo exchange through the communication optimizer
(:mod:`hpcdist.graph.sparse_exchange`: only changed values, in the smallest exact
encoding per neighbour, overlapped with the interior compute); ``dense`` sends every
ghost value every superstep, as Graph engine I did; ``auto`` (the default) takes
``sparse`` for BFS's frontier and ``dense`` for value programs, where the encoding cost
more time than it saved (see :func:`hpcdist.graph.bsp.run_bsp`). Results are
identical either way. Like the other options of ``hpcdist graph`` the value is checked
in :func:`exchange_keyword`, not by argparse ``choices``, so that a bad value gives one
message (from rank 0) and the same exit status on every rank.

``--exchange-precision {float64,float32}`` (default ``float64``): ``float32`` rounds the
published values to float32 on every rank and sends 4 bytes a value. Only algorithms
whose results tolerate it accept it (:data:`LOSSY_ALGORITHMS`: PageRank, and only when
its ``--tol`` is loose enough: :meth:`~hpcdist.graph.algorithms.pagerank.PageRankProgram.lossy_exchange_refusal`);
the others refuse it by name (:func:`precision_keyword`).
"""

from __future__ import annotations

import argparse

from hpcdist.runtime.errors import InputError

__all__ = ["CHOICES", "PRECISIONS", "LOSSY_ALGORITHMS", "add_arguments", "exchange_keyword", "precision_keyword"]

#: What the command line offers: the engine's modes.
CHOICES = ("auto", "sparse", "dense")
#: ``--exchange-precision`` values: the engine's precisions.
PRECISIONS = ("float64", "float32")
#: The ``hpcdist graph`` algorithms whose results tolerate float32 halo values.
LOSSY_ALGORITHMS = ("pagerank",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--exchange {auto,sparse,dense}`` (default ``auto``) to ``parser``."""
    parser.add_argument("--exchange", default="auto", metavar="{auto,sparse,dense}",
                        help="halo exchange: sparse = only changed values, compactly encoded, overlapped with the "
                             "interior compute; dense = every ghost value every superstep; auto = sparse for BFS, "
                             "dense otherwise (default; identical results)")
    parser.add_argument("--exchange-precision", default="float64", metavar="{float64,float32}",
                        help="halo values: float64 (default, exact) or float32 (pagerank only, when --tol allows it: "
                             "half the bytes, results within the tolerance, still identical on any rank count)")


def exchange_keyword(args: argparse.Namespace) -> dict[str, str]:
    """The engine keyword for the parsed ``args``: ``{"exchange": "auto" | "sparse" | "dense"}``.

    Raises :class:`~hpcdist.runtime.errors.InputError` for another value; call it inside
    ``collective(comm)`` so that every rank raises together. Namespaces without the
    option (older callers) give the default.
    """
    value = str(getattr(args, "exchange", "auto") or "auto").lower()
    if value not in CHOICES:
        raise InputError(f"unknown --exchange {getattr(args, 'exchange', value)!r}; choose one of {', '.join(CHOICES)}")
    return {"exchange": value}


def precision_keyword(args: argparse.Namespace) -> dict[str, str]:
    """The engine keyword for ``--exchange-precision``: ``{"exchange_precision": ...}`` for
    the algorithms of :data:`LOSSY_ALGORITHMS`, ``{}`` for the others (which run exact).

    Raises :class:`~hpcdist.runtime.errors.InputError` for an unknown value, or for
    ``float32`` with an algorithm whose results must be exact; call it inside
    ``collective(comm)``. Namespaces without the option give the default.
    """
    raw = getattr(args, "exchange_precision", "float64") or "float64"
    value = str(raw).lower()
    if value not in PRECISIONS:
        raise InputError(f"unknown --exchange-precision {raw!r}; choose one of {', '.join(PRECISIONS)}")
    algorithm = getattr(args, "algorithm", None)
    if algorithm not in LOSSY_ALGORITHMS:
        if value != "float64":
            raise InputError(f"--exchange-precision {value} does not apply to hpcdist graph {algorithm}: its results "
                             f"must be exact, so its halo values travel in float64 (float32 is for "
                             f"{', '.join(LOSSY_ALGORITHMS)})")
        return {}
    return {"exchange_precision": value}
