"""Graph inputs at 1-4 ranks: real graphs against their documented counts and networkx,
malformed files, 64-bit ids, id lookups, the memory refusal and the HDF5 CSR round trip."""

import gzip
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from hpcdist.graph.hdf5csr import write_csr
from hpcdist.graph.io import read_edges
from hpcdist.graph.vertex_ids import lookup_global_ids
from hpcdist.runtime.errors import InputError
from tests.conftest import ROOT, SHARED

pytestmark = pytest.mark.mpi

GRAPHS = SHARED / "data" / "graphs"
BAD = ROOT / "tests" / "data" / "graphs"


def shared(name: str) -> str:
    path = GRAPHS / name
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return str(path)


def gather_original(el, comm):
    """Every edge in original ids, sorted, with weights, on every rank (small graphs only)."""
    ids = None
    if el.vertex_ids is not None:
        ids = np.concatenate(comm.allgather(el.vertex_ids))
        assert ids.shape == (el.n_vertices,)
    src = np.concatenate(comm.allgather(el.src))
    dst = np.concatenate(comm.allgather(el.dst))
    w = np.concatenate(comm.allgather(el.weights)) if el.weights is not None else np.zeros(src.shape[0])
    if ids is not None:
        src, dst = ids[src], ids[dst]
    order = np.lexsort((w, dst, src))
    return src[order], dst[order], w[order], ids


def reference_edges(path: str, data_line, weight_col: int, tokens_from: int = 0):
    """A plain Python reading of a text file's data lines: (src, dst, weight) sorted."""
    rows = []
    with open(path, "rb") as fh:
        for raw in fh:
            parts = raw.split()
            if not data_line(parts):
                continue
            parts = parts[tokens_from:]
            rows.append((int(parts[0]), int(parts[1]), float(parts[weight_col])))
    src = np.array([r[0] for r in rows], dtype=np.int64)
    dst = np.array([r[1] for r in rows], dtype=np.int64)
    w = np.array([r[2] for r in rows], dtype=np.float64)
    order = np.lexsort((w, dst, src))
    return src[order], dst[order], w[order]


# name, vertices, edge lines (arcs), distinct (u, v) pairs, self-loops, ids exactly 0..n-1;
# from the README of the graphs
SNAP = [
    ("email-Eu-core.txt", 1005, 25571, 25571, 642, True),
    ("facebook_combined.txt", 4039, 88234, 88234, 0, True),
    ("p2p-Gnutella04.txt", 10876, 39994, 39994, 0, False),  # ids 0..10878 with 3 gaps
    ("p2p-Gnutella08.txt", 6301, 20777, 20777, 0, True),  # CRLF line ends
    ("p2p-Gnutella09.txt", 8114, 26013, 26013, 0, True),
    ("CA-GrQc.txt", 5242, 28980, 28980, 12, False),  # ids 13..26196, both directions stored
]


@pytest.mark.parametrize("name,n,m,distinct,loops,identity", SNAP)
def test_snap_edge_lists_match_readme_and_networkx(comm, name, n, m, distinct, loops, identity):
    import networkx as nx

    path = shared(name)
    el = read_edges(path, comm)
    assert el.n_vertices == n and el.directed and el.weights is None
    assert (el.vertex_ids is None) == identity  # None exactly when the ids are 0..n-1
    src, dst, _, ids = gather_original(el, comm)
    ids = np.arange(n) if ids is None else ids
    assert src.shape == (m,) and int((src == dst).sum()) == loops  # self-loops kept
    assert np.unique(src * (ids.max() + 1) + dst).shape == (distinct,)
    assert np.all(np.diff(ids) > 0)  # sorted original ids: lookups are binary searches
    g = nx.read_edgelist(path, create_using=nx.MultiDiGraph, nodetype=int, comments="#")
    assert g.number_of_nodes() == n and g.number_of_edges() == m
    assert np.array_equal(ids, np.array(sorted(g.nodes), dtype=np.int64))
    ref = np.array(sorted(g.edges(keys=False)), dtype=np.int64)
    assert np.array_equal(np.stack([src, dst], axis=1), ref)


def test_snap_undirected_adds_both_directions(comm):
    path = shared("facebook_combined.txt")
    el = read_edges(path, comm, undirected=True)
    assert not el.directed
    src, dst, _, _ = gather_original(el, comm)
    assert src.shape == (2 * 88234,)
    fwd = set(zip(src.tolist(), dst.tolist()))
    assert all((b, a) in fwd for a, b in fwd)


