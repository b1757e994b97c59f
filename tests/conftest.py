"""Shared helpers: run es-mpi for real, in one process or under a real mpiexec."""

import contextlib
import os
import pathlib
import signal
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
PYTHON = sys.executable
MPIEXEC = str(pathlib.Path(PYTHON).parent / "mpiexec")


def child_env(**extra):
    env = dict(os.environ)
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_osc="^ucx",
               PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def es_mpi_command(*args):
    return [PYTHON, "-m", "es_mpi", *map(str, args)]


def mpiexec_command(n_ranks, *args):
    return [MPIEXEC, "-n", str(n_ranks), "--oversubscribe", "--bind-to", "none", *es_mpi_command(*args)]


def run(command, timeout=300, env_extra=None, **kwargs):
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          env=child_env(**(env_extra or {})), cwd=kwargs.pop("cwd", REPO), **kwargs)


def run_es(*args, timeout=300, env_extra=None):
    """es-mpi in one process (an MPI singleton for train)."""
    return run(es_mpi_command(*args), timeout=timeout, env_extra=env_extra)


def run_mpi(n_ranks, *args, timeout=300, env_extra=None):
    """es-mpi under a real mpiexec with n_ranks ranks."""
    return run(mpiexec_command(n_ranks, *args), timeout=timeout, env_extra=env_extra)


@contextlib.contextmanager
def no_hang(seconds=30):
    """Fail, instead of hanging the suite, if the body blocks (a read of a FIFO, say)."""
    def fail(signum, frame):
        raise AssertionError(f"blocked for {seconds} s")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def write_job(tmp_path):
    """Write a job file into tmp_path; its run directory defaults to tmp_path/run."""

    def write(text, name="job.toml"):
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
