"""`hpcdist graph ALGO --partitioner vertex-cut|dbh|hybrid`, launched as users launch it:
the output file equals the block partitioner's, the summary names the edge partitioner
and its replication factor, and options an edge partition cannot honour are refused
(one message, exit 2 on every rank, no traceback)."""

import json

import h5py
import numpy as np
import pytest

from tests.conftest import SHARED, hpcdist_cmd, launch

pytestmark = pytest.mark.launch

GRAPHS = SHARED / "data" / "graphs"


def read(path):
    with h5py.File(path) as f:
        return {k: f[k][:] for k in f}, dict(f.attrs)


def graph_cmd(*args):
    return [*hpcdist_cmd(), "graph", *args]


def run(tmp_path, ranks, algorithm, spec, part, *extra):
    """Run ``algorithm`` on ``part``; its output and summary."""
    out = tmp_path / f"{algorithm}-{part}-{ranks}.h5"
    rc, text, _ = launch(ranks, *graph_cmd(algorithm, "--input", spec, "--partitioner", part, "--output", str(out),
                                           *extra), timeout=100)
    assert rc == 0, text
    return read(out), text


SPEC = "rmat:9:8:3"
RUNS = (("bfs", ("--source", "1", "--validate")), ("cc", ()), ("sssp", ("--source", "1", "--weights")),
        ("pagerank", ("--tol", "1e-10")))


@pytest.fixture(scope="module")
def block_outputs(tmp_path_factory):
    """The block partitioner's outputs (at 2 ranks: they are the same at every rank count)."""
    tmp = tmp_path_factory.mktemp("block")
    return {algorithm: run(tmp, 2, algorithm, SPEC, "block", *args)[0] for algorithm, args in RUNS}


@pytest.mark.timeout(240)
@pytest.mark.parametrize("ranks, part", [(1, "vertex-cut"), (3, "hybrid"), (3, "dbh")])
def test_outputs_equal_block(tmp_path, block_outputs, ranks, part):
    """bfs, cc and sssp write the same datasets, dtypes and values as the block
    partitioner; pagerank the same to rounding."""
    extra = ("--hybrid-threshold", "8") if part == "hybrid" else ()
    for algorithm, args in RUNS:
        (d, a), text = run(tmp_path, ranks, algorithm, SPEC, part, *args, *extra)
        ref, ref_a = block_outputs[algorithm]
        assert set(d) == set(ref), (algorithm, set(d), set(ref))
        for key in ref:
            assert d[key].dtype == ref[key].dtype, (algorithm, key)
            if algorithm == "pagerank" and key == "result":
                assert np.allclose(d[key], ref[key], rtol=1e-9, atol=1e-13), algorithm
            else:
                assert np.array_equal(d[key], ref[key]), (algorithm, key)
        assert a["partitioner"] == part and ref_a["partitioner"] == "block" and a["ranks"] == ranks
        assert a["algorithm"] == algorithm and a["n_edges"] == ref_a["n_edges"]
        assert a["replication_factor"] >= 1.0
        assert text.count(f"partitioner {part}") == 1 and "replication factor" in text, text
        if algorithm == "bfs":
            assert "validation passed (1 root)" in text, text
        if part == "hybrid":
            assert a["hybrid_threshold"] == 8


@pytest.mark.timeout(120)
def test_real_graph_bfs_and_sssp_equal_block(tmp_path):
    if not GRAPHS.is_dir():
        pytest.skip(f"{GRAPHS} not present")
    spec = str(GRAPHS / "rome99.gr")
    for algorithm, args in (("sssp", ("--source", "1")), ("bfs", ("--source", "1"))):
        (d, _), _ = run(tmp_path, 3, algorithm, spec, "vertex-cut", *args)
        (ref, _), _ = run(tmp_path, 1, algorithm, spec, "block", *args)
        for key in ref:
            assert np.array_equal(d[key], ref[key]) and d[key].dtype == ref[key].dtype, (algorithm, key)


