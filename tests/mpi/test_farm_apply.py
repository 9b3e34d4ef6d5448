"""distributed_apply at 1, 2, 3 and 4 ranks: the same result whatever the rank count."""

import numpy as np
import pytest

from hpcdist import distributed_apply
from hpcdist.runtime.errors import CollectiveError, InputError

pytestmark = pytest.mark.mpi


def _sum(part):
    return float(np.sum(part))


def _concat(parts):
    return [x for p in parts for x in (p if isinstance(p, list) else [p])]


def test_partitions_in_order_on_every_rank(comm):
    data = np.arange(10_007, dtype=np.float64)
    parts = distributed_apply(_sum, data, partition_size=1000, comm=comm)
    expected = [float(data[s:s + 1000].sum()) for s in range(0, 10_007, 1000)]
    assert parts == expected
    assert comm.allgather(parts) == [expected] * comm.size


def test_merge_gives_one_result(comm):
    data = list(range(1, 101))
    total = distributed_apply(sum, data, partition_size=7, merge=sum, comm=comm)
    assert total == 5050
    order = distributed_apply(lambda p: list(p), data, partition_size=9, merge=_concat, comm=comm)
    assert order == data


def test_errors_are_agreed(comm):
    with pytest.raises(InputError, match="partition_size"):
        distributed_apply(_sum, [1, 2], partition_size=0, comm=comm)

    def bad(part):
        if part[0] == 0:
            raise ValueError("first partition is bad")
        return 1

    with pytest.raises(CollectiveError, match="first partition is bad"):
        distributed_apply(bad, list(range(40)), partition_size=10, comm=comm)
