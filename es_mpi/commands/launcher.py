"""`es-mpi train -n N`: start mpiexec for the user, so nobody has to remember its flags.

Open MPI refuses to run as root and to start more ranks than cores unless told; this does
both. mpiexec runs in its own session so that Ctrl-C reaches only us: the first SIGINT,
SIGTERM or SIGUSR1 becomes a SIGUSR1 to mpiexec (which forwards it to every rank: finish
the iteration, checkpoint, exit 3); a second SIGINT stops the job hard.
"""

import os
import pathlib
import shutil
import signal
import subprocess
import sys

from es_mpi.core.errors import UserError
from es_mpi.run.open_mpi_defaults import set_open_mpi_defaults


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


def mpiexec_command(mpiexec, n_ranks, argv):
    command = [mpiexec, "-n", str(n_ranks)]
    if n_ranks > (os.cpu_count() or 1):
        command += ["--oversubscribe", "--bind-to", "none"]
    return command + [sys.executable, "-m", "es_mpi", *argv]


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
    process = subprocess.Popen(command, env=mpi_environment(), start_new_session=True)
    received = []

    def forward(signum, frame):
        received.append(signum)
        hard = signum == signal.SIGINT and received.count(signal.SIGINT) > 1
        process.send_signal(signal.SIGTERM if hard else signal.SIGUSR1)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, forward)
    return process.wait()
