"""`hpcdist graph` options of the BSP engine, as users launch them: `--exchange`,
`--status-dir`, `--rebalance` (results unchanged, files and lines as documented)."""

import json

import h5py
import numpy as np
import pytest

from tests.conftest import hpcdist_cmd, launch

pytestmark = pytest.mark.launch


def read(path):
    with h5py.File(path) as f:
        return {k: f[k][:] for k in f}


def graph_cmd(*args):
    return [*hpcdist_cmd(), "graph", *args]


@pytest.mark.timeout(150)
@pytest.mark.parametrize("algorithm, extra", [("pagerank", ()), ("bfs", ("--source", "0")),
                                              ("sssp", ("--source", "0")), ("cc", ())])
def test_exchange_modes_give_identical_files(tmp_path, algorithm, extra):
    files = {}
    for mode in ("dense", "sparse", "auto"):
        out = tmp_path / f"{mode}.h5"
        rc, text, _ = launch(3, *graph_cmd(algorithm, "--input", "rmat:12", *extra, "--exchange", mode,
                                           "--output", str(out)), timeout=120)
        assert rc == 0, text
        files[mode] = read(out)
    for mode in ("sparse", "auto"):
        for key, ref in files["dense"].items():
            assert np.array_equal(files[mode][key].view(np.uint8), ref.view(np.uint8)), (algorithm, mode, key)


@pytest.mark.timeout(90)
def test_status_dir_ends_finished_and_bad_exchange_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    rc, text, _ = launch(2, *graph_cmd("pagerank", "--input", "rmat:12", "--status-dir", str(run_dir)), timeout=80)
    assert rc == 0, text
    state = json.loads((run_dir / "status.json").read_text())
    assert state["format"] == "hpcdist-status" and state["state"] == "finished" and state["what"] == "pagerank"
    assert state["ranks"] == 2 and state["done"] >= 1
    rc, text, _ = launch(2, *graph_cmd("bfs", "--input", "rmat:10", "--source", "0", "--exchange", "bogus"),
                         timeout=60)
    assert rc == 2 and "unknown --exchange 'bogus'" in text and "Traceback" not in text, text
    rc, text, _ = launch(2, *graph_cmd("cc", "--input", "rmat:10", "--partitioner", "hybrid", "--status-dir",
                                       str(tmp_path / "x")), timeout=60)
    assert rc == 2 and "--status-dir does not apply to --partitioner hybrid" in text, text


@pytest.mark.timeout(200)
def test_rebalance_under_a_slow_rank_keeps_the_result(tmp_path):
    common = ("--input", "rmat:16", "--tol", "1e-12", "--max-iter", "30", "--top", "1")
    plain = tmp_path / "plain.h5"
    rc, text, _ = launch(2, *graph_cmd("pagerank", *common, "--output", str(plain)), timeout=150)
    assert rc == 0, text
    moved = tmp_path / "moved.h5"
    env = {"HPCDIST_SLOW": "rank:1,factor:4"}
    rc, text, _ = launch(2, *graph_cmd("pagerank", *common, "--rebalance", "--output", str(moved)), timeout=150,
                         env=env)
    assert rc == 0, text
    # A rank four times slower is measured as the straggler: the boundaries move and the values stay.
    assert "rebalance at superstep" in text and "rebalancing: 1 rebalance(s)" in text, text
    a, b = read(plain), read(moved)
    for key in a:
        assert np.array_equal(a[key].view(np.uint8), b[key].view(np.uint8)), key
