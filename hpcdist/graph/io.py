"""Graph inputs: every format and generator into one :class:`EdgeList` per rank.

``read_edges(spec, comm)`` accepts

* an edge list (``.txt``, ``.el``, ``.tsv``, any other extension; ``.gz`` compressed):
  ``src dst [weight]`` per line, ``#``/``%`` comments, any non-negative 64-bit ids
  (a UTF-8 byte order mark at the start of a text file is skipped);
* Matrix Market ``.mtx``/``.mtx.gz`` (``coordinate``; ``real``, ``integer`` or ``pattern``;
  ``general`` or ``symmetric``), parsed by ``scipy.io.mmread``; vertices are 1..rows; a
  fraction in an ``integer`` file is refused with its line;
* DIMACS shortest-path ``.gr`` (``c`` comments, ``p sp N M``, ``a u v w``); vertices 1..N;
* hpcdist's HDF5 CSR (``.h5``/``.hdf5``, see :mod:`hpcdist.graph.hdf5csr`);
* a generator spec ``rmat:…``, ``er:…``, ``grid2d:…`` (see :mod:`hpcdist.graph.generators`).

Where the bytes are parsed
--------------------------
Uncompressed text (edge lists and ``.gr``) is read in parallel: rank ``r`` parses the
lines that start in bytes ``[F r / P, F (r+1) / P)`` of the file, so no rank reads more
than its share. Two formats pass through rank 0: a ``.gz`` file is decompressed on rank
0 (gzip cannot be split) and its lines sent out in slices, and Matrix Market goes
through ``scipy.io.mmread`` on rank 0 and is scattered. Rank 0 then holds the whole
input: the text and about 48 bytes per entry.

Measured on a shared 2-core VM (rmat:18, 4.2 M edges; medians, best in brackets): the
numba edge-list parser alone reads 8-11 (12) million edges/s, about 130-190 MiB/s of
text per rank, as fast as ``numpy.loadtxt`` and ~100x ``networkx.read_edgelist``;
scipy's Matrix Market reader 4-10 million entries/s; ``read_edges`` end to end on a
plain edge list (parse plus id mapping) about 4 million edges/s per rank, and on the
HDF5 CSR 30-85 million edges/s on 1 rank. Past roughly **1 GiB of decompressed text or
50 million Matrix Market entries** rank 0 spends tens of seconds alone and needs that
much memory more than the others: run ``hpcdist convert`` once (or gunzip an edge list,
which every rank then reads in parallel) and load the HDF5 CSR.
"""

from __future__ import annotations

import gzip
import io
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hpcdist.graph import generators, hdf5csr, memory, textparse
from hpcdist.graph.edgelist import EdgeList
from hpcdist.graph.vertex_ids import lookup_global_ids, map_to_global_ids
from hpcdist.runtime.errors import InputError, collective
from hpcdist.runtime.logs import get_logger
from hpcdist.runtime.ranges import owned_range

if TYPE_CHECKING:
    from mpi4py import MPI

__all__ = ["read_edges", "estimate_peak_bytes", "lookup_global_ids", "input_format", "SAMPLE_BYTES"]

log = get_logger(__name__)

#: Bytes of a text file that rank 0 samples to estimate the edge count before loading.
SAMPLE_BYTES = 1 << 20
#: Matrix Market bytes per entry held on rank 0 (scipy's int32 rows/cols and float64
#: values, our int64 copies, and their send buffers).
MTX_BYTES_PER_ENTRY = 48
_MAX_ID = 2**63
#: A UTF-8 byte order mark, which some Windows editors put at the start of a text file.
_UTF8_BOM = b"\xef\xbb\xbf"


def input_format(spec: str) -> str:
    """``'generator'``, ``'hdf5'``, ``'mtx'``, ``'gr'`` or ``'edgelist'`` for an input spec."""
    lower = spec.lower()
    if not os.path.exists(spec) and generators.is_generator_spec(spec):
        return "generator"
    if hdf5csr.is_hdf5_path(lower):
        return "hdf5"
    if lower.endswith((".mtx", ".mtx.gz")):
        return "mtx"
    if lower.endswith((".gr", ".gr.gz")):
        return "gr"
    return "edgelist"


@dataclass(frozen=True)
class _Inspection:
    """What rank 0 learned about an input before loading it (sent to every rank)."""

    fmt: str
    cost: memory.LoadCost
    gen: generators.GeneratorSpec | None = None
    csr: hdf5csr.CsrHeader | None = None


