"""Shared helpers: run es-mpi for real, in one process or under a real mpiexec."""

import contextlib
import io
import os
import pathlib
import signal
import subprocess
import sys
import time
import warnings

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
PYTHON = sys.executable
MPIEXEC = str(pathlib.Path(PYTHON).parent / "mpiexec")


def child_env(**extra):
    """The environment of every es-mpi, mpiexec and sbatch the tests start. Open MPI's libfabric BTL
    (`ofi`) spends about a second of every MPI start probing for fabrics a test machine lacks;
    shared memory and TCP (what the tests use, the two Slurm nodes included) stay on."""
    env = dict(os.environ)
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_osc="^ucx",
               OMPI_MCA_btl="^ofi", PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def es_mpi_command(*args):
    return [PYTHON, "-m", "es_mpi", *map(str, args)]


def mpiexec_command(n_ranks, *args):
    return [MPIEXEC, "-n", str(n_ranks), "--oversubscribe", "--bind-to", "none", *es_mpi_command(*args)]


# Open MPI's launcher failing before any rank ran (seen once, in a full run on a busy machine):
# nothing of es-mpi ran, so the command is started once more.
PMIX_START_FAILURE = "The PMIx server's listener thread failed to start"


def run(command, timeout=300, env_extra=None, **kwargs):
    cwd = kwargs.pop("cwd", REPO)
    for attempt in range(2):
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                env=child_env(**(env_extra or {})), cwd=cwd, **kwargs)
        if attempt or PMIX_START_FAILURE not in result.stderr:
            return result


def run_es(*args, timeout=300, env_extra=None):
    """es-mpi in one process (an MPI singleton for train)."""
    return run(es_mpi_command(*args), timeout=timeout, env_extra=env_extra)


def run_mpi(n_ranks, *args, timeout=300, env_extra=None):
    """es-mpi under a real mpiexec with n_ranks ranks."""
    return run(mpiexec_command(n_ranks, *args), timeout=timeout, env_extra=env_extra)


# What a fresh interpreter prints of a warning's categories (its default filters hide these).
HIDDEN_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)
# Blocked during run_cli: a check that should have refused its input but let the job through to MPI
# fails there, instead of starting MPI and training inside pytest.
MPI_MODULES = ("mpi4py", "mpi4py.MPI", "es_mpi.run.mpi")


def run_cli(*args, env_extra=None):
    """es-mpi's main() in this process, for input checks that end before MPI starts, where the
    process boundary is not the claim (a few subprocess tests per check keep that one).

    Returns a CompletedProcess as run_es does: the exit code, stdout, and stderr with each warning a
    fresh interpreter would print. The stop-signal handlers `train` installs, os.environ and the
    MPI modules are put back afterwards.
    """
    from es_mpi.commands.cli import main
    from es_mpi.core import stop_signals

    argv = [str(arg) for arg in args]
    handlers = {sig: signal.getsignal(sig) for sig in stop_signals.STOP_SIGNALS}
    env_extra = {name: str(value) for name, value in (env_extra or {}).items()}
    flag, modules = stop_signals._flag, {name: sys.modules.get(name) for name in MPI_MODULES}
    environ = {name: os.environ.get(name) for name in env_extra}
    out, err = io.StringIO(), io.StringIO()
    os.environ.update(env_extra)
    sys.modules.update(dict.fromkeys(MPI_MODULES))
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):
            warnings.simplefilter("always")
            try:
                code = main(argv)
            except SystemExit as exit_:  # argparse: --help, a bad argument
                code = 0 if exit_.code is None else exit_.code if isinstance(exit_.code, int) else 1
    finally:
        for name, module in modules.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        for name, value in environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        stop_signals._flag = flag
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    shown = [f"{w.filename}:{w.lineno}: {w.category.__name__}: {w.message}\n" for w in caught
             if not issubclass(w.category, HIDDEN_WARNINGS)]
    return subprocess.CompletedProcess(["es-mpi", *argv], code, out.getvalue(), "".join(shown) + err.getvalue())


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


def wait_for(predicate, timeout=120):
    """Poll predicate until it holds (True) or timeout seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False
