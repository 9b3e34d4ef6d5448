"""Run hpcdist's whole test suite: serial tests, then MPI tests at 2, 3 and 4 ranks.

``make test`` calls this. Each MPI phase runs ``mpiexec -n N python -m pytest`` on
``tests/mpi``; rank 0's output is shown, the other ranks write to ``.test-logs/``
and their logs are shown when they fail. A per-test timeout (pytest-timeout, thread
method) ends a deadlocked rank, which makes the launcher tear the job down, and a
whole-phase timeout guards the launcher itself. The last line is the total over all
phases: ``total: N passed, N failed, N skipped``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / ".test-logs"
PHASE_TIMEOUT = int(os.environ.get("HPCDIST_TEST_PHASE_TIMEOUT", "900"))


def _mpiexec() -> str:
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else (shutil.which("mpiexec") or "mpiexec")


def _count(xml_paths: list[Path]) -> dict[str, str]:
    """Outcome per test id; a test failed if it failed on any rank."""
    outcome: dict[str, str] = {}
    rank = {"passed": 0, "skipped": 1, "failed": 2}
    for path in xml_paths:
        if not path.exists():
            continue
        for case in ET.parse(path).getroot().iter("testcase"):
            tid = f"{case.get('classname')}::{case.get('name')}"
            if case.find("failure") is not None or case.find("error") is not None:
                state = "failed"
            elif case.find("skipped") is not None:
                state = "skipped"
            else:
                state = "passed"
            if tid not in outcome or rank[state] > rank[outcome[tid]]:
                outcome[tid] = state
    return outcome


def run_phase(name: str, cmd: list[str], xml_paths: list[Path], env: dict[str, str]) -> tuple[dict[str, str], bool]:
    print(f"\n=== {name}: {' '.join(cmd)}", flush=True)
    t0 = time.monotonic()
    try:
        rc = subprocess.run(cmd, cwd=ROOT, env=env, timeout=PHASE_TIMEOUT).returncode
    except subprocess.TimeoutExpired:
        print(f"!!! {name}: killed after {PHASE_TIMEOUT} s", flush=True)
        rc = -9
    outcome = _count(xml_paths)
    missing = [p for p in xml_paths if not p.exists()]
    ok = rc in (0, 5) and not missing and all(s != "failed" for s in outcome.values())
    print(f"=== {name}: exit {rc} in {time.monotonic() - t0:.0f} s", flush=True)
    if not ok:
        for p in missing:
            print(f"!!! {name}: no report from {p.name} (the rank crashed, hung or was killed)", flush=True)
        for log in sorted(LOGS.glob(f"{name}-rank*.log")):
            text = log.read_text(errors="replace")
            if "failed" in text or "Timeout" in text or "Error" in text or not text.strip():
                print(f"--- {log.name} (last 60 lines)")
                print("\n".join(text.splitlines()[-60:]), flush=True)
    return outcome, ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="2,3,4", help="rank counts of the MPI phases")
    ap.add_argument("--serial-only", action="store_true")
    ap.add_argument("--mpi-only", action="store_true")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (e.g. -k name)")
    args = ap.parse_args()

    LOGS.mkdir(exist_ok=True)
    for old in LOGS.glob("*"):
        old.unlink()
    env = dict(os.environ)
    env.setdefault("PYTHONFAULTHANDLER", "1")
    totals: dict[str, str] = {}
    all_ok = True

    if not args.mpi_only:
        xml = LOGS / "serial.xml"
        cmd = [sys.executable, "-m", "pytest", "--with-mpi", "-q", "-ra", f"--junitxml={xml}", "tests", *args.pytest_args]
        outcome, ok = run_phase("serial", cmd, [xml], env)
        totals.update({f"serial::{k}": v for k, v in outcome.items()})
        all_ok &= ok

    if not args.serial_only:
        for size in (int(s) for s in args.sizes.split(",") if s):
            name = f"mpi{size}"
            xmls = [LOGS / f"{name}-rank{r}.xml" for r in range(size)]
            cmd = [
                _mpiexec(), "-n", str(size),
                sys.executable, str(ROOT / "tests" / "rank_pytest.py"), name,
                "--with-mpi", "-q", "-ra", "-m", "mpi", "tests/mpi", *args.pytest_args,
            ]
            outcome, ok = run_phase(name, cmd, xmls, env)
            totals.update({f"{name}::{k}": v for k, v in outcome.items()})
            all_ok &= ok

    counts = {s: sum(1 for v in totals.values() if v == s) for s in ("passed", "failed", "skipped")}
    if not all_ok and counts["failed"] == 0:
        counts["failed"] = 1  # a phase crashed or hung without a junit failure to show for it
    print(f"\ntotal: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped", flush=True)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
