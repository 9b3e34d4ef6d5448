"""The memory model and its arithmetic, without MPI."""

import pytest

from hpcdist.graph.memory import (
    BASE_BYTES,
    LoadCost,
    format_bytes,
    mem_available_bytes,
    parse_bytes,
    peak_bytes_per_rank,
    ranks_that_fit,
)
from hpcdist.runtime.errors import InputError


def test_peak_shrinks_with_ranks_but_not_below_rank0_share():
    cost = LoadCost(10**6, 10**7, True, per_rank_bytes_of_input=10**8, rank0_bytes=5 * 10**8)
    peaks = [peak_bytes_per_rank(cost, p) for p in (1, 2, 4, 8, 1024)]
    assert peaks == sorted(peaks, reverse=True)
    assert peaks[-1] >= BASE_BYTES + 5 * 10**8


def test_ranks_that_fit_is_the_smallest():
    cost = LoadCost(2**20, 2**24, False)
    for avail in (300 * 2**20, 2**30, 4 * 2**30):
        p = ranks_that_fit(cost, avail)
        assert peak_bytes_per_rank(cost, p) <= avail and (p == 1 or peak_bytes_per_rank(cost, p - 1) > avail)
    assert ranks_that_fit(LoadCost(1, 1, False, rank0_bytes=2**40), 2**30) is None


def test_parse_and_format_bytes():
    assert parse_bytes("512M") == 512 * 2**20 and parse_bytes("4GiB") == 4 * 2**30 and parse_bytes("1e9") == 10**9
    assert parse_bytes(123) == 123 and parse_bytes("2k") == 2048
    assert format_bytes(1536) == "1.5 KiB" and format_bytes(12) == "12 B"
    with pytest.raises(InputError, match="not a memory size"):
        parse_bytes("lots")


def test_mem_available_reads_proc_meminfo():
    value = mem_available_bytes()
    assert value is None or value > 2**20
