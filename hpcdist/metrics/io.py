"""Metrics files: one JSON document (``.json``) or one record per line (``.jsonl``).

Both hold the same records (format in docs/metrics.md): a ``header``, one ``superstep``
record per superstep, one ``finding`` per finding, a ``summary``, the task farm's
records (``farm_summary``, ``farm_worker``, ``farm_function``, ``farm_throughput``,
``farm_ewma``) and any number of ``farm_task`` records. Rank 0 writes the file atomically
(:func:`hpcdist.checkpoint.atomic.write_atomic`), so a reader never sees half of it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from hpcdist.checkpoint.atomic import write_atomic
from hpcdist.runtime.errors import InputError, collective

if TYPE_CHECKING:
    from mpi4py import MPI

    from hpcdist.metrics.run import RunMetrics

__all__ = ["write_metrics", "read_metrics", "check_metrics_path", "metrics_records", "farm_task_record", "FARM_TASK_FIELDS"]

#: Fields of a ``farm_task`` record (times are Unix seconds; see docs/metrics.md).
FARM_TASK_FIELDS = ("id", "fn", "rank", "status", "submitted", "started", "finished", "attempts")


def farm_task_record(id: int, *, fn: str = "", rank: int | None = None, status: str = "completed",
                     submitted: float | None = None, started: float | None = None, finished: float | None = None,
                     attempts: int = 1) -> dict[str, Any]:
    """One ``farm_task`` record (the schema the farm will emit; the report reads it today)."""
    return {"type": "farm_task", "id": int(id), "fn": str(fn), "rank": rank, "status": str(status),
            "submitted": submitted, "started": started, "finished": finished, "attempts": int(attempts)}


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as null (strict readers would refuse the file)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars
        return _clean(value.item())
    return value


def metrics_records(metrics: "RunMetrics | None", *, findings: Sequence[Mapping[str, Any]] | None = None,
                    farm_tasks: Iterable[Mapping[str, Any]] = (),
                    farm: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every record of a metrics file, in file order.

    ``findings`` default to ``metrics.findings()``; ``farm_tasks`` are ``farm_task``
    records; ``farm`` is a farm metrics document (:func:`hpcdist.metrics.farm.farm_metrics`,
    ``Farm.metrics()``). Without ``metrics`` the file holds a farm header (``farm``'s) and
    the farm's records.
    """
    out: list[dict[str, Any]] = []
    tasks = [dict(t, type="farm_task") for t in farm_tasks]
    if metrics is not None:
        out.append(metrics.header())
        out.extend(metrics.superstep_records())
        found = metrics.findings() if findings is None else findings
    else:
        head = {"type": "header", "format": "hpcdist-metrics", "version": 1, "kind": "farm"}
        head.update((farm or {}).get("header") or {})
        out.append(dict(head, type="header"))
        found = findings if findings is not None else (farm or {}).get("findings") or []
    out.extend(dict(f, type="finding") for f in found)
    if metrics is not None:
        out.append(metrics.summary())
    if farm:
        if farm.get("summary"):
            out.append(dict(farm["summary"], type="farm_summary"))
        out.extend(dict(w, type="farm_worker") for w in farm.get("workers") or [])
        out.extend(dict(f, type="farm_function") for f in farm.get("functions") or [])
        if farm.get("throughput"):
            out.append(dict(farm["throughput"], type="farm_throughput"))
        out.extend(dict(e, type="farm_ewma") for e in farm.get("ewma") or [])
    out.extend(tasks)
    return [_clean(r) for r in out]


def _empty_farm() -> dict[str, Any]:
    return {"summary": None, "workers": [], "functions": [], "throughput": None, "ewma": []}


