"""hpcdist's HDF5 CSR graph format: read in parallel row slices, written by all ranks.

Layout (``FORMAT_VERSION`` 1; a contract other tools read):

=============  =========================  ==============================================
name           kind                       meaning
=============  =========================  ==============================================
indptr         int64, n + 1               row ``v``'s out-edges are ``indptr[v]:indptr[v+1]``
indices        int32 (n < 2^31) or int64  target vertex of each edge, sorted within a row
weights        float64, m (optional)      weight of each edge
vertex_ids     int64, n (optional)        original id of each vertex (absent: ids 0..n-1)
n_vertices     attribute (int)            n
n_edges        attribute (int)            m, after duplicates collapsed (smallest weight kept)
directed       attribute (bool)           False when the graph was symmetrised
format_version attribute (int)            1
=============  =========================  ==============================================

Every rank reads the rows of ``owned_range(n, size, rank)`` and their edges; no rank
reads the whole file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hpcdist.graph.edgelist import EdgeList
from hpcdist.graph.exchange import redistribute
from hpcdist.graph.h5io import write_distributed
from hpcdist.graph.partition import block_owner
from hpcdist.runtime.errors import InputError
from hpcdist.runtime.ranges import owned_range

if TYPE_CHECKING:
    from mpi4py import MPI

__all__ = ["FORMAT_VERSION", "CsrHeader", "read_header", "read_rows", "write_csr", "collapse_rows", "is_hdf5_path"]

FORMAT_VERSION = 1
_INT32_LIMIT = 2**31


def is_hdf5_path(path: str) -> bool:
    return path.lower().endswith((".h5", ".hdf5"))


@dataclass(frozen=True)
class CsrHeader:
    """The attributes and dataset shapes of an HDF5 CSR file."""

    n_vertices: int
    n_edges: int
    directed: bool
    weighted: bool
    has_vertex_ids: bool


def read_header(path: str) -> CsrHeader:
    """Read and check the attributes and dataset shapes (no data). InputError when malformed."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except FileNotFoundError:
        raise InputError("no such file", path=path) from None
    except OSError as exc:
        raise InputError(f"not a readable HDF5 file ({exc})", path=path) from None
    with f:
        for key in ("n_vertices", "n_edges", "directed", "format_version"):
            if key not in f.attrs:
                raise InputError(f"not an hpcdist CSR file: attribute {key!r} is missing", path=path)
        version = int(f.attrs["format_version"])
        if version != FORMAT_VERSION:
            raise InputError(f"CSR format_version {version} is not supported (this hpcdist reads {FORMAT_VERSION})",
                             path=path)
        n, m = int(f.attrs["n_vertices"]), int(f.attrs["n_edges"])
        for key in ("indptr", "indices"):
            if key not in f:
                raise InputError(f"not an hpcdist CSR file: dataset {key!r} is missing", path=path)
        expect = {"indptr": n + 1, "indices": m, "weights": m, "vertex_ids": n}
        for key, length in expect.items():
            if key in f and f[key].shape != (length,):
                raise InputError(f"dataset {key!r} has shape {f[key].shape}, expected ({length},) "
                                 f"from n_vertices={n}, n_edges={m}", path=path)
        if not np.issubdtype(f["indices"].dtype, np.integer) or not np.issubdtype(f["indptr"].dtype, np.integer):
            raise InputError("indptr and indices must be integer datasets", path=path)
        if n <= 0 or m <= 0:
            raise InputError(f"empty graph ({n} vertices, {m} edges)", path=path)
        return CsrHeader(n, m, bool(f.attrs["directed"]), "weights" in f, "vertex_ids" in f)