def read_edges(
    spec: str,
    comm: "MPI.Intracomm | None" = None,
    *,
    undirected: bool = False,
    weighted: bool | None = None,
    memory_limit: int | str | None = None,
) -> EdgeList:
    """Load a graph file or generate a graph: this rank's share of the edges in global ids.

    Collective over ``comm``.

    Parameters
    ----------
    spec : str
        A file path or a generator spec (see the module docstring).
    comm : mpi4py.MPI.Intracomm, optional
        The ranks that load the graph together (a private duplicate of
        ``COMM_WORLD`` when None).
    undirected : bool
        Add the reverse of every edge (the result is marked ``directed=False``).
    weighted : bool or None
        None: weighted when the input has weights (a third column, a Matrix Market
        value field, ``.gr`` arcs, an HDF5 ``weights`` dataset). False: drop weights.
        True: keep them, and use weight 1.0 where the input has none.
    memory_limit : int or str, optional
        Bytes per rank to assume for the memory check (e.g. ``"512M"``); default the
        ``memory_limit`` setting, else ``MemAvailable`` / ranks on the node.

    Returns
    -------
    EdgeList
        Duplicates may remain (the engine collapses them); self-loops are kept.
        ``vertex_ids`` holds the original ids of ``owned_range(n, size, rank)`` (sorted),
        or None when the ids are 0..n-1.

    Raises
    ------
    InputError
        On every rank together: a missing or malformed file (with the line), a
        negative, NaN or infinite weight, an id >= 2^63 or negative, an empty graph,
        an unknown generator, or an estimated peak memory that does not fit.
    """
    if comm is None:
        from hpcdist.runtime.comm import as_comm

        private = as_comm(None)
        try:
            return read_edges(spec, private, undirected=undirected, weighted=weighted, memory_limit=memory_limit)
        finally:
            private.Free()
    info = _inspect(spec, comm, undirected=undirected, weighted=weighted)
    peak = memory.check_memory(comm, info.cost, spec, memory_limit=memory_limit, advice=_advice(info.fmt, spec))
    log.info("loading %s (%s): estimated peak %s per rank", spec, info.fmt, memory.format_bytes(peak))
    if info.fmt == "generator":
        assert info.gen is not None
        src, dst = generators.generate_edges(info.gen, comm)
        el = EdgeList(info.gen.n_vertices, src, dst, None, True, None, spec)
    elif info.fmt == "hdf5":
        assert info.csr is not None
        el = _read_hdf5(spec, info.csr, comm, weighted)
    elif info.fmt == "mtx":
        el = _read_mtx(spec, comm, weighted)
    else:
        el = _read_text(spec, comm, info.fmt, weighted)
    if el.vertex_ids is not None and _ids_are_identity(el.vertex_ids, el.n_vertices, comm):
        el.vertex_ids = None  # the contract: None when the original ids are 0..n-1
    if weighted is False:
        el.weights = None
    elif weighted and el.weights is None:
        el.weights = np.ones(el.src.shape[0], dtype=np.float64)
    if undirected:
        # grid2d, a symmetric Matrix Market file and an undirected HDF5 CSR have both directions already
        already = not el.directed or (info.fmt == "generator" and info.gen.kind == "grid2d")
        el = _symmetrise(el, skip_if_symmetric=already)
    return el


def estimate_peak_bytes(spec: str, comm: "MPI.Intracomm", *, undirected: bool = False,
                        weighted: bool | None = None) -> int:
    """The peak bytes per rank that :func:`read_edges` expects for ``spec`` on ``comm``'s ranks.

    Collective over ``comm``. Reads only headers and a sample (what ``read_edges``
    checks against the memory available before loading; see :mod:`hpcdist.graph.memory`).
    """
    info = _inspect(spec, comm, undirected=undirected, weighted=weighted)
    return memory.peak_bytes_per_rank(info.cost, comm.Get_size())


def _ids_are_identity(vertex_ids: np.ndarray, n: int, comm: "MPI.Intracomm") -> bool:
    from hpcdist.runtime.comm import MPI

    start, stop = owned_range(n, comm.Get_size(), comm.Get_rank())
    mine = vertex_ids.shape[0] == stop - start and bool(np.all(vertex_ids == np.arange(start, stop)))
    return bool(comm.allreduce(mine, op=MPI.LAND))


