"""Per-rank pytest launcher used by run_suite.py under mpiexec.

usage: rank_pytest.py PHASE [pytest args]. Rank 0 prints to the terminal; the
other ranks write to .test-logs/PHASE-rankR.log. Every rank writes its own junit
XML. The rank comes from the launcher's environment, so MPI is first initialised
by the tests themselves, as in a user's program.
"""

import os
import sys
from pathlib import Path

import pytest

RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID")


def main() -> int:
    phase, args = sys.argv[1], sys.argv[2:]
    rank = next((int(os.environ[v]) for v in RANK_VARS if os.environ.get(v, "").isdigit()), 0)
    logs = Path(__file__).resolve().parent.parent / ".test-logs"
    if rank != 0:
        fd = os.open(logs / f"{phase}-rank{rank}.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    return int(pytest.main([*args, f"--junitxml={logs / f'{phase}-rank{rank}.xml'}"]))


if __name__ == "__main__":
    sys.exit(main())
