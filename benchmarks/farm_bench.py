"""Task-farm benchmarks: hpcdist's ``Farm`` side by side with ``mpi4py.futures`` and bare MPI.

Run as ``mpiexec -n 3 hpcdist farm-bench`` (1 coordinator + 2 workers). Every
measurement runs all its contenders in the same job, interleaved repeat by repeat, and
reports medians with their spread; the targets are ratios between contenders of the
same run, so a shared, noisy machine moves both sides alike.

=====================  ===========================================  ====================
measurement            contenders                                   target
=====================  ===========================================  ====================
noop_throughput        bare MPI loop, mpi4py.futures, Farm (cs=1)   Farm >= 10x futures
round_trip             bare ping-pong, futures, Farm                Farm <= 5x ping-pong
array_1mb              bare pickle-5 (pkl5, out of band; and        Farm >= 0.9x pkl5
                       in band), futures, Farm
auto_batching          Farm.map chunksize=None vs fixed sizes       <= 1.5x the best
efficiency_10ms        bare MPI loop, Farm on 10 ms CPU tasks       Farm >= 0.95
idle_coordinator_cpu   futures, Farm: rank 0's CPU over an idle     near 0 (<= 2 %)
                       wait with the executor open
journal_record_many    one Journal.record_many of 1, 100, 10,000    (reported)
                       results and a 1 MB array; the durable-write
                       floor (8 KiB write+fsync+rename+fsync dir)
=====================  ===========================================  ====================

Efficiency is the 10 ms tasks' CPU work divided by wall time x the cores available to
the workers: ``min(workers, cores - CPU taken by other processes during the run)``,
where other processes' share is the machine's busy time (``/proc/stat``) less the
job's own CPU time. The coordinator's own CPU use counts against the farm.

The Farm rows use only the public API (``import hpcdist as hd; with hd.Farm(comm) as
farm: ...``). Where ``hd.Farm`` does not exist yet they are reported as not measured.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import peers  # noqa: E402
from benchmarks.machine import busy_cpu_seconds, machine_details  # noqa: E402
from benchmarks.peers import busy_cpu, echo, noop, polite_barrier  # noqa: E402
from hpcdist.runtime.comm import MPI  # noqa: E402

__all__ = [
    "Sizes", "SIZES", "QUICK", "MEASUREMENTS", "TARGETS",
    "run_benchmarks", "default_output", "format_table", "check_report", "write_report", "main",
]  # fmt: skip

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Sizes:
    """How much work each measurement does (per repeat)."""

    noop_bare: int = 20_000
    noop_futures: int = 3_000
    noop_farm: int = 20_000
    round_trips_bare: int = 2_000
    round_trips_futures: int = 300
    round_trips_farm: int = 1_000
    arrays_bare: int = 200
    arrays_futures: int = 20
    arrays_farm: int = 200
    array_bytes: int = 1 << 20
    batching_tasks: int = 20_000
    batching_chunksizes: tuple[int, ...] = (1, 8, 64, 512)
    efficiency_tasks: int = 200
    task_seconds: float = 0.010
    idle_seconds: float = 2.0
    journal_calls: int = 5
    farm_deadline_s: float = 300.0
    repeats: int = 5


SIZES = Sizes()
QUICK = Sizes(
    noop_bare=300, noop_futures=100, noop_farm=300,
    round_trips_bare=50, round_trips_futures=20, round_trips_farm=50,
    arrays_bare=8, arrays_futures=4, arrays_farm=8,
    batching_tasks=600, batching_chunksizes=(1, 16),
    efficiency_tasks=20, idle_seconds=0.2, journal_calls=1, farm_deadline_s=60.0, repeats=1,
)  # fmt: skip

#: (measurement, farm contender, peer contender, comparison, bound, what it says)
TARGETS = (
    ("noop_throughput", "farm", "mpi4py_futures", ">=", 10.0, "no-op tasks/s at chunksize 1 vs mpi4py.futures"),
    ("round_trip", "farm", "bare_ping_pong", "<=", 5.0, "round trip of one tiny task vs a bare ping-pong"),
    ("array_1mb", "farm", "bare_pickle5_oob", ">=", 0.9, "1 MB array in and out vs bare pickle-5 send/recv"),
    ("auto_batching", "farm_auto", "farm_best_fixed", "<=", 1.5, "chunksize=None vs the best fixed chunksize (time)"),
    ("efficiency_10ms", "farm", None, ">=", 0.95, "efficiency on 10 ms CPU tasks"),
    ("idle_coordinator_cpu", "farm", None, "<=", 0.02, "coordinator CPU (share of a core) while idle"),
)

UNITS = {
    "noop_throughput": ("tasks/s", "higher"),
    "round_trip": ("s", "lower"),
    "array_1mb": ("tasks/s", "higher"),
    "auto_batching": ("s", "lower"),
    "efficiency_10ms": ("fraction", "higher"),
    "idle_coordinator_cpu": ("share of one core", "lower"),
    "journal_record_many": ("s", "lower"),
}


# -- the Farm, through the public API only --------------------------------------------


def farm_class() -> type | None:
    """``hpcdist.Farm`` when the task farm exists in this checkout, else None."""
    import hpcdist as hd

    farm = getattr(hd, "Farm", None)
    if farm is None:
        try:
            from hpcdist.farm import Farm as farm  # type: ignore[no-redef]
        except ImportError:
            return None
    return farm


def _map_options(farm: Any) -> dict[str, Any]:
    try:
        params = inspect.signature(farm.map).parameters
    except (TypeError, ValueError):
        return {}
    return {"progress": False} if "progress" in params else {}


#: Seconds one Farm measurement may take before the job is aborted (set by run_benchmarks).
FARM_DEADLINE_S = [300.0]


def _farm_hung(what: str, seconds: float) -> None:
    from hpcdist.runtime.abort import abort_job
    from hpcdist.runtime.errors import HpcdistError

    abort_job(HpcdistError(f"farm-bench: the Farm did not finish {what} within {seconds:g} s; aborting the job"), 1)


def _with_farm(comm: MPI.Intracomm, body: Callable[[Any], Any], what: str) -> Any:
    """Run ``body(farm)`` on rank 0 inside ``hd.Farm(comm)``; workers serve. Collective over ``comm``.

    A watchdog on rank 0 aborts the whole job when the farm does not finish within
    ``FARM_DEADLINE_S``: a benchmark must fail loudly, never hang.
    """
    import threading

    Farm = farm_class()
    assert Farm is not None
    result = None
    polite_barrier(comm)
    watchdog = None
    if comm.Get_rank() == 0:
        seconds = FARM_DEADLINE_S[0]
        watchdog = threading.Timer(seconds, _farm_hung, (what, seconds))
        watchdog.daemon = True
        watchdog.start()
    try:
        with Farm(comm) as farm:
            if farm is not None:
                farm.submit(noop, None).result()  # start-up stays out of the measurement
                result = body(farm)
    finally:
        if watchdog is not None:
            watchdog.cancel()
    polite_barrier(comm)
    return result


def farm_map(comm: MPI.Intracomm, fn: Callable, items: list, chunksize: int | None = 1) -> float | None:
    """Seconds for ``farm.map(fn, items, chunksize=...)``. Collective over ``comm``."""

    def body(farm: Any) -> float:
        options = _map_options(farm)
        t0 = time.perf_counter()
        for _ in farm.map(fn, items, chunksize=chunksize, **options):
            pass
        return time.perf_counter() - t0

    return _with_farm(comm, body, f"map({fn.__name__}, {len(items)} items, chunksize={chunksize})")


def farm_map_sizes(comm: MPI.Intracomm, fn: Callable, items: list, chunksizes: tuple) -> dict | None:
    """Seconds of ``farm.map`` for each chunksize in ``chunksizes`` (None: automatic), one farm."""

    def body(farm: Any) -> dict:
        options = _map_options(farm)
        times = {}
        for cs in chunksizes:
            t0 = time.perf_counter()
            for _ in farm.map(fn, items, chunksize=cs, **options):
                pass
            times[cs] = time.perf_counter() - t0
        return times

    return _with_farm(comm, body, f"map({fn.__name__}, {len(items)} items) at chunksizes {chunksizes}")


def farm_round_trip(comm: MPI.Intracomm, n: int) -> list[float] | None:
    def body(farm: Any) -> list[float]:
        samples = []
        for i in range(n):
            t0 = time.perf_counter()
            farm.submit(noop, i).result()
            samples.append(time.perf_counter() - t0)
        return samples

    return _with_farm(comm, body, f"{n} round trips")


def farm_idle_cpu(comm: MPI.Intracomm, seconds: float) -> float | None:
    def body(farm: Any) -> float:
        c0, t0 = time.process_time(), time.perf_counter()
        time.sleep(seconds)
        return (time.process_time() - c0) / (time.perf_counter() - t0)

    return _with_farm(comm, body, "an idle wait")


# -- efficiency --------------------------------------------------------------------------


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def efficiency(comm: MPI.Intracomm, run: Callable[[], float | None], work_s: float) -> dict | None:
    """Efficiency of ``run`` (collective; returns its wall time on rank 0) doing ``work_s`` CPU-seconds.

    Collective over ``comm``. Returns on rank 0 the efficiency and what it is made of.
    """
    polite_barrier(comm)
    busy0, own0, w0 = busy_cpu_seconds(), _own_cpu_seconds(), time.perf_counter()
    elapsed = run()
    own = comm.reduce(_own_cpu_seconds() - own0, op=MPI.SUM, root=0)
    busy1, window = busy_cpu_seconds(), time.perf_counter() - w0
    if comm.Get_rank() != 0:
        return None
    assert elapsed is not None
    workers = comm.Get_size() - 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    others = max(0.0, (busy1 - busy0) - own) / window if busy0 is not None and busy1 is not None else 0.0
    available = max(0.25, min(float(workers), cores - others))
    return {"efficiency": work_s / (elapsed * available), "cores_available": available, "wall_s": elapsed}


# -- the journal -------------------------------------------------------------------------


def journal_costs(calls: int) -> dict[str, float]:
    """Median seconds of one ``Journal.record_many`` of 1, 100, 10,000 small results and a 1 MB array.

    Rank 0 only, in a temporary folder (``$TMPDIR``). ``floor_write_fsync_rename`` is
    what any durable 8 KiB write costs on that disk: write, fsync, rename, fsync the folder.
    """
    from hpcdist.farm.journal import Journal

    shapes: dict[str, Callable[[int], list]] = {
        "1_result": lambda c: [(f"one-{c}", {"i": c})],
        "100_results": lambda c: [(f"h-{c}-{i}", {"i": i, "s": "x"}) for i in range(100)],
        "10000_results": lambda c: [(f"t-{c}-{i}", {"i": i, "s": "x"}) for i in range(10_000)],
        "1mb_array": lambda c: [(f"mb-{c}", np.full(131072, float(c)))],
    }
    costs: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="hpcdist-journal-bench-") as folder:
        with Journal(os.path.join(folder, "run.h5")) as journal:
            journal.record_many([("warm-up", np.zeros(1))])  # imports h5py, touches the folder
            for name, make in shapes.items():
                times = []
                for c in range(calls):
                    items = make(c)
                    t0 = time.perf_counter()
                    journal.record_many(items)
                    times.append(time.perf_counter() - t0)
                costs[name] = float(statistics.median(times))
        times = []
        for c in range(calls):
            path = os.path.join(folder, f"floor-{c}")
            t0 = time.perf_counter()
            fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT, 0o644)
            os.write(fd, bytes(8192))
            os.fsync(fd)
            os.close(fd)
            os.replace(path + ".tmp", path)
            dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            os.fsync(dfd)
            os.close(dfd)
            times.append(time.perf_counter() - t0)
        costs["floor_write_fsync_rename"] = float(statistics.median(times))
    return costs


# -- running everything -------------------------------------------------------------------


@dataclass
class Samples:
    """Per-repeat values of every contender of every measurement (rank 0)."""

    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    extra: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def add(self, measurement: str, contender: str, value: float | None) -> None:
        if value is not None:
            self.values.setdefault(measurement, {}).setdefault(contender, []).append(float(value))

    def note(self, measurement: str, what: str, value: float) -> None:
        self.extra.setdefault(measurement, {}).setdefault(what, []).append(float(value))


def _rate(n: int, seconds: float | None) -> float | None:
    return None if seconds is None else n / seconds


def _median(samples: list[float] | None) -> float | None:
    return None if not samples else float(statistics.median(samples))


def measure_noop_throughput(comm: MPI.Intracomm, s: Sizes, with_farm: bool, out: Samples) -> None:
    m = "noop_throughput"
    out.add(m, "bare_mpi", _rate(s.noop_bare, peers.bare_map(comm, noop, list(range(s.noop_bare)))))
    out.add(m, "mpi4py_futures", _rate(s.noop_futures, peers.futures_map(comm, noop, range(s.noop_futures))))
    if with_farm:
        out.add(m, "farm", _rate(s.noop_farm, farm_map(comm, noop, list(range(s.noop_farm)), chunksize=1)))


def measure_round_trip(comm: MPI.Intracomm, s: Sizes, with_farm: bool, out: Samples) -> None:
    m = "round_trip"
    out.add(m, "bare_ping_pong", _median(peers.bare_ping_pong(comm, s.round_trips_bare)))
    out.add(m, "mpi4py_futures", _median(peers.futures_round_trip(comm, s.round_trips_futures)))
    if with_farm:
        out.add(m, "farm", _median(farm_round_trip(comm, s.round_trips_farm)))


def measure_array_1mb(comm: MPI.Intracomm, s: Sizes, with_farm: bool, out: Samples) -> None:
    m = "array_1mb"
    # Distinct arrays: the same object n times would let a sender that pickles several
    # tasks into one message send it once (pickle's memo). Only rank 0 needs them.
    n_arrays = max(s.arrays_bare, s.arrays_futures, s.arrays_farm) if comm.Get_rank() == 0 else 0
    arrays = [np.full(s.array_bytes // 8, float(i)) for i in range(n_arrays)]
    out.add(m, "bare_pickle5_oob", _rate(s.arrays_bare, peers.bare_map(comm, echo, arrays[: s.arrays_bare], oob=True)))
    out.add(m, "bare_pickle5_inband", _rate(s.arrays_bare, peers.bare_map(comm, echo, arrays[: s.arrays_bare])))
    out.add(m, "mpi4py_futures", _rate(s.arrays_futures, peers.futures_map(comm, echo, arrays[: s.arrays_futures])))
    if with_farm:
        out.add(m, "farm", _rate(s.arrays_farm, farm_map(comm, echo, arrays[: s.arrays_farm], chunksize=1)))


def measure_auto_batching(comm: MPI.Intracomm, s: Sizes, with_farm: bool, out: Samples) -> None:
    m = "auto_batching"
    if not with_farm:
        return
    times = farm_map_sizes(comm, noop, list(range(s.batching_tasks)), (*s.batching_chunksizes, None))
    if times is None:  # not rank 0
        return
    fixed = {cs: t for cs, t in times.items() if cs is not None}
    best = min(fixed, key=fixed.__getitem__)
    out.add(m, "farm_auto", times[None])
    out.add(m, "farm_best_fixed", fixed[best])
    out.note(m, "best_fixed_chunksize", best)
    for cs, t in fixed.items():
        out.note(m, f"farm_chunksize_{cs}", t)


def measure_efficiency_10ms(comm: MPI.Intracomm, s: Sizes, with_farm: bool, out: Samples) -> None:
    m = "efficiency_10ms"
    tasks = [s.task_seconds] * s.efficiency_tasks
    work = s.task_seconds * s.efficiency_tasks
    contenders: list[tuple[str, Callable[[], float | None]]] = [
        ("bare_mpi", lambda: peers.bare_map(comm, busy_cpu, tasks)),
    ]
    if with_farm:
        contenders.append(("farm", lambda: farm_map(comm, busy_cpu, tasks, chunksize=1)))
    for name, run in contenders:
        eff = efficiency(comm, run, work)
        if eff is not None:
            out.add(m, name, eff["efficiency"])
            out.note(m, f"{name}_cores_available", eff["cores_available"])


def measure_idle_coordinator_cpu(comm: MPI.Intracomm, s: Sizes, with_farm: bool, out: Samples) -> None:
    m = "idle_coordinator_cpu"
    out.add(m, "mpi4py_futures", peers.futures_idle_cpu(comm, s.idle_seconds))
    if with_farm:
        out.add(m, "farm", farm_idle_cpu(comm, s.idle_seconds))


def measure_journal_record_many(comm: MPI.Intracomm, s: Sizes, with_farm: bool, out: Samples) -> None:
    polite_barrier(comm)
    if comm.Get_rank() == 0:
        for name, seconds in journal_costs(s.journal_calls).items():
            out.add("journal_record_many", name, seconds)
    polite_barrier(comm)


#: The measurements by name, in the order they run; each is collective over ``comm``.
MEASUREMENTS: dict[str, Callable[[MPI.Intracomm, Sizes, bool, Samples], None]] = {
    "noop_throughput": measure_noop_throughput,
    "round_trip": measure_round_trip,
    "array_1mb": measure_array_1mb,
    "auto_batching": measure_auto_batching,
    "efficiency_10ms": measure_efficiency_10ms,
    "idle_coordinator_cpu": measure_idle_coordinator_cpu,
    "journal_record_many": measure_journal_record_many,
}
assert list(MEASUREMENTS) == list(UNITS)


def _stats(samples: list[float]) -> dict:
    return {
        "median": float(statistics.median(samples)),
        "min": float(min(samples)),
        "max": float(max(samples)),
        "samples": [float(x) for x in samples],
    }


def _summarise(samples: Samples, with_farm: bool, farm_reason: str, selected: list[str]) -> tuple[dict, list[dict]]:
    measurements: dict[str, dict] = {}
    for m in selected:
        unit, better = UNITS[m]
        entry: dict[str, Any] = {"unit": unit, "better": better, "contenders": {}}
        for contender, values in samples.values.get(m, {}).items():
            entry["contenders"][contender] = _stats(values)
        if samples.extra.get(m):
            entry["details"] = {k: _stats(v) for k, v in samples.extra[m].items()}
        measurements[m] = entry
    targets = []
    for m, farm_side, peer_side, op, bound, text in TARGETS:
        if m not in measurements:
            continue
        contenders = measurements[m]["contenders"]
        mine = contenders.get(farm_side, {}).get("median")
        ref = contenders.get(peer_side, {}).get("median") if peer_side else 1.0
        target: dict[str, Any] = {"measurement": m, "what": text, "compares": f"{farm_side} / {peer_side or '1'}",
                                  "target": f"{op} {bound:g}"}
        if mine is None or ref is None:
            target["ratio"] = None
            target["met"] = "not measured"
            target["why"] = farm_reason if not with_farm else "no samples"
        else:
            ratio = mine / ref
            target["ratio"] = ratio
            target["met"] = "yes" if (ratio >= bound if op == ">=" else ratio <= bound) else "no"
        targets.append(target)
    return measurements, targets


def run_benchmarks(
    comm: MPI.Intracomm,
    sizes: Sizes = SIZES,
    log: Callable[[str], None] | None = None,
    only: list[str] | None = None,
) -> dict | None:
    """Run the measurements ``sizes.repeats`` times; the report on rank 0, None elsewhere.

    Collective over ``comm``, which needs at least 2 ranks (1 coordinator, 1+ workers).

    Parameters
    ----------
    only : list of str, optional
        Names from :data:`MEASUREMENTS` to run (default: all).
    """
    selected = list(MEASUREMENTS) if only is None else [m for m in MEASUREMENTS if m in only]
    rank0 = comm.Get_rank() == 0
    say = log if (log is not None and rank0) else (lambda text: None)
    with_farm = comm.allreduce(int(farm_class() is not None), op=MPI.MIN) == 1
    farm_reason = "" if with_farm else "hpcdist.Farm does not exist in this checkout yet"
    samples = Samples()
    FARM_DEADLINE_S[0] = sizes.farm_deadline_s
    t0 = time.perf_counter()
    for r in range(sizes.repeats):
        for name in selected:  # contenders interleaved repeat by repeat
            say(f"repeat {r + 1}/{sizes.repeats}: {name}")
            MEASUREMENTS[name](comm, sizes, with_farm, samples)
    if not rank0:
        return None
    measurements, targets = _summarise(samples, with_farm, farm_reason, selected)
    report = {
        "benchmark": "farm",
        "machine": machine_details(),
        "config": {
            "ranks": comm.Get_size(),
            "workers": comm.Get_size() - 1,
            "repeats": sizes.repeats,
            "measurements_run": selected,
            "journal_folder": tempfile.gettempdir(),
            "sizes": {k: v for k, v in sizes.__dict__.items() if k != "repeats"},
            "seconds": time.perf_counter() - t0,
        },
        "measurements": measurements,
        "targets": targets,
    }
    if not with_farm:
        report["not_measured"] = {"farm": farm_reason}
    return report


def default_output(hostname: str, date: str) -> Path:
    """``benchmarks/results/farm-<hostname>-<YYYY-MM-DD>.json``."""
    return RESULTS / f"farm-{hostname}-{date[:10]}.json"


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "not measured"
    if unit == "s":
        if value < 1e-3:
            return f"{value * 1e6:.3g} µs"
        return f"{value * 1e3:.3g} ms" if value < 1 else f"{value:.3g} s"
    if unit == "tasks/s":
        return f"{value:,.0f}/s"
    return f"{value:.3f}" if unit == "fraction" else f"{value * 100:.1f} %"


def format_table(report: dict) -> str:
    """A markdown table of the report's medians, spreads and target ratios (for benchmarks/README.md)."""
    machine = report["machine"]
    lines = [
        f"Farm benchmarks on {machine['hostname']} ({machine['cpu_model']}, {machine['cores']} cores), "
        f"{machine['date'][:10]}, {report['config']['ranks']} ranks (1 coordinator + {report['config']['workers']} "
        f"workers), {machine['mpi_library']}; medians of {report['config']['repeats']} repeats, [min-max].",
        "",
        "| measurement | contender | median [min-max] |",
        "|---|---|---|",
    ]
    for m, entry in report["measurements"].items():
        for contender, st in entry["contenders"].items():
            spread = f"{_fmt(st['min'], entry['unit'])} - {_fmt(st['max'], entry['unit'])}"
            lines.append(f"| {m} ({entry['unit']}) | {contender} | {_fmt(st['median'], entry['unit'])} [{spread}] |")
    lines += ["", "| target | ratio | bound | met |", "|---|---|---|---|"]
    for t in report["targets"]:
        ratio = "-" if t["ratio"] is None else f"{t['ratio']:.3g}"
        lines.append(f"| {t['what']} ({t['compares']}) | {ratio} | {t['target']} | {t['met']} |")
    return "\n".join(lines)


def check_report(report: dict) -> list[str]:
    """What is wrong with a report's numbers: each must be positive and finite (booleans are not used)."""
    problems: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, bool):
            problems.append(f"{where}: a boolean")
        elif isinstance(node, (int, float)):
            if not (math.isfinite(node) and node > 0):
                problems.append(f"{where}: {node}")
        elif isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{where}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]")

    walk(report, "report")
    return problems


def write_report(report: dict, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, output)


def main(argv: list[str] | None = None) -> int:
    """``python benchmarks/farm_bench.py`` runs the same as ``hpcdist farm-bench``."""
    from hpcdist.cli.main import main as cli_main

    return cli_main(["farm-bench", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
