"""The communication optimizer at 1-4 ranks: identical results with it on and off, ghosts
equal to the plain exchange's, and byte counts that match the arithmetic of the halo plan."""

import numpy as np
import pytest

from hpcdist.graph import bfs, connected_components, from_edges, pagerank, sssp
from hpcdist.graph import halo_codec as codec
from hpcdist.graph.frontier_exchange import CARRY_WORDS
from hpcdist.graph.sparse_exchange import SPARSE_MIN_VALUES, SparseExchange
from hpcdist.kernels import numba_cpu, numpy_ref
from hpcdist.runtime.comm import MPI
from hpcdist.runtime.errors import InputError
from hpcdist.runtime.ranges import owned_range

pytestmark = pytest.mark.mpi

MODES = ("auto", "sparse")


def skewed_graph(comm, partitioner, n=1 << 10, seed=0, weighted=True):
    """A power-law-ish directed graph (most edges among low ids), with weights, each rank
    passing a strided share of the same arcs; plus an isolated tail of vertices."""
    rng = np.random.default_rng(seed)
    src, dst = rng.integers(0, n - 20, 8 * n), rng.integers(0, n - 20, 8 * n)
    src, dst = (src * src) // n, (dst * dst * dst) // (n * n)
    w = np.round(rng.random(src.shape[0]) * 10, 1)  # zero weights included
    mine = slice(comm.rank, None, comm.size)
    start, stop = owned_range(n, comm.size, comm.rank)
    return from_edges(src[mine], dst[mine], w[mine] if weighted else None, n=n, comm=comm, partitioner=partitioner,
                      vertex_ids=np.arange(start, stop) * 5 + 3)


def small_halo(comm, g):
    """The optimizer keeps the plain exchange when no rank sends SPARSE_MIN_VALUES values."""
    return comm.allreduce(int(g.halo.layout.n_send), op=MPI.MAX) < SPARSE_MIN_VALUES


def bits(a):
    return np.ascontiguousarray(a).view(np.uint8)


def same_everywhere(comm, ok):
    return bool(comm.allreduce(bool(ok), op=MPI.LAND))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("partitioner", ["block", "hash"])
def test_results_identical_with_the_optimizer_on_and_off(comm, partitioner):
    with skewed_graph(comm, partitioner) as g:
        src = int(g.comm.bcast(int(np.arange(g.n_vertices)[0] * 5 + 3)))  # vertex 0 (a hub)
        for backend in ("numba", "numpy"):
            ref = {
                "pagerank": pagerank(g, tol=1e-12, backend=backend, exchange="dense"),
                "bfs": bfs(g, src, backend=backend, exchange="dense"),
                "cc": connected_components(g, backend=backend, exchange="dense"),
                "sssp": sssp(g, src, backend=backend, exchange="dense"),
            }
            assert ref["pagerank"].iterations > 5
            for mode in MODES:
                got = {
                    "pagerank": pagerank(g, tol=1e-12, backend=backend, exchange=mode),
                    "bfs": bfs(g, src, backend=backend, exchange=mode),
                    "cc": connected_components(g, backend=backend, exchange=mode),
                    "sssp": sssp(g, src, backend=backend, exchange=mode),
                }
                for name in ref:
                    assert same_everywhere(comm, np.array_equal(bits(got[name].values), bits(ref[name].values))), \
                        (name, mode, backend)
                    assert got[name].iterations == ref[name].iterations
                assert same_everywhere(comm, np.array_equal(got["bfs"].extras["parent"], ref["bfs"].extras["parent"]))
                assert got["bfs"].params["directions"] == ref["bfs"].params["directions"]
                if comm.size > 1 and not small_halo(comm, g):
                    # fewer bytes in total, and the dense figure is the plain exchange's
                    # (auto sends PageRank's values the plain way)
                    for name in ("pagerank", "bfs") if mode == "sparse" else ("bfs",):
                        sent = sum(m.bytes_sent for m in got[name].run.metrics)
                        plain = sum(m.bytes_sent for m in ref[name].run.metrics)
                        assert [m.bytes_dense for m in got[name].run.metrics] == \
                            [m.bytes_sent for m in ref[name].run.metrics]
                        assert sent < plain, name


