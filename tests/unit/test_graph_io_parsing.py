"""The numba edge-line parser, the CSR row collapse and the ownership helpers, without MPI."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hpcdist.graph.hdf5csr import collapse_rows
from hpcdist.graph.textparse import (
    ERR_COLUMNS,
    ERR_ID_OVERFLOW,
    ERR_LINE_KIND,
    ERR_NEGATIVE_ID,
    ERR_TOKEN,
    ERR_TWO_P_LINES,
    MODE_DIMACS,
    line_of_edge,
    parse_edge_lines,
)
from hpcdist.graph.partition import block_owner
from hpcdist.graph.vertex_ids import range_starts
from hpcdist.runtime.ranges import owned_range, owner_of


def test_comments_blank_lines_crlf_tabs():
    r = parse_edge_lines(b"# header\r\n1\t2\r\n\r\n% other\n  3   4  \n5 6")
    assert r.error == 0 and r.ncols == 2 and r.weights is None
    assert r.src.tolist() == [1, 3, 5] and r.dst.tolist() == [2, 4, 6] and r.n_lines == 6


def test_ids_up_to_2_to_63_minus_1():
    r = parse_edge_lines(b"9223372036854775807 0\n4611686018427387904 2147483648\n")
    assert r.error == 0 and r.src.tolist() == [2**63 - 1, 2**62] and r.dst.tolist() == [0, 2**31]


@pytest.mark.parametrize(
    "text,code,line",
    [
        (b"1 2\n3 x\n", ERR_TOKEN, 1),
        (b"1 2\n3 4.0\n", ERR_TOKEN, 1),
        (b"1 2\n3 4 5\n", ERR_COLUMNS, 1),
        (b"1\n", ERR_COLUMNS, 0),
        (b"1 2 3 4\n", ERR_COLUMNS, 0),
        (b"# c\n1 -2\n", ERR_NEGATIVE_ID, 1),
        (b"1 9223372036854775808\n", ERR_ID_OVERFLOW, 0),
        (b"1 2 w\n", ERR_TOKEN, 0),
    ],
)
def test_errors_name_the_first_bad_line(text, code, line):
    r = parse_edge_lines(text)
    assert (r.error, r.error_line) == (code, line)
    assert r.src.shape[0] == line - text[: text.find(b"\n") + 1].startswith(b"#")


def test_dimacs_mode():
    r = parse_edge_lines(b"c x\np sp 3 2\na 1 2 7\na 2 3 0.5\n", MODE_DIMACS)
    assert r.error == 0 and r.p_line == 1 and r.weights.tolist() == [7.0, 0.5]
    assert parse_edge_lines(b"p sp 3 1\nx 1 2 3\n", MODE_DIMACS).error == ERR_LINE_KIND
    assert parse_edge_lines(b"p sp 3 1\np sp 3 1\n", MODE_DIMACS).error == ERR_TWO_P_LINES
    assert parse_edge_lines(b"p sp 3 1\na 1 2\n", MODE_DIMACS).error == ERR_COLUMNS


def test_slow_path_weights_are_exact():
    r = parse_edge_lines(b"0 1 nan\n1 2 1e-300\n2 3 0.12345678901234567\n3 4 inf\n4 5 1E+5\n")
    assert r.error == 0
    w = r.weights
    assert np.isnan(w[0]) and w[1] == 1e-300 and w[2] == 0.12345678901234567 and np.isinf(w[3]) and w[4] == 1e5


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(min_value=0, allow_nan=False, allow_infinity=False), min_size=1, max_size=20),
       st.sampled_from(["{!r}", "{:.3f}", "{:.15g}", "{:e}", "{:.6E}"]))
def test_weights_parse_like_python_float(values, fmt):
    tokens = [fmt.format(v) for v in values]
    text = "".join(f"{i} {i + 1} {t}\n" for i, t in enumerate(tokens)).encode()
    r = parse_edge_lines(text)
    assert r.error == 0
    assert r.weights.tolist() == [float(t) for t in tokens]


def test_line_of_edge_skips_comments():
    text = b"# a\n1 2\n\n# b\n3 4\n5 6\n"
    assert [line_of_edge(text, k) for k in range(3)] == [1, 4, 5]


def test_collapse_rows_keeps_smallest_weight_sorted():
    src = np.array([5, 4, 5, 5, 4, 6], dtype=np.int64)
    dst = np.array([2, 9, 1, 2, 9, 0], dtype=np.int64)
    w = np.array([3.0, 1.0, 4.0, 0.5, 2.0, 1.0])
    counts, indices, weights = collapse_rows(src, dst, w, 4, 8)
    assert counts.tolist() == [1, 2, 1, 0]
    assert indices.tolist() == [9, 1, 2, 0] and weights.tolist() == [1.0, 4.0, 0.5, 1.0]
    counts, indices, weights = collapse_rows(src, dst, None, 4, 8)
    assert counts.tolist() == [1, 2, 1, 0] and weights is None


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 70))
def test_block_owner_and_range_starts_match_owner_of(n, size):
    idx = np.unique(np.linspace(0, max(n - 1, 0), 50).astype(np.int64)) if n else np.empty(0, np.int64)
    assert block_owner(idx, n, size).tolist() == [owner_of(int(i), n, size) for i in idx]
    assert range_starts(n, size).tolist() == [owned_range(n, size, r)[0] for r in range(size)]
