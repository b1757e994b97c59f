"""Run under mpiexec: many `es-mpi train` commands inside one MPI job, as mpi4py's own suite runs
its tests. Starting es-mpi and mpiexec costs more than a small run's training; here each command
runs once the interpreter and MPI are up.

    mpiexec -n N python tests/train_matrix_probe.py PLAN.json

PLAN.json is a list of {"ranks": K, "env": {NAME: VALUE}, "argv": [...], "stdout": PATH}, run in
order. World ranks 0..K-1 form a communicator of K ranks and run `es_mpi.commands.cli.main(argv)`
on it, with the variables set as given (ES_MPI_NODE_SIZE, ES_MPI_FAULT_INJECT; unset for null, and
afterwards): the command's whole path, job checks and exit code included, on a real communicator of
that size. Its rank 0's stdout goes to PATH, and PATH + ".code" gets the exit code. The other ranks
wait, asleep, for the next command.

The command's communicator is what `es_mpi.run.mpi.world()` returns while it runs: `train` must ask
that function for its world when it starts (as commands/train.py does), not hold MPI.COMM_WORLD.
"""

import contextlib
import json
import os
import pathlib
import sys
import time
import traceback

import es_mpi.run.mpi as es_mpi_mpi
from es_mpi.commands.cli import main as es_mpi_main

WORLD = es_mpi_mpi.world()


def abort_on_error(kind, value, tb):
    sys.stderr.write(f"[world rank {WORLD.rank}] " + "".join(traceback.format_exception(kind, value, tb)))
    sys.stderr.flush()
    WORLD.Abort(1)


def wait_for_all():
    """A barrier that sleeps: ranks that sit a command out must not take the cores it runs on."""
    request = WORLD.Ibarrier()
    while not request.Test():
        time.sleep(0.01)


def set_variables(variables):
    for name, value in variables.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def run_on(comm, command):
    saved = {name: os.environ.get(name) for name in command["env"]}
    set_variables(command["env"])
    es_mpi_mpi.world = lambda: comm  # what `train` runs on: this command's ranks, not the whole job
    out = pathlib.Path(command["stdout"])
    with open(out if comm.rank == 0 else os.devnull, "w") as stdout, contextlib.redirect_stdout(stdout):
        code = es_mpi_main(command["argv"])
    sys.excepthook = abort_on_error  # train's hook aborts a communicator that is freed next
    set_variables(saved)
    if comm.rank == 0:
        out.with_name(out.name + ".code").write_text(f"{code}\n")


def main():
    from mpi4py import MPI

    sys.excepthook = abort_on_error
    plan = json.loads(pathlib.Path(sys.argv[1]).read_text())
    for command in plan:
        member = WORLD.rank < command["ranks"]
        comm = WORLD.Split(color=0 if member else MPI.UNDEFINED, key=WORLD.rank)
        if member:
            run_on(comm, command)
            comm.Free()
        wait_for_all()


if __name__ == "__main__":
    main()
