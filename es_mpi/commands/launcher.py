"""`es-mpi train -n N`: start mpiexec for the user, so nobody has to remember its flags.

Open MPI refuses to run as root and to start more ranks than cores unless told; this does
both. mpiexec runs in its own session so that Ctrl-C reaches only us: the first SIGINT,
SIGTERM or SIGUSR1 becomes a SIGUSR1 to mpiexec (which forwards it to every rank: finish
the iteration, checkpoint, exit 3); a second SIGINT stops the job hard. If the launcher itself
is killed, mpiexec gets SIGTERM from the kernel and stops the ranks.

mpiexec's stderr passes through a filter: Open MPI frames a notice ("prterun detected that
one or more processes exited with non-zero status ...") around every non-zero exit, which
makes a planned stop look like a crash. For the planned codes (2 bad input, 3 stopped after a
checkpoint) the launcher drops that notice and says the outcome in one line of its own; a crash
(exit 1) keeps everything, every rank's traceback included.

A stop that reaches a rank before its Python has caught the stop signals (a loaded machine can
take seconds to start one) ends that rank by the signal itself. No iteration can have run then
(each needs every rank), so nothing is lost: the launcher reports it as the planned stop it was,
exit 3.
"""

import ctypes
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import threading

from es_mpi.core.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, UserError
from es_mpi.core.stop_signals import STOP_SIGNALS, catch_stop_signals
from es_mpi.run.open_mpi_defaults import set_open_mpi_defaults

PLANNED_EXITS = {EXIT_BAD_INPUT: "bad input, reported above",
                 EXIT_INTERRUPTED: "stopped after writing a checkpoint; continue with --resume"}
EXIT_NOTICE = "exited with non-zero status"
EXIT_CODE_LINE = re.compile(r"^\s*Exit code:\s*(\d+)\s*$")
# PMIx may complain while ranks that exited non-zero are torn down: noise unless the job crashed.
TEARDOWN_LINE = re.compile(r"^\[[^\]]+\] PMIX ERROR: PMIX_ERR_UNREACH ")
KILLED_BY_SIGNAL = re.compile(r"exited on\s+signal\s+(\d+)")


RESEND_S = 1.0  # a stop is said again to mpiexec this often until the job ends
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def find_mpiexec(explicit, source="--mpiexec"):
    """The mpiexec to run: `explicit` (from `source`, named in errors) if given, else the venv's, then PATH's."""
    if explicit:
        return checked_program(explicit, source)
    beside_python = pathlib.Path(sys.executable).parent / "mpiexec"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("mpiexec")
    if found is None:
        raise UserError("mpiexec not found: run 'make install' (it installs Open MPI into .venv) "
                        "or set ES_MPI_MPIEXEC")
    return found


def checked_program(name, source):
    """`name` as a path to an executable regular file (a bare name is looked up on PATH); one-line UserError else."""
    path = shutil.which(name) if os.sep not in name else name
    if path is None or not os.path.exists(path):
        raise UserError(f"{source}: {name}: no such program")
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise UserError(f"{source}: {name}: not an executable file")
    return path


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
    if "SLURM_JOB_ID" not in env:
        # Open MPI pins a job of 1 or 2 ranks to cores 0, 1: a second es-mpi run on the same
        # workstation would be pinned to the same cores and both would run at half speed. Under
        # Slurm the job's own cpuset keeps jobs apart, and Open MPI's binding stays.
        env.setdefault("PRTE_MCA_hwloc_default_binding_policy", "none")
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


def is_frame(line):
    return len(line.strip()) > 10 and set(line.strip()) == {"-"}


def planned_exit_notice(block):
    """Whether a framed block is Open MPI's non-zero-exit notice for a planned exit code."""
    if not any(EXIT_NOTICE in line for line in block):
        return False
    codes = [int(m.group(1)) for m in map(EXIT_CODE_LINE.match, block) if m]
    return bool(codes) and all(code in PLANNED_EXITS for code in codes)


def start_up_stop_notice(block):
    """Whether a framed block is Open MPI's notice of a rank killed by the SIGUSR1 we forwarded."""
    found = KILLED_BY_SIGNAL.search(" ".join(line.strip() for line in block))
    return bool(found) and int(found.group(1)) == signal.SIGUSR1


def filter_notices(lines, write, stop_forwarded=lambda: False):
    """Copy lines to `write` as they come, holding back each framed block until it closes;
    returns the PMIx teardown lines, held back for the exit code to decide. `stop_forwarded()`
    says whether the launcher has passed a stop on (then a rank killed by it is no crash)."""
    block, teardown = None, []
    for line in lines:
        if block is None:
            if TEARDOWN_LINE.match(line):
                teardown.append(line)
            elif is_frame(line):
                block = [line]
            else:
                write(line)
            continue
        block.append(line)
        if is_frame(line):
            if not (planned_exit_notice(block) or (stop_forwarded() and start_up_stop_notice(block))):
                for held in block:
                    write(held)
            block = None
    for held in block or []:
        write(held)
    return teardown


def outcome_line(n_ranks, code):
    return f"es-mpi train: {n_ranks} ranks ended with exit code {code} ({PLANNED_EXITS[code]})\n"


def launch(args, argv):
    """Run `es-mpi <argv>` (the command line this process got, without -n) on args.np ranks."""
    source = "--mpiexec" if args.mpiexec != os.environ.get("ES_MPI_MPIEXEC") else "ES_MPI_MPIEXEC"
    command = mpiexec_command(find_mpiexec(args.mpiexec, source), args.np, strip_np(argv))
    flag = catch_stop_signals()
    if flag.signal:
        print(f"es-mpi: stopped by signal {flag.name} before the ranks started; nothing to checkpoint; "
              "continue with --resume", flush=True)
        return EXIT_INTERRUPTED
    process = subprocess.Popen(command, env=mpi_environment(), start_new_session=True, preexec_fn=die_with_parent,
                               stderr=subprocess.PIPE, text=True, errors="replace", bufsize=1)
    received = [flag.signal] if flag.signal else []
    hard = []

    def forward(signum, frame):
        received.append(signum)
        if signum == signal.SIGINT and received.count(signal.SIGINT) > 1:
            hard.append(signum)
        process.send_signal(signal.SIGTERM if hard else signal.SIGUSR1)

    for sig in STOP_SIGNALS:
        signal.signal(sig, forward)

    def write(line):
        sys.stderr.write(line)
        sys.stderr.flush()

    teardown = []
    reader = threading.Thread(target=lambda: teardown.extend(filter_notices(process.stderr, write, lambda: bool(received))),
                              daemon=True)
    reader.start()
    while True:
        try:
            code = process.wait(timeout=RESEND_S)
            break
        except subprocess.TimeoutExpired:
            if received and not hard:  # ranks still starting up missed it; repeats are harmless
                process.send_signal(signal.SIGUSR1)
    reader.join()
    if received and not hard and code in (128 + signal.SIGUSR1, -signal.SIGUSR1):
        write(f"es-mpi train: stopped by signal {signal.Signals(received[0]).name} while the ranks were starting, "
              "before any iteration; nothing new to checkpoint; continue with --resume\n")
        return EXIT_INTERRUPTED
    if code in PLANNED_EXITS:
        write(outcome_line(args.np, code))
    else:
        for line in teardown:
            write(line)
    return code