def _advice(fmt: str, spec: str) -> str:
    if fmt == "mtx" or spec.lower().endswith(".gz"):
        return "convert it to HDF5 (`hpcdist convert`) on a machine with more memory, or gunzip it, " \
               "so that every rank reads its own part"
    return ""


def _symmetrise(el: EdgeList, *, skip_if_symmetric: bool) -> EdgeList:
    if skip_if_symmetric:
        el.directed = False
        return el
    weights = None if el.weights is None else np.concatenate([el.weights, el.weights])
    return EdgeList(el.n_vertices, np.concatenate([el.src, el.dst]), np.concatenate([el.dst, el.src]), weights,
                    False, el.vertex_ids, el.name)


# ----------------------------------------------------------------------------- inspection


def _inspect(spec: str, comm: "MPI.Intracomm", *, undirected: bool, weighted: bool | None) -> _Inspection:
    """Rank 0 reads headers and a sample; every rank gets the same :class:`_Inspection`."""
    result: _Inspection | None = None
    with collective(comm):
        if comm.Get_rank() == 0:
            result = _inspect_on_root(spec, undirected=undirected, weighted=weighted)
    # dataclasses of plain values and the spec: no unpickling of anything read from the file
    return comm.bcast(result, root=0)


def _inspect_on_root(spec: str, *, undirected: bool, weighted: bool | None) -> _Inspection:
    fmt = input_format(spec)
    factor = 2 if undirected else 1
    if fmt == "generator":
        gen = generators.parse_generator_spec(spec)
        if gen.n_edges <= 0:
            raise InputError(f"empty graph: {spec} has no edges")
        return _Inspection(fmt, memory.LoadCost(gen.n_vertices, gen.n_edges * factor, bool(weighted)), gen=gen)
    if not os.path.exists(spec):
        raise InputError("no such file" + ("" if ":" not in spec else " (nor a known generator spec)"), path=spec)
    if not os.path.isfile(spec):
        raise InputError("not a regular file", path=spec)
    if not os.access(spec, os.R_OK):
        raise InputError("cannot read the file (permission denied)", path=spec)
    size = os.path.getsize(spec)
    if fmt == "hdf5":
        h = hdf5csr.read_header(spec)
        return _Inspection(fmt, memory.LoadCost(h.n_vertices, h.n_edges * factor, _wants(weighted, h.weighted)), csr=h)
    if size == 0:
        raise InputError("empty graph: the file is empty", path=spec)
    if fmt == "mtx":
        rows, _cols, nnz, field, symmetry, _ = _mtx_header(spec)
        entries = nnz * (2 if symmetry == "symmetric" else 1)
        return _Inspection(fmt, memory.LoadCost(rows, entries * factor, _wants(weighted, field != "pattern"),
                                                rank0_bytes=entries * MTX_BYTES_PER_ENTRY))
    compressed = spec.lower().endswith(".gz")
    text_bytes = _gzip_size(spec, size) if compressed else size
    try:
        with _open_text(spec) as fh:
            sample = fh.read(SAMPLE_BYTES)
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise InputError(f"not a readable {'gzip' if compressed else 'text'} file ({exc})", path=spec) from None
    cut = sample.rfind(b"\n") + 1 if len(sample) == SAMPLE_BYTES else len(sample)
    parsed = textparse.parse_edge_lines(_without_bom(sample[:cut]),
                                        textparse.MODE_DIMACS if fmt == "gr" else textparse.MODE_EDGELIST)
    per_line = cut / max(parsed.src.shape[0], 1)
    m_est = int(text_bytes / per_line) if parsed.src.shape[0] else text_bytes // 4
    return _Inspection(fmt, memory.LoadCost(
        m_est, m_est * factor, _wants(weighted, parsed.ncols >= 3),
        per_rank_bytes_of_input=text_bytes, rank0_bytes=text_bytes if compressed else 0))


def _wants(weighted: bool | None, has_weights: bool) -> bool:
    return bool(weighted) or (weighted is None and has_weights)


def _gzip_size(path: str, compressed_size: int) -> int:
    """The decompressed size from the gzip trailer (mod 2^32), or a 4x guess when it wrapped."""
    try:
        with open(path, "rb") as fh:
            fh.seek(-4, os.SEEK_END)
            isize = int.from_bytes(fh.read(4), "little")
    except OSError:
        isize = 0
    return isize if isize >= compressed_size else 4 * compressed_size