def read_rows(path: str, header: CsrHeader, start: int, stop: int, *, want_weights: bool = True
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Rows ``start:stop``: their indptr slice (global offsets, length stop-start+1), indices,
    weights and original ids, checked. InputError on inconsistent data."""
    import h5py

    with h5py.File(path, "r") as f:
        indptr = f["indptr"][start : stop + 1].astype(np.int64)
        lo, hi = int(indptr[0]), int(indptr[-1])
        if lo < 0 or hi > header.n_edges or np.any(np.diff(indptr) < 0):
            raise InputError(f"indptr is not non-decreasing within 0..{header.n_edges} (rows {start}..{stop - 1})",
                             path=path)
        if (start == 0 and lo != 0) or (stop == header.n_vertices and hi != header.n_edges):
            raise InputError("indptr must start at 0 and end at n_edges", path=path)
        indices = f["indices"][lo:hi].astype(np.int64)
        weights = f["weights"][lo:hi].astype(np.float64) if header.weighted and want_weights else None
        vertex_ids = f["vertex_ids"][start:stop].astype(np.int64) if header.has_vertex_ids else None
    if indices.shape[0] and (indices.min() < 0 or indices.max() >= header.n_vertices):
        raise InputError(f"indices outside 0..{header.n_vertices - 1} (rows {start}..{stop - 1})", path=path)
    if weights is not None and weights.shape[0] and not np.all(weights >= 0):  # also catches NaN
        bad = weights[np.flatnonzero(~(weights >= 0))[0]]
        raise InputError(f"{'NaN' if np.isnan(bad) else 'negative'} weight {bad} in dataset 'weights'", path=path)
    if vertex_ids is not None and vertex_ids.shape[0] > 1 and np.any(np.diff(vertex_ids) <= 0):
        raise InputError("vertex_ids must be strictly increasing", path=path)
    return indptr, indices, weights, vertex_ids


def collapse_rows(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None, start: int, stop: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Sort edges of rows ``start:stop`` by (row, column), keep one per pair (the smallest weight).

    Returns
    -------
    counts : numpy.ndarray of int64, shape (stop - start,)
        Edges per row.
    indices : numpy.ndarray of int64
    weights : numpy.ndarray of float64 or None
    """
    keys = (weights, dst, src) if weights is not None else (dst, src)
    order = np.lexsort(keys)
    s, d = src[order], dst[order]
    keep = np.ones(s.shape[0], dtype=bool)
    keep[1:] = (s[1:] != s[:-1]) | (d[1:] != d[:-1])
    s, d = s[keep], d[keep]
    w = weights[order][keep] if weights is not None else None
    counts = np.bincount(s - start, minlength=stop - start).astype(np.int64)
    return counts, d, w


def write_csr(comm: "MPI.Intracomm", path: str, edges: EdgeList, attrs: dict[str, Any] | None = None) -> int:
    """Write ``edges`` as an HDF5 CSR file, each rank writing the rows it owns.

    Edges go to the owner of their source (``owned_range``); each rank sorts its rows
    and collapses duplicates, keeping the smallest weight. The result does not depend
    on the rank count.

    Collective over ``comm``.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
    path : str
        The output file (written under a temporary name and renamed when complete).
    edges : EdgeList
        This rank's share, with ``vertex_ids`` for its owned range (or None).
    attrs : dict, optional
        Extra file attributes (e.g. the input's name).

    Returns
    -------
    int
        The number of edges written (after collapsing duplicates).
    """
    from hpcdist.runtime.comm import MPI

    rank, size = comm.Get_rank(), comm.Get_size()
    n = edges.n_vertices
    start, stop = owned_range(n, size, rank)
    arrays = [edges.src, edges.dst] + ([edges.weights] if edges.weights is not None else [])
    moved = redistribute(comm, block_owner(edges.src, n, size), *arrays)
    src, dst = moved[0], moved[1]
    weights = moved[2] if edges.weights is not None else None
    counts, indices, weights = collapse_rows(src, dst, weights, start, stop)
    local_m = int(indices.shape[0])
    offset = comm.exscan(local_m, op=MPI.SUM)
    offset = int(offset) if rank else 0
    m = int(comm.allreduce(local_m, op=MPI.SUM))
    indptr = offset + np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64) if counts.shape[0] else \
        np.empty(0, np.int64)
    if rank == size - 1:
        indptr = np.concatenate([indptr, [m]]).astype(np.int64)
    datasets = {
        "indptr": indptr,
        "indices": indices.astype(np.int32 if n < _INT32_LIMIT else np.int64),
    }
    if weights is not None:
        datasets["weights"] = weights
    has_ids = comm.allreduce(edges.vertex_ids is not None, op=MPI.LOR)
    if has_ids:
        datasets["vertex_ids"] = edges.vertex_ids if edges.vertex_ids is not None else np.empty(0, np.int64)
    file_attrs = {"n_vertices": n, "n_edges": m, "directed": bool(edges.directed), "format_version": FORMAT_VERSION}
    file_attrs.update(attrs or {})
    write_distributed(comm, path, datasets, file_attrs)
    return m

