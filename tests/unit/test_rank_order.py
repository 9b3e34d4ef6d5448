import numpy as np
import pytest

from hpcdist.graph.exchange import rank_order


@pytest.mark.parametrize("size", [1, 2, 3, 64, 32767, 32768, 100_000])
def test_rank_order_is_the_stable_argsort_at_every_job_size(size):
    # 16-bit keys (radix sort) up to 32767 ranks, the int64 keys themselves beyond
    rng = np.random.default_rng(size)
    dest = rng.integers(0, size, 5000)
    dest[:10] = size - 1  # the largest rank is there, on both sides of the 16-bit cut
    order = rank_order(dest, size)
    assert np.array_equal(order, np.argsort(dest, kind="stable"))
    assert np.all(np.diff(dest[order]) >= 0)
    assert rank_order(dest[:0], size).shape == (0,)
