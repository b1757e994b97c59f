"""`es-mpi train`: validate the job, then train in this MPI job or start one with -n.

Every input check runs before anything touches the run directory. Under mpiexec every rank
checks, the ranks agree on the outcome, and only rank 0 reports: one line, not one per rank.
"""

from .config import check_runnable, load_job
from .errors import EXIT_BAD_INPUT, UserError


def validated_job(args):
    """The job with every check done that needs no run directory and no MPI."""
    job = load_job(args.job, args.overrides, args.run_dir)
    check_runnable(job)
    return job


def first_error(comm, error):
    """The first rank's error message (rank order), the same on every rank; None if all passed."""
    messages = comm.allgather(None if error is None else str(error))
    for rank, message in enumerate(messages):
        if message is not None:
            return message if rank == 0 else f"rank {rank}: {message}"
    return None


def train_command(args):
    from .mpi import under_mpi_launcher

    if not under_mpi_launcher():
        job = validated_job(args)
        if args.np is not None:
            from .launcher import launch

            return launch(args)
        from .mpi import world

        return train(job, args, world())
    from .mpi import install_abort_on_error, world

    comm = world()
    install_abort_on_error(comm)
    try:
        job, error = validated_job(args), None
    except UserError as err:
        job, error = None, err
    message = first_error(comm, error)
    if message is not None:
        return report_once(comm, UserError(message))
    return train(job, args, comm)


def report_once(comm, error):
    """Rank 0 raises the error for the CLI to print; the other ranks exit quietly."""
    if comm.rank == 0:
        raise error
    return EXIT_BAD_INPUT


def train(job, args, comm):
    from .mpi import install_abort_on_error
    from .trainer import Trainer

    install_abort_on_error(comm)
    try:
        trainer = Trainer(job, comm, resume=args.resume, force=args.force,
                          log=lambda line: print(line, flush=True))
    except UserError as err:
        return report_once(comm, err)
    try:
        return trainer.train()
    finally:
        trainer.close()
