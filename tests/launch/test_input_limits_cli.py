"""Bad input from the audit, launched as users launch it: one message, no traceback,
every rank exits 2 together (and quickly: ``--parts 100000000`` used to run away)."""

import json

import pytest

from tests.conftest import hpcdist_cmd, launch

pytestmark = pytest.mark.launch


def refused(n, *args, message, timeout=60):
    rc, out, took = launch(n, *hpcdist_cmd(), *args, timeout=timeout)
    assert rc == 2, out
    assert out.count(message) == 1 and out.count("error") == 1 and "Traceback" not in out, out
    return took


@pytest.mark.parametrize("n", [1, 3])
def test_parts_beyond_the_vertex_count_is_refused_at_once(n):
    took = refused(n, "partition", "rmat:8", "--parts", "100000000",
                   message="--parts 100,000,000 is more than the 256 vertices of rmat:8")
    assert took < 30
    refused(n, "partition", "rmat:8", "--parts", "257", "-m", "dbh",
            message="--parts 257 is more than the 256 vertices")
    refused(n, "partition", "rmat:8", "--parts", "1000", "--compare",
            message="--parts 1,000 is more than the 256 vertices")


def test_the_default_part_count_names_itself(tmp_path):
    path = tmp_path / "two.txt"
    path.write_text("0 1\n")
    refused(3, "partition", str(path), message="the default --parts (the rank count, 3) is more than the 2 vertices")


def test_as_many_parts_as_vertices_is_met():
    rc, out, _ = launch(2, *hpcdist_cmd(), "partition", "rmat:8", "--parts", "256", "--json", timeout=60)
    assert rc == 0, out
    r = json.loads(out)
    # block balances edges, so a part may stay empty; the count is what is checked
    assert r["parts"] == 256 and len(r["vertices"]) == 256 and sum(r["vertices"]) == 256


@pytest.mark.parametrize("args,message", [
    (["-m", "block", "--hybrid-threshold", "5"], "--hybrid-threshold applies to --method hybrid (or --compare) only"),
    (["-m", "dbh", "--hybrid-threshold", "5"], "--hybrid-threshold applies to --method hybrid (or --compare) only"),
    (["--compare", "-m", "metis"], "--compare reports every partitioner; leave out --method metis"),
    (["--compare", "--partitioner", "block"], "--compare reports every partitioner; leave out --method block"),
])
def test_options_that_would_be_ignored_are_refused(args, message):
    refused(2, "partition", "rmat:8", "--parts", "2", *args, message=message)


def test_hybrid_threshold_still_reaches_hybrid_and_compare():
    rc, out, _ = launch(2, *hpcdist_cmd(), "partition", "rmat:8", "--parts", "2", "-m", "hybrid",
                        "--hybrid-threshold", "5", "--json", timeout=60)
    assert rc == 0 and json.loads(out)["hybrid_threshold"] == 5, out
    rc, out, _ = launch(2, *hpcdist_cmd(), "partition", "rmat:8", "--parts", "2", "--compare",
                        "--hybrid-threshold", "5", "--json", timeout=60)
    assert rc == 0 and json.loads(out)["hybrid_threshold"] == 5, out


@pytest.mark.parametrize("n", [1, 2])
def test_generator_seed_beyond_64_bits(n):
    refused(n, "graph", "cc", "-i", "rmat:10:16:99999999999999999999999",
            message="generator spec 'rmat:10:16:99999999999999999999999': SEED must be at most 2^64-1")


def test_integer_matrix_market_fraction_names_file_and_line(tmp_path):
    path = tmp_path / "intfloat.mtx"
    path.write_text("%%MatrixMarket matrix coordinate integer general\n3 3 2\n1 2 1.5\n2 3 2\n")
    refused(2, "graph", "sssp", "-i", str(path), "-s", "1", message=f"{path}:3: value 1.5 is not an integer")


def test_skew_symmetric_is_named(tmp_path):
    path = tmp_path / "skew.mtx"
    path.write_text("%%MatrixMarket matrix coordinate real skew-symmetric\n3 3 1\n2 1 1.0\n")
    refused(2, "graph", "cc", "-i", str(path),
            message=f"{path}:1: Matrix Market symmetry 'skew-symmetric' is not supported")


def test_edge_list_with_a_byte_order_mark_runs_as_without(tmp_path):
    plain, bom = tmp_path / "plain.txt", tmp_path / "bom.txt"
    plain.write_bytes(b"0 1\n1 2\n2 0\n3 4\n")
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    outs = []
    for path in (plain, bom):
        rc, out, _ = launch(2, *hpcdist_cmd(), "graph", "cc", "-i", str(path), timeout=60)
        assert rc == 0, out
        outs.append([line for line in out.splitlines() if "component" in line])
    assert outs[0] and outs[0] == outs[1]


def test_demo_accepts_the_sample_count_as_its_help_writes_it():
    rc, out, _ = launch(0, *hpcdist_cmd(), "demo", "--help", timeout=60)
    assert rc == 0 and "(default 2e7)" in out, out
    rc, out, _ = launch(2, *hpcdist_cmd(), "demo", "--samples", "2e6", timeout=60)
    assert rc == 0 and "2,000,000 samples" in out and "(ok)" in out, out
