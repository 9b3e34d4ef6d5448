"""The structure of a metrics file, checked once when it is read for a report or a status.

:func:`hpcdist.metrics.io.read_metrics` checks that a file is an hpcdist metrics file;
the readers (``hpcdist report``, ``hpcdist status``) also need every field they use to
have the type the writer gives it, or a plot fails deep inside with a traceback. The
descriptions below mirror what :mod:`hpcdist.metrics.io` writes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from hpcdist.runtime.errors import InputError

__all__ = ["READ_VERSIONS", "FieldError", "describe_value", "check_value", "check_version", "check_metrics_file"]

#: Metrics format versions this build reads.
READ_VERSIONS = (1,)


# -- checking a metrics file -----------------------------------------------------------
#
# read_metrics checks the file (present, JSON, an hpcdist-metrics header); the report
# also needs every field it reads to have the type the writer gives it, or a plot
# fails deep inside with a traceback. A spec is a kind name ("num", "int", "str",
# "bool", "any"; with "!" the field must be present and not null, with "+" it may be
# absent but not null), a dict (an object, its listed fields checked, others ignored
# for forward compatibility), ("list", spec), ("map", spec) (an object of any keys),
# ("tuple", n, spec) (a list whose first n items match, or an empty list) or a
# function (value, where). Null stands for NaN and infinity in these files, so it is
# accepted unless the spec says otherwise.

class FieldError(Exception):
    """A field of a JSON document with the wrong type: ``field X: expected ..., got ...``."""

    def __init__(self, where: str, expected: str, got: str) -> None:
        super().__init__(f"field {where}: expected {expected}, got {got}")


def describe_value(value: Any) -> str:
    """A JSON value as an error message names it: ``a string ("fast")``, ``a list (3 items)``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return f"a string ({json.dumps(text)})"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, list):
        return f"a list ({len(value)} item{'' if len(value) == 1 else 's'})"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


_KINDS: dict[str, tuple[str, Any]] = {
    "num": ("a finite number", _is_num),
    "int": ("an integer", lambda v: _is_num(v) and float(v).is_integer()),
    "str": ("a string", lambda v: isinstance(v, str)),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "any": ("anything", lambda v: True),
}


