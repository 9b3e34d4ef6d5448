"""`hpcdist partition --compare` and the edge partitioners, launched as users launch them."""

import json

import pytest

from tests.conftest import SHARED, hpcdist_cmd, launch

pytestmark = pytest.mark.launch

ROWS = ["block", "metis", "hash", "vertex-cut", "dbh", "hybrid"]


@pytest.mark.parametrize("n", [1, 3])
def test_compare_table_on_rmat_printed_once(n):
    rc, out, _ = launch(n, *hpcdist_cmd(), "partition", "rmat:12", "--compare", "--parts", "4", timeout=90)
    assert rc == 0, out
    assert out.count("rmat:12: 4,096 vertices, 4 parts (hybrid threshold 100)") == 1, out
    lines = [line.split() for line in out.splitlines()]
    table = {cols[0]: cols for cols in lines if cols and cols[0] in ROWS}
    assert list(table) == ROWS and len([c for c in lines if c and c[0] in ROWS]) == len(ROWS), out
    replication = {m: float(cols[3]) for m, cols in table.items()}
    assert replication["dbh"] < replication["hash"], out  # power law: cutting hubs pays


def _compare_json(n, spec, *extra):
    rc, out, _ = launch(n, *hpcdist_cmd(), "partition", spec, "--compare", "--parts", "4", "--json", *extra,
                        timeout=90)
    assert rc == 0, out
    return json.loads(out)  # one JSON document: printed by rank 0 only


def test_compare_json_identical_at_one_and_two_ranks_on_a_grid():
    one, two = _compare_json(1, "grid2d:48"), _compare_json(2, "grid2d:48")
    assert one == two
    rows = {r["method"]: r for r in one["rows"]}
    assert list(rows) == ROWS and one["parts"] == 4 and one["n_vertices"] == 48 * 48
    for m in ("hash", "vertex-cut", "dbh", "hybrid"):  # the grid has a small separator
        assert rows["metis"]["replication"] < rows[m]["replication"]
        assert rows["block"]["sync_bytes"] < rows[m]["sync_bytes"]
    assert rows["hybrid"]["kind"] == "vertex-cut" and rows["block"]["kind"] == "edge-cut"


def test_compare_on_the_rome_road_network():
    path = SHARED / "data" / "graphs" / "rome99.gr"
    if not path.exists():
        pytest.skip(f"{path} not present")
    doc = _compare_json(2, str(path), "--hybrid-threshold", "3")
    rows = {r["method"]: r for r in doc["rows"]}
    assert doc["hybrid_threshold"] == 3 and doc["n_vertices"] == 3353
    assert rows["metis"]["cut"] < 0.05 < rows["hash"]["cut"]


@pytest.mark.parametrize("method", ["vertex-cut", "hybrid"])
def test_single_edge_partitioner_report(method):
    rc, out, _ = launch(2, *hpcdist_cmd(), "partition", "rmat:10", "--partitioner", method, "--parts", "3",
                        "--json", timeout=60)
    assert rc == 0, out
    r = json.loads(out)
    assert r["method"] == method and len(r["edges"]) == 3 and sum(r["edges"]) == r["n_edges"]
    assert r["replication_factor"] == pytest.approx((r["n_vertices"] + r["n_mirrors"]) / r["n_vertices"])


@pytest.mark.parametrize(
    "args,message",
    [
        (["--method", "grid9"], "unknown partitioner 'grid9'; choose one of block, metis, hash, auto, vertex-cut"),
        (["--compare", "--hybrid-threshold", "lots"], "--hybrid-threshold expects an integer, got 'lots'"),
        (["--compare", "--parts", "0"], "--parts must be at least 1, got 0"),
    ],
)
def test_bad_options_one_message_exit_2(args, message):
    rc, out, _ = launch(3, *hpcdist_cmd(), "partition", "rmat:8", *args, timeout=30)
    assert rc == 2, out
    assert out.count(message) == 1 and "Traceback" not in out, out


def test_graph_runs_an_edge_partitioner_and_refuses_engine_options():
    rc, out, _ = launch(2, *hpcdist_cmd(), "graph", "pagerank", "--input", "rmat:8", "--partitioner", "hybrid",
                        timeout=30)
    assert rc == 0 and "partitioner hybrid" in out and "gather-apply-scatter" in out and "replication factor" in out, out
    rc, out, _ = launch(2, *hpcdist_cmd(), "graph", "pagerank", "--input", "rmat:8", "--partitioner", "hybrid",
                        "--checkpoint-dir", "ck", timeout=30)
    assert rc == 2 and out.count("--checkpoint-dir does not apply to --partitioner hybrid") == 1, out
    assert "Traceback" not in out, out