def test_dimacs_rome99(comm):
    path = shared("rome99.gr")
    el = read_edges(path, comm)
    assert el.n_vertices == 3353 and el.directed and el.weights is not None
    src, dst, w, ids = gather_original(el, comm)
    assert np.array_equal(ids, np.arange(1, 3354))
    assert src.shape == (8870,)
    assert np.unique(src * 10**5 + dst).shape == (8859,)  # 11 parallel arcs
    ref = reference_edges(path, lambda parts: parts[:1] == [b"a"], weight_col=2, tokens_from=1)
    assert np.array_equal(src, ref[0]) and np.array_equal(dst, ref[1]) and np.array_equal(w, ref[2])
    assert w.min() >= 1 and w.max() == 12711


def test_matrix_market_lederberg(comm):
    path = shared("Lederberg.mtx")
    el = read_edges(path, comm)
    assert el.n_vertices == 8843 and el.directed
    src, dst, w, ids = gather_original(el, comm)
    assert np.array_equal(ids, np.arange(1, 8844))  # the file's own 1-based ids
    assert src.shape == (41601,) and int((src == dst).sum()) == 6
    assert set(np.unique(w).tolist()) == {1.0, 2.0}
    assert np.unique(np.concatenate([src, dst])).shape == (8324,)  # vertices with an edge
    ref = reference_edges(path, lambda parts: parts and not parts[0].startswith(b"%") and parts != [b"8843"] * 2
                          + [b"41601"], weight_col=2)
    assert np.array_equal(src, ref[0]) and np.array_equal(dst, ref[1]) and np.array_equal(w, ref[2])
    unweighted = read_edges(path, comm, weighted=False)
    assert unweighted.weights is None


def test_matrix_market_symmetric_is_expanded(comm, tmp_path_factory):
    base = comm.bcast(str(tmp_path_factory.mktemp("mtx")) if comm.rank == 0 else None)
    path = f"{base}/sym.mtx"
    if comm.rank == 0:
        Path(path).write_text("%%MatrixMarket matrix coordinate pattern symmetric\n4 4 3\n2 1\n3 3\n4 2\n")
    comm.Barrier()
    el = read_edges(path, comm)
    src, dst, _, ids = gather_original(el, comm)
    assert not el.directed and el.weights is None
    assert sorted(zip(src.tolist(), dst.tolist())) == [(1, 2), (2, 1), (2, 4), (3, 3), (4, 2)]


def test_gzip_edge_list_equals_plain(comm, tmp_path_factory):
    plain = shared("p2p-Gnutella08.txt")
    base = comm.bcast(str(tmp_path_factory.mktemp("gz")) if comm.rank == 0 else None)
    gz = f"{base}/g08.txt.gz"
    if comm.rank == 0:
        with open(plain, "rb") as fin, gzip.open(gz, "wb") as fout:
            shutil.copyfileobj(fin, fout)
    comm.Barrier()
    a = gather_original(read_edges(plain, comm), comm)
    b = gather_original(read_edges(gz, comm), comm)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_weighted_crlf_file(comm):
    el = read_edges(str(BAD / "crlf_weighted.txt"), comm)
    src, dst, w, _ = gather_original(el, comm)
    assert src.tolist() == [0, 1, 2] and dst.tolist() == [1, 2, 0] and w.tolist() == [2.5, 0.5, 1e-3]
    assert read_edges(str(BAD / "crlf_weighted.txt"), comm, weighted=False).weights is None


def test_ids_near_2_to_62_and_around_2_to_31(comm):
    el = read_edges(str(BAD / "big_ids.txt"), comm)
    src, dst, _, ids = gather_original(el, comm)
    big = 2**62
    assert ids.tolist() == [7, 2**31 - 1, 2**31, 2**31 + 1, big, big + 1]
    assert sorted(zip(src.tolist(), dst.tolist())) == sorted(
        [(big, 2**31 - 1), (2**31, 2**31 - 1), (big + 1, 2**31), (2**31 + 1, big), (7, big + 1)]
    )
    assert el.src.dtype == np.int64 and el.vertex_ids.dtype == np.int64


