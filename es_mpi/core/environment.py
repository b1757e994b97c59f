"""Every environment variable es-mpi reads, parsed and range-checked in one place.

`check_environment` runs before MPI starts, like the job file's check: a bad value is one line
naming the variable, exit code 2, before anything is written.
"""

import os

from es_mpi.core.errors import UserError

NODE_SIZE_VARIABLE = "ES_MPI_NODE_SIZE"
RESTART_COUNT_VARIABLE = "SLURM_RESTART_COUNT"
MAX_COUNT = 2**31 - 1


def _count(environ, name, low, meaning):
    """The integer in variable `name`, or None when it is unset or empty; UserError naming it else."""
    text = environ.get(name, "").strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= MAX_COUNT:
        raise UserError(f"{name}={environ[name]!r}: not an integer from {low} to {MAX_COUNT} ({meaning})")
    return int(text)


def node_size_from_env(environ=os.environ):
    """K from ES_MPI_NODE_SIZE, or None (one node per machine) when it is unset or empty."""
    return _count(environ, NODE_SIZE_VARIABLE, 1,
                  "the ranks per virtual node; unset it for one node per machine")


def slurm_restart_count(environ=os.environ):
    """How often Slurm requeued this job (0 outside Slurm): a requeued job may take over its own lock."""
    return _count(environ, RESTART_COUNT_VARIABLE, 0, "set by Slurm for a requeued job") or 0


def check_environment(environ=os.environ):
    node_size_from_env(environ)
    slurm_restart_count(environ)
