"""``hpcdist report METRICS -o report.html``: a self-contained HTML report of a metrics file.

Reads a ``.json`` or ``.jsonl`` metrics file (docs/metrics.md) and writes one HTML file
with the plots embedded as base64 PNGs, so it can be mailed or attached to a ticket:
the run's header, the findings, a superstep timeline (compute, idle wait and
communication, with the slowest and fastest rank's compute), the load imbalance per
superstep, the bytes sent per superstep, the per-rank totals and, for a task farm's
metrics (``Farm(metrics=...)``), its throughput over time, task-time distribution per
function, load per worker and per-worker EWMA over time (plus the older ``farm_task``
records' plots when the file holds them).

Serial: run it on a login node, not under ``mpiexec``. Needs matplotlib (the ``plot``
extra); without it the command says so and exits with status 2.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import html
import io
import os
import time
from pathlib import Path
from typing import Any, Sequence

from hpcdist.metrics.check import check_metrics_file
from hpcdist.runtime.errors import InputError

__all__ = ["HELP", "add_arguments", "run", "render_html", "load_metrics"]

HELP = "write a self-contained HTML report (plots, findings) of a metrics file"

#: Colours of the phases, the same in every plot (colour-blind safe: Okabe-Ito).
COLOURS = {"compute": "#0072B2", "idle": "#E69F00", "communication": "#009E73", "max": "#D55E00",
           "min": "#56B4E9", "bytes": "#CC79A7", "threshold": "#999999"}
#: Width of every figure in inches at 100 dpi: 1000 px, readable in a browser without zoom.
FIG_W = 10.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("metrics", metavar="METRICS", help="a metrics file (.json or .jsonl)")
    p.add_argument("-o", "--output", default="report.html", metavar="OUT.html",
                   help="where to write the report (default report.html)")
    p.add_argument("--title", default=None, help="title of the report (default: from the metrics header)")


def _matplotlib():
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure
    except ImportError:
        raise InputError("hpcdist report needs matplotlib: pip install 'hpcdist[plot]' (or pip install matplotlib)"
                         ) from None
    return Figure


def run(args: argparse.Namespace) -> int:
    """Read ``args.metrics``, write ``args.output``. Serial; errors are InputError (exit 2).

    The output is checked (and a temporary file created beside it) before the metrics
    are read, so a report is never computed only to be lost, and it can never replace
    the metrics file it is made from.
    """
    Figure = _matplotlib()
    out = Path(args.output)
    final, tmp = _prepare_output(out, Path(args.metrics))
    try:
        doc = load_metrics(args.metrics)
        page = render_html(doc, Figure, title=args.title, source=str(args.metrics))
        _write_output(out, final, tmp, page.encode("utf-8"))
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    farm = doc.get("farm") or {}
    extra = f", {len(farm.get('workers') or [])} farm workers" if farm.get("summary") else ""
    print(f"wrote {out} ({len(doc['supersteps'])} supersteps, {len(doc['findings'])} findings, "
          f"{len(doc['farm_tasks'])} farm tasks{extra})")
    if farm.get("summary"):
        print(farm_load_text(farm))
    return 0


def _prepare_output(out: Path, metrics: Path) -> tuple[Path, Path | None]:
    """Refuse an output path that cannot take the report, before anything is computed.

    Returns the file to replace (a symbolic link's target) and an empty temporary file
    beside it, created now: the write is then a rename, so a failed write leaves an
    older report whole, and a directory that cannot be written in is found before the
    report is computed. A special file (``/dev/null``, a FIFO) is written in place (no
    temporary file).
    """
    from hpcdist.runtime.paths import check_output_path

    final = Path(os.path.realpath(out))
    check_output_path(out, inputs=[metrics], what="report", probe=False)  # the temporary file below probes
    if final.exists() and not final.is_file():
        return final, None
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:
        raise InputError(f"cannot write the report there ({exc.strerror})", path=str(out)) from None
    return final, tmp


def _write_output(out: Path, final: Path, tmp: Path | None, data: bytes) -> None:
    try:
        with open(final if tmp is None else tmp, "wb") as f:
            f.write(data)
        if tmp is not None:
            os.replace(tmp, final)
    except OSError as exc:
        raise InputError(f"cannot write the report ({exc.strerror})", path=str(out)) from None


def load_metrics(path: str | Path) -> dict[str, Any]:
    """``read_metrics(path)``, then :func:`check_metrics_file`: a document every plot can draw."""
    from hpcdist.metrics.io import read_metrics

    doc = read_metrics(path)
    check_metrics_file(path, doc)
    return doc


# -- helpers ---------------------------------------------------------------------------

def _num(x: Any, default: float = 0.0) -> float:
    """A JSON number (null for NaN/inf in the file) as a float."""
    return default if x is None else float(x)


def _stat(records: Sequence[dict], field: str, key: str) -> list[float]:
    return [_num((r.get(field) or {}).get(key)) for r in records]


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _bytes_unit(values: Sequence[float]) -> tuple[float, str]:
    top = max(values, default=0.0)
    for scale, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if top >= scale:
            return scale, unit
    return 1.0, "B"


def _time_unit(values: Sequence[float]) -> tuple[float, str]:
    top = max(values, default=0.0)
    if top >= 1.0:
        return 1.0, "s"
    if top >= 1e-3:
        return 1e-3, "ms"
    return 1e-6, "\u00b5s"


def _human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    scale, unit = _bytes_unit([float(n)])
    return f"{n / scale:.1f} {unit}" if unit != "B" else f"{int(n)} B"


def _figure(Figure, height: float = 3.6):
    fig = Figure(figsize=(FIG_W, height))
    ax = fig.add_subplot(1, 1, 1)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    return fig, ax


def _straggler_spans(ax, findings: Sequence[dict]) -> None:
    """Shade the supersteps each straggler finding covers, labelled with its rank."""
    for f in findings:
        if f.get("kind") != "straggler":
            continue
        ev = f.get("evidence") or {}
        first, last = (ev.get("supersteps") or [None, None])[:2]
        if first is None:
            continue
        ax.axvspan(first - 0.5, last + 0.5, color=COLOURS["max"], alpha=0.08, lw=0, zorder=0)
        ax.text((first + last) / 2, 0.97, f"straggler: rank {ev.get('rank')}", transform=ax.get_xaxis_transform(),
                ha="center", va="top", fontsize=9, color=COLOURS["max"])


# -- plots -----------------------------------------------------------------------------

def plot_timeline(Figure, steps: list[dict], findings: Sequence[dict]) -> str:
    """Stacked bars per superstep: mean compute + mean idle wait + communication = mean step time."""
    x = [r["superstep"] for r in steps]
    cmean, cmax, cmin = _stat(steps, "compute_s", "mean"), _stat(steps, "compute_s", "max"), _stat(steps, "compute_s", "min")
    idle = _stat(steps, "idle_s", "mean")
    comm = [_num(r.get("communication_s")) for r in steps]
    total = [a + b + c for a, b, c in zip(cmean, idle, comm)]
    scale, unit = _time_unit(total + cmax)
    s = lambda v: [t / scale for t in v]  # noqa: E731
    fig, ax = _figure(Figure, 4.2)
    width = 0.8 if len(x) < 200 else 1.0
    ax.bar(x, s(cmean), width, color=COLOURS["compute"], label="compute (mean over ranks)")
    ax.bar(x, s(idle), width, bottom=s(cmean), color=COLOURS["idle"], label="idle: waiting for the slowest rank (mean)")
    ax.bar(x, s(comm), width, bottom=[a + b for a, b in zip(s(cmean), s(idle))], color=COLOURS["communication"],
           label="communication (critical path)")
    marker = "_" if len(x) <= 60 else None
    ax.plot(x, s(cmax), color=COLOURS["max"], marker=marker, ms=10, mew=2, lw=1.2, label="compute, slowest rank")
    ax.plot(x, s(cmin), color=COLOURS["min"], marker=marker, ms=10, mew=2, lw=1.0, ls="--",
            label="compute, fastest rank")
    _straggler_spans(ax, findings)
    ax.set_xlabel("superstep")
    ax.set_ylabel(f"time per superstep ({unit})")
    ax.set_title("Superstep timeline: where the time of a superstep goes")
    ax.set_ylim(0, max(s(total) + s(cmax), default=1.0) * 1.18 or 1.0)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    return _png(fig)


def plot_imbalance(Figure, steps: list[dict], findings: Sequence[dict], overall: float | None,
                   threshold: float = 0.2) -> str:
    """max/mean of compute per superstep, points coloured by the slowest rank."""
    x = [r["superstep"] for r in steps]
    imb = [_num(r.get("imbalance"), 1.0) for r in steps]
    slowest = [int((r.get("compute_s") or {}).get("argmax") or 0) for r in steps]
    fig, ax = _figure(Figure, 3.6)
    ax.plot(x, imb, color="#444444", lw=1.0, zorder=1)
    ranks = sorted(set(slowest))
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(ranks) <= 10 else "tab20"]
    for i, rank in enumerate(ranks[:20]):
        xs = [a for a, b in zip(x, slowest) if b == rank]
        ys = [a for a, b in zip(imb, slowest) if b == rank]
        ax.scatter(xs, ys, s=22, color=cmap(i % cmap.N), zorder=2, label=f"rank {rank}")
    ax.axhline(1.0 + threshold, color=COLOURS["threshold"], ls="--", lw=1.0, label=f"straggler threshold ({1 + threshold:g})")
    if overall is not None:
        ax.axhline(overall, color=COLOURS["max"], ls=":", lw=1.2, label=f"overall ({overall:.2f})")
    _straggler_spans(ax, findings)
    ax.set_xlabel("superstep")
    ax.set_ylabel("compute max / mean")
    ax.set_title("Load imbalance per superstep (points: the slowest rank)")
    ax.set_ylim(min(0.95, min(imb, default=1.0)), max(max(imb, default=1.0), 1.0 + threshold) * 1.12)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False, title="slowest rank",
              title_fontsize=9)
    return _png(fig)


def plot_bytes(Figure, steps: list[dict]) -> str:
    """Bytes sent per superstep: all ranks together (bars), the busiest rank (line)."""
    x = [r["superstep"] for r in steps]
    total = _stat(steps, "bytes_sent", "sum")
    most = _stat(steps, "bytes_sent", "max")
    scale, unit = _bytes_unit(total)
    fig, ax = _figure(Figure, 3.2)
    ax.bar(x, [t / scale for t in total], 0.8 if len(x) < 200 else 1.0, color=COLOURS["bytes"],
           label="all ranks")
    ax.plot(x, [t / scale for t in most], color="#333333", lw=1.2, marker="." if len(x) <= 60 else None,
            label="busiest rank")
    ax.set_xlabel("superstep")
    ax.set_ylabel(f"bytes sent ({unit})")
    ax.set_title("Halo bytes sent per superstep")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    return _png(fig)


def farm_stats(tasks: Sequence[dict]) -> dict[str, Any]:
    """Durations, throughput and per-rank counts of ``farm_task`` records (pure)."""
    done = [t for t in tasks if t.get("started") is not None and t.get("finished") is not None]
    durations = [float(t["finished"]) - float(t["started"]) for t in done]
    ok = [t for t in done if t.get("status", "completed") == "completed"]
    starts = [float(t["submitted"] if t.get("submitted") is not None else t["started"]) for t in done]
    t0 = min(starts, default=0.0)
    ends = sorted(float(t["finished"]) - t0 for t in ok)
    span = (max(float(t["finished"]) for t in done) - t0) if done else 0.0
    per_rank: dict[int, int] = {}
    for t in done:
        if t.get("rank") is not None:
            per_rank[int(t["rank"])] = per_rank.get(int(t["rank"]), 0) + 1
    statuses: dict[str, int] = {}
    for t in tasks:
        statuses[str(t.get("status", "completed"))] = statuses.get(str(t.get("status", "completed")), 0) + 1
    return {"tasks": len(tasks), "timed": len(done), "completed": len(ok), "durations": durations,
            "completion_times": ends, "span_s": span, "throughput": (len(ok) / span) if span > 0 else None,
            "per_rank": dict(sorted(per_rank.items())), "statuses": statuses}


def plot_farm(Figure, stats: dict[str, Any]) -> str:
    """Three panels: task-time histogram, completed tasks over time, tasks per rank."""
    fig = Figure(figsize=(FIG_W * 1.25, 3.6))
    ax1, ax2, ax3 = fig.subplots(1, 3)
    d = stats["durations"]
    scale, unit = _time_unit(d)
    ax1.hist([v / scale for v in d], bins=min(40, max(5, len(d) // 5)), color=COLOURS["compute"])
    ax1.set_xlabel(f"task time ({unit})")
    ax1.set_ylabel("tasks")
    ax1.set_title("Task-time distribution")
    ends = stats["completion_times"]
    ax2.step(ends, range(1, len(ends) + 1), where="post", color=COLOURS["communication"])
    ax2.set_xlabel("seconds since the first submission")
    ax2.set_ylabel("tasks completed")
    rate = stats["throughput"]
    ax2.set_title(f"Throughput: {rate:.3g} tasks/s" if rate else "Throughput")
    ranks = list(stats["per_rank"])
    ax3.bar([str(r) for r in ranks], list(stats["per_rank"].values()), color=COLOURS["idle"])
    ax3.set_xlabel("rank")
    ax3.set_ylabel("tasks run")
    ax3.set_title("Tasks per rank")
    for ax in (ax1, ax2, ax3):
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    fig.tight_layout()
    return _png(fig)


# -- the task farm's metrics (Farm(metrics=...)) ------------------------------------------

def farm_load_text(farm: dict[str, Any]) -> str:
    """The load-spread report as plain text (printed by ``hpcdist report`` for a farm file)."""
    summary = farm.get("summary") or {}
    load = summary.get("load") or {}
    lines = [f"load spread over {load.get('workers', 0)} worker(s): imbalance {_num(load.get('imbalance_busy'), 1.0):.2f} "
             f"(max/mean busy time), {_num(load.get('imbalance_tasks'), 1.0):.2f} (max/mean tasks)",
             f"  {'rank':>5} {'tasks':>9} {'busy s':>10} {'idle s':>10} {'share':>7}"]
    share = load.get("share") or {}
    for w in farm.get("workers") or []:
        lines.append(f"  {w['rank']:>5} {w.get('tasks', 0):>9} {_num(w.get('busy_s')):>10.3f} "
                     f"{_num(w.get('idle_s')):>10.3f} {100 * _num(share.get(str(w['rank']))):>6.1f}%")
    return "\n".join(lines)


def _short_fn(name: str, limit: int = 40) -> str:
    """``pkg.module.func`` -> ``module.func`` (what a legend has room for)."""
    name = str(name)
    if name.startswith("__main__."):
        name = name[len("__main__."):]  # the script's own functions (also: a leading _ hides a legend entry)
    parts = name.split(".")
    short = ".".join(parts[-2:]) if len(parts) > 2 else name
    short = short if len(short) <= limit else "..." + short[-(limit - 3):]
    return "fn " + short if short.startswith("_") else short


def _strategy_lines(ax, strategies: Sequence[dict]) -> None:
    """Dashed vertical lines where the strategy changed (not the first, which is the start)."""
    for i, ch in enumerate(strategies[1:]):
        t = _num(ch.get("t"))
        ax.axvline(t, color=COLOURS["threshold"], ls="--", lw=1.0)
        ax.text(t, 0.97 - 0.08 * (i % 3), f" {ch.get('strategy')}", transform=ax.get_xaxis_transform(),
                ha="left", va="top", fontsize=9, color="#555555")


def plot_farm_throughput(Figure, farm: dict[str, Any]) -> str:
    """Tasks completed per second in each time bucket, with the strategy switches."""
    tp = farm.get("throughput") or {}
    width = _num(tp.get("bucket_s"), 1.0)
    counts = [int(c) for c in tp.get("counts") or []]
    summary = farm.get("summary") or {}
    fig, ax = _figure(Figure, 3.4)
    x = [(i + 0.5) * width for i in range(len(counts))]
    ax.bar(x, [c / width for c in counts], width * 0.9, color=COLOURS["communication"], label="tasks/s in the bucket")
    mean = summary.get("throughput")
    if mean:
        ax.axhline(mean, color=COLOURS["max"], ls=":", lw=1.4, label=f"mean over the run ({mean:.3g} tasks/s)")
    _strategy_lines(ax, summary.get("strategies") or [])
    ax.set_xlim(0, max(len(counts), 1) * width)
    ax.set_xlabel(f"seconds since the farm started (buckets of {width:.3g} s)")
    ax.set_ylabel("tasks completed per second")
    ax.set_title("Farm throughput over time (dashed: strategy switches)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    return _png(fig)


def plot_farm_task_times(Figure, functions: Sequence[dict]) -> str:
    """Per function, the share of its tasks in each log-spaced task-time bucket (log x axis)."""
    from matplotlib import colormaps

    fns = sorted(functions, key=lambda f: -_num(f.get("busy_s")))[:8]
    cmap = colormaps["tab10"]
    lows = [b[0] for f in fns for b in (f.get("task_time") or {}).get("buckets") or [] if b[0] > 0]
    scale, unit = _time_unit([max(lows, default=1e-3)])
    fig, ax = _figure(Figure, 3.8)
    for i, f in enumerate(fns):
        tt = f.get("task_time") or {}
        rows = [b for b in tt.get("buckets") or [] if b[1] > 0]
        total = sum(b[2] for b in tt.get("buckets") or []) or 1
        if not rows:
            continue
        # Steps over the bucket edges: a gap between buckets seen is a run of empty buckets.
        xs, ys = [rows[0][0] / scale], [0.0]
        for lo, hi, n in rows:
            if abs(lo / scale - xs[-1]) > 1e-12 * max(1.0, xs[-1]):
                xs += [xs[-1], lo / scale]
                ys += [0.0, 0.0]
            xs += [lo / scale, hi / scale]
            ys += [n / total, n / total]
        xs.append(xs[-1])
        ys.append(0.0)
        p50, p99 = tt.get("p50"), tt.get("p99")
        label = f"{_short_fn(f.get('fn', '?'))}: {f.get('tasks', 0)} tasks"
        if p50 is not None:
            label += f", p50 {p50 / scale:.3g} / p99 {_num(p99) / scale:.3g} {unit}"
        ax.fill_between(xs, ys, step=None, color=cmap(i % 10), alpha=0.25, lw=0)
        ax.plot(xs, ys, color=cmap(i % 10), lw=1.4, label=label)
    ax.set_xscale("log")
    ax.set_xlabel(f"task time ({unit}, log scale; buckets of 1/8 octave)")
    ax.set_ylabel("share of the function's tasks")
    ax.set_title("Task-time distribution per function")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    return _png(fig)


def plot_farm_load(Figure, farm: dict[str, Any]) -> str:
    """Two panels: busy and idle seconds per worker (stacked), tasks per worker."""
    workers = farm.get("workers") or []
    load = (farm.get("summary") or {}).get("load") or {}
    fig = Figure(figsize=(FIG_W, 3.6))
    ax1, ax2 = fig.subplots(1, 2)
    names = [str(w["rank"]) for w in workers]
    busy = [_num(w.get("busy_s")) for w in workers]
    idle = [_num(w.get("idle_s")) for w in workers]
    scale, unit = _time_unit([b + i for b, i in zip(busy, idle)])
    ax1.bar(names, [b / scale for b in busy], color=COLOURS["compute"], label="busy (running tasks)")
    ax1.bar(names, [i / scale for i in idle], bottom=[b / scale for b in busy], color=COLOURS["idle"],
            label="idle or waiting")
    ax1.set_xlabel("worker rank")
    ax1.set_ylabel(f"time ({unit})")
    ax1.set_title(f"Busy and idle time (imbalance {_num(load.get('imbalance_busy'), 1.0):.2f})")
    ax1.legend(loc="lower right", fontsize=9, framealpha=0.9)
    ax2.bar(names, [int(w.get("tasks") or 0) for w in workers], color=COLOURS["bytes"])
    ax2.set_xlabel("worker rank")
    ax2.set_ylabel("tasks run")
    ax2.set_title(f"Tasks per worker (imbalance {_num(load.get('imbalance_tasks'), 1.0):.2f})")
    for ax in (ax1, ax2):
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        if len(names) > 24:
            ax.tick_params(axis="x", labelrotation=90, labelsize=7)
    fig.tight_layout()
    return _png(fig)


def plot_farm_ewma(Figure, series: dict[str, Any], findings: Sequence[dict]) -> str:
    """Each worker's EWMA task time of one function over time; drifting workers drawn bold with their span."""
    from matplotlib import colormaps

    t = [_num(v) for v in series.get("t") or []]
    ranks = list(series.get("ranks") or [])
    values = series.get("ewma_s") or []
    drift = {int(f["evidence"]["rank"]): f["evidence"] for f in findings
             if f.get("kind") == "farm_drift" and (f.get("evidence") or {}).get("fn") == series.get("fn")}
    flat = [v for row in values for v in row if v is not None]
    scale, unit = _time_unit(flat)
    cmap = colormaps["tab10" if len(ranks) <= 10 else "tab20"]
    fig, ax = _figure(Figure, 3.6)
    for j, rank in enumerate(ranks):
        ys = [row[j] / scale if j < len(row) and row[j] is not None else float("nan") for row in values]
        bold = rank in drift
        if len(ranks) > 20 and not bold:
            ax.plot(t, ys, color="#bbbbbb", lw=0.8)
            continue
        ax.plot(t, ys, color=cmap(j % cmap.N), lw=2.4 if bold else 1.2, marker="o" if len(t) <= 40 else None,
                ms=3.5, label=f"rank {rank}" + (" (drifts)" if bold else ""))
    for rank, ev in drift.items():
        a, b = (ev.get("t") or [0, 0])[:2]
        ax.axvspan(_num(a), _num(b), color=COLOURS["max"], alpha=0.08, lw=0)
    ax.set_xlabel("seconds since the farm started")
    ax.set_ylabel(f"EWMA task time ({unit})")
    ax.set_ylim(bottom=0)
    ax.set_title(f"EWMA task time per worker: {_short_fn(series.get('fn', '?'), 60)}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    return _png(fig)


def _farm_tables(farm: dict[str, Any]) -> tuple[str, str, str]:
    """The farm's summary, per-worker and per-function tables."""
    summary = farm.get("summary") or {}
    load = summary.get("load") or {}
    retries = summary.get("retries") or {}
    outcomes = summary.get("outcomes") or {}
    strategies = summary.get("strategies") or []
    rows: list[tuple[str, Any]] = [
        ("tasks submitted / completed", f"{summary.get('submitted', 0)} / {summary.get('completed', 0)}"),
        ("not completed", ", ".join(f"{k} {v}" for k, v in outcomes.items()) or "none"),
        ("run time", f"{_num(summary.get('seconds')):.3f} s"),
        ("throughput", f"{_num(summary.get('throughput')):.4g} tasks/s" if summary.get("throughput") else "-"),
        ("busy time, all workers", f"{_num(summary.get('busy_s')):.3f} s"),
        ("retries by cause", ", ".join(f"{k} {v}" for k, v in retries.items()) or "none"),
        ("strategies", " \u2192 ".join(f"{c.get('strategy')} (t={_num(c.get('t')):.2f} s)" for c in strategies) or "-"),
        ("load imbalance, busy time (max/mean)", f"{_num(load.get('imbalance_busy'), 1.0):.3f}"),
        ("load imbalance, tasks (max/mean)", f"{_num(load.get('imbalance_tasks'), 1.0):.3f}"),
        ("busiest / least busy worker", f"{load.get('busiest')} / {load.get('least_busy')}"),
    ]
    head = ("<tr><th>rank</th><th>host</th><th>status</th><th>tasks</th><th>errors</th><th>busy s</th><th>idle s</th>"
            "<th>utilisation</th><th>EWMA</th><th>p50 / p99</th><th>sent</th><th>received</th><th>messages out / in</th>"
            "<th>peak RSS</th></tr>")
    body = []
    for w in farm.get("workers") or []:
        tt = w.get("task_time") or {}
        util = w.get("utilisation")
        body.append(
            f"<tr><td class=n>{w['rank']}</td><td>{html.escape(str(w.get('host') or '-'))}</td>"
            f"<td>{html.escape(str(w.get('status') or '-'))}</td><td class=n>{w.get('tasks', 0)}</td>"
            f"<td class=n>{w.get('errors', 0)}</td><td class=n>{_num(w.get('busy_s')):.3f}</td>"
            f"<td class=n>{_num(w.get('idle_s')):.3f}</td>"
            f"<td class=n>{'-' if util is None else f'{100 * util:.1f}%'}</td>"
            f"<td class=n>{_fmt_s(w.get('ewma_s'))}</td><td class=n>{_fmt_s(tt.get('p50'))} / {_fmt_s(tt.get('p99'))}</td>"
            f"<td class=n>{_human_bytes(w.get('bytes_sent'))}</td><td class=n>{_human_bytes(w.get('bytes_received'))}</td>"
            f"<td class=n>{w.get('messages_sent', 0)} / {w.get('messages_received', 0)}</td>"
            f"<td class=n>{_human_bytes(w.get('peak_rss'))}</td></tr>")
    workers = f"<table>{head}{''.join(body)}</table>"
    head = ("<tr><th>function</th><th>tasks</th><th>errors</th><th>busy s</th><th>mean</th><th>p50</th><th>p90</th>"
            "<th>p99</th><th>max</th><th>retries</th><th>not completed</th></tr>")
    body = []
    for f in farm.get("functions") or []:
        tt = f.get("task_time") or {}
        body.append(
            f"<tr><td>{html.escape(str(f.get('fn')))}</td><td class=n>{f.get('tasks', 0)}</td>"
            f"<td class=n>{f.get('errors', 0)}</td><td class=n>{_num(f.get('busy_s')):.3f}</td>"
            + "".join(f"<td class=n>{_fmt_s(tt.get(k))}</td>" for k in ("mean", "p50", "p90", "p99", "max"))
            + f"<td>{html.escape(', '.join(f'{k} {v}' for k, v in (f.get('retries') or {}).items()) or '-')}</td>"
            f"<td>{html.escape(', '.join(f'{k} {v}' for k, v in (f.get('outcomes') or {}).items()) or '-')}</td></tr>")
    functions = f"<table>{head}{''.join(body)}</table>"
    return _kv_table(rows), workers, functions


def _fmt_s(x: Any) -> str:
    """Seconds in a readable unit (``-`` for None)."""
    if x is None:
        return "-"
    scale, unit = _time_unit([float(x)])
    return f"{float(x) / scale:.3g} {unit}"


def _farm_sections(farm: dict[str, Any], findings: Sequence[dict], Figure) -> list[str]:
    summary_table, workers_table, functions_table = _farm_tables(farm)
    parts = [f'<section id="farm-run"><h2>Task farm</h2>{summary_table}'
             '<p class=note>A map chunk counts as one task. Busy: seconds running tasks; idle: the rest of the '
             'time since the worker joined (waiting for work or for the coordinator).</p></section>']
    if (farm.get("throughput") or {}).get("counts"):
        parts.append('<section id="farm-throughput"><h2>Farm throughput over time</h2>'
                     f'{_img(plot_farm_throughput(Figure, farm), "farm throughput")}</section>')
    if farm.get("functions"):
        parts.append('<section id="farm-task-times"><h2>Task-time distribution per function</h2>'
                     f'{_img(plot_farm_task_times(Figure, farm["functions"]), "task times")}{functions_table}</section>')
    if farm.get("workers"):
        parts.append('<section id="farm-load"><h2>Load per worker</h2>'
                     f'{_img(plot_farm_load(Figure, farm), "load per worker")}{workers_table}</section>')
    ewma = [e for e in farm.get("ewma") or [] if e.get("t")]
    if ewma:
        busy = {f.get("fn"): _num(f.get("busy_s")) for f in farm.get("functions") or []}
        drifting = {(f.get("evidence") or {}).get("fn") for f in findings if f.get("kind") == "farm_drift"}
        ewma.sort(key=lambda e: (e.get("fn") not in drifting, -busy.get(e.get("fn"), 0.0)))
        imgs = "".join(_img(plot_farm_ewma(Figure, e, findings), f"EWMA {e.get('fn')}") for e in ewma[:3])
        parts.append('<section id="farm-ewma"><h2>EWMA task time per worker</h2>'
                     '<p class=note>The input of the drift finding: a worker whose EWMA of a function stays above '
                     'the median of the others by the threshold is drawn bold, its span shaded.</p>'
                     f'{imgs}</section>')
    return parts


# -- the page --------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, -apple-system, sans-serif; margin: 2em auto; max-width: 1250px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: .92em; } td, th { padding: .25em .8em; border-bottom: 1px solid #eee; text-align: left; }
th { background: #f5f5f5; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
ul.findings li { margin: .3em 0; } .warning { color: #b34700; font-weight: 600; } .info { color: #35618f; }
img { max-width: 100%; } .note { color: #666; font-size: .9em; }
"""


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _kv_table(rows: Sequence[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _totals_table(summary: dict[str, Any]) -> str:
    totals = summary.get("totals") or {}
    head = "<tr><th>per-rank total</th><th>min</th><th>mean</th><th>max</th><th>slowest / largest rank</th></tr>"
    rows = []
    for name, t in totals.items():
        if name.endswith("_s"):
            fmt = lambda v: f"{_num(v):.4f} s"  # noqa: E731
        elif name.startswith("bytes"):
            fmt = _human_bytes  # type: ignore[assignment]
        else:
            fmt = lambda v: f"{_num(v):.0f}"  # noqa: E731
        rows.append(f"<tr><td>{html.escape(name)}</td><td class=n>{fmt(t.get('min'))}</td>"
                    f"<td class=n>{fmt(t.get('mean'))}</td><td class=n>{fmt(t.get('max'))}</td>"
                    f"<td class=n>{t.get('argmax')}</td></tr>")
    rss = summary.get("peak_rss_bytes")
    if rss:
        rows.append(f"<tr><td>peak RSS</td><td class=n>{_human_bytes(rss.get('min'))}</td>"
                    f"<td class=n>{_human_bytes(rss.get('mean'))}</td><td class=n>{_human_bytes(rss.get('max'))}</td>"
                    f"<td class=n>{rss.get('argmax')}</td></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def render_html(doc: dict[str, Any], Figure, *, title: str | None = None, source: str = "") -> str:
    """The report page for a metrics document (:func:`hpcdist.metrics.read_metrics`)."""
    header = doc.get("header") or {}
    steps = [r for r in doc.get("supersteps") or [] if r.get("superstep") is not None]
    findings = doc.get("findings") or []
    summary = doc.get("summary") or {}
    tasks = doc.get("farm_tasks") or []
    algorithm = header.get("algorithm") or header.get("kind") or "run"
    title = title or f"hpcdist report: {algorithm}, {header.get('ranks', '?')} rank(s)"
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]

    graph = header.get("graph") or {}
    rows: list[tuple[str, Any]] = [("metrics file", source), ("created", header.get("created", "-"))]
    for key in ("algorithm", "kind", "ranks", "workers", "strategy", "supersteps", "converged", "seconds",
                "resumed_from", "bytes_split"):
        if header.get(key) is not None:
            value = header[key]
            rows.append((key, f"{value:.4f} s" if key == "seconds" else value))
    rows += [(f"graph {k}", v) for k, v in graph.items()]
    if summary.get("imbalance_overall") is not None:
        rows.append(("load imbalance (max/mean compute)", f"{summary['imbalance_overall']:.3f}"))
    parts.append(f'<section id="run"><h2>Run</h2>{_kv_table(rows)}</section>')

    items = "".join(f'<li><span class="{html.escape(str(f.get("severity", "info")))}">'
                    f'{html.escape(str(f.get("severity", "info")))}</span> '
                    f'[{html.escape(str(f.get("kind", "")))}] {html.escape(str(f.get("message", "")))}</li>'
                    for f in findings)
    parts.append(f'<section id="findings"><h2>Findings</h2>'
                 f'{"<ul class=findings>" + items + "</ul>" if items else "<p>No findings.</p>"}</section>')

    if steps:
        threshold = next((float(f["evidence"].get("threshold", 0.2)) for f in findings
                          if f.get("kind") == "straggler" and f.get("evidence")), 0.2)
        parts.append('<section id="timeline"><h2>Superstep timeline</h2>'
                     '<p class=note>Bars: mean over ranks of compute, of the wait for the slowest rank, and the '
                     'communication on the critical path (mean step time minus the slowest compute); together the '
                     'mean superstep time. Lines: compute of the slowest and the fastest rank.</p>'
                     f'{_img(plot_timeline(Figure, steps, findings), "superstep timeline")}</section>')
        parts.append('<section id="imbalance"><h2>Load imbalance</h2>'
                     f'{_img(plot_imbalance(Figure, steps, findings, summary.get("imbalance_overall"), threshold), "imbalance")}'
                     '</section>')
        parts.append('<section id="bytes"><h2>Communication volume</h2>'
                     f'{_img(plot_bytes(Figure, steps), "bytes per superstep")}</section>')
    if summary.get("totals"):
        parts.append(f'<section id="totals"><h2>Per-rank totals</h2>{_totals_table(summary)}</section>')
    farm = doc.get("farm") or {}
    if farm.get("summary"):
        parts.extend(_farm_sections(farm, findings, Figure))
    if tasks:
        st = farm_stats(tasks)
        rows = [("tasks", st["tasks"]), ("completed", st["completed"]),
                ("statuses", ", ".join(f"{k} {v}" for k, v in st["statuses"].items())),
                ("span", f"{st['span_s']:.3f} s"),
                ("throughput", f"{st['throughput']:.3g} tasks/s" if st["throughput"] else "-")]
        if st["durations"]:
            d = sorted(st["durations"])
            rows.append(("task time min / median / max",
                         f"{d[0]:.4g} / {d[len(d) // 2]:.4g} / {d[-1]:.4g} s"))
        body = _kv_table(rows) + (_img(plot_farm(Figure, st), "farm tasks") if st["timed"] else "")
        parts.append(f'<section id="farm"><h2>Task farm</h2>{body}</section>')
    parts.append(f"<p class=note>hpcdist report, {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}</p>"
                 "</body></html>")
    return "\n".join(parts)
