"""`es-mpi train`: validate the job, then train in this MPI job or start one with -n."""

import sys

from .config import load_job
from .errors import EXIT_BAD_INPUT, UserError


def train_command(args):
    job = load_job(args.job, args.overrides, args.run_dir)
    from .mpi import under_mpi_launcher

    if args.np is not None and not under_mpi_launcher():
        from .launcher import launch

        return launch(args)
    from .mpi import install_abort_on_error, world
    from .trainer import Trainer

    comm = world()
    install_abort_on_error(comm)
    try:
        trainer = Trainer(job, comm, resume=args.resume, force=args.force,
                          log=lambda line: print(line, flush=True))
    except UserError as err:
        if comm.rank == 0:
            sys.stderr.write(f"es-mpi: error: {err}\n")
        return EXIT_BAD_INPUT
    code = trainer.train()
    trainer.close()  # collective: never on an error path, where it would wait for a dead rank
    return code
