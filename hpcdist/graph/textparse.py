"""Fast parsing of whitespace-separated edge lines (SNAP edge lists, DIMACS ``.gr`` arcs).

One numba pass over a byte buffer of whole lines: integer ids are parsed exactly
into int64 (with overflow and sign checks), weights through the exact fast path of
decimal-to-binary conversion (at most 15 significant digits, power of ten within
1e±22: one correctly rounded multiplication or division), and the rare weight that
needs more (``nan``, ``1e-300``, 17 digits) is left to Python's ``float`` by index.
No Python code runs per line on the fast path.

Comment lines (first non-blank byte ``#`` or ``%`` in an edge list, ``c`` in a
``.gr`` file), blank lines and ``\\r`` before ``\\n`` are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

__all__ = ["ParsedLines", "parse_edge_lines", "line_of_edge", "ERROR_TEXT"]

MODE_EDGELIST = 0
MODE_DIMACS = 1

OK = 0
ERR_TOKEN = 1  # a token that is not a number
ERR_COLUMNS = 2  # a line with a different number of columns than the first data line
ERR_NEGATIVE_ID = 3
ERR_ID_OVERFLOW = 4
ERR_LINE_KIND = 5  # a .gr line that is none of c, p, a
ERR_TWO_P_LINES = 6

ERROR_TEXT = {
    ERR_TOKEN: "unparsable line (expected whitespace-separated integer ids and an optional numeric weight)",
    ERR_COLUMNS: "wrong number of columns (every line has src dst, or src dst weight; a .gr arc a src dst weight)",
    ERR_NEGATIVE_ID: "negative vertex id",
    ERR_ID_OVERFLOW: "vertex id overflow (ids must be below 2^63)",
    ERR_LINE_KIND: "unparsable line (a .gr line starts with c, p or a)",
    ERR_TWO_P_LINES: "a second problem line ('p')",
}

_INT64_MAX = np.int64(9223372036854775807)
_POW10 = np.array([10.0**k for k in range(23)], dtype=np.float64)


@dataclass
class ParsedLines:
    """What :func:`parse_edge_lines` found in one buffer.

    ``error`` is 0 or one of the ``ERR_*`` codes, ``error_line`` the 0-based line index
    of the first bad line within the buffer. ``ncols`` is the column count of the first
    data line (0 when there is none). ``p_line`` is the 0-based index of the ``.gr``
    problem line (-1 when absent) and ``p_offset`` its byte offset.
    """

    src: np.ndarray
    dst: np.ndarray
    weights: np.ndarray | None
    ncols: int
    n_lines: int
    error: int
    error_line: int
    p_line: int
    p_offset: int


@njit(cache=True)
def _is_space(c: int) -> bool:
    return c == 32 or c == 9 or c == 13 or c == 11 or c == 12


@njit(cache=True)
def _parse_uint(buf, i, end, out, k):
    """Parse a non-negative integer token ``buf[i:end]`` into ``out[k]``; return an error code."""
    if i < end and buf[i] == 45:  # '-'
        if i + 1 < end and 48 <= buf[i + 1] <= 57:
            for j in range(i + 1, end):
                if not 48 <= buf[j] <= 57:
                    return ERR_TOKEN
            return ERR_NEGATIVE_ID
        return ERR_TOKEN
    if i < end and buf[i] == 43:  # '+'
        i += 1
    if i >= end:
        return ERR_TOKEN
    v = np.int64(0)
    for j in range(i, end):
        d = buf[j] - 48
        if d < 0 or d > 9:
            return ERR_TOKEN
        if v > (_INT64_MAX - d) // 10:
            # keep scanning so that a non-digit later still reads as unparsable
            for jj in range(j + 1, end):
                if not 48 <= buf[jj] <= 57:
                    return ERR_TOKEN
            return ERR_ID_OVERFLOW
        v = v * 10 + d
    out[k] = v
    return OK


@njit(cache=True)
def _parse_float_fast(buf, i, end, pow10):
    """Exact value of a decimal token when the fast path applies; (ok, value)."""
    neg = False
    if i < end and (buf[i] == 45 or buf[i] == 43):
        neg = buf[i] == 45
        i += 1
    mant = np.int64(0)
    nsig = 0
    exp10 = 0
    ndigits = 0
    seen_dot = False
    while i < end:
        c = buf[i]
        if 48 <= c <= 57:
            ndigits += 1
            if mant > 0 or c != 48:
                nsig += 1
                if nsig > 15:
                    return False, 0.0
                mant = mant * 10 + (c - 48)
            if seen_dot:
                exp10 -= 1
        elif c == 46 and not seen_dot:  # '.'
            seen_dot = True
        else:
            break
        i += 1
    if ndigits == 0:
        return False, 0.0
    if i < end:
        if buf[i] != 101 and buf[i] != 69:  # 'e' / 'E'
            return False, 0.0
        i += 1
        eneg = False
        if i < end and (buf[i] == 45 or buf[i] == 43):
            eneg = buf[i] == 45
            i += 1
        if i >= end:
            return False, 0.0
        e = 0
        while i < end:
            c = buf[i]
            if not 48 <= c <= 57 or e > 100000:
                return False, 0.0
            e = e * 10 + (c - 48)
            i += 1
        exp10 += -e if eneg else e
    value = float(mant)
    if mant != 0:
        if exp10 > 22 or exp10 < -22:
            return False, 0.0
        if exp10 >= 0:
            value = value * pow10[exp10]
        else:
            value = value / pow10[-exp10]
    return True, -value if neg else value


_SAFE = np.int64((9223372036854775807 - 9) // 10)  # v * 10 + 9 cannot overflow below this
_EXACT_INT = np.int64(2**53)  # integers a float64 holds exactly


@njit(cache=True)
def _scan(buf, mode, src, dst, wts, slow_start, slow_end, pow10):
    # one pass: every byte is looked at once on the fast path (ids of plain digits)
    n = buf.shape[0]
    i = 0
    line = 0
    m = 0
    n_slow = 0
    ncols = 0
    p_line = -1
    p_offset = -1
    while i < n:
        j = i
        while j < n and _is_space(buf[j]):
            j += 1
        if j >= n:
            break
        c = buf[j]
        if c == 10:  # blank line
            line += 1
            i = j + 1
            continue
        skip = False
        if mode == MODE_EDGELIST:
            skip = c == 35 or c == 37  # '#', '%'
        else:
            if c == 99:  # 'c'
                skip = True
            elif c == 112:  # 'p'
                if p_line >= 0:
                    return m, ncols, n_slow, line, ERR_TWO_P_LINES, p_line, p_offset
                p_line = line
                p_offset = j
                skip = True
            elif c == 97 and j + 1 < n and _is_space(buf[j + 1]):  # 'a'
                j += 1
            else:
                return m, ncols, n_slow, line, ERR_LINE_KIND, p_line, p_offset
        if skip:
            while j < n and buf[j] != 10:
                j += 1
            line += 1
            i = j + 1
            continue
        col = 0
        while True:
            while j < n and _is_space(buf[j]):
                j += 1
            if j >= n or buf[j] == 10:
                break
            t = j
            if col < 3:
                v = np.int64(0)
                plain = True
                while t < n:
                    c = buf[t]
                    if 48 <= c <= 57 and v <= _SAFE:
                        v = v * 10 + (c - 48)
                    elif c == 10 or _is_space(c):
                        break
                    else:
                        plain = False
                    t += 1
                if col == 0:
                    if plain:
                        src[m] = v
                        err = OK
                    else:
                        err = _parse_uint(buf, j, t, src, m)
                elif col == 1:
                    if plain:
                        dst[m] = v
                        err = OK
                    else:
                        err = _parse_uint(buf, j, t, dst, m)
                else:
                    err = OK
                    if plain and v <= _EXACT_INT:
                        wts[m] = float(v)
                    else:
                        ok, x = _parse_float_fast(buf, j, t, pow10)
                        if ok:
                            wts[m] = x
                        else:
                            wts[m] = np.nan
                            slow_start[n_slow] = j
                            slow_end[n_slow] = t
                            n_slow += 1
            else:
                err = ERR_COLUMNS
            if err != OK:
                return m, ncols, n_slow, line, err, p_line, p_offset
            col += 1
            j = t
        if ncols == 0:
            ncols = col
            if col < 2 or (mode == MODE_DIMACS and col != 3):
                return m, ncols, n_slow, line, ERR_COLUMNS, p_line, p_offset
        elif col != ncols:
            return m, ncols, n_slow, line, ERR_COLUMNS, p_line, p_offset
        m += 1
        line += 1
        i = j + 1
    return m, ncols, n_slow, line, OK, p_line, p_offset


@njit(cache=True)
def _line_of_data_row(buf, mode, row):
    """0-based line index of data line number ``row`` (what :func:`_scan` counted as edge ``row``)."""
    n = buf.shape[0]
    i = 0
    line = 0
    k = 0
    while i < n:
        eol = i
        while eol < n and buf[eol] != 10:
            eol += 1
        j = i
        while j < eol and _is_space(buf[j]):
            j += 1
        if j < eol:
            c = buf[j]
            data = True
            if mode == MODE_EDGELIST:
                data = not (c == 35 or c == 37)
            else:
                data = c == 97
            if data:
                if k == row:
                    return line
                k += 1
        line += 1
        i = eol + 1
    return -1


def parse_edge_lines(data: bytes | np.ndarray, mode: int = MODE_EDGELIST) -> ParsedLines:
    """Parse a buffer of whole lines into int64 ids and float64 weights.

    Parameters
    ----------
    data : bytes or numpy.ndarray of uint8
        Whole lines (the last one may lack its ``\\n``).
    mode : int
        ``MODE_EDGELIST`` (``src dst [weight]``) or ``MODE_DIMACS`` (``a src dst weight``).

    Returns
    -------
    ParsedLines
        On an error, the arrays hold the lines before the bad one.
    """
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    upper = int(np.count_nonzero(buf == 10)) + 1 if buf.shape[0] else 0
    src = np.empty(upper, dtype=np.int64)
    dst = np.empty(upper, dtype=np.int64)
    wts = np.empty(upper, dtype=np.float64)
    slow_start = np.empty(upper, dtype=np.int64)
    slow_end = np.empty(upper, dtype=np.int64)
    m, ncols, n_slow, line, err, p_line, p_offset = _scan(buf, mode, src, dst, wts, slow_start, slow_end, _POW10)
    error_line = line if err != OK else -1
    weights = None
    if ncols >= 3:
        weights = wts[:m]
        if n_slow:
            # slow tokens were recorded in edge order, one per NaN placeholder, all
            # before any line the scan rejected
            slow_rows = np.flatnonzero(np.isnan(weights))
            for row, a, b in zip(slow_rows, slow_start[:n_slow], slow_end[:n_slow]):
                try:
                    weights[row] = float(bytes(buf[a:b]).decode("ascii", "replace"))
                except ValueError:
                    err, m = ERR_TOKEN, int(row)
                    error_line = int(_line_of_data_row(buf, mode, m))
                    break
        weights = weights[:m].copy()
    return ParsedLines(
        src=src[:m].copy(),
        dst=dst[:m].copy(),
        weights=weights,
        ncols=ncols,
        n_lines=line,
        error=err,
        error_line=error_line,
        p_line=p_line,
        p_offset=p_offset,
    )


def line_of_edge(data: bytes | np.ndarray, row: int, mode: int = MODE_EDGELIST) -> int:
    """0-based line index, within ``data``, of the ``row``-th data line (for error messages)."""
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    return int(_line_of_data_row(buf, mode, row))
