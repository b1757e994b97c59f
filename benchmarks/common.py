"""What every benchmark shares: the repo on sys.path, the machine, the command, markdown output."""

import argparse
import os
import pathlib
import platform
import shlex
import statistics
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
sys.path.insert(0, str(REPO))  # benchmark this checkout's es_mpi, not an installed copy

from es_mpi.commands.launcher import find_mpiexec  # noqa: E402 (after the sys.path line)

PYTHON = sys.executable
MPIEXEC = find_mpiexec(os.environ.get("ES_MPI_MPIEXEC"), "ES_MPI_MPIEXEC")  # as `es-mpi train -n` finds it


def cpu_model():
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_lines():
    import numpy as np

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [f"- machine: {os.cpu_count()} cores, {cpu_model()}, {platform.system()} {platform.release()}",
            f"- load average at start (1, 5, 15 min): {load} (the machine is shared: figures are medians)",
            f"- python {platform.python_version()}, numpy {np.__version__}"]


def command_line():
    """The exact command that produced a report, relative to the repo when it can be."""
    script = pathlib.Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(REPO)
    except ValueError:
        pass
    return shlex.join(["python", str(script), *sys.argv[1:]])


def median(values):
    values = list(values)
    return statistics.median(values) if values else float("nan")


def spread(values):
    """'min-max' of repeated measurements, to show the noise beside a median."""
    values = list(values)
    return f"{min(values):.3g}-{max(values):.3g}" if values else "-"


def markdown_table(columns, rows):
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def report_name(text):
    """argparse type of every script's --name: the report is benchmarks/results/NAME.md, so a path
    (`../x`, `/tmp/x`) would write outside the results folder."""
    if not text or text.startswith(".") or pathlib.PurePath(text).name != text:
        raise argparse.ArgumentTypeError(f"must be a file name without a folder (the report is "
                                         f"benchmarks/results/NAME.md), got {text!r}")
    return text


def refusing(errors, script, function, *args):
    """function(*args), with an error of `errors` (bad input) printed as one line, exit code 2."""
    try:
        return function(*args)
    except errors as err:
        print(f"{script}: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def write_report(name, title, body_lines):
    """Write benchmarks/results/<name>.md (machine and command included) and echo it."""
    text = "\n".join([f"# {title}", "", f"Command: `{command_line()}`", "", *machine_lines(), "",
                      *body_lines, ""])
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text(text)
    print(text)
    print(f"written to {path.relative_to(REPO)}")
    return path


def mpi_environment():
    env = dict(os.environ)
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_osc="^ucx",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               PYTHONUNBUFFERED="1")
    return env


def run_mpi(n_ranks, args, timeout):
    """A real mpiexec with n_ranks ranks of `python args...`; raises with its output on failure."""
    command = [MPIEXEC, "-n", str(n_ranks), "--oversubscribe", "--bind-to", "none", PYTHON, *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=mpi_environment(),
                          cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout
