"""Input checks from the bad-input audit, at 1-4 ranks: Matrix Market fields and banners,
a UTF-8 byte order mark, generator spec limits and the bound on the part count."""

import gzip
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from hpcdist.graph.edgelist import EdgeList
from hpcdist.graph.generators import generate_edges, parse_generator_spec
from hpcdist.graph.io import read_edges
from hpcdist.graph.vertexcut import compare_partitioners, evaluate_edge_partition
from hpcdist.runtime.errors import InputError

pytestmark = pytest.mark.mpi

BOM = b"\xef\xbb\xbf"


def write_files(comm, tmp_path_factory, files: dict[str, bytes]) -> dict[str, str]:
    """Rank 0 writes ``files`` into a fresh directory; every rank gets the paths."""
    base = comm.bcast(str(tmp_path_factory.mktemp("inputs")) if comm.rank == 0 else None)
    paths = {name: f"{base}/{name}" for name in files}
    if comm.rank == 0:
        for name, data in files.items():
            if name.endswith(".gz"):
                with gzip.open(paths[name], "wb") as fh:
                    fh.write(data)
            else:
                Path(paths[name]).write_bytes(data)
    comm.Barrier()
    return paths


def gathered(el: EdgeList, comm) -> list[tuple[int, int, float]]:
    """Every edge in original ids with its weight, sorted, on every rank."""
    ids = np.concatenate(comm.allgather(el.vertex_ids)) if el.vertex_ids is not None else None
    src = np.concatenate(comm.allgather(el.src))
    dst = np.concatenate(comm.allgather(el.dst))
    w = np.concatenate(comm.allgather(el.weights)) if el.weights is not None else np.zeros(src.shape[0])
    if ids is not None:
        src, dst = ids[src], ids[dst]
    return sorted(zip(src.tolist(), dst.tolist(), w.tolist()))


def mtx_reference(path: str) -> list[tuple[int, int, float]]:
    """scipy's reading of a (BOM-free) Matrix Market file, in 1-based ids."""
    coo = scipy.io.mmread(path)
    return sorted(zip((coo.row + 1).tolist(), (coo.col + 1).tolist(), coo.data.astype(float).tolist()))


def raises_collective(comm, spec, **kw) -> InputError:
    with pytest.raises(InputError) as info:
        read_edges(spec, comm, **kw)
    assert info.value.collective
    return info.value


INT_HEAD = b"%%MatrixMarket matrix coordinate integer general\n% a comment\n4 4 4\n"


def test_integer_matrix_market_refuses_a_fraction_with_its_line(comm, tmp_path_factory):
    body = b"1 2 1\n2 3 2\n3 4 1.5\n4 1 7\n"
    paths = write_files(comm, tmp_path_factory, {"frac.mtx": INT_HEAD + body, "frac.mtx.gz": INT_HEAD + body})
    for path in paths.values():
        err = raises_collective(comm, path)
        assert err.path == path and err.line == 6
        assert "1.5 is not an integer" in str(err) and "'integer'" in str(err)


def test_integer_matrix_market_with_integers_reads_as_scipy(comm, tmp_path_factory):
    body = b"1 2 1\n2 3 20\n3 4 300\n4 1 9007199254740992\n"
    paths = write_files(comm, tmp_path_factory, {"int.mtx": INT_HEAD + body})
    el = read_edges(paths["int.mtx"], comm)
    assert gathered(el, comm) == mtx_reference(paths["int.mtx"])


def test_integer_matrix_market_reports_a_negative_before_a_later_fraction(comm, tmp_path_factory):
    paths = write_files(comm, tmp_path_factory, {"neg.mtx": INT_HEAD + b"1 2 1\n2 3 -2\n3 4 1.5\n4 1 7\n"})
    err = raises_collective(comm, paths["neg.mtx"])
    assert err.line == 5 and "negative weight" in str(err)


@pytest.mark.parametrize("symmetry", ["skew-symmetric", "hermitian"])
def test_unsupported_symmetry_is_named(comm, tmp_path_factory, symmetry):
    text = f"%%MatrixMarket matrix coordinate real {symmetry}\n3 3 1\n2 1 1.0\n".encode()
    paths = write_files(comm, tmp_path_factory, {"s.mtx": text})
    err = raises_collective(comm, paths["s.mtx"])
    assert err.line == 1 and f"symmetry '{symmetry}' is not supported" in str(err)
    assert "not a Matrix Market file" not in str(err)


def test_malformed_matrix_market_banner_is_not_called_another_format(comm, tmp_path_factory):
    paths = write_files(comm, tmp_path_factory, {"b.mtx": b"%%MatrixMarket matrix coordinate real\n3 3 1\n2 1 1\n"})
    err = raises_collective(comm, paths["b.mtx"])
    assert err.line == 1 and "unparsable Matrix Market banner" in str(err)


