"""`hpcdist convert` launched as users launch it."""

import h5py
import numpy as np
import pytest

from tests.conftest import ROOT, SHARED, hpcdist_cmd, launch

BAD = ROOT / "tests" / "data" / "graphs"


def _datasets(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][:] for k in f}, dict(f.attrs)


@pytest.mark.launch
def test_convert_at_1_and_3_ranks_gives_the_same_file(tmp_path):
    src = SHARED / "data" / "graphs" / "p2p-Gnutella08.txt"  # CRLF
    if not src.exists():
        pytest.skip(f"{src} is not available")
    outs = {}
    for n in (1, 3):
        out = tmp_path / f"g{n}.h5"
        rc, text, _ = launch(n, *hpcdist_cmd(), "convert", str(src), str(out), "--undirected", timeout=90)
        assert rc == 0, text
        lines = [line for line in text.splitlines() if line.strip()]
        assert len(lines) == 1 and "6301 vertices" in lines[0] and f"{n} ranks" in lines[0], text
        outs[n] = _datasets(out)
    (d1, a1), (d3, a3) = outs[1], outs[3]
    assert d1.keys() == d3.keys() == {"indptr", "indices"}  # ids 0..6300: no vertex_ids
    assert all(np.array_equal(d1[k], d3[k]) for k in d1) and a1 == a3
    assert a1["n_vertices"] == 6301 and a1["n_edges"] == 2 * 20777 and not a1["directed"]
    assert (tmp_path / "g1.h5").read_bytes() == (tmp_path / "g3.h5").read_bytes()


@pytest.mark.launch
def test_convert_generator_spec_at_4_ranks(tmp_path):
    out = tmp_path / "rmat.h5"
    rc, text, _ = launch(4, *hpcdist_cmd(), "convert", "rmat:10", str(out), "--weights", timeout=90)
    assert rc == 0, text
    data, attrs = _datasets(out)
    assert attrs["n_vertices"] == 1024 and "vertex_ids" not in data
    assert np.all(data["weights"] == 1.0) and data["indices"].dtype == np.int32
    assert data["indptr"][-1] == attrs["n_edges"] <= 16 * 1024


@pytest.mark.launch
@pytest.mark.parametrize("n", [1, 2, 4])
def test_convert_bad_file_one_message_exit_2(tmp_path, n):
    bad = BAD / "negative_weight.txt"
    rc, text, _ = launch(n, *hpcdist_cmd(), "convert", str(bad), str(tmp_path / "x.h5"), timeout=60)
    assert rc == 2, text
    assert text.count("hpcdist: error:") == 1 and f"{bad}:3: negative weight -0.5" in text, text
    assert "Traceback" not in text
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "x.h5.tmp").exists()


@pytest.mark.launch
def test_convert_memory_refusal(tmp_path):
    rc, text, _ = launch(2, *hpcdist_cmd(), "convert", "rmat:16", str(tmp_path / "x.h5"), "--memory-limit", "205M",
                         timeout=60)
    assert rc == 2 and text.count("hpcdist: error:") == 1 and "would fit" in text and "Traceback" not in text, text
