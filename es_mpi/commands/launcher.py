"""`es-mpi train -n N`: start mpiexec for the user, so nobody has to remember its flags.

Open MPI refuses to run as root and to start more ranks than cores unless told; this does
both. mpiexec runs in its own session so that Ctrl-C reaches only us: the first SIGINT,
SIGTERM or SIGUSR1 becomes a SIGUSR1 to mpiexec (which forwards it to every rank: finish
the iteration, checkpoint, exit 3); a second SIGINT stops the job hard. If the launcher itself
is killed, mpiexec gets SIGTERM from the kernel and stops the ranks.
"""

import ctypes
import os
import pathlib
import shutil
import signal
import subprocess
import sys

from es_mpi.core.errors import UserError
from es_mpi.run.open_mpi_defaults import set_open_mpi_defaults

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def find_mpiexec(explicit):
    if explicit:
        return explicit
    beside_python = pathlib.Path(sys.executable).parent / "mpiexec"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("mpiexec")
    if found is None:
        raise UserError("mpiexec not found: run 'make install' (it installs Open MPI into .venv) "
                        "or set ES_MPI_MPIEXEC")
    return found


# The ranks run es_mpi without the working directory on sys.path, so that a csv.py (say) lying
# there is never imported: -P from Python 3.11, the same by hand before.
if sys.version_info >= (3, 11):
    RANK_PYTHON_ARGS = ("-P", "-m", "es_mpi")
else:
    RANK_PYTHON_ARGS = ("-c", "import runpy, sys; sys.path.pop(0); "
                              "runpy.run_module('es_mpi', run_name='__main__', alter_sys=True)")


def mpiexec_command(mpiexec, n_ranks, argv):
    command = [mpiexec, "-n", str(n_ranks)]
    if n_ranks > (os.cpu_count() or 1):
        command += ["--oversubscribe", "--bind-to", "none"]
    return command + [sys.executable, *RANK_PYTHON_ARGS, *argv]


def die_with_parent():
    """In the mpiexec child before exec: SIGTERM when the launcher dies, even by SIGKILL (Linux
    prctl PR_SET_PDEATHSIG), so mpiexec stops the ranks instead of training on, orphaned."""
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return  # not Linux: no parent-death signal to ask for
    if os.getppid() != parent:  # the launcher died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def mpi_environment():
    env = dict(os.environ)
    if os.geteuid() == 0:
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    set_open_mpi_defaults(env)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def strip_np(argv):
    """The train arguments without -n/--np N (the ranks must not launch again)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("-n", "--np"):
            skip = True
        elif not (arg.startswith("--np=") or (arg.startswith("-n") and arg[2:].isdigit())):
            out.append(arg)
    return out


def launch(args, argv):
    """Run `es-mpi <argv>` (the command line this process got, without -n) on args.np ranks."""
    if args.np < 1:
        raise UserError(f"-n: need at least 1 rank, got {args.np}")
    command = mpiexec_command(find_mpiexec(args.mpiexec), args.np, strip_np(argv))
    process = subprocess.Popen(command, env=mpi_environment(), start_new_session=True, preexec_fn=die_with_parent)
    received = []

    def forward(signum, frame):
        received.append(signum)
        hard = signum == signal.SIGINT and received.count(signal.SIGINT) > 1
        process.send_signal(signal.SIGTERM if hard else signal.SIGUSR1)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, forward)
    return process.wait()