@pytest.mark.parametrize("field", ["real", "integer", "pattern"])
def test_matrix_market_with_a_byte_order_mark(comm, tmp_path_factory, field):
    value = "" if field == "pattern" else " 3"
    text = f"%%MatrixMarket matrix coordinate {field} symmetric\n4 4 3\n2 1{value}\n3 3{value}\n4 2{value}\n".encode()
    paths = write_files(comm, tmp_path_factory, {"plain.mtx": text, "bom.mtx": BOM + text, "bom.mtx.gz": BOM + text})
    want = gathered(read_edges(paths["plain.mtx"], comm), comm)
    w = 0.0 if field == "pattern" else 3.0  # the symmetric entries in both directions, the loop once
    assert want == [(1, 2, w), (2, 1, w), (2, 4, w), (3, 3, w), (4, 2, w)]
    for name in ("bom.mtx", "bom.mtx.gz"):
        assert gathered(read_edges(paths[name], comm), comm) == want


def edge_lines(n_lines: int, weighted: bool) -> bytes:
    rng = np.random.default_rng(3)
    rows = [f"{rng.integers(0, 50)} {rng.integers(0, 50)}" + (f" {rng.integers(1, 9)}" if weighted else "")
            for _ in range(n_lines)]
    return ("\n".join(rows) + "\n").encode()


@pytest.mark.parametrize("weighted", [False, True])
def test_edge_list_with_a_byte_order_mark_reads_as_without(comm, tmp_path_factory, weighted):
    text = edge_lines(200, weighted)
    paths = write_files(comm, tmp_path_factory, {"plain.txt": text, "bom.txt": BOM + text, "bom.txt.gz": BOM + text})
    want = gathered(read_edges(paths["plain.txt"], comm), comm)
    assert len(want) == 200
    for name in ("bom.txt", "bom.txt.gz"):
        assert gathered(read_edges(paths[name], comm), comm) == want


def test_edge_list_bom_keeps_line_numbers(comm, tmp_path_factory):
    lines = edge_lines(300, False).splitlines()
    lines[249] = b"249 oops"
    paths = write_files(comm, tmp_path_factory, {"bad.txt": BOM + b"\n".join(lines) + b"\n"})
    err = raises_collective(comm, paths["bad.txt"])
    assert err.line == 250 and "unparsable line" in str(err)


def test_a_byte_order_mark_inside_the_file_is_still_an_error(comm, tmp_path_factory):
    paths = write_files(comm, tmp_path_factory, {"mid.txt": b"1 2\n" + BOM + b"3 4\n"})
    err = raises_collective(comm, paths["mid.txt"])
    assert err.line == 2


def test_dimacs_with_a_byte_order_mark(comm, tmp_path_factory):
    text = b"c tiny\np sp 3 2\na 1 2 5\na 2 3 7\n"
    paths = write_files(comm, tmp_path_factory, {"plain.gr": text, "bom.gr": BOM + text})
    want = gathered(read_edges(paths["plain.gr"], comm), comm)
    assert want == [(1, 2, 5.0), (2, 3, 7.0)]
    assert gathered(read_edges(paths["bom.gr"], comm), comm) == want


@pytest.mark.parametrize("spec,text", [
    ("rmat:10:16:99999999999999999999999", "SEED must be at most 2^64-1"),
    ("rmat:10:16:18446744073709551616", "SEED must be at most 2^64-1"),
    ("er:100:2:340282366920938463463374607431768211456", "SEED must be at most 2^64-1"),
    ("er:99999999999999999999999:2", "N must be at most 2^62"),
    ("er:10:1e308", "AVGDEG must be at most 2^62"),
    ("grid2d:99999999999", "N must be at most 2^31"),
    ("rmat:62:16", "edges, more than the 2^62"),
    ("rmat:8:99999999999999999999", "EDGEFACTOR must be at most 2^62"),
])
def test_generator_numbers_out_of_range(comm, spec, text):
    err = raises_collective(comm, spec)
    assert text in str(err) and repr(spec) in str(err)


class OneRank:
    """Stands for a one-rank communicator: generate_edges reads only the rank and size."""

    def Get_rank(self) -> int:
        return 0

    def Get_size(self) -> int:
        return 1


def test_largest_seed_generates_the_same_graph_at_every_rank_count(comm):
    spec = parse_generator_spec(f"rmat:8:4:{2**64 - 1}")
    src, dst = generate_edges(spec, comm)
    mine = sorted(zip(src.tolist(), dst.tolist()))
    everything = sorted(sum(comm.allgather(mine), []))
    alone = sorted(zip(*(a.tolist() for a in generate_edges(spec, OneRank()))))
    assert everything == alone and len(everything) == 4 * 256


def test_edge_partition_refuses_more_parts_than_vertices(comm):
    n = 40
    src = np.arange(n, dtype=np.int64)[comm.rank :: comm.size]
    el = EdgeList(n, src, (src + 1) % n, None, True, None, "ring")
    assert evaluate_edge_partition(el, comm, n, "dbh").parts == n
    for call in (lambda: evaluate_edge_partition(el, comm, n + 1, "hybrid"),
                 lambda: compare_partitioners(el, comm, 10**8)):
        with pytest.raises(InputError, match=r"--parts [\d,]+ is more than the 40 vertices") as info:
            call()
        assert info.value.collective