@pytest.mark.timeout(120)
def test_bfs_directions_and_sssp_auto_delta(tmp_path, block_outputs):
    """--direction bottom-up and top-down run on an edge partition too, with the block
    partitioner's distances and parents; sssp without --delta prints the automatic width
    (4 x mean weight / mean degree), the same as the block run's."""
    for direction in ("bottom-up", "top-down"):
        (d, a), text = run(tmp_path, 2, "bfs", SPEC, "dbh", "--source", "1", "--direction", direction)
        ref = block_outputs["bfs"][0]
        for key in ref:
            assert np.array_equal(d[key], ref[key]), (direction, key)
        letter = direction[0].upper()
        assert a["directions"] == letter * a["levels"], a["directions"]
    (d, a), text = run(tmp_path, 2, "sssp", SPEC, "vertex-cut", "--source", "1", "--weights")
    ref, ref_a = block_outputs["sssp"]
    assert np.array_equal(d["result"], ref["result"])
    assert a["delta"] == ref_a["delta"] and a["weighted"], (a["delta"], ref_a["delta"])
    assert f"buckets of width {a['delta']:.6g} (weighted)" in text, text


@pytest.mark.timeout(90)
def test_metrics_and_roots(tmp_path):
    metrics = tmp_path / "m.json"
    rc, text, _ = launch(3, *graph_cmd("bfs", "--input", "rmat:9", "--roots", "3", "--validate", "--partitioner",
                                       "dbh", "--metrics", str(metrics)), timeout=80)
    assert rc == 0, text
    assert "3 roots: TEPS harmonic mean" in text and "validation passed (3 roots)" in text, text
    m = json.loads(metrics.read_text())
    assert m["header"]["graph"]["partitioner"] == "dbh" and m["header"]["algorithm"] == "bfs"
    assert m["header"]["ranks"] == 3 and m["header"]["supersteps"] >= 1


@pytest.mark.timeout(240)
@pytest.mark.parametrize("ranks", [1, 3])
@pytest.mark.parametrize(
    "args, message",
    [
        (("bfs", "--source", "0", "--partitioner", "vertex-cut", "--direction", "sideways"),
         "unknown direction 'sideways'"),
        (("cc", "--partitioner", "hybrid", "--checkpoint-dir", "CKPT"),
         "--checkpoint-dir does not apply to --partitioner hybrid"),
        (("pagerank", "--partitioner", "dbh", "--checkpoint-dir", "CKPT", "--resume"),
         "--checkpoint-dir does not apply to --partitioner dbh"),
        (("sssp", "--source", "0", "--partitioner", "vertex-cut", "--superstep-timeout", "5m"),
         "--superstep-timeout does not apply to --partitioner vertex-cut"),
        (("cc", "--partitioner", "vertex-cut", "--backend", "numba"),
         "--backend numba does not apply to --partitioner vertex-cut"),
        (("cc", "--partitioner", "block", "--hybrid-threshold", "5"),
         "--hybrid-threshold applies to --partitioner hybrid only"),
        (("bfs", "--source", "99999", "--partitioner", "hybrid"), "bfs: source vertex 99999 is not a vertex"),
        (("cc", "--partitioner", "edge-cut"), "unknown partitioner 'edge-cut'"),
    ],
)
def test_refused_options_one_message_exit_2_everywhere(tmp_path, ranks, args, message):
    args = tuple(str(tmp_path / "ckpt") if a == "CKPT" else a for a in args)
    rc, text, _ = launch(ranks, *graph_cmd(args[0], "--input", "rmat:6", *args[1:]), timeout=60)
    assert rc == 2, text
    assert text.count("hpcdist: error:") == 1 and message in text, text
    assert "Traceback" not in text


@pytest.mark.timeout(150)
def test_pagerank_same_bits_on_every_rank_count_and_edge_partitioner(tmp_path):
    """The reviewer's case: rmat:10 at 1 and 3 ranks differed in the last bits (split
    in-edge sums, plain allreduces); now vertex-cut, dbh and hybrid agree bit for bit."""
    outputs = [run(tmp_path, ranks, "pagerank", "rmat:10", part, "--tol", "1e-10")[0][0]["result"]
               for ranks, part in ((1, "vertex-cut"), (3, "vertex-cut"), (3, "hybrid"), (2, "dbh"))]
    for other in outputs[1:]:
        assert np.array_equal(other.view(np.int64), outputs[0].view(np.int64))
