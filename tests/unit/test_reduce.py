"""Reproducible sums: exact limb arithmetic, and the same bits for any split of the terms."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hpcdist.graph.reduce import join_carry, limbs_to_float, reproducible_sums, split_carry
from hpcdist.kernels import numba_cpu, numpy_ref


def split_sum(values, cuts):
    """Sum as if ``values`` were split over ranks at ``cuts``: one reproducible_sums per rank, combined."""
    from hpcdist.runtime.comm import MPI

    pieces = np.split(values, sorted(cuts))
    gmax = max((numpy_ref.max_abs(p) for p in pieces), default=0.0)

    class Comm:
        def Allreduce(self, send, recv, op=None):
            if op is MPI.MAX:
                recv[:] = gmax
            else:
                total = np.zeros_like(send)
                for p in pieces:
                    total += local_wire(p)
                recv[:] = total

    def local_wire(p):
        from hpcdist.graph.reduce import limbs_value, scale_exponent

        e = scale_exponent(gmax)
        return np.array(split_carry(limbs_value(numpy_ref.fixed_point_limbs(p, math.ldexp(1.0, -e)))), dtype=np.int64)

    return reproducible_sums(Comm(), [pieces[0]])[0][0]


finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@given(vals=st.lists(finite, min_size=1, max_size=60), cuts=st.lists(st.integers(0, 60), max_size=4))
def test_split_does_not_change_the_bits(vals, cuts):
    a = np.array(vals)
    whole = split_sum(a, [])
    assert split_sum(a, [c % (len(vals) + 1) for c in cuts]) == whole
    assert split_sum(a[::-1].copy(), []) == whole  # order-free too
    # And accurate: within 2^-96 of the largest term per term, plus one rounding.
    exact = sum(Fraction(v) for v in vals)
    bound = len(vals) * max(abs(v) for v in vals) * 2.0**-95 + abs(float(exact)) * 2.0**-52
    assert abs(Fraction(whole) - exact) <= Fraction(bound)


@given(total=st.integers(-(2**120), 2**120))
def test_split_carry_roundtrip(total):
    limbs = split_carry(total)
    assert all(0 <= x < 2**32 for x in limbs[1:]) and join_carry(limbs) == total


def test_limbs_to_float_exact_powers():
    assert limbs_to_float(1 << 96, 0) == 1.0
    assert limbs_to_float(-(3 << 95), 2) == -6.0
    assert limbs_to_float(0, 50) == 0.0


@pytest.mark.parametrize("n", [0, 1, 7, 10_000])
def test_numba_limbs_equal_reference(n):
    rng = np.random.default_rng(n)
    v = rng.standard_normal(n) * 10.0 ** rng.integers(-30, 3, n)
    scale = math.ldexp(1.0, -math.frexp(numpy_ref.max_abs(v) if n else 1.0)[1])
    assert np.array_equal(numba_cpu.fixed_point_limbs(v, scale), numpy_ref.fixed_point_limbs(v, scale))
    assert numba_cpu.max_abs(v) == numpy_ref.max_abs(v)


def test_serial_comm_sums_and_counts():
    from mpi4py import MPI

    comm = MPI.COMM_SELF.Dup()
    try:
        a = np.array([0.1] * 10)
        (s, z), counts = reproducible_sums(comm, [a, np.zeros(3)], numba_cpu, counts=[5, 7])
        assert s == 1.0 and z == 0.0 and counts == [5, 7]  # exact: 10 * 0.1 rounds to 1.0
        (inf,), _ = reproducible_sums(comm, [np.array([1.0, np.inf])])
        assert inf == np.inf
    finally:
        comm.Free()


def test_reduce_fixed_one_collective_and_overflow_flag():
    from mpi4py import MPI

    from hpcdist.graph.reduce import reduce_fixed

    comm = MPI.COMM_SELF.Dup()
    try:
        v = np.array([0.25, 0.5, 1e-20])
        limbs = numpy_ref.fixed_point_limbs(v, 0.5)
        (s,), counts, overflowed = reduce_fixed(comm, [limbs], [1], counts=[3])
        assert s == 0.75 + 1e-20 and counts == [3] and not overflowed
        _, _, overflowed = reduce_fixed(comm, [limbs], [1], overflow=1)
        assert overflowed
    finally:
        comm.Free()
