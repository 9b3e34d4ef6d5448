"""`hpcdist graph pagerank` and `hpcdist partition`, launched as users launch them."""

import json

import h5py
import networkx as nx
import numpy as np
import pytest

from tests.conftest import SHARED, hpcdist_cmd, launch

pytestmark = pytest.mark.launch

GRAPHS = SHARED / "data" / "graphs"


def needs_graphs():
    if not GRAPHS.is_dir():
        pytest.skip(f"{GRAPHS} not present")


@pytest.mark.timeout(120)
def test_pagerank_file_output_identical_at_1_and_3_ranks(tmp_path):
    needs_graphs()
    spec = str(GRAPHS / "p2p-Gnutella08.txt")  # CRLF, '#' header
    outputs = {}
    for n, part in ((1, "block"), (3, "metis")):
        out = tmp_path / f"pr{n}.h5"
        rc, text, _ = launch(n, *hpcdist_cmd(), "graph", "pagerank", "--input", spec, "--output", str(out),
                             "--tol", "1e-12", "--max-iter", "500", "--partitioner", part, timeout=90)
        assert rc == 0, text
        assert text.count("top 10 vertices") == 1 and f"{n} rank(s)" in text and "edge cut" in text
        with h5py.File(out) as f:
            outputs[n] = (f["vertex_ids"][:], f["result"][:], dict(f.attrs))
    ids, values, attrs = outputs[3]
    assert np.array_equal(ids, outputs[1][0]) and np.array_equal(values, outputs[1][1])  # bit-identical
    assert attrs["algorithm"] == "pagerank" and attrs["ranks"] == 3 and attrs["partitioner"] == "metis"
    assert attrs["n_vertices"] == 6301 and attrs["n_edges"] == 20777 and attrs["converged"]
    assert attrs["iterations"] > 1 and attrs["seconds"] > 0 and attrs["setup_seconds"] > 0
    G = nx.read_edgelist(GRAPHS / "p2p-Gnutella08.txt", create_using=nx.DiGraph, nodetype=int)
    ref = nx.pagerank(G, tol=1e-12, max_iter=500)
    assert np.abs(values - np.array([ref[int(i)] for i in ids])).sum() < 1e-10
    assert values.dtype == np.float64 and ids.dtype == np.int64


@pytest.mark.timeout(60)
def test_generated_graph_ids_and_summary(tmp_path):
    out = tmp_path / "g.h5"
    rc, text, _ = launch(2, *hpcdist_cmd(), "graph", "pagerank", "--input", "grid2d:12", "--undirected",
                         "--output", str(out), "--backend", "numpy", "--partitioner", "hash", timeout=60)
    assert rc == 0, text
    with h5py.File(out) as f:
        assert np.array_equal(f["vertex_ids"][:], np.arange(144))
        assert f["result"].shape == (144,) and abs(f["result"][:].sum() - 1.0) < 1e-12
        assert f.attrs["partitioner"] == "hash"
    assert "ms per superstep" in text and "backend numpy" in text


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "args, message",
    [
        (["--input", "rmat:8", "--partitioner", "kway"], "unknown partitioner 'kway'"),
        (["--input", "rmat:8", "--tol", "tight"], "--tol expects a number, got 'tight'"),
        (["--input", "rmat:8", "--alpha", "2"], "alpha must lie in [0, 1]"),
        (["--input", "rmat:8", "--backend", "fortran"], "unknown backend 'fortran'"),
        (["--input", "/nonexistent/graph.txt"], "/nonexistent/graph.txt"),
    ],
)
def test_bad_input_one_message_exit_2_everywhere(args, message):
    rc, text, _ = launch(3, *hpcdist_cmd(), "graph", "pagerank", *args, timeout=60)
    assert rc == 2, text
    assert text.count("hpcdist: error:") == 1 and message in text, text
    assert "Traceback" not in text


@pytest.mark.timeout(60)
def test_bad_file_line_reported(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("0 1\n1 2\n2 x\n")
    rc, text, _ = launch(2, *hpcdist_cmd(), "graph", "pagerank", "--input", str(bad), timeout=60)
    assert rc == 2 and text.count("hpcdist: error:") == 1 and f"{bad}:3" in text, text


@pytest.mark.timeout(60)
def test_partition_report_for_more_parts_than_ranks():
    rc, text, _ = launch(2, *hpcdist_cmd(), "partition", "rmat:12", "--parts", "5", "--method", "block", "--json",
                         timeout=60)
    assert rc == 0, text
    report = json.loads(text)
    assert report["parts"] == 5 and len(report["edges"]) == 5 and sum(report["vertices"]) == 4096
    assert report["edge_balance"] <= 1.03 and 0 < report["edge_cut_fraction"] < 1
    assert report["exchange_bytes"] == 8 * report["n_ghosts"]
    rc, text, _ = launch(2, *hpcdist_cmd(), "partition", "rmat:12", "--method", "hash", timeout=60)
    assert rc == 0 and "partition hash into 2 parts" in text, text
    rc, text, _ = launch(2, *hpcdist_cmd(), "partition", "rmat:12", "--parts", "0", timeout=60)
    assert rc == 2 and text.count("--parts must be at least 1") == 1, text


@pytest.mark.timeout(120)
def test_metrics_file_names_an_injected_straggler(tmp_path):
    """`--metrics` writes per-superstep records; a rank slowed by HPCDIST_SLOW is the straggler found."""
    out = tmp_path / "m.json"
    rc, text, _ = launch(3, *hpcdist_cmd(), "graph", "pagerank", "--input", "grid2d:60", "--undirected",
                         "--alpha", "0.99", "--tol", "1e-300", "--max-iter", "12", "--metrics", str(out),
                         env={"HPCDIST_SLOW": "rank:2,factor:8"}, timeout=90)
    assert rc == 0 and f"wrote {out}" in text, text
    doc = json.loads(out.read_text())
    assert doc["header"]["algorithm"] == "pagerank" and doc["header"]["ranks"] == 3
    assert len(doc["supersteps"]) == 12
    stragglers = [f for f in doc["findings"] if f["kind"] == "straggler"]
    assert stragglers and all(f["evidence"]["rank"] == 2 for f in stragglers), doc["findings"]
    rc, text, _ = launch(2, *hpcdist_cmd(), "graph", "cc", "--input", "grid2d:6", "--metrics", "m.csv", timeout=60)
    assert rc == 2 and "Traceback" not in text and "m.csv" in text, text
