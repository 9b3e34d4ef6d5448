"""The opt-in float32 halo values (``exchange_precision="float32"``) at 1-4 ranks.

PageRank in float32 mode is bit-identical on every rank count, partitioner, backend and
``exchange`` setting (owned and ghost contributions are rounded alike), lies within the
bound derived from its tolerance of the float64 result and of networkx, and the bytes
it reports are 4 per value, as the halo plan's arithmetic says. Programs whose results
must be exact, and tolerances float32 cannot honour, are refused with one InputError.
"""

import hashlib

import networkx as nx
import numpy as np
import pytest

from hpcdist.graph import from_edges, pagerank
from hpcdist.graph import halo_codec as codec
from hpcdist.graph.algorithms.bfs import BFSProgram
from hpcdist.graph.algorithms.cc import CCProgram
from hpcdist.graph.algorithms.sssp import SSSPProgram
from hpcdist.graph.bsp import Resume, run_bsp
from hpcdist.graph.sparse_exchange import SPARSE_MIN_VALUES, SparseExchange
from hpcdist.kernels import numba_cpu, numpy_ref
from hpcdist.runtime.comm import MPI
from hpcdist.runtime.errors import InputError
from hpcdist.runtime.ranges import owned_range

pytestmark = pytest.mark.mpi

ALPHA = 0.85
TOL = 1e-9  # n * tol = 2e-6 on 2,000 vertices, above the float32 floor 4 * 2^-24 * 0.85 / 0.15 = 1.35e-6
U32 = 2.0**-24  # float32's unit roundoff


def scale_free():
    """A directed scale-free graph (duplicates collapsed): hubs, dangling vertices, self-loops."""
    return nx.DiGraph(nx.scale_free_graph(2000, seed=3))


def distribute(comm, G, partitioner):
    """G's nodes are 0..n-1; each rank passes a strided share of the arcs."""
    arcs = np.array(sorted(G.edges()), dtype=np.int64).reshape(-1, 2)
    mine = arcs[comm.rank::comm.size]
    n = G.number_of_nodes()
    start, stop = owned_range(n, comm.size, comm.rank)
    return from_edges(mine[:, 0], mine[:, 1], n=n, comm=comm, partitioner=partitioner,
                      vertex_ids=np.arange(start, stop, dtype=np.int64))


def gathered(comm, result):
    got = result.gather_arrays()
    return comm.bcast(None if got is None else got[1])


def digest(values):
    return hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest()


def serial(comm, G, **kwargs):
    """The float32 run on one rank (COMM_SELF, block, numpy) on rank 0, broadcast."""
    value = None
    if comm.rank == 0:
        with distribute(MPI.COMM_SELF, G, "block") as g:
            r = pagerank(g, backend="numpy", **kwargs)
            value = (r.gather_arrays()[1], r.iterations)
    return comm.bcast(value)


def small_halo(comm, g):
    return comm.allreduce(int(g.halo.layout.n_send), op=MPI.MAX) < SPARSE_MIN_VALUES


def same_everywhere(comm, ok):
    return bool(comm.allreduce(bool(ok), op=MPI.LAND))


@pytest.mark.timeout(180)
@pytest.mark.parametrize("partitioner", ["block", "hash"])
def test_float32_is_bit_identical_on_every_rank_count_and_exchange(comm, partitioner):
    G = scale_free()
    ref, ref_steps = serial(comm, G, tol=TOL, exchange_precision="float32")
    with distribute(comm, G, partitioner) as g:
        for backend in ("numba", "numpy"):
            for mode in ("dense", "sparse", "auto"):
                r = pagerank(g, tol=TOL, backend=backend, exchange=mode, exchange_precision="float32")
                assert r.converged and r.iterations == ref_steps, (backend, mode)
                assert r.params["exchange_precision"] == "float32"
                assert digest(gathered(comm, r)) == digest(ref), \
                    f"{partitioner}/{backend}/{mode} at {comm.size} ranks differs from 1 rank"


@pytest.mark.timeout(120)
def test_float32_lies_within_the_bound_of_float64_and_networkx(comm):
    G = scale_free()
    n = G.number_of_nodes()
    expected = None
    if comm.rank == 0:
        nxr = nx.pagerank(G, alpha=ALPHA, tol=1e-14, max_iter=1000)
        expected = np.array([nxr[v] for v in range(n)])
    expected = comm.bcast(expected)
    with distribute(comm, G, "hash") as g:
        r64 = gathered(comm, pagerank(g, alpha=ALPHA, tol=TOL))
        r32 = gathered(comm, pagerank(g, alpha=ALPHA, tol=TOL, exchange_precision="float32"))
    k = ALPHA / (1 - ALPHA)
    slack = 1e-12  # float64 arithmetic, far below the terms
    # Each run's distance to the exact PageRank: k * n * tol (float64), k * (n * tol + u) (float32):
    # see PageRankProgram.lossy_exchange_refusal.
    assert np.abs(r32 - r64).sum() <= k * (2 * n * TOL + U32) + slack
    assert np.abs(r32 - expected).sum() <= k * (n * TOL + U32) + k * n * 1e-14 + slack
    assert np.abs(r64 - expected).sum() <= k * n * TOL + k * n * 1e-14 + slack
    assert not np.array_equal(r32, r64)  # the rounding did happen


