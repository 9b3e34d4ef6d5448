"""Graph algorithms on the BSP engine, one module each."""

from hpcdist.graph.algorithms.pagerank import pagerank

__all__ = ["pagerank"]
