"""Start-up every rank takes alike: rank 0's verdict on the run directory, the VBN reference batch
and the checkpoint's state, each shared so that an error is the same on every rank (contract 5)."""

import numpy as np

from es_mpi.core.array_state import StateError
from es_mpi.core.errors import AgreedError, CheckpointError, ConfigError
from es_mpi.records import checkpoint as ckpt_io
from es_mpi.records.run_dir import decide_start
from es_mpi.run import faults
from es_mpi.run.vbn_reference import collect_reference, reference_from_checkpoint


def agree_on_start(comm, job, resume, force, log):
    """Rank 0 decides and loads once (records/run_dir.py); every rank gets the Start or the error.
    Then the injected start-up fault (run/faults.py) of one rank, if set."""
    outcome = None
    if comm.rank == 0:
        try:
            outcome = decide_start(job, resume, force, log)
        except (CheckpointError, ConfigError) as err:
            outcome = err
    outcome = comm.bcast(outcome, root=0)
    if isinstance(outcome, Exception):
        raise AgreedError(outcome)
    faults.fail_at(comm.rank, "start")
    return outcome


def vbn_reference(comm, task, start):
    """With policy.vbn: the checkpoint's reference batch on resume, else rank 0 collects it and
    broadcasts it once; set on the policy. None without VBN."""
    job, env, policy = task.job, task.env, task.policy
    if not job.policy.vbn:
        return None
    space = env.observation_space
    try:
        if start.checkpoint is not None:
            reference = reference_from_checkpoint(start.path, start.checkpoint, job, space)
        else:
            reference = np.empty((job.policy.vbn_batch, *space.shape), dtype=space.dtype)
            if comm.rank == 0:
                reference[...] = collect_reference(env, job.policy.vbn_batch, job.policy.vbn_probability,
                                                   job.run.seed, task.step_limit)
            comm.Bcast(reference, root=0)
    except CheckpointError as err:
        raise AgreedError(err) from None
    policy.set_reference(reference)
    return reference


def restore_state(start, strategy, obstat, strict_versions):
    """Load the checkpoint's strategy and observation statistics (the same checkpoint on every rank,
    so a state that does not fit fails alike everywhere); -> the package version changes since it was written."""
    ckpt = start.checkpoint
    for group, target in (("strategy", strategy), ("obstat", obstat)):
        try:
            target.load_state_dict(getattr(ckpt, group))
        except StateError as err:
            raise AgreedError(CheckpointError(start.path, f"{group}/{err.key}: {err.reason}")) from None
    changes = ckpt_io.version_changes(ckpt.versions, ckpt_io.package_versions())
    if changes and strict_versions:
        raise AgreedError(CheckpointError(start.path, "was written with other package versions ("
                                          + ", ".join(changes) + "); --strict-versions refuses"))
    return changes