def _open_text(path: str):
    if path.lower().endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


# ----------------------------------------------------------------------------- text formats


def _my_text_chunk(path: str, comm: "MPI.Intracomm") -> bytes:
    """The whole lines of ``path`` that this rank parses (see the module docstring)."""
    rank, size = comm.Get_rank(), comm.Get_size()
    if path.lower().endswith(".gz"):
        return _scatter_gzip_lines(path, comm)
    total = os.path.getsize(path)
    start = 0
    with collective(comm), open(path, "rb") as fh:
        if rank and total * rank // size > 0:
            # a line belongs to the rank whose byte range holds its first byte
            start = total
            pos = total * rank // size - 1
            fh.seek(pos)
            while pos < total:
                piece = fh.read(1 << 16)
                k = piece.find(b"\n")
                if k >= 0:
                    start = pos + k + 1
                    break
                pos += len(piece)
                if not piece:
                    break
    starts = comm.allgather(start) + [total]
    stop = max(starts[rank + 1], start)
    with open(path, "rb") as fh:
        fh.seek(start)
        return fh.read(stop - start)


def _scatter_gzip_lines(path: str, comm: "MPI.Intracomm") -> bytes:
    """Rank 0 decompresses ``path`` and sends each rank a slice of whole lines."""
    rank, size = comm.Get_rank(), comm.Get_size()
    data = b""
    bounds: list[int] | None = None
    with collective(comm):
        if rank == 0:
            try:
                with gzip.open(path, "rb") as fh:
                    data = fh.read()
            except (OSError, EOFError) as exc:
                raise InputError(f"not a readable gzip file ({exc})", path=path) from None
            bounds = [0]
            for r in range(1, size):
                k = data.find(b"\n", max(len(data) * r // size - 1, bounds[-1]))
                bounds.append(len(data) if k < 0 else k + 1)
            bounds.append(len(data))
    bounds = comm.bcast(bounds, root=0)
    mine = np.empty(bounds[rank + 1] - bounds[rank], dtype=np.uint8)
    if rank == 0:
        view = np.frombuffer(data, dtype=np.uint8)
        requests = [comm.Isend(view[bounds[r] : bounds[r + 1]], dest=r, tag=7302) for r in range(1, size)]
        mine[:] = view[: bounds[1]]
        for req in requests:
            req.Wait()
    else:
        comm.Recv(mine, source=0, tag=7302)
    return mine.tobytes()


def _without_bom(chunk: bytes) -> bytes:
    """``chunk`` without a leading UTF-8 byte order mark (the BOM holds no newline, so line numbers stay)."""
    # A copy, but only of a file that has a BOM; the parser's hot loop stays as it is.
    return chunk[len(_UTF8_BOM):] if chunk.startswith(_UTF8_BOM) else chunk


def _line_offset(comm: "MPI.Intracomm", chunk: bytes) -> int:
    """0-based index, in the whole file, of this chunk's first line."""
    from hpcdist.runtime.comm import MPI

    offset = comm.exscan(chunk.count(b"\n"), op=MPI.SUM)
    return int(offset) if comm.Get_rank() else 0


def _read_text(path: str, comm: "MPI.Intracomm", fmt: str, weighted: bool | None) -> EdgeList:
    from hpcdist.runtime.comm import MPI

    mode = textparse.MODE_DIMACS if fmt == "gr" else textparse.MODE_EDGELIST
    chunk = _my_text_chunk(path, comm)
    first_line = _line_offset(comm, chunk)
    if first_line == 0:
        # The chunk that holds the file's first byte (any before it are empty); a BOM
        # elsewhere would follow a newline, so first_line > 0 there and it stays an error.
        chunk = _without_bom(chunk)
    parsed = textparse.parse_edge_lines(chunk, mode)
    # the file's column count is that of its first data line, wherever it is
    all_ncols = comm.allgather(parsed.ncols)
    file_ncols = next((c for c in all_ncols if c), 0)
    p_info = None
    if parsed.p_line >= 0:
        p_info = (first_line + parsed.p_line, bytes(chunk[parsed.p_offset : chunk.find(b"\n", parsed.p_offset)
                                                           if chunk.find(b"\n", parsed.p_offset) >= 0 else None]))
    all_p = [p for p in comm.allgather(p_info) if p is not None] if mode == textparse.MODE_DIMACS else []
    with collective(comm):
        if parsed.ncols and parsed.ncols != file_ncols:
            line = first_line + textparse.line_of_edge(chunk, 0, mode) + 1
            raise InputError(f"wrong number of columns: {parsed.ncols}, but the first data line has "
                             f"{file_ncols}", path=path, line=line)
        if parsed.error:
            raise InputError(textparse.ERROR_TEXT[parsed.error], path=path, line=first_line + parsed.error_line + 1)
        if len(all_p) > 1 and comm.Get_rank() == 0:
            raise InputError(textparse.ERROR_TEXT[textparse.ERR_TWO_P_LINES], path=path, line=all_p[1][0] + 1)
        _check_weights(parsed.weights, chunk, mode, path, first_line)
    m_total = int(comm.allreduce(parsed.src.shape[0], op=MPI.SUM))
    weights = None
    if file_ncols >= 3 and weighted is not False:
        # a rank whose lines are all comments has no column count of its own
        weights = parsed.weights if parsed.weights is not None else np.empty(0, dtype=np.float64)
    if mode == textparse.MODE_DIMACS:
        return _finish_dimacs(path, comm, parsed, chunk, first_line, all_p, m_total, weights)
    with collective(comm):
        if m_total == 0:
            raise InputError("empty graph: no edges", path=path)
    src, dst, n, vertex_ids = map_to_global_ids(comm, parsed.src, parsed.dst)
    return EdgeList(n, src, dst, weights, True, vertex_ids, path)


def _check_weights(weights: np.ndarray | None, chunk: bytes, mode: int, path: str, first_line: int) -> None:
    if weights is None or weights.shape[0] == 0:
        return
    bad = np.flatnonzero(~(np.isfinite(weights) & (weights >= 0)))
    if bad.shape[0]:
        row = int(bad[0])
        w = weights[row]
        what = "NaN" if np.isnan(w) else "infinite" if np.isinf(w) else "negative"
        line = first_line + textparse.line_of_edge(chunk, row, mode) + 1
        raise InputError(f"{what} weight {w}", path=path, line=line)


_P_LINE = re.compile(rb"^\s*p\s+(\S+)\s+(\d+)\s+(\d+)\s*$")


def _finish_dimacs(path: str, comm: "MPI.Intracomm", parsed: textparse.ParsedLines, chunk: bytes,
                   first_line: int, all_p: list, m_total: int, weights: np.ndarray | None) -> EdgeList:
    from hpcdist.runtime.comm import MPI

    rank, size = comm.Get_rank(), comm.Get_size()
    # 0-based line of the first arc in the whole file (its 'p' line must come before it).
    mine = first_line + textparse.line_of_edge(chunk, 0, textparse.MODE_DIMACS) if parsed.src.shape[0] else -1
    first_arc = comm.allreduce(mine if mine >= 0 else np.iinfo(np.int64).max, op=MPI.MIN)
    with collective(comm):
        if not all_p:
            raise InputError("no problem line ('p sp N M')", path=path)
        p_line, p_text = all_p[0]
        match = _P_LINE.match(p_text.rstrip(b"\r"))
        if not match or match.group(1) != b"sp":
            raise InputError("unparsable problem line (expected 'p sp N M')", path=path, line=p_line + 1)
        if len(all_p) > 1:
            raise InputError("a second problem line ('p sp N M' may appear once)", path=path, line=all_p[1][0] + 1)
        if first_arc < p_line:
            raise InputError("an arc before the problem line ('p sp N M' must come first)", path=path,
                             line=int(first_arc) + 1)
        n, m = int(match.group(2)), int(match.group(3))
        if m != m_total:
            raise InputError(f"the problem line says {m} arcs but the file has {m_total}", path=path, line=p_line + 1)
        if n == 0 or m == 0:
            raise InputError(f"empty graph: the problem line says {n} vertices and {m} arcs", path=path,
                             line=p_line + 1)
        out = np.flatnonzero((parsed.src < 1) | (parsed.src > n) | (parsed.dst < 1) | (parsed.dst > n))
        if out.shape[0]:
            line = first_line + textparse.line_of_edge(chunk, int(out[0]), textparse.MODE_DIMACS) + 1
            raise InputError(f"vertex id outside 1..{n} (from the problem line)", path=path, line=line)
    start, stop = owned_range(n, size, rank)
    return EdgeList(n, parsed.src - 1, parsed.dst - 1, weights, True,
                    np.arange(start + 1, stop + 1, dtype=np.int64), path)


# ----------------------------------------------------------------------------- Matrix Market


# [\w-]: the symmetry may be 'skew-symmetric', which must reach the "not supported" message.
_MTX_BANNER = re.compile(r"^%%MatrixMarket\s+matrix\s+([\w-]+)\s+([\w-]+)\s+([\w-]+)\s*$", re.IGNORECASE)


class _FirstLineReplaced(io.RawIOBase):
    """A binary stream: ``first_line``, then the rest of ``fh`` (whose first line was read).

    Lets scipy's reader see a rewritten banner without copying the file.
    """

    def __init__(self, fh, first_line: bytes) -> None:
        super().__init__()
        self._fh, self._head = fh, first_line

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self._head:
            k = min(len(b), len(self._head))
            b[:k] = self._head[:k]
            self._head = self._head[k:]
            return k
        return self._fh.readinto(b)


def _mtx_header(path: str) -> tuple[int, int, int, str, str, int]:
    """rows, cols, nnz, field, symmetry and the 1-based line of the size line; InputError when unusable."""
    with _open_text(path) as fh:
        try:
            banner = _without_bom(fh.readline()).decode("ascii", "replace").strip()
        except (OSError, EOFError) as exc:
            raise InputError(f"cannot read ({exc})", path=path) from None
        match = _MTX_BANNER.match(banner)
        if not match:
            if banner.lower().startswith("%%matrixmarket"):
                raise InputError("unparsable Matrix Market banner (expected '%%MatrixMarket matrix coordinate "
                                 "FIELD SYMMETRY')", path=path, line=1)
            raise InputError("not a Matrix Market file (expected '%%MatrixMarket matrix coordinate ...')",
                             path=path, line=1)
        layout, field, symmetry = (g.lower() for g in match.groups())
        if layout != "coordinate":
            raise InputError(f"Matrix Market '{layout}' (dense) is not a graph; use 'coordinate'", path=path, line=1)
        if field not in ("real", "integer", "pattern"):
            raise InputError(f"Matrix Market field '{field}' is not supported (real, integer or pattern)",
                             path=path, line=1)
        if symmetry not in ("general", "symmetric"):
            raise InputError(f"Matrix Market symmetry '{symmetry}' is not supported (general or symmetric)",
                             path=path, line=1)
        lineno = 1
        for raw in fh:
            lineno += 1
            text = raw.decode("ascii", "replace").strip()
            if not text or text.startswith("%"):
                continue
            parts = text.split()
            if len(parts) != 3 or not all(p.isdigit() for p in parts):
                raise InputError("the size line must be 'rows cols entries'", path=path, line=lineno)
            rows, cols, nnz = map(int, parts)
            if rows != cols:
                raise InputError(f"a graph needs a square matrix, not {rows} x {cols}", path=path, line=lineno)
            if rows == 0 or nnz == 0:
                raise InputError(f"empty graph ({rows} vertices, {nnz} entries)", path=path, line=lineno)
            return rows, cols, nnz, field, symmetry, lineno
    raise InputError("no size line", path=path)


def _mtx_bad_value_line(path: str, size_line: int) -> int | None:
    """The first entry line whose value is negative or not finite (error path only)."""
    found = _mtx_bad_value(path, size_line, integer=False)
    return found[0] if found else None


def _mtx_bad_value(path: str, size_line: int, integer: bool) -> tuple[int, str] | None:
    """Line and text of the first value that is negative, not finite or (``integer``) not
    integral; error path only (a Python loop over the lines)."""
    with _open_text(path) as fh:
        for lineno, raw in enumerate(fh, start=1):
            parts = raw.split()
            if lineno <= size_line or not parts or parts[0].startswith(b"%") or len(parts) < 3:
                continue
            text = parts[2].decode("ascii", "replace")
            try:
                v = float(text)
            except ValueError:
                return lineno, text
            if not (np.isfinite(v) and v >= 0) or (integer and v != np.rint(v)):
                return lineno, text
    return None


def _mmread(path: str, field: str):
    """``scipy.io.mmread``, reading an ``integer`` file as ``real`` and skipping a BOM.

    scipy truncates a value such as 1.5 in an ``integer`` file to 1 without a word; read
    as real, the values array shows it and :func:`_read_mtx` refuses it. The banner is
    rewritten on the fly, so the file is neither copied nor read twice.
    """
    import scipy.io

    with _open_text(path) as fh:
        has_bom = fh.read(len(_UTF8_BOM)) == _UTF8_BOM
    if field != "integer" and not has_bom:
        return scipy.io.mmread(path)  # the common case: scipy opens the path itself
    with _open_text(path) as fh:
        banner = _without_bom(fh.readline())
        if field == "integer":
            banner = re.sub(rb"(?i)\binteger\b", b"real", banner, count=1)
        return scipy.io.mmread(io.BufferedReader(_FirstLineReplaced(fh, banner), 1 << 20))


def _read_mtx(path: str, comm: "MPI.Intracomm", weighted: bool | None) -> EdgeList:
    """scipy parses on rank 0; the entries are scattered in contiguous blocks."""
    from hpcdist.runtime.comm import MPI

    rank, size = comm.Get_rank(), comm.Get_size()
    src = dst = w = None
    header = None
    with collective(comm):
        if rank == 0:
            rows, _cols, nnz, field, symmetry, size_line = _mtx_header(path)
            try:
                coo = _mmread(path, field)
            except ValueError as exc:
                text = str(exc)
                found = re.match(r"Line (\d+): (.*)", text)
                if found and "too long" in text:
                    raise InputError(f"the size line says {nnz} entries but the file has more (from line "
                                     f"{found.group(1)})", path=path, line=size_line) from None
                if found:
                    raise InputError(f"unparsable line ({found.group(2).rstrip('.')})", path=path,
                                     line=int(found.group(1))) from None
                if "Truncated" in text:
                    raise InputError(f"the size line says {nnz} entries but the file has fewer", path=path,
                                     line=size_line) from None
                raise InputError(f"unreadable Matrix Market file: {text}", path=path) from None
            src, dst = coo.row.astype(np.int64), coo.col.astype(np.int64)
            w = coo.data.astype(np.float64) if field != "pattern" else None
            del coo
            if w is not None and not np.all(np.isfinite(w) & (w >= 0)):
                bad = w[np.flatnonzero(~(np.isfinite(w) & (w >= 0)))[0]]
                what = "NaN" if np.isnan(bad) else "infinite" if np.isinf(bad) else "negative"
                raise InputError(f"{what} weight {bad}", path=path, line=_mtx_bad_value_line(path, size_line))
            if field == "integer" and not np.all(w == np.rint(w)):
                # no negative or non-finite value is left, so the first bad line is the fraction's
                line, text = _mtx_bad_value(path, size_line, integer=True) or (None, "?")
                raise InputError(f"value {text} is not an integer, but the banner says 'integer' "
                                 "(declare the field 'real' to keep fractions)", path=path, line=line)
            header = (rows, int(src.shape[0]), w is not None, symmetry == "symmetric")
    n, m, has_w, symmetric = comm.bcast(header, root=0)
    counts = np.array([np.subtract(*owned_range(m, size, r)[::-1]) for r in range(size)], dtype=np.int64)
    displs = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    lo, hi = owned_range(m, size, rank)

    def scatter(arr: np.ndarray | None, dtype) -> np.ndarray:
        out = np.empty(hi - lo, dtype=dtype)
        send = [arr, (counts, displs), MPI.INT64_T if dtype == np.int64 else MPI.DOUBLE] if rank == 0 else None
        comm.Scatterv(send, out, root=0)
        return out

    my_src, my_dst = scatter(src, np.int64), scatter(dst, np.int64)
    my_w = scatter(w, np.float64) if has_w and weighted is not False else None
    start, stop = owned_range(n, size, rank)
    return EdgeList(n, my_src, my_dst, my_w, not symmetric, np.arange(start + 1, stop + 1, dtype=np.int64), path)


# ----------------------------------------------------------------------------- HDF5 CSR


def _read_hdf5(path: str, header: hdf5csr.CsrHeader, comm: "MPI.Intracomm", weighted: bool | None) -> EdgeList:
    rank, size = comm.Get_rank(), comm.Get_size()
    start, stop = owned_range(header.n_vertices, size, rank)
    result = None
    with collective(comm):
        result = hdf5csr.read_rows(path, header, start, stop, want_weights=weighted is not False)
    indptr, indices, weights, vertex_ids = result
    src = np.repeat(np.arange(start, stop, dtype=np.int64), np.diff(indptr))
    return EdgeList(header.n_vertices, src, indices, weights, header.directed, vertex_ids, path)
