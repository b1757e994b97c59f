"""`es-mpi train`: validate the job, then train in this MPI job or start one with -n.

Every input check runs before anything touches the run directory, and before MPI starts:
Open MPI prints runtime noise when initialised ranks exit non-zero, and a bad job file is
the common case. Under mpiexec every rank checks the job (they read the same file), and
only rank 0 reports it: one line, not one per rank.
"""

import os
import time

from es_mpi.parts.build import build_task
from es_mpi.parts.job_file import load_job
from es_mpi.core.console import say
from es_mpi.core.environment import check_environment, node_size_from_env
from es_mpi.core.errors import EXIT_BAD_INPUT, AgreedError, UserError
from es_mpi.core.stop_signals import ignore_stop_signals
from es_mpi.records.tensorboard import check_available as check_tensorboard

# A rank other than 0 whose check failed waits this long for rank 0's failure to end the job;
# if the job is still alive, the failure is its own (say, the job file is missing on its node).
RANK_ERROR_GRACE_S = 5.0
RANK_VARIABLES = ("OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK")


def launcher_rank():
    """This process's rank as mpiexec/srun told it, or None when no launcher started us.

    Read from the environment: importing es_mpi.run.mpi would start MPI.
    """
    for name in RANK_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return None


def built_task(args):
    """The job parsed and built (env, policy; every fit checked): everything that needs no run directory or MPI."""
    check_environment()  # before MPI starts, like the job file
    job = load_job(args.job, args.overrides, args.run_dir)
    check_tensorboard(job)
    return build_task(job)


def refuse_srun_singletons(rank):
    """srun without PMI starts N independent 1-rank copies that would all train into one run
    directory: Slurm says the step has N > 1 tasks, but no MPI launcher told us our rank."""
    tasks = os.environ.get("SLURM_STEP_NUM_TASKS", "")
    if rank is None and tasks.isdigit() and int(tasks) > 1:
        raise UserError(f"srun started {tasks} tasks, but no MPI process manager (PMI) reached them: each would "
                        f"train alone into the same run directory; use `srun --mpi=pmix ...` (or the PMI your "
                        f"site's MPI supports) or `mpiexec -n {tasks} es-mpi train ...`")


def train_command(args, argv):
    rank = launcher_rank()
    refuse_srun_singletons(rank)
    if rank is None:
        task = built_task(args)
        if args.np is not None:
            task.close()
            from es_mpi.commands.launcher import launch

            return launch(args, argv)
        from es_mpi.run.mpi import world

        return train(task, args, world())
    try:
        task = built_task(args)
    except UserError as err:
        if rank == 0:
            raise
        time.sleep(RANK_ERROR_GRACE_S)
        raise UserError(f"rank {rank}: {err}") from None
    from es_mpi.run.mpi import world

    return train(task, args, world())


def report_once(comm, error):
    """Rank 0 raises an error all ranks share, for the CLI to print; the others exit quietly."""
    if comm.rank == 0:
        raise error
    return EXIT_BAD_INPUT


def train(task, args, comm):
    """Train in the node runtime, which frees its windows and communicators when the block ends (not when
    one rank alone fails: the abort hook ends the job, and a collective free would wait for that rank)."""
    from es_mpi.run.mpi import abort_with_one_line, install_abort_on_error
    from es_mpi.run.node_runtime import NodeRuntime
    from es_mpi.run.pipeline import PipelinedTrainer
    from es_mpi.run.trainer import Trainer

    install_abort_on_error(comm)
    try:
        with NodeRuntime.for_task(comm, task, node_size_from_env()) as runtime:
            try:
                kind = PipelinedTrainer if task.job.run.pipeline else Trainer
                trainer = kind(task, runtime, resume=args.resume, force=args.force, log=say,
                               strict_versions=args.strict_versions)
            except UserError as err:  # this rank's alone: the others may be waiting for it in a collective
                abort_with_one_line(comm, err, EXIT_BAD_INPUT)
            code = trainer.train()
            trainer.close()
    except AgreedError as agreed:
        return report_once(comm, agreed.error)
    ignore_stop_signals()
    return code
