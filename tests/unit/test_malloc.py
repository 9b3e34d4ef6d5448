"""hpcdist.runtime.malloc: freed memory stays with the process, so large temporaries come
back without page faults; a process that sets glibc's variables keeps its choice."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")

CHURN = """
import resource
import numpy as np
import hpcdist.runtime.comm  # the MPI import point sets the thresholds
from hpcdist.runtime.malloc import keep_freed_memory
kept = []
def churn():
    # 3 and 2 MiB, freed at once: under numpy's 4 MiB, above which it asks for huge pages
    # (then a block faults in a few huge pages, and the count says little)
    a = np.ones(3 << 17)
    b = np.ones(1 << 18)
    kept.append(np.ones(1 << 10))  # a result the caller keeps, between the temporaries
    del a, b
churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    churn()
print(keep_freed_memory(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def run(extra_env: dict[str, str]) -> tuple[bool, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.update(extra_env)
    out = subprocess.run([sys.executable, "-c", CHURN], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    tuned, faults = out.stdout.split()
    return tuned == "True", int(faults)


@pytest.mark.timeout(240)
def test_temporaries_come_back_without_page_faults_and_glibc_variables_win():
    tuned, faults = run({})
    assert tuned and faults < 200, faults  # 10 x 5 MiB through fresh pages would be ~12 800
    # glibc's default threshold, set by the user: not overridden, and then every block faults
    tuned, faults = run({"MALLOC_MMAP_THRESHOLD_": "131072"})
    assert not tuned and faults > 1_000, faults
