#!/usr/bin/env bash
# Run an hpcdist job on this machine with the MPI that hpcdist's venv carries.
#   jobs/local.sh [NP] [hpcdist command and options...]
#   jobs/local.sh 4 info
#   jobs/local.sh 2 exec my_script.py --my-option
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${HPCDIST_VENV:-$here/.venv}"
np="${1:-4}"; shift || true
[ $# -gt 0 ] || set -- info
mpiexec="${MPIEXEC:-$venv/bin/mpiexec}"
exec "$mpiexec" -n "$np" "$venv/bin/hpcdist" "$@"
