"""The journal loses nothing that record_many returned from, whenever the writer is SIGKILLed."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from hpcdist.farm.journal import Journal
from tests.conftest import ROOT, SCRIPTS

sys.path.insert(0, str(SCRIPTS))
from journal_writer import BATCH, expected  # noqa: E402

pytestmark = pytest.mark.launch

KILLS = 6


def _run_until_killed(path: str, delay: float, early: bool) -> list[int]:
    """Start the writer and SIGKILL it; return the batches it reported committed.

    ``early``: kill ``delay`` seconds after the start, possibly while it still opens the
    journal and consolidates the previous run's segments; else ``delay`` seconds after
    it opened the journal, in the middle of its writes.
    """
    proc = subprocess.Popen([sys.executable, str(SCRIPTS / "journal_writer.py"), path], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if not early:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            assert first.strip() == "started", first
        time.sleep(delay)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err
    return [int(line.split()[1]) for line in out.splitlines() if line.startswith("committed ")]


def _check(journal: Journal, batch: int) -> None:
    for i in range(BATCH):
        key = f"b{batch}-{i}"
        assert key in journal, f"batch {batch} returned from record_many but {key} is lost"
        got, want = journal.get(key), expected(batch, i)
        if isinstance(want, np.ndarray):
            assert isinstance(got, np.ndarray) and got.dtype == want.dtype and np.array_equal(got, want), key
        else:
            assert got == want, key


@pytest.mark.timeout(120)
def test_sigkill_at_random_moments_loses_no_committed_batch(tmp_path):
    path = str(tmp_path / "run.h5")
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    committed: list[int] = []
    for _ in range(KILLS):
        early = rng.random() < 0.3
        committed += _run_until_killed(path, rng.uniform(0.2, 0.8) if early else rng.uniform(0.0, 0.4), early)
    assert committed, "the writer never committed a batch"
    with Journal(path) as journal:
        for batch in committed:
            _check(journal, batch)
        # every batch present is complete: a batch is one atomic segment
        batches = {int(k.split("-")[0][1:]) for k in journal.keys()}
        assert len(journal) == BATCH * len(batches)
        assert set(committed) <= batches