@pytest.mark.timeout(60)
def test_bfs_directions_each_identical(comm):
    with skewed_graph(comm, "block", seed=2, weighted=False) as g:
        src = int(np.int64(3))  # original id of vertex 0
        for direction in ("top-down", "bottom-up"):
            ref = bfs(g, src, direction=direction, exchange="dense")
            got = bfs(g, src, direction=direction, exchange="auto")
            assert same_everywhere(comm, np.array_equal(got.values, ref.values)
                                   and np.array_equal(got.extras["parent"], ref.extras["parent"]))


@pytest.mark.timeout(60)
def test_dense_bytes_are_send_counts_times_itemsize(comm):
    with skewed_graph(comm, "block", seed=1) as g:
        send_total = comm.allreduce(int(g.halo.layout.send_counts.sum()))
        neighbours = comm.allreduce(int(g.halo.layout.send_ranks.shape[0]))
        sizes = comm.allreduce(g.halo.layout.send_counts.tolist())
        small = small_halo(comm, g)
        # auto: the optimizer for BFS's frontier, the plain exchange for PageRank's values
        for mode in ("dense", "sparse", "auto"):
            pr = pagerank(g, tol=1e-12, exchange=mode)
            assert all(m.bytes_dense == 8 * send_total for m in pr.run.metrics)
            b = bfs(g, 3, exchange=mode)
            assert all(m.bytes_dense == send_total for m in b.run.metrics)
            if mode != "sparse" or small:
                assert all(m.bytes_sent == 8 * send_total for m in pr.run.metrics)
            else:
                # first superstep: the whole values (nothing held yet), plus the headers
                assert pr.run.metrics[0].bytes_sent == 8 * send_total + codec.HEADER_BYTES * neighbours
                assert all(m.overlap_s >= 0 for m in pr.run.metrics)
            if mode == "auto":
                # the frontier channel: a bitmap of whole 8-byte words per message, every
                # level, in one round without headers, whatever the halo's size; nothing at
                # the first level, whose frontier (the source) every rank knows
                words = sum(8 * ((c + 63) // 64) for c in sizes)
                if g.halo.frontier().carries:
                    # every rank neighbours every other: each message also carries the
                    # level's counts, and the next level's frontier goes with them at the
                    # end of every superstep (the first's included), in place of an allreduce
                    assert neighbours == comm.Get_size() * (comm.Get_size() - 1)
                    assert all(m.bytes_sent == words + 8 * CARRY_WORDS * neighbours for m in b.run.metrics)
                else:
                    assert b.run.metrics[0].bytes_sent == 0
                    assert all(m.bytes_sent == words for m in b.run.metrics[1:])
            elif mode == "dense" or small:
                assert all(m.bytes_sent == send_total for m in b.run.metrics)
            else:
                # BFS's 0/1 flags through the optimizer: bitmaps of ceil(n / 8) bytes per
                # message, every level, in one round without headers
                bitmap = sum((c + 7) // 8 for c in sizes)
                assert all(m.bytes_sent == bitmap for m in b.run.metrics)
            # SSSP: the plain exchange's figure is 8 bytes per ghost copy in every mode; auto
            # sends one count per neighbour and a 16-byte (place, value) pair per frontier
            # copy (hpcdist.graph.value_frontier), at most the whole send list
            sp = sssp(g, 3, exchange=mode)
            assert all(m.bytes_dense == 8 * send_total for m in sp.run.metrics)
            if mode == "auto" and comm.size > 1:
                for m in sp.run.metrics:
                    pairs, rest = divmod(m.bytes_sent - 8 * neighbours, 16)
                    assert rest == 0 and 0 <= pairs <= send_total
                assert sum(m.bytes_sent for m in sp.run.metrics) < sum(m.bytes_dense for m in sp.run.metrics)
            elif mode == "dense":
                assert all(m.bytes_sent == 8 * send_total for m in sp.run.metrics)


def expected_message_bytes(n, k, max_gap, xor_bytes):
    """The smallest of dense, sparse and XOR for an int64 message (independent arithmetic)."""
    width = 1 if max_gap < 2**8 else 2 if max_gap < 2**16 else 4
    costs = [8 * n, k * (8 + width), (n + 1) // 2 + xor_bytes]
    return min(costs)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kernels", [numba_cpu, numpy_ref], ids=["numba", "numpy"])
def test_sparse_bytes_match_the_halo_plan_arithmetic(comm, kernels):
    with skewed_graph(comm, "hash", seed=3) as g:
        lay = g.halo.layout
        gid = g.local_to_global.astype(np.int64)
        ex = SparseExchange(g.halo, kernels, min_values=0)
        ex.warm_up()
        values = np.zeros(g.n_local, dtype=np.int64)
        plain = np.zeros(g.n_local, dtype=np.int64)
        bounds = np.concatenate([[0], np.cumsum(lay.send_counts)])
        for step, every in enumerate([1, 7, 3, 1000, 2]):
            # values below 2^40; a change adds 2^40 to one vertex in `every` (by global id):
            # its XOR difference is exactly one bit in byte 6, so 6 significant bytes
            base = gid[: g.n_owned] % 1000
            changed = (gid[: g.n_owned] % every == 0) if step > 0 else np.zeros(g.n_owned, bool)
            values[: g.n_owned] = base + (changed * (step % 2)) * (1 << 40)
            prev_sent = None if step == 0 else last
            plain[: g.n_owned] = values[: g.n_owned]
            g.halo.exchange(plain)
            ex.exchange(values)
            assert np.array_equal(values[g.n_owned:], plain[g.n_owned:])  # receivers keep the unchanged ones
            cur = values[: g.n_owned][lay.send_index]
            expected = codec.HEADER_BYTES * lay.send_ranks.shape[0] if comm.size > 1 else 0
            for i in range(lay.send_ranks.shape[0]):
                seg = slice(bounds[i], bounds[i + 1])
                n = int(bounds[i + 1] - bounds[i])
                if prev_sent is None:
                    expected += 8 * n
                    continue
                pos = np.flatnonzero(cur[seg] != prev_sent[seg])
                gaps = np.diff(np.concatenate([[0], pos]))
                expected += expected_message_bytes(n, pos.size, int(gaps.max(initial=0)), 6 * pos.size)
            assert ex.bytes_sent == expected, (step, ex.modes)
            assert ex.dense_bytes == 8 * lay.n_send
            last = cur.copy()


@pytest.mark.timeout(30)
def test_binary_values_go_as_bitmaps_and_other_values_are_refused(comm):
    with skewed_graph(comm, "hash", seed=4) as g:
        ex = SparseExchange(g.halo, numba_cpu, min_values=0)
        rng = np.random.default_rng(comm.rank)
        plain = np.zeros(g.n_local, dtype=np.uint8)
        flags = np.zeros(g.n_local, dtype=np.uint8)
        for _ in range(3):
            plain[: g.n_owned] = rng.random(g.n_owned) < 0.3
            flags[: g.n_owned] = plain[: g.n_owned]
            flags[g.n_owned:] = 7  # stale ghost slots are overwritten
            g.halo.exchange(plain)
            ex.exchange(flags, binary=True)
            assert np.array_equal(flags, plain)
            if comm.size > 1:
                assert ex.bytes_sent == int(((g.halo.layout.send_counts + 7) // 8).sum())
        flags[: g.n_owned] = 2 if g.n_owned and g.halo.layout.n_send else flags[: g.n_owned]
        bad = g.halo.layout.n_send > 0 and comm.size > 1
        if bad:
            with pytest.raises(ValueError, match="declared 0/1"):
                ex.start(flags, binary=True)
        ex.close()


@pytest.mark.timeout(30)
def test_small_halos_keep_the_plain_exchange(comm):
    src = np.arange(comm.rank, 50, comm.size)
    with from_edges(src, (src * 7 + 1) % 50, n=50, comm=comm, partitioner="hash") as g:
        ex = SparseExchange(g.halo, numba_cpu)
        assert ex.plain
        x = np.zeros(g.n_local)
        x[: g.n_owned] = g.local_to_global[: g.n_owned]
        ex.exchange(x)
        assert np.array_equal(x, g.local_to_global.astype(np.float64))
        assert ex.bytes_sent == 8 * g.halo.layout.n_send


@pytest.mark.timeout(30)
def test_unknown_exchange_mode_is_one_input_error(comm):
    with skewed_graph(comm, "block") as g:
        with pytest.raises(InputError, match="exchange must be one of"):
            pagerank(g, exchange="fast")
        with pytest.raises(InputError, match="bfs: exchange must be one of"):
            bfs(g, 3, exchange="fast")


@pytest.mark.parametrize("shape", ["all-pairs", "path"])
def test_frontier_messages_carry_counts_only_where_every_rank_neighbours_every_other(comm, shape):
    size, n = comm.Get_size(), 40 * comm.Get_size()
    if shape == "all-pairs":  # an edge between every two ranks' first vertices
        pairs = [(40 * a, 40 * b) for a in range(size) for b in range(size) if a != b]
        src, dst = np.array([p[0] for p in pairs], dtype=np.int64), np.array([p[1] for p in pairs], dtype=np.int64)
    else:  # 0 - 1 - 2 - ...: a rank neighbours the ranks before and after it
        src, dst = np.arange(n - 1), np.arange(1, n)
    src, dst = np.concatenate([src, dst]), np.concatenate([dst, src])
    mine = slice(comm.rank, None, size)
    with from_edges(src[mine], dst[mine], None, n=n, comm=comm, partitioner="block") as g:
        fx = g.halo.frontier()
        assert fx.carries == (size > 1 and (shape == "all-pairs" or size == 2))
        words = int(((g.halo.layout.send_counts + 63) // 64).sum())
        assert fx.bytes_sent == 8 * (words + (CARRY_WORDS * (size - 1) if fx.carries else 0))
        if not fx.carries:
            return
        # the whole owned range in the frontier: every ghost bit set, whatever the counts
        queue = np.arange(g.n_owned, dtype=np.int64)
        own = np.array([comm.rank, 1, comm.rank ** 2, -5, 2**40], dtype=np.int64)
        for kernels in (numba_cpu, numpy_ref):
            got = np.zeros((g.n_local + 63) // 64, dtype=np.uint64)
            mine = own.copy()
            fx.start(queue, queue.shape[0], kernels, carry=mine)
            fx.finish(got, kernels, carry=mine)
            flags = np.unpackbits(got.view(np.uint8), bitorder="little")[: g.n_local]
            assert flags[: g.n_owned].sum() == 0 and flags[g.n_owned :].all()
            total = [sum(range(size)), size, sum(r * r for r in range(size)), -5 * size, size * 2**40]
            assert mine.tolist() == total
            # from the owned bits (the gather), then an empty frontier: no ghost bit
            owned = np.zeros_like(got)
            kernels.bfs_owned_bits(owned, queue, queue.shape[0], g.n_owned)
            mine = own.copy()
            fx.start(queue, queue.shape[0], kernels, owned, carry=mine)
            fx.finish(owned, kernels, carry=mine)
            assert np.unpackbits(owned.view(np.uint8), bitorder="little")[: g.n_local].all()
            assert mine.tolist() == total
            mine = own[:2].copy()
            fx.start(queue, 0, kernels, carry=mine)
            fx.finish(got, kernels, carry=mine)
            assert not got.any() and mine.tolist() == total[:2]
            with pytest.raises(ValueError, match="words to carry"):
                fx.start(queue, 0, kernels, carry=np.zeros(CARRY_WORDS + 1, dtype=np.int64))
