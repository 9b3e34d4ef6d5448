"""`hpcdist graph bfs|cc|sssp`, launched as users launch them: output files, summaries,
bad input (one message, exit 2 on every rank, no traceback)."""

import h5py
import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra, shortest_path

from tests.conftest import SHARED, hpcdist_cmd, launch

pytestmark = pytest.mark.launch

GRAPHS = SHARED / "data" / "graphs"


def needs_graphs():
    if not GRAPHS.is_dir():
        pytest.skip(f"{GRAPHS} not present")


def read(path):
    with h5py.File(path) as f:
        return {k: f[k][:] for k in f}, dict(f.attrs)


def graph_cmd(*args):
    return [*hpcdist_cmd(), "graph", *args]


@pytest.mark.timeout(120)
def test_bfs_files_identical_at_1_and_3_ranks_and_validated(tmp_path):
    needs_graphs()
    spec = str(GRAPHS / "p2p-Gnutella08.txt")
    files = {}
    for n, part in ((1, "block"), (3, "metis")):
        out = tmp_path / f"bfs{n}.h5"
        rc, text, _ = launch(n, *graph_cmd("bfs", "--input", spec, "--source", "0", "--validate", "--output", str(out),
                                           "--partitioner", part), timeout=90)
        assert rc == 0, text
        assert text.count("validation passed (1 root)") == 1 and "TEPS" in text and "levels" in text, text
        files[n] = read(out)
    (d1, a1), (d3, a3) = files[1], files[3]
    assert set(d3) == {"result", "parent", "vertex_ids"}
    for key in d1:
        assert np.array_equal(d1[key], d3[key]) and d1[key].dtype == np.int64, key
    assert a3["algorithm"] == "bfs" and a3["ranks"] == 3 and a3["source"] == 0 and a3["partitioner"] == "metis"
    raw = np.loadtxt(GRAPHS / "p2p-Gnutella08.txt", dtype=np.int64)
    A = sp.csr_matrix((np.ones(raw.shape[0]), (raw[:, 0], raw[:, 1])), shape=(6301, 6301))
    ref = shortest_path(A, unweighted=True, indices=0)
    assert np.array_equal(d3["result"], np.where(np.isinf(ref), -1, ref).astype(np.int64))
    assert d3["parent"][0] == -1 and (d3["parent"][d3["result"] < 0] == -1).all()
    reached = d3["result"] > 0
    assert (d3["result"][d3["parent"][reached]] == d3["result"][reached] - 1).all()


@pytest.mark.timeout(90)
def test_bfs_random_roots_teps():
    rc, text, _ = launch(2, *graph_cmd("bfs", "--input", "rmat:10", "--roots", "4", "--seed", "7", "--validate",
                                       "--partitioner", "hash"), timeout=80)
    assert rc == 0, text
    assert text.count("4 roots: TEPS harmonic mean") == 1 and "validation passed (4 roots)" in text, text


@pytest.mark.timeout(90)
def test_cc_summary_and_output(tmp_path):
    out = tmp_path / "cc.h5"
    # grid2d:6 symmetrised is one component of 36 vertices
    rc, text, _ = launch(3, *graph_cmd("cc", "--input", "grid2d:6", "--undirected", "--output", str(out),
                                       "--partitioner", "hash"), timeout=80)
    assert rc == 0, text
    assert text.count("1 connected components; largest 36 vertices (100.00%)") == 1, text
    assert "32-63: 1" in text
    data, attrs = read(out)
    assert (data["result"] == 0).all() and data["result"].dtype == np.int64
    assert attrs["algorithm"] == "cc" and attrs["components"] == 1 and attrs["size_histogram_json"] == '{"2^5": 1}'


@pytest.mark.timeout(120)
def test_cc_real_graph_counts():
    needs_graphs()
    rc, text, _ = launch(2, *graph_cmd("cc", "--input", str(GRAPHS / "CA-GrQc.txt")), timeout=90)
    assert rc == 0, text
    assert "355 weakly connected components; largest 4,158 vertices" in text, text  # SNAP's counts


