"""``hpcdist report METRICS -o report.html``: a self-contained HTML report of a metrics file.

Reads a ``.json`` or ``.jsonl`` metrics file (docs/metrics.md) and writes one HTML file
with the plots embedded as base64 PNGs, so it can be mailed or attached to a ticket:
the run's header, the findings, a superstep timeline (compute, idle wait and
communication, with the slowest and fastest rank's compute), the load imbalance per
superstep, the bytes sent per superstep, the per-rank totals and, when the file holds
``farm_task`` records, the farm's task-time distribution and throughput.

Serial: run it on a login node, not under ``mpiexec``. Needs matplotlib (the ``plot``
extra); without it the command says so and exits with status 2.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import time
from pathlib import Path
from typing import Any, Sequence

from hpcdist.runtime.errors import InputError

__all__ = ["HELP", "add_arguments", "run", "render_html"]

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
    """Read ``args.metrics``, write ``args.output``. Serial; errors are InputError (exit 2)."""
    from hpcdist.metrics.io import read_metrics

    Figure = _matplotlib()
    doc = read_metrics(args.metrics)
    page = render_html(doc, Figure, title=args.title, source=str(args.metrics))
    out = Path(args.output)
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write the report ({exc.strerror})", path=str(out)) from None
    print(f"wrote {out} ({len(doc['supersteps'])} supersteps, {len(doc['findings'])} findings, "
          f"{len(doc['farm_tasks'])} farm tasks)")
    return 0


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
    for key in ("algorithm", "ranks", "supersteps", "converged", "seconds", "resumed_from", "bytes_split"):
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
