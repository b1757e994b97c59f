# The two commands: `make train` and `make test`. Both install into .venv first if needed.
VENV   ?= .venv
PYTHON ?= python3
NP     ?= $(shell nproc)
JOB    ?= jobs/halfcheetah.toml
EXTRAS ?= openmpi,atari,test
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install train test bench clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

# The default job on all local cores; runs again continue where the last one stopped.
train: install
	$(BIN)/es-mpi train $(JOB) -n $(NP) --resume

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: install
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info
