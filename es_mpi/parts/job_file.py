"""The job file as this es-mpi reads it: job/'s parser and reference, given the registered
strategies' schemas (job/ imports no strategy code, so they are handed over here).

Everything above parts/ reads jobs through these three functions.
"""

from es_mpi.job import parse, reference
from es_mpi.parts.strategies import STRATEGIES


def load_job(path, overrides=(), run_dir=None):
    """Read, override and validate a job file. Raises ConfigError; does no other work."""
    return parse.load_job(path, overrides, run_dir, strategies=STRATEGIES.schemas)


def job_from_text(text, path, overrides=(), run_dir=None):
    """The job in `text` (a job file's, or the one a checkpoint stores); `path` names it in errors."""
    return parse.job_from_text(text, path, overrides, run_dir, strategies=STRATEGIES.schemas)


def job_reference():
    """`es-mpi keys`: Markdown reference of every job-file section and key."""
    return reference.job_reference(STRATEGIES.schemas)
