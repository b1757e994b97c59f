# The two commands: `make train` and `make test`. Both install into .venv first if needed.
VENV   ?= .venv
PYTHON ?= python3
NP     ?= $(shell nproc)
JOB    ?= jobs/halfcheetah.toml
EXTRAS ?= openmpi,atari,video,plot,tensorboard,test
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install system-packages train test bench clean slurm-up slurm-down

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

# The default job on all local cores; runs again continue where the last one stopped.
train: install
	$(BIN)/es-mpi train $(JOB) -n $(NP) --resume

# As root on Debian this also installs the system packages the tests need (offscreen rendering);
# the Slurm tests bring up a one-node and a two-node Slurm themselves (.ci/slurm.sh,
# .ci/slurm-two-nodes.sh; root and apt-get needed).
test: install system-packages
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

system-packages:
	.ci/render-packages.sh

# A one-node Slurm on this machine (root, Debian): try slurm/*.sbatch by hand.
slurm-up:
	.ci/slurm.sh up

slurm-down:
	.ci/slurm.sh down

bench: install
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info
