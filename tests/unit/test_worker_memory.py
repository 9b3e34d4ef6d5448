"""A farm worker's task thread keeps freed heap memory for its next task (glibc's
mallopt, set where hpcdist imports MPI: hpcdist.runtime.malloc)."""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

# In a fresh process: 20 "tasks" in a thread, each allocating and freeing 8 MB arrays as a
# numpy model's predict does; print the page faults they took. "plain" does not import
# hpcdist (glibc's own behaviour); "hpcdist" imports it as a worker does.
PROGRAM = """
import resource, sys, threading
import numpy as np
kept = None
if sys.argv[1] == "hpcdist":
    import hpcdist.runtime.comm  # noqa: F401 - where the thresholds are set
    from hpcdist.runtime.malloc import keep_freed_memory
    kept = keep_freed_memory()
def tasks():
    for _ in range(20):
        a = np.ones((1024, 1024)); b = np.tanh(a @ a[:, :8].repeat(128, axis=1)); del a, b
tasks()  # the first round faults the pages in either way
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
t = threading.Thread(target=tasks); t.start(); t.join()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
"""


def faults(mode: str, env: dict | None = None) -> tuple[str, int]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", PROGRAM, mode], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**base, **(env or {})}, check=True).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_worker_thread_stops_faulting_its_arrays_in_again():
    _, plain = faults("plain")
    kept, held = faults("hpcdist")
    assert kept == "True"
    # 20 tasks x 8 MB arrays: thousands of fresh pages without, a small fraction with
    assert plain > 2000 and held < plain / 4, (plain, held)


def test_the_environment_wins():
    kept, _ = faults("hpcdist", env={"MALLOC_TRIM_THRESHOLD_": "1048576"})
    assert kept == "False"
