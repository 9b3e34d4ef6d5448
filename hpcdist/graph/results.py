"""Distributed per-vertex results: gather for small graphs, HDF5 for any size.

Values live on the ranks that own the vertices; output is written in the reader's
input order (the directory blocks), which is the same for every partitioner and
rank count, so two runs give byte-comparable files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from hpcdist.graph.bsp import BSPRun
    from hpcdist.graph.distgraph import DistGraph

__all__ = ["VertexResult"]


@dataclass
class VertexResult:
    """One value per vertex, distributed like the graph.

    Attributes
    ----------
    graph : DistGraph
    values : numpy.ndarray
        Values of the owned vertices (new-id order).
    algorithm : str
    iterations : int
    converged : bool
    seconds : float
        The supersteps alone (slowest rank).
    run : BSPRun or None
        Per-superstep metrics.
    params : dict
        The algorithm's parameters, written as attributes too.
    extras : dict of str to numpy.ndarray
        More per-vertex arrays of the owned vertices (BFS: ``parent``), written as
        datasets of their own by :meth:`to_h5`.
    """

    graph: "DistGraph"
    values: np.ndarray
    algorithm: str
    iterations: int
    converged: bool
    seconds: float
    run: "BSPRun | None" = None
    params: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def block_values(self) -> np.ndarray:
        """Values of this rank's directory block, in input order. Collective."""
        return self.graph.to_input_layout(self.values)

    def gather_arrays(self, root: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
        """``(original ids, values)`` of every vertex in input order on ``root``; None elsewhere.

        Collective over ``graph.comm``. For small graphs and tests: ``root`` holds O(n).
        """
        comm = self.graph.comm
        vals = comm.gather(self.block_values(), root=root)
        ids = comm.gather(self.graph.block_original_ids(), root=root)
        if comm.Get_rank() != root:
            return None
        return np.concatenate(ids), np.concatenate(vals)

    def gather(self, root: int = 0) -> dict[int, float] | None:
        """``{original id: value}`` on ``root`` (as ``networkx`` returns); None elsewhere.

        Collective over ``graph.comm``.
        """
        got = self.gather_arrays(root)
        if got is None:
            return None
        return dict(zip(got[0].tolist(), got[1].tolist()))

    def top(self, k: int = 10) -> list[tuple[int, float]]:
        """The ``k`` largest values as ``(original id, value)``, ties to the smaller input id.

        Collective over ``graph.comm``; every rank gets the list. O(k * size) on each.
        """
        vals = self.block_values()
        ids = self.graph.block_original_ids()
        bstart = self.graph.block_range[0]
        order = np.lexsort((np.arange(vals.shape[0]), -vals))[:k]
        mine = [(float(vals[i]), bstart + int(i), int(ids[i])) for i in order]
        allk = [t for part in self.graph.comm.allgather(mine) for t in part]
        allk.sort(key=lambda t: (-t[0], t[1]))
        return [(orig, v) for v, _, orig in allk[:k]]

    def attributes(self, setup_seconds: float | None = None) -> dict[str, Any]:
        g = self.graph
        attrs: dict[str, Any] = {
            "algorithm": self.algorithm,
            "n_vertices": int(g.n_vertices),
            "n_edges": int(g.n_edges),
            "ranks": int(g.size),
            "partitioner": g.partition.method,
            "iterations": int(self.iterations),
            "converged": bool(self.converged),
            "seconds": float(self.seconds),
            "setup_seconds": float(g.setup_seconds if setup_seconds is None else setup_seconds),
            "input": str(g.name),
            "directed": bool(g.directed),
        }
        for key, value in self.params.items():
            if isinstance(value, (int, float, str, bool)):
                attrs[key] = value
        return attrs

    def to_h5(self, path: str, *, setup_seconds: float | None = None) -> None:
        """Write datasets ``result`` and ``vertex_ids`` (original ids, same order), one dataset
        per item of :attr:`extras`, and the run's attributes.

        ``result`` is float64, or int64 for integer results (BFS distances, component
        labels).

        Collective over ``graph.comm``; each rank writes its own slice
        (:func:`hpcdist.graph.h5io.write_distributed`).

        Parameters
        ----------
        path : str
        setup_seconds : float, optional
            Read + partition + plan time; the graph's own set-up time when None.
        """
        from hpcdist.graph.h5io import write_distributed

        vals = self.block_values()
        vals = vals.astype(np.int64 if np.issubdtype(vals.dtype, np.integer) else np.float64, copy=False)
        ids = self.graph.block_original_ids().astype(np.int64, copy=False)
        datasets = {"result": vals, "vertex_ids": ids}
        for name, values in sorted(self.extras.items()):
            if name in datasets:
                raise ValueError(f"to_h5: extra dataset {name!r} clashes with a standard one")
            datasets[name] = self.graph.to_input_layout(values)
        write_distributed(self.graph.comm, path, datasets, self.attributes(setup_seconds))
