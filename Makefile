# hpcdist: two commands on a fresh machine.
#   make demo   creates .venv when missing, installs hpcdist with the MPICH wheel, runs the demo job
#   make test   same set-up, then the whole suite (serial, then MPI at 2, 3 and 4 ranks)
# On a cluster, point MPIEXEC at the system launcher (see README.md).

PYTHON ?= python3
VENV ?= .venv
NP ?= 4
PY := $(VENV)/bin/python
MPIEXEC ?= $(VENV)/bin/mpiexec
STAMP := $(VENV)/.hpcdist-installed

# The demo graph: a real one from ../shared when it is there, else a generated one.
DEMO_GRAPH ?= $(or $(wildcard ../shared/data/graphs/p2p-Gnutella04.txt),rmat:16)

.PHONY: demo test venv clean

venv: $(STAMP)

# Reinstalls only when the project's metadata changed, so repeated runs are quick.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,mpich]'
	@touch $(STAMP)

demo: $(STAMP)
	$(MPIEXEC) -n $(NP) $(VENV)/bin/hpcdist info
	$(MPIEXEC) -n $(NP) $(VENV)/bin/hpcdist demo
	@mkdir -p demo-out
	$(MPIEXEC) -n $(NP) $(VENV)/bin/hpcdist graph pagerank --input $(DEMO_GRAPH) --output demo-out/pagerank.h5
	$(MPIEXEC) -n 3 $(VENV)/bin/hpcdist exec examples/farm_sweep.py
	$(MPIEXEC) -n 3 $(VENV)/bin/hpcdist exec examples/farm_ensemble.py
	$(MPIEXEC) -n 3 $(VENV)/bin/hpcdist exec examples/farm_pipeline.py

test: $(STAMP)
	$(PY) tests/run_suite.py

clean:
	rm -rf $(VENV) .test-logs build *.egg-info
