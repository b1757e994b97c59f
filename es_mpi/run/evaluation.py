"""Playing the centre policy: what training's evaluation and `es-mpi eval` share."""

import math

import numpy as np

from es_mpi.core.seeding import Purpose, episode_seed
from es_mpi.run.rollout import run_episode


def normalizer_for(job, obstat):
    return obstat.normalizer(job.obs_norm.clip, job.obs_norm.min_std) if job.obs_norm.enabled else None


def evaluate_center(task, env, params_p, normalizer, iteration, episode_indices, seed=None):
    """Evaluation episodes of the centre parameters in `env` (the task's, or a recording wrapper of it);
    seeds are f(seed, iteration, episode index)."""
    seed = task.job.run.seed if seed is None else seed
    act = task.policy.bind(params_p)
    return [run_episode(env, act, episode_seed(seed, iteration, e, Purpose.EVAL_EPISODE), task.step_limit, normalizer)
            for e in episode_indices]


def evaluation_return(values):
    """The mean return, a diverged (non-finite) episode scored -inf as in training: such an
    evaluation can never set best.h5 or meet stop.target_return."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return -math.inf
    return float(np.where(np.isfinite(values), values, -math.inf).mean())
