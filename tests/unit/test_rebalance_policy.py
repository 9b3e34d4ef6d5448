"""Rebalancing arithmetic (no MPI): the decision, the targets and the cut of the boundaries."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hpcdist.graph.rebalance import (
    RebalancePolicy,
    RebalanceRecord,
    balanced_bounds,
    bounds_from_counts,
    count_below,
    cut_targets,
    imbalance,
    vertex_work,
)
from hpcdist.runtime.errors import InputError


def _work(weights, bounds):
    prefix = np.concatenate([[0.0], np.cumsum(weights)])
    return prefix[bounds[1:]] - prefix[bounds[:-1]]


def test_imbalance_is_max_over_mean():
    assert imbalance(np.array([1.0, 3.0])) == pytest.approx(1.5)
    assert imbalance(np.array([2.0, 2.0, 2.0])) == 1.0
    assert imbalance(np.zeros(4)) == 1.0


def test_targets_follow_speed():
    # rank 1 did the same work in three times the seconds: it should get a third of rank 0's share
    t = cut_targets(np.array([1.0, 3.0]), np.array([100.0, 100.0]))
    assert t == pytest.approx([200.0 * 3 / 4])
    # equal speeds: equal shares of the total, wherever the work is now
    t = cut_targets(np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0, 30.0]))
    assert t == pytest.approx([20.0, 40.0])


def test_targets_without_a_measurement_assume_the_mean_speed():
    t = cut_targets(np.array([1.0, 0.0, 1.0]), np.array([10.0, 0.0, 10.0]))
    assert t == pytest.approx([20.0 / 3, 40.0 / 3])


def test_count_below_is_the_same_in_slices():
    rng = np.random.default_rng(3)
    w = rng.integers(0, 9, 200).astype(float)
    targets = np.array([10.0, 250.0, 400.0, 700.0])
    whole = count_below(w, 0.0, targets)
    parts = np.zeros_like(whole)
    for lo, hi in ((0, 37), (37, 37), (37, 150), (150, 200)):
        parts += count_below(w[lo:hi], float(w[:lo].sum()), targets)
    assert parts.tolist() == whole.tolist()
    # vertex v lies before T when its midpoint does
    mids = np.cumsum(w) - w / 2
    assert whole.tolist() == [int((mids < t).sum()) for t in targets]


def test_slow_rank_loses_vertices_and_neighbours_gain():
    n, p = 1000, 4
    w = vertex_work(np.full(n, 3))
    bounds = np.array([0, 250, 500, 750, 1000])
    seconds = np.array([1.0, 3.0, 1.0, 1.0])  # rank 1 three times slower per unit
    new = balanced_bounds(w, bounds, seconds)
    sizes, old = np.diff(new), np.diff(bounds)
    assert new[0] == 0 and new[-1] == n and np.all(np.diff(new) > 0)
    assert sizes[1] < old[1]
    assert all(sizes[r] > old[r] for r in (0, 2, 3))
    assert sizes.sum() == n
    # at the measured speeds, every rank would now take about the same time
    per_unit = seconds / _work(w, bounds)
    assert imbalance(per_unit * _work(w, new)) < 1.02
    assert sizes[1] == pytest.approx(n / 10, abs=2)  # speed shares 3:1:3:3


def test_balanced_ranks_keep_their_bounds():
    w = vertex_work(np.random.default_rng(0).integers(0, 20, 500))
    mids = np.cumsum(w) - w / 2
    bounds = np.concatenate([[0], np.searchsorted(mids, w.sum() * np.array([1, 2]) / 3), [500]])
    seconds = _work(w, bounds) * 1e-6  # equal work at equal speed: nothing to move
    assert np.abs(balanced_bounds(w, bounds, seconds) - bounds).max() <= 1
    # equal speed, unequal work: the cut goes to equal work
    uneven = np.array([0, 100, 260, 500])
    assert balanced_bounds(w, uneven, _work(w, uneven) * 1e-6).tolist() == bounds.tolist()


def test_heavy_part_is_split_by_work_not_by_vertices():
    deg = np.concatenate([np.full(100, 50), np.zeros(900, dtype=np.int64)])
    w = vertex_work(deg)
    bounds = np.array([0, 500, 1000])
    seconds = _work(w, bounds) * 1e-6  # equal speed: only the work is uneven
    new = balanced_bounds(w, bounds, seconds)
    assert new[1] < 500  # rank 0 held the heavy vertices: it gives some away
    assert imbalance(_work(w, new)) < 1.05


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), p=st.integers(1, 8), seed=st.integers(0, 10_000))
def test_bounds_always_valid(n, p, seed):
    rng = np.random.default_rng(seed)
    w = vertex_work(rng.integers(0, 30, n))
    bounds = np.sort(rng.integers(0, n + 1, p + 1))
    bounds[0], bounds[-1] = 0, n
    seconds = rng.uniform(0.0, 2.0, p)
    new = balanced_bounds(w, bounds, seconds)
    assert new.shape == (p + 1,) and new[0] == 0 and new[-1] == n
    assert np.all(np.diff(new) >= 0)
    if n >= p:
        assert np.all(np.diff(new) >= 1)


def test_bounds_from_counts_repairs_order_and_empty_parts():
    assert bounds_from_counts(np.array([5, 3, 9]), 10, 4).tolist() == [0, 5, 6, 9, 10]
    assert bounds_from_counts(np.array([0, 0, 0]), 10, 4).tolist() == [0, 1, 2, 3, 10]
    assert bounds_from_counts(np.array([10, 10, 10]), 10, 4).tolist() == [0, 7, 8, 9, 10]
    assert bounds_from_counts(np.array([1]), 1, 2).tolist() == [0, 1, 1]


def test_policy_decision():
    pol = RebalancePolicy(threshold=1.2, max_rebalances=2, min_gain=0.05)
    assert pol.due(1.5, 1.0, 0.3, done=0)
    assert not pol.due(1.1, 1.0, 0.3, done=0)  # below the threshold
    assert not pol.due(1.5, 1.0, 0.3, done=2)  # no rebalances left
    assert not pol.due(1.5, 1.0, 0.01, done=0)  # not worth it
    assert not pol.due(1.5, 1.6, 0.3, done=0)  # would be worse
    assert not pol.due(1.5, 1.0, 0.3, done=0, saving_s=1e-4)  # saves too little time per superstep
    assert pol.due(1.5, 1.0, 0.3, done=0, saving_s=2e-3)
    assert pol.measured_needed(False) == 3 and pol.measured_needed(True) == 4


@pytest.mark.parametrize("kw", [{"threshold": 0.9}, {"window": 0}, {"max_rebalances": -1}, {"min_gain": 1.0},
                                {"threshold": float("nan")}, {"min_saving_s": -1.0}])
def test_policy_refuses_nonsense(kw):
    with pytest.raises(InputError):
        RebalancePolicy(**kw)


def test_record_line():
    r = RebalanceRecord(superstep=5, old_bounds=[0, 50, 100], new_bounds=[0, 75, 100], imbalance_before=2.9,
                        imbalance_predicted=1.1, moved_vertices=25, moved_edges=300, migration_seconds=0.01)
    line = r.line()
    assert line.startswith("rebalance at superstep 5: compute imbalance 2.90 -> 1.10 predicted")
    assert "moved 25 vertices" in line and "75/25" in line
    r.imbalance_after = 1.05
    assert "-> 1.05 measured" in r.line()
    assert r.as_dict()["new_bounds"] == [0, 75, 100]


def test_slow_hook_wraps_every_new_program_once():
    """A rebalanced run builds a new program per segment: each one is slowed, none twice."""
    import gc

    from hpcdist.metrics.slow import SlowSpec, slow_hook

    class FakeComm:
        def Get_rank(self):
            return 1

    class Program:
        def compute(self, step):
            return step

    hook = slow_hook(FakeComm(), SlowSpec(1, 3.0))
    wrapped = []
    for _ in range(4):  # freed and rebuilt: CPython may hand out the same id() again
        prog = Program()
        hook(0, prog)
        first = prog.compute
        hook(1, prog)
        assert prog.compute is first  # not wrapped a second time
        wrapped.append("compute" in vars(prog))
        del prog, first
        gc.collect()
    assert all(wrapped)
