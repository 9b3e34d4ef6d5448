"""Record batches into a journal forever, printing each batch number once record_many returned.

Usage: python journal_writer.py PATH [MERGE_AT]

MERGE_AT (default 8) lowers the number of small segments that get merged, so that
kills also land in the middle of merges.

Run by tests/launch/test_journal_kill.py, which SIGKILLs it at random moments: every
batch printed as committed must be in the journal, intact, after the kill. Each start
continues after the highest batch already recorded (opening also recovers the
previous run's segments, so kills land during recovery too).
"""

from __future__ import annotations

import sys

import numpy as np

import hpcdist.farm.journal as journal_module
from hpcdist.farm.journal import Journal

BATCH = 40


def expected(batch: int, i: int) -> object:
    """The value recorded under ``b{batch}-{i}``: small pickles, small and 1 MB arrays."""
    if i == 0 and batch % 3 == 0:
        return np.full(131072, float(batch))  # 1 MB: widens the window of a write
    if i % 4 == 1:
        return np.arange(100, dtype=np.int32) + batch * 1000 + i
    return {"batch": batch, "i": i, "text": f"result {batch}/{i}"}


def main(path: str, merge_at: int) -> None:
    journal_module._MERGE_AT = merge_at
    journal = Journal(path)
    done = [int(k.split("-")[0][1:]) for k in journal.keys()]
    batch = max(done, default=-1) + 1
    print("started", flush=True)
    while True:
        journal.record_many([(f"b{batch}-{i}", expected(batch, i)) for i in range(BATCH)])
        print(f"committed {batch}", flush=True)
        batch += 1


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 8)
