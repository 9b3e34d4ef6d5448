"""`hpcdist graph pagerank --exchange-precision float32` as users launch it: the same file at
1 and 3 ranks, within the tolerance's bound of the float64 file, and refused by name where
it cannot apply."""

import h5py
import numpy as np
import pytest

from tests.conftest import hpcdist_cmd, launch

pytestmark = pytest.mark.launch


def read(path):
    with h5py.File(path) as f:
        return {k: f[k][:] for k in f}, dict(f.attrs)


def graph_cmd(*args):
    return [*hpcdist_cmd(), "graph", *args]


@pytest.mark.timeout(200)
def test_float32_file_is_the_same_at_1_and_3_ranks_and_near_float64(tmp_path):
    tol = 1e-8
    common = ("pagerank", "--input", "rmat:12", "--tol", str(tol), "--partitioner", "hash")
    files = {}
    for ranks, precision in ((1, "float32"), (3, "float32"), (3, "float64")):
        out = tmp_path / f"{precision}-{ranks}.h5"
        rc, text, _ = launch(ranks, *graph_cmd(*common, "--exchange-precision", precision, "--exchange", "sparse",
                                               "--output", str(out)), timeout=120)
        assert rc == 0, text
        if precision == "float32":
            assert "float32 halo values" in text, text
        files[ranks, precision] = read(out)
    (one, attrs), (three, _) = files[1, "float32"], files[3, "float32"]
    for key in one:
        assert np.array_equal(one[key].view(np.uint8), three[key].view(np.uint8)), key
    assert attrs.get("exchange_precision") in (None, "float32")
    exact, _ = files[3, "float64"]
    assert np.array_equal(one["vertex_ids"], exact["vertex_ids"])
    n, alpha = one["result"].shape[0], 0.85
    # the bound of PageRankProgram.lossy_exchange_refusal's docstring
    assert np.abs(one["result"] - exact["result"]).sum() <= alpha / (1 - alpha) * (2 * n * tol + 2.0**-24)


@pytest.mark.timeout(200)
def test_float32_is_refused_where_it_cannot_apply():
    cases = [
        (("bfs", "--input", "rmat:10", "--source", "0"),
         "--exchange-precision float32 does not apply to hpcdist graph bfs: its results must be exact"),
        (("cc", "--input", "rmat:10"), "--exchange-precision float32 does not apply to hpcdist graph cc"),
        (("pagerank", "--input", "rmat:10", "--partitioner", "vertex-cut"),
         "--exchange-precision does not apply to --partitioner vertex-cut"),
        (("pagerank", "--input", "rmat:10", "--tol", "1e-14"), "tol=1e-14 is tighter than float32 halo values"),
    ]
    for args, message in cases:
        rc, text, _ = launch(2, *graph_cmd(*args, "--exchange-precision", "float32"), timeout=60)
        assert rc == 2 and message in text and "Traceback" not in text, (args, text)
        assert text.count(message) == 1, text  # one message, from rank 0
    rc, text, _ = launch(2, *graph_cmd("pagerank", "--input", "rmat:10", "--exchange-precision", "bf16"), timeout=60)
    assert rc == 2 and "unknown --exchange-precision 'bf16'" in text, text
