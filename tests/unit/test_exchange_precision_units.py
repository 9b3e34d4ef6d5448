"""The pieces of the float32 halo values and the fused frontier kernels, without MPI:
the numba kernels against numpy's operations, the CLI option's checks, PageRank's rule."""

import argparse
from types import SimpleNamespace

import numpy as np
import pytest

from hpcdist.cli.exchange_option import add_arguments, precision_keyword
from hpcdist.graph.algorithms.pagerank import PageRankProgram
from hpcdist.graph.bsp import lossy_exchange_refusal
from hpcdist.runtime.errors import InputError

halo_numba = pytest.importorskip("hpcdist.kernels.halo_numba")


def bits(a):
    return np.ascontiguousarray(a).view(np.uint8)


def test_round_and_gather_match_numpy_casts():
    rng = np.random.default_rng(0)
    # ordinary values, ties, subnormals of float32, huge values (to inf), signed zeros, NaN
    special = np.array([0.0, -0.0, 1 + 2.0**-24, 1 + 3 * 2.0**-24, 1e-40, -1e-45, 3.5e38, 1e300, -1e300, np.nan,
                        np.inf, -np.inf])
    values = np.concatenate([rng.standard_normal(1000) * 10.0 ** rng.integers(-30, 30, 1000), special])
    n = values.shape[0]
    with np.errstate(over="ignore"):
        expected = values.astype(np.float32)
    got_values = values.copy()
    wire = np.empty(n, dtype=np.float32)
    index = rng.integers(0, n, 300)
    send = np.empty(300, dtype=np.float32)
    halo_numba.narrow_send(got_values, n, wire, index, send)
    assert np.array_equal(bits(wire), bits(expected))
    assert np.array_equal(bits(got_values), bits(expected.astype(np.float64)))
    assert np.array_equal(bits(send), bits(expected[index]))
    out = np.zeros(n + 5)
    halo_numba.spread_float32(wire, out, 5)
    assert np.array_equal(bits(out[5:]), bits(expected.astype(np.float64)))


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 64, 1001])
def test_pack_and_unpack_match_numpy_packbits(n):
    rng = np.random.default_rng(n)
    flags = (rng.random(2000) < 0.3).astype(np.uint8)
    index = rng.integers(0, 2000, n)
    bounds = np.array([0, n // 3, n], dtype=np.int64)
    sizes = (np.diff(bounds) + 7) // 8
    displs = np.array([0, (sizes[0] + 7) // 8 * 8], dtype=np.int64)
    out = np.full(int(displs[-1] + sizes[-1]) + 8, 0xAA, dtype=np.uint8)
    assert halo_numba.pack_all(flags, index, bounds, out, displs) == 0
    for i in range(2):
        seg = flags[index[bounds[i]:bounds[i + 1]]]
        assert np.array_equal(out[displs[i]:displs[i] + sizes[i]], np.packbits(seg))
    back = np.full(n + 3, 9, dtype=np.uint8)
    halo_numba.unpack_all(out, displs, bounds, back, 3)
    assert np.array_equal(back[3:], flags[index])
    if n:
        flags[index[-1]] = 2
        assert halo_numba.pack_all(flags, index, bounds, out, displs) == -1


def parse(*argv):
    p = argparse.ArgumentParser()
    add_arguments(p)
    ns = p.parse_args(list(argv))
    return ns


def test_precision_option_is_checked_by_algorithm():
    assert precision_keyword(SimpleNamespace(**vars(parse()), algorithm="pagerank")) == {"exchange_precision": "float64"}
    ns = SimpleNamespace(**vars(parse("--exchange-precision", "FLOAT32")), algorithm="pagerank")
    assert precision_keyword(ns) == {"exchange_precision": "float32"}
    for algorithm in ("bfs", "cc", "sssp"):
        assert precision_keyword(SimpleNamespace(**vars(parse()), algorithm=algorithm)) == {}
        with pytest.raises(InputError, match=f"does not apply to hpcdist graph {algorithm}: its results must be exact"):
            precision_keyword(SimpleNamespace(**vars(parse("--exchange-precision", "float32")), algorithm=algorithm))
    with pytest.raises(InputError, match="unknown --exchange-precision 'half'"):
        precision_keyword(SimpleNamespace(**vars(parse("--exchange-precision", "half")), algorithm="pagerank"))
    assert precision_keyword(argparse.Namespace(algorithm="pagerank")) == {"exchange_precision": "float64"}


class FakeComm:
    def allreduce(self, value, op=None):
        return value


def fake_pagerank(n, tol, alpha, p=None, inv_out=None):
    prog = object.__new__(PageRankProgram)
    prog.graph = SimpleNamespace(n_vertices=n, comm=FakeComm())
    prog.tol, prog.alpha = tol, alpha
    prog.p = np.full(4, 0.25) if p is None else p
    prog.dw = prog.p
    prog.inv_out = np.full(4, 0.5) if inv_out is None else inv_out
    return prog


def test_pagerank_float32_rule():
    u = 2.0**-24
    alpha = 0.85
    floor = 4 * u * alpha / (1 - alpha)  # n * tol must reach it
    n = 1 << 16
    assert lossy_exchange_refusal(fake_pagerank(n, 1.001 * floor / n, alpha), "float32") is None
    assert "tighter than float32" in lossy_exchange_refusal(fake_pagerank(n, 0.999 * floor / n, alpha), "float32")
    # an out-weight so small that x / out_weight would overflow float32 (x <= 1): refused, not inf
    tiny = np.array([0.5, 1.0 / 1e-39])
    assert "would make a contribution overflow float32" in lossy_exchange_refusal(
        fake_pagerank(n, 1.0, alpha, inv_out=tiny), "float32")
    assert lossy_exchange_refusal(fake_pagerank(n, 1e-300, alpha), "float64") is None  # exact: always allowed
    assert "alpha < 1" in lossy_exchange_refusal(fake_pagerank(n, 1e-3, 1.0), "float32")
    signed = fake_pagerank(n, 1e-3, alpha, p=np.array([0.5, 0.7, -0.2]))
    assert "non-negative" in lossy_exchange_refusal(signed, "float32")
    # programs that declare nothing are refused by the engine
    assert "must be exact" in lossy_exchange_refusal(SimpleNamespace(name="bfs"), "float32")