def test_lookup_global_ids(comm):
    el = read_edges(str(BAD / "big_ids.txt"), comm)
    # every rank asks something different; answers are positions in the sorted id set
    asks = [2**62 + 1, 7, 2**31][: 1 + comm.rank % 3]
    got = lookup_global_ids(asks, el, None, comm)
    assert got.tolist() == [{2**62 + 1: 5, 7: 0, 2**31: 2}[a] for a in asks]
    with pytest.raises(InputError, match=r"vertex 123 does not exist in .*big_ids.txt"):
        lookup_global_ids([7, 123] if comm.rank == comm.size - 1 else [7], el, None, comm)


def test_lookup_global_ids_identity_for_generated(comm):
    el = read_edges("grid2d:4", comm)
    assert lookup_global_ids(np.array([0, 15]), el, None, comm).tolist() == [0, 15]
    with pytest.raises(InputError, match="vertex 16 does not exist in grid2d:4"):
        lookup_global_ids(16, el, None, comm)


BAD_FILES = [
    ("bad_token.txt", 4, "unparsable line"),
    ("bad_columns.txt", 3, "wrong number of columns"),
    ("negative_weight.txt", 3, "negative weight"),
    ("nan_weight.txt", 2, "NaN weight"),
    ("id_overflow.txt", 2, "overflow"),
    ("negative_id.txt", 3, "negative vertex id"),
    ("empty.txt", None, "empty graph"),
    ("mtx_short.mtx", 3, "size line says 4 entries"),
    ("mtx_long.mtx", 2, "size line says 2 entries"),
    ("mtx_bad_line.mtx", 4, "unparsable line"),
    ("mtx_negative.mtx", 4, "negative weight"),
    ("mtx_empty.mtx", 2, "empty graph"),
    ("gr_count.gr", 2, "problem line says 4 arcs but the file has 3"),
    ("gr_bad_line.gr", 4, "wrong number of columns"),
    ("gr_range.gr", 4, "outside 1..4"),
    ("gr_nan.gr", 4, "NaN weight"),
    ("gr_no_p.gr", None, "no problem line"),
    ("gr_arc_before_p.gr", 2, "an arc before the problem line"),
    ("gr_two_p.gr", 4, "a second problem line"),
    ("gr_not_sp.gr", 2, "unparsable problem line"),
    ("does-not-exist.txt", None, "no such file"),
    ("bad_gzip.txt.gz", None, "not a readable gzip file"),
]


@pytest.mark.parametrize("name,line,text", BAD_FILES)
def test_bad_input_fails_on_every_rank_with_file_and_line(comm, name, line, text):
    path = str(BAD / name)
    with pytest.raises(InputError) as info:
        read_edges(path, comm)
    err = info.value
    assert err.collective and err.path == path and err.line == line
    assert text in str(err) and str(err).startswith(f"{path}:{line}: " if line else f"{path}: ")


def test_first_bad_line_wins_whichever_rank_holds_it(comm, tmp_path_factory):
    # 4000 good lines, bad lines at 1500 and 3900: every split must report line 1500
    base = comm.bcast(str(tmp_path_factory.mktemp("bad")) if comm.rank == 0 else None)
    path = f"{base}/two_bad.txt"
    if comm.rank == 0:
        lines = [f"{i} {i + 1}" for i in range(4000)]
        lines[1499] = "1499 oops"
        lines[3899] = "3899 -5"
        Path(path).write_text("\n".join(lines) + "\n")
    comm.Barrier()
    with pytest.raises(InputError, match=r":1500: unparsable line"):
        read_edges(path, comm)


@pytest.mark.parametrize("spec,text", [("foo:3", "unknown generator 'foo'"), ("rmat:x", "SCALE must be a number"),
                                       ("er:10", "expected er:N:AVGDEG"), ("er:10:0", "empty graph")])
def test_bad_generator_specs(comm, spec, text):
    with pytest.raises(InputError, match=text) as info:
        read_edges(spec, comm)
    assert info.value.collective


def test_memory_refusal_names_estimate_available_and_fitting_ranks(comm):
    with pytest.raises(InputError) as info:
        read_edges("rmat:16", comm, memory_limit="210M")
    msg = str(info.value)
    assert info.value.collective
    assert "estimated" in msg and "per rank" in msg and "210.0 MiB is available" in msg
    assert f"on {comm.size} ranks" in msg and "ranks with as much memory each would fit" in msg
    fit = int(msg.split("; ")[-1].split()[0])
    from hpcdist.graph.memory import LoadCost, peak_bytes_per_rank

    cost = LoadCost(2**16, 16 * 2**16, False)
    assert peak_bytes_per_rank(cost, fit) <= 210 * 2**20 < peak_bytes_per_rank(cost, fit - 1)
    # the same load goes through with room to spare
    el = read_edges("rmat:16", comm, memory_limit="64G")
    assert comm.allreduce(el.n_local_edges) == 16 * 2**16