@pytest.mark.timeout(120)
def test_sssp_rome99_equals_scipy(tmp_path):
    needs_graphs()
    out = tmp_path / "sssp.h5"
    rc, text, _ = launch(2, *graph_cmd("sssp", "--input", str(GRAPHS / "rome99.gr"), "--source", "1", "--delta",
                                       "500", "--output", str(out)), timeout=90)
    assert rc == 0, text
    assert text.count("sssp from 1: reached 3,353 of 3,353 vertices") == 1, text
    rows = np.array([line.split()[1:] for line in open(GRAPHS / "rome99.gr") if line.startswith("a ")], dtype=float)
    # parallel arcs: keep the lightest (a sparse matrix would add them up)
    order = np.lexsort((rows[:, 2], rows[:, 1], rows[:, 0]))
    r = rows[order]
    first = np.ones(r.shape[0], dtype=bool)
    first[1:] = (r[1:, 0] != r[:-1, 0]) | (r[1:, 1] != r[:-1, 1])
    r = r[first]
    A = sp.csr_matrix((r[:, 2], (r[:, 0].astype(int) - 1, r[:, 1].astype(int) - 1)), shape=(3353, 3353))
    data, attrs = read(out)
    assert np.array_equal(data["result"], dijkstra(A, indices=0)) and data["result"].dtype == np.float64
    assert np.array_equal(data["vertex_ids"], np.arange(1, 3354))
    assert attrs["algorithm"] == "sssp" and attrs["delta"] == 500.0 and attrs["weighted"]


@pytest.mark.timeout(60)
def test_sssp_weights_column_and_unreachable(tmp_path):
    edges = tmp_path / "w.txt"
    edges.write_text("# src dst weight\n10 20 0.5\n20 30 0.25\n10 30 1.0\n30 30 0\n40 10 2\n")
    out = tmp_path / "w.h5"
    rc, text, _ = launch(2, *graph_cmd("sssp", "--input", str(edges), "--source", "10", "--weights", "--output",
                                       str(out)), timeout=50)
    assert rc == 0, text
    data, _ = read(out)
    assert data["vertex_ids"].tolist() == [10, 20, 30, 40]
    assert data["result"].tolist() == [0.0, 0.5, 0.75, float("inf")]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "args, message",
    [
        (["bfs", "--input", "grid2d:5", "--source", "99"], "source vertex 99 is not a vertex"),
        (["sssp", "--input", "grid2d:5", "--source", "-3"], "source vertex -3 is not a vertex"),
        (["bfs", "--input", "grid2d:5", "--source", "one"], "--source expects an integer, got 'one'"),
        (["bfs", "--input", "grid2d:5"], "--source is required"),
        (["bfs", "--input", "grid2d:5", "--roots", "0"], "--roots must be at least 1"),
        (["bfs", "--input", "grid2d:5", "--roots", "26"], "only 25 vertices have out-edges"),
        (["bfs", "--input", "grid2d:5", "--source", "0", "--direction", "up"], "unknown direction 'up'"),
        (["sssp", "--input", "grid2d:5", "--source", "0", "--delta", "-1"], "--delta must be a positive number"),
        (["cc", "--input", "grid2d:5", "--partitioner", "kway"], "unknown partitioner 'kway'"),
        (["cc", "--input", "/nonexistent/graph.txt"], "/nonexistent/graph.txt"),
    ],
)
def test_bad_input_one_message_exit_2_everywhere(args, message):
    rc, text, _ = launch(3, *graph_cmd(*args), timeout=50)
    assert rc == 2, text
    assert text.count("hpcdist: error:") == 1 and message in text, text
    assert "Traceback" not in text


@pytest.mark.timeout(60)
@pytest.mark.parametrize("weight, what", [("-4", "negative weight -4.0"), ("nan", "NaN weight")])
def test_bad_weight_in_a_gr_names_file_and_line(tmp_path, weight, what):
    bad = tmp_path / "bad.gr"
    bad.write_text(f"c a road\np sp 3 3\na 1 2 5\na 2 3 {weight}\na 3 1 1\n")
    rc, text, _ = launch(2, *graph_cmd("sssp", "--input", str(bad), "--source", "1"), timeout=50)
    assert rc == 2, text
    assert text.count("hpcdist: error:") == 1 and f"{bad}:4: {what}" in text, text
    assert "Traceback" not in text