def _document(records: list[dict[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {"header": None, "supersteps": [], "findings": [], "summary": None, "farm_tasks": [],
                           "farm": _empty_farm()}
    farm = doc["farm"]
    for r in records:
        kind = r.get("type")
        if kind == "header":
            doc["header"] = r
        elif kind == "superstep":
            doc["supersteps"].append(r)
        elif kind == "finding":
            doc["findings"].append(r)
        elif kind == "summary":
            doc["summary"] = r
        elif kind == "farm_task":
            doc["farm_tasks"].append(r)
        elif kind == "farm_summary":
            farm["summary"] = r
        elif kind == "farm_worker":
            farm["workers"].append(r)
        elif kind == "farm_function":
            farm["functions"].append(r)
        elif kind == "farm_throughput":
            farm["throughput"] = r
        elif kind == "farm_ewma":
            farm["ewma"].append(r)
    return doc


def _json_document(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``.json`` layout: the graph part as before, the farm's records under ``"farm"`` (only when present)."""
    doc = _document(records)
    if doc["farm"] == _empty_farm():
        del doc["farm"]
    return doc


def check_metrics_path(path: str | Path, inputs: Sequence[str | None] = (), probe: bool = True) -> None:
    """Refuse a metrics path before a run rather than after it: it must end in .json or .jsonl,
    and be writable without overwriting one of ``inputs``
    (:func:`hpcdist.runtime.paths.check_output_path`, whose ``probe`` it passes on).

    Raises
    ------
    InputError
        Another suffix, a directory, a parent directory that does not exist or cannot be
        written, or an input's path.
    """
    from hpcdist.runtime.paths import check_output_path

    path = Path(path)
    if path.suffix not in (".json", ".jsonl"):
        raise InputError("a metrics file must end in .json (one document) or .jsonl (one record per line)",
                         path=str(path))
    check_output_path(path, inputs=inputs, what="metrics file", probe=probe)


def _encode(path: Path, records: list[dict[str, Any]]) -> bytes:
    if path.suffix == ".jsonl":
        return "".join(json.dumps(r, allow_nan=False, separators=(",", ":")) + "\n" for r in records).encode()
    if path.suffix == ".json":
        return (json.dumps(_json_document(records), allow_nan=False, indent=1) + "\n").encode()
    raise InputError("a metrics file must end in .json (one document) or .jsonl (one record per line)",
                     path=str(path))


def write_metrics(
    path: str | Path,
    metrics: "RunMetrics | None" = None,
    *,
    comm: "MPI.Intracomm | None" = None,
    findings: Sequence[Mapping[str, Any]] | None = None,
    farm_tasks: Iterable[Mapping[str, Any]] = (),
    farm: Mapping[str, Any] | None = None,
) -> None:
    """Write a metrics file from rank 0, atomically.

    Parameters
    ----------
    path : path
        ``*.json`` or ``*.jsonl``.
    metrics : RunMetrics, optional
        Equal on every rank; only rank 0 (``metrics.rank``, or ``comm``'s rank) writes.
    comm : mpi4py.MPI.Intracomm, optional
        When given, the call is collective over it and a failure (bad suffix, a
        directory that does not exist) raises the same :class:`InputError` on every
        rank. Without it, only rank 0 can fail.
    findings : sequence of dict, optional
        Instead of ``metrics.findings()`` (e.g. computed with other thresholds).
    farm_tasks : iterable of dict
        ``farm_task`` records (:func:`farm_task_record`).
    farm : dict, optional
        A task farm's metrics document (``Farm.metrics()``); ``Farm(metrics=path)`` writes it
        with this function at shutdown.
    """
    path = Path(path)
    rank = comm.Get_rank() if comm is not None else (metrics.rank if metrics is not None else 0)

    def write() -> None:
        data = _encode(path, metrics_records(metrics, findings=findings, farm_tasks=farm_tasks, farm=farm))
        if rank != 0:
            return
        try:
            write_atomic(path, data)
        except OSError as exc:
            raise InputError(f"cannot write metrics ({exc.strerror})", path=str(path)) from None

    if comm is None:
        write()
    else:
        with collective(comm):
            write()


def read_metrics(path: str | Path) -> dict[str, Any]:
    """Read a ``.json`` or ``.jsonl`` metrics file into one document.

    Returns
    -------
    dict
        ``{"header", "supersteps", "findings", "summary", "farm_tasks", "farm"}`` (lists
        for the record kinds that repeat; None for a missing header or summary). ``farm``
        is ``{"summary", "workers", "functions", "throughput", "ewma"}``, empty without
        a task farm's records.

    Raises
    ------
    InputError
        Missing or unreadable file, invalid JSON (with the line for ``.jsonl``), or
        not an hpcdist metrics file.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError("no such metrics file", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read metrics file ({getattr(exc, 'strerror', None) or exc})", path=str(path)) from None
    stripped = text.lstrip()
    if stripped.startswith("{") and "\n{" not in stripped.rstrip():
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"not valid JSON: {exc.msg}", path=str(path), line=exc.lineno) from None
        if not isinstance(data, dict):
            raise InputError("not an hpcdist metrics file (expected a JSON object)", path=str(path))
        if "type" in data:  # a .jsonl file of a single record
            doc = _document([data])
        else:
            doc = {"header": data.get("header"), "supersteps": list(data.get("supersteps") or []),
                   "findings": list(data.get("findings") or []), "summary": data.get("summary"),
                   "farm_tasks": list(data.get("farm_tasks") or []), "farm": _empty_farm()}
            farm = data.get("farm") if isinstance(data.get("farm"), dict) else {}
            for key, value in farm.items():
                if key in doc["farm"] and value is not None:
                    doc["farm"][key] = list(value) if isinstance(doc["farm"][key], list) else value
    else:
        records = []
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"not valid JSON: {exc.msg}", path=str(path), line=i) from None
            if not isinstance(rec, dict) or "type" not in rec:
                raise InputError("not an hpcdist metrics record (expected an object with a 'type')",
                                 path=str(path), line=i)
            records.append(rec)
        doc = _document(records)
    header = doc["header"]
    if not doc["farm_tasks"] and (not isinstance(header, dict) or header.get("format") != "hpcdist-metrics"):
        raise InputError("not an hpcdist metrics file (no header with format 'hpcdist-metrics')", path=str(path))
    return doc