def test_memory_refusal_for_rank0_formats_advises_convert(comm):
    path = shared("Lederberg.mtx")
    with pytest.raises(InputError, match="no rank count fits.*hpcdist convert"):
        read_edges(path, comm, memory_limit="201M")


def _csr(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][:] for k in f}, dict(f.attrs)


@pytest.mark.parametrize("spec,undirected", [("rome99.gr", False), ("CA-GrQc.txt", True), ("Lederberg.mtx", False),
                                             ("rmat:10:8:3", False)])
def test_hdf5_csr_round_trip_and_rank_count_independence(comm, tmp_path_factory, spec, undirected):
    path_in = spec if ":" in spec else shared(spec)
    base = comm.bcast(str(tmp_path_factory.mktemp("csr")) if comm.rank == 0 else None)
    out_p, out_1 = f"{base}/p.h5", f"{base}/one.h5"
    el = read_edges(path_in, comm, undirected=undirected)
    m = write_csr(comm, out_p, el)
    # the same conversion on one rank alone
    solo = comm.Split(0 if comm.rank == 0 else 1, comm.rank)
    if comm.rank == 0:
        write_csr(solo, out_1, read_edges(path_in, solo, undirected=undirected))
    solo.Free()
    comm.Barrier()
    data_p, attrs_p = _csr(out_p)
    data_1, attrs_1 = _csr(out_1)
    assert data_p.keys() == data_1.keys() and all(np.array_equal(data_p[k], data_1[k]) for k in data_p)
    assert {k: v for k, v in attrs_p.items()} == {k: v for k, v in attrs_1.items()}
    n = el.n_vertices
    assert attrs_p["n_vertices"] == n and attrs_p["n_edges"] == m and attrs_p["format_version"] == 1
    assert bool(attrs_p["directed"]) == el.directed
    assert data_p["indptr"].dtype == np.int64 and data_p["indptr"].shape == (n + 1,)
    assert data_p["indices"].dtype == np.int32
    ip, ix = data_p["indptr"], data_p["indices"]
    assert all(np.all(np.diff(ix[ip[v] : ip[v + 1]]) > 0) for v in range(0, n, max(1, n // 200)))
    # reading it back gives the input graph with duplicates collapsed (smallest weight kept)
    back = read_edges(out_p, comm)
    a = gather_original(back, comm)
    s, d, w, ids = gather_original(el, comm)
    keep = np.ones(s.shape[0], dtype=bool)
    keep[1:] = (s[1:] != s[:-1]) | (d[1:] != d[:-1])  # sorted by (s, d, w): first is the smallest weight
    assert np.array_equal(a[0], s[keep]) and np.array_equal(a[1], d[keep]) and np.array_equal(a[2], w[keep])
    assert (a[3] is None) == (ids is None) and (ids is None or np.array_equal(a[3], ids))
    assert back.directed == el.directed


def test_hdf5_csr_malformed(comm, tmp_path_factory):
    base = comm.bcast(str(tmp_path_factory.mktemp("badh5")) if comm.rank == 0 else None)
    path = f"{base}/bad.h5"
    if comm.rank == 0:
        with h5py.File(path, "w") as f:
            f["indptr"] = np.array([0, 2, 1, 3], dtype=np.int64)
            f["indices"] = np.array([1, 2, 0], dtype=np.int32)
            f.attrs.update({"n_vertices": 3, "n_edges": 3, "directed": True, "format_version": 1})
    comm.Barrier()
    with pytest.raises(InputError, match="indptr is not non-decreasing") as info:
        read_edges(path, comm)
    assert info.value.collective


def test_file_smaller_than_the_rank_count_without_final_newline(comm):
    el = read_edges(str(BAD / "tiny_no_newline.txt"), comm)
    src, dst, _, ids = gather_original(el, comm)
    assert el.n_vertices == 2 and ids.tolist() == [5, 9] and src.tolist() == [5] and dst.tolist() == [9]