@pytest.mark.timeout(60)
def test_float32_resume_is_bit_identical(comm):
    saved = {}

    def keep(step, prog):
        if step == 3:
            saved["resume"] = Resume(step, {k: v.copy() for k, v in prog.state().items()}, dict(prog.scalars()))

    with distribute(comm, scale_free(), "hash") as g:
        full = pagerank(g, tol=TOL, on_superstep=keep, exchange="sparse", exchange_precision="float32")
        again = pagerank(g, tol=TOL, resume=saved["resume"], exchange="dense", exchange_precision="float32")
        assert again.iterations == full.iterations > 5 and again.run.resumed_from == 3
        assert np.array_equal(again.values.view(np.uint8), full.values.view(np.uint8))


@pytest.mark.timeout(60)
def test_float32_is_refused_where_results_must_be_exact_or_tol_is_too_tight(comm):
    G = scale_free()
    n = G.number_of_nodes()
    floor = 4 * U32 * ALPHA / (1 - ALPHA)
    with distribute(comm, G, "hash") as g:
        for cls in (BFSProgram, CCProgram, SSSPProgram):
            program = object.__new__(cls)  # the class's declarations are what the engine reads first
            with pytest.raises(InputError, match=f"does not apply to {cls.name}: its results must be exact"):
                run_bsp(g, program, max_supersteps=1, kernels=numpy_ref, exchange_precision="float32")
        with pytest.raises(InputError, match="tighter than float32 halo values can honour"):
            pagerank(g, tol=0.9 * floor / n, exchange_precision="float32")
        # just inside the rule: accepted, and it converges
        assert pagerank(g, tol=1.01 * floor / n, exchange_precision="float32").converged
        with pytest.raises(InputError, match="needs alpha < 1"):
            pagerank(g, alpha=1.0, tol=1e-3, exchange_precision="float32")
        with pytest.raises(InputError, match="non-negative personalization"):
            pagerank(g, tol=1e-3, personalization={0: 2.0, 1: -1.0}, exchange_precision="float32")
        with pytest.raises(InputError, match="exchange_precision must be one of"):
            pagerank(g, exchange_precision="float16")


@pytest.mark.timeout(60)
def test_float32_bytes_are_four_per_value(comm):
    with distribute(comm, scale_free(), "hash") as g:
        send_total = comm.allreduce(int(g.halo.layout.n_send))
        neighbours = comm.allreduce(int(g.halo.layout.send_ranks.shape[0]))
        small = small_halo(comm, g)
        for mode in ("dense", "auto", "sparse"):
            r = pagerank(g, tol=TOL, exchange=mode, exchange_precision="float32")
            assert all(m.bytes_dense == 8 * send_total for m in r.run.metrics)  # the plain float64 exchange
            if mode != "sparse" or small:
                # every value, 4 bytes each, in one fixed-size round (no headers)
                assert all(m.bytes_sent == 4 * send_total for m in r.run.metrics), mode
            else:
                assert r.run.metrics[0].bytes_sent == 4 * send_total + codec.HEADER_BYTES * neighbours
                assert sum(m.bytes_sent for m in r.run.metrics) < 4 * send_total * len(r.run.metrics)


def significant_bytes(diff):
    """Bytes up to the highest set one of each uint32 (0 for 0): independent of the codec."""
    return np.array([(int(d).bit_length() + 7) // 8 for d in diff], dtype=np.int64)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kernels", [numba_cpu, numpy_ref], ids=["numba", "numpy"])
def test_float32_message_bytes_match_the_halo_plan_arithmetic(comm, kernels):
    with distribute(comm, scale_free(), "hash") as g:
        lay = g.halo.layout
        no = g.n_owned
        gid = g.local_to_global.astype(np.int64)
        ex = SparseExchange(g.halo, kernels, min_values=0)
        ex.warm_up(precision="float32")
        bounds = np.concatenate([[0], np.cumsum(lay.send_counts)])
        rng = np.random.default_rng(7)
        last = None
        for step in range(5):
            # values that float32 rounds (random doubles), a share of them changing each step
            base = np.sin(gid[:no] * 0.37 + 1.0) + 2.0
            jitter = rng.random(no) * 1e-3 * ((gid[:no] % (step + 2)) == 0)
            values = np.zeros(g.n_local)
            values[:no] = base + (jitter if step else 0.0)
            rounded = values[:no].astype(np.float32).astype(np.float64)
            plain = np.zeros(g.n_local)
            plain[:no] = rounded
            g.halo.exchange(plain)
            ex.exchange(values, precision="float32")
            assert np.array_equal(values[:no], rounded)  # owned values rounded in place
            assert np.array_equal(values[no:], plain[no:])  # ghosts: the owners' rounded values
            cur = rounded.astype(np.float32)[lay.send_index].view(np.uint32)
            expected = codec.HEADER_BYTES * lay.send_ranks.shape[0] if comm.size > 1 else 0
            for i in range(lay.send_ranks.shape[0]):
                seg = slice(bounds[i], bounds[i + 1])
                m = int(bounds[i + 1] - bounds[i])
                if last is None:
                    expected += 4 * m
                    continue
                diff = cur[seg] ^ last[seg]
                pos = np.flatnonzero(diff)
                gaps = np.diff(np.concatenate([[0], pos]))
                gap = int(gaps.max(initial=0))
                width = 1 if gap < 2**8 else 2 if gap < 2**16 else 4
                expected += min(4 * m, pos.size * (4 + width), (m + 1) // 2 + int(significant_bytes(diff).sum()))
            assert ex.bytes_sent == expected, (step, ex.modes)
            assert ex.dense_bytes == 8 * lay.n_send
            last = cur.copy()
        ex.close()
