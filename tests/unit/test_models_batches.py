"""How predict_batch cuts its input: batch_bounds (a halved tail) and auto_batch_size. No MPI."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hpcdist.models.farm_mixin import (
    BATCHES_PER_WORKER,
    MIN_BATCH_BYTES,
    TARGET_BATCH_BYTES,
    auto_batch_size,
    batch_bounds,
)


def sizes(bounds):
    return [b - a for a, b in bounds]


@given(n=st.integers(0, 5000), bs=st.integers(1, 700), workers=st.integers(0, 6))
def test_batches_cover_every_row_once_in_order_and_never_exceed_the_batch_size(n, bs, workers):
    bounds = batch_bounds(n, bs, workers)
    assert [r for a, b in bounds for r in range(a, b)] == list(range(n))
    assert all(0 < s <= bs for s in sizes(bounds))


@given(n=st.integers(0, 5000), bs=st.integers(1, 700), workers=st.integers(0, 1))
def test_without_a_tail_the_batches_are_the_plain_slices(n, bs, workers):
    assert batch_bounds(n, bs, workers) == [(s, min(n, s + bs)) for s in range(0, n, bs)]


@given(n=st.integers(1, 5000), bs=st.integers(2, 700), workers=st.integers(2, 6))
def test_the_last_rows_go_in_half_batches(n, bs, workers):  # (a batch of 1 row has no half: the plain slices)
    got = sizes(batch_bounds(n, bs, workers))
    half = -(-bs // 2)
    full = [s for s in got if s > half]
    assert full == [bs] * len(full) and got[:len(full)] == full  # whole batches first, then only halves
    tail = got[len(full):]
    assert all(s == half for s in tail[:-1]) and 0 < tail[-1] <= half
    rest = sum(tail)
    assert rest <= workers * bs  # at most the last workers * bs rows are halved ...
    assert full == [] or rest > (workers - 1) * bs  # ... and no fewer than (workers - 1) * bs of them
    # The end is shorter: no batch among the last `workers` has more than half the rows.
    assert all(s <= half for s in got[-workers:])


def test_a_worked_example():
    # 32,768 rows of 1,024 over 2 workers: 30 whole batches, then the last 2,048 rows in 4 halves.
    got = sizes(batch_bounds(32768, 1024, 2))
    assert got == [1024] * 30 + [512] * 4
    assert batch_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert batch_bounds(10, 4, tail_workers=2) == [(0, 4), (4, 6), (6, 8), (8, 10)]
    assert batch_bounds(0, 4, 2) == []


def test_auto_batch_size_aims_at_batches_per_worker_within_byte_bounds():
    row = 64 * 8  # 64 float64 features
    # The aim: BATCHES_PER_WORKER batches per worker.
    n = BATCHES_PER_WORKER * 2 * 1024
    assert auto_batch_size(n, row, 2) == 1024
    assert auto_batch_size(n + 1, row, 2) == 1025  # rounded up: never more than the aim
    # A huge input: batches of at most TARGET_BATCH_BYTES.
    assert auto_batch_size(10**9, row, 2) == TARGET_BATCH_BYTES // row
    # A small one: batches of at least MIN_BATCH_BYTES (fewer, larger batches).
    assert auto_batch_size(1000, row, 2) == MIN_BATCH_BYTES // row
    # Unknown length (an iterator): TARGET_BATCH_BYTES.
    assert auto_batch_size(None, row, 2) == TARGET_BATCH_BYTES // row
    # Rows larger than the target: one row per batch.
    assert auto_batch_size(100, TARGET_BATCH_BYTES * 2, 2) == 1
    # More workers: smaller batches for the same input.
    assert auto_batch_size(10**6, row, 8) < auto_batch_size(10**6, row, 2)


def test_batch_bounds_refuses_an_empty_batch():
    import pytest

    for bad in (0, -3):
        with pytest.raises(ValueError, match="batch_size must be at least 1"):
            batch_bounds(10, bad)
