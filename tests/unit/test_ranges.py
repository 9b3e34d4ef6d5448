from hypothesis import given
from hypothesis import strategies as st

from hpcdist.runtime.ranges import owned_range, owner_of
import pytest


@given(n=st.integers(0, 10**6), size=st.integers(1, 257))
def test_ranges_tile_and_balance(n, size):
    ranges = [owned_range(n, size, r) for r in range(size)]
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    for (a, b), (c, _) in zip(ranges, ranges[1:]):
        assert b == c  # contiguous, no gap or overlap
    lengths = [b - a for a, b in ranges]
    assert max(lengths) - min(lengths) <= 1
    assert sum(lengths) == n


@given(n=st.integers(1, 10**5), size=st.integers(1, 64), data=st.data())
def test_owner_of_agrees_with_owned_range(n, size, data):
    i = data.draw(st.integers(0, n - 1))
    r = owner_of(i, n, size)
    start, stop = owned_range(n, size, r)
    assert start <= i < stop


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        owned_range(10, 0, 0)
    with pytest.raises(ValueError):
        owned_range(10, 2, 2)
    with pytest.raises(ValueError):
        owner_of(10, 10, 2)