def _join(where: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else str(key)


def check_value(value: Any, spec: Any, where: str = "") -> None:
    """Check a JSON value against a spec (see the comment above); raise :class:`FieldError` at the first problem.

    Fields are visited in the file's order, so the problem named is the first one a
    reader of the file would meet.
    """
    if callable(spec):
        spec(value, where)
        return
    if isinstance(spec, str):
        kind = spec.rstrip("!+")
        name, ok = _KINDS[kind]
        if value is None:
            if spec != kind:
                raise FieldError(where, name, "null")
            return
        if not ok(value):
            raise FieldError(where, name, describe_value(value))
        return
    if value is None:
        return
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            raise FieldError(where, "an object", describe_value(value))
        for key, item in value.items():
            if key in spec:
                check_value(item, spec[key], _join(where, key))
        for key, sub in spec.items():
            if isinstance(sub, str) and sub.endswith("!") and key not in value:
                raise FieldError(_join(where, key), _KINDS[sub[:-1]][0], "nothing (the field is missing)")
        return
    shape = spec[0]
    if shape == "map":
        if not isinstance(value, dict):
            raise FieldError(where, "an object", describe_value(value))
        for key, item in value.items():
            check_value(item, spec[1], _join(where, key))
        return
    if not isinstance(value, list):
        raise FieldError(where, "a list", describe_value(value))
    if shape == "list":
        for i, item in enumerate(value):
            if item is None and not isinstance(spec[1], str):  # a record in a list is never null
                raise FieldError(_join(where, i), "an object" if not isinstance(spec[1], tuple) else "a list", "null")
            check_value(item, spec[1], _join(where, i))
    elif shape == "tuple":
        n = spec[1]
        if value and len(value) < n:
            raise FieldError(where, f"a list of {n} items", describe_value(value))
        for i, item in enumerate(value[:n]):
            check_value(item, spec[2], _join(where, i))


_STATS = {"min": "num", "mean": "num", "max": "num", "sum": "num", "argmin": "int", "argmax": "int"}
_HEADER = {"format": "str", "version": "int", "kind": "str", "algorithm": "str", "ranks": "int", "supersteps": "int",
           "first_superstep": "int", "converged": "bool", "seconds": "num", "resumed_from": "int",
           "graph": ("map", "any"), "bytes_split": "str", "fields": ("list", "str"), "created": "str",
           "workers": "int", "strategy": "str"}
_SUPERSTEP = {"superstep": "int", "active": "num", "compute_s": _STATS, "exchange_s": _STATS, "reduce_s": _STATS,
              "step_s": _STATS, "bytes_sent": _STATS, "bytes_received": _STATS, "messages_sent": _STATS,
              "idle_s": _STATS, "communication_s": "num", "imbalance": "num", "bound": "str"}
_SUMMARY = {"totals": ("map", _STATS), "peak_rss_bytes": _STATS, "imbalance_overall": "num", "communication_s": "num"}
_TASK_TIME = {"count": "int", "sum": "num", "mean": "num", "min": "num", "p50": "num", "p90": "num", "p99": "num",
              "max": "num", "buckets": ("list", ("tuple", 3, "num!")), "sub_buckets": "int"}
_FARM_SUMMARY = {"seconds": "num", "submitted": "int", "completed": "int", "outcomes": ("map", "int"),
                 "pending": "int", "running": "int", "throughput": "num", "busy_s": "num", "retries": ("map", "int"),
                 "strategies": ("list", {"t": "num", "strategy": "str"}),
                 "load": {"workers": "int", "imbalance_busy": "num", "imbalance_tasks": "num",
                          "tasks": {"min": "num", "mean": "num", "max": "num"},
                          "busy_s": {"min": "num", "mean": "num", "max": "num"},
                          "busiest": "int", "least_busy": "int", "share": ("map", "num")}}
_FARM_WORKER = {"rank": "int!", "host": "str", "status": "str", "tasks": "int+", "errors": "int", "busy_s": "num",
                "idle_s": "num", "wall_s": "num", "utilisation": "num", "bytes_sent": "num", "bytes_received": "num",
                "messages_sent": "int", "messages_received": "int", "ewma_s": "num", "peak_rss": "num",
                "task_time": _TASK_TIME, "functions": ("map", "any")}
_FARM_FUNCTION = {"fn": "str", "tasks": "int", "errors": "int", "busy_s": "num", "ewma_s": ("map", "num"),
                  "outcomes": ("map", "int"), "retries": ("map", "int"), "task_time": _TASK_TIME}
_FARM_TASK = {"fn": "str", "rank": "int", "status": "str", "submitted": "num", "started": "num", "finished": "num",
              "attempts": "int"}


def _check_finding(value: Any, where: str) -> None:
    check_value(value, {"kind": "str", "severity": "str", "evidence": {}}, where)
    kind, evidence = value.get("kind"), value.get("evidence")
    if kind == "straggler":  # the plots shade evidence.supersteps [first, last]
        check_value(evidence, {"supersteps": ("tuple", 2, "num!"), "threshold": "num+"}, _join(where, "evidence"))
    elif kind == "farm_drift":  # the EWMA plot marks evidence.rank over evidence.t
        if not isinstance(evidence, dict):
            raise FieldError(_join(where, "evidence"), "an object", describe_value(evidence))
        check_value(evidence, {"rank": "int!", "fn": "str", "t": ("tuple", 2, "num")}, _join(where, "evidence"))


def _check_throughput(value: Any, where: str) -> None:
    check_value(value, {"bucket_s": "num", "counts": ("list", "int!"), "total": "int"}, where)
    if value and value.get("counts") and value.get("bucket_s") is not None and value["bucket_s"] <= 0:
        raise FieldError(_join(where, "bucket_s"), "a positive number", describe_value(value["bucket_s"]))


def _check_ewma(value: Any, where: str) -> None:
    check_value(value, {"fn": "str", "t": ("list", "num"), "ranks": ("list", "int!"),
                        "ewma_s": ("list", ("list", "num"))}, where)
    if value:
        t, rows = value.get("t") or [], value.get("ewma_s") or []
        if len(rows) != len(t):
            raise FieldError(_join(where, "ewma_s"), f"one row per sample time ({len(t)} in t)", describe_value(rows))


_RECORDS: dict[str, Any] = {"header": _HEADER, "superstep": _SUPERSTEP, "finding": _check_finding,
                            "summary": _SUMMARY, "farm_task": _FARM_TASK, "farm_summary": _FARM_SUMMARY,
                            "farm_worker": _FARM_WORKER, "farm_function": _FARM_FUNCTION,
                            "farm_throughput": _check_throughput, "farm_ewma": _check_ewma}
_DOCUMENT = {"header": _HEADER, "supersteps": ("list", _SUPERSTEP), "findings": ("list", _check_finding),
             "summary": _SUMMARY, "farm_tasks": ("list", _FARM_TASK),
             "farm": {"summary": _FARM_SUMMARY, "workers": ("list", _FARM_WORKER),
                      "functions": ("list", _FARM_FUNCTION), "throughput": _check_throughput,
                      "ewma": ("list", _check_ewma)}}


def check_version(what: str, version: int, reads: tuple[int, ...], path: str | Path) -> None:
    """Refuse a file format ``version`` not in ``reads``, saying whether hpcdist is too old for it.

    Raises
    ------
    InputError
        ``FILE: WHAT format version N is newer than this hpcdist reads (...)`` or
        ``... is not one this hpcdist reads (...)``.
    """
    if version in reads:
        return
    listed = f"version {', '.join(map(str, reads))}"
    why = (f"is newer than this hpcdist reads ({listed}); upgrade hpcdist to read it" if version > max(reads)
           else f"is not one this hpcdist reads ({listed})")
    raise InputError(f"{what} format version {version} {why}", path=str(path))


def check_metrics_file(path: str | Path, doc: dict[str, Any]) -> None:
    """Check the version and the structure of a metrics file that :func:`read_metrics` accepted.

    Parameters
    ----------
    path : path
        The file (read again here: ``read_metrics`` turns a string where a list belongs
        into a list of characters, so the file itself is what is checked).
    doc : dict
        ``read_metrics(path)``.

    Raises
    ------
    InputError
        ``FILE: field X: expected ..., got ...`` (``FILE:LINE:`` for a ``.jsonl`` record)
        at the first problem, or a header version this build does not read.
    """
    path = Path(path)
    header = doc.get("header")
    if isinstance(header, dict) and "version" in header:
        version = header["version"]
        if not (_is_num(version) and float(version).is_integer()):
            raise InputError(f"field header.version: expected an integer, got {describe_value(version)}",
                             path=str(path))
        check_version("metrics", int(version), READ_VERSIONS, path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise InputError(f"cannot read metrics file ({why})", path=str(path)) from None
    try:
        data = json.loads(text)
    except ValueError:
        data = None  # one record per line
    try:
        if isinstance(data, dict) and "type" not in data:
            check_value(data, _DOCUMENT)
            return
    except FieldError as bad:
        raise InputError(str(bad), path=str(path)) from None
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as exc:
            raise InputError(f"not valid JSON: {exc}", path=str(path), line=i) from None
        spec = _RECORDS.get(rec.get("type")) if isinstance(rec, dict) else None
        try:
            if spec is not None:
                check_value(rec, spec)
        except FieldError as bad:
            raise InputError(f"{rec['type']} record: {bad}", path=str(path), line=i) from None
