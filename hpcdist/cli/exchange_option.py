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
"""

from __future__ import annotations

import argparse

from hpcdist.runtime.errors import InputError

__all__ = ["CHOICES", "add_arguments", "exchange_keyword"]

#: What the command line offers: the engine's modes.
CHOICES = ("auto", "sparse", "dense")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--exchange {auto,sparse,dense}`` (default ``auto``) to ``parser``."""
    parser.add_argument("--exchange", default="auto", metavar="{auto,sparse,dense}",
                        help="halo exchange: sparse = only changed values, compactly encoded, overlapped with the "
                             "interior compute; dense = every ghost value every superstep; auto = sparse for BFS, "
                             "dense otherwise (default; identical results)")


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
