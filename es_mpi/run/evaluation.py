"""What training and evaluation share: building env and policy from a job, playing the centre."""

import math

import numpy as np

from es_mpi.parts.envs import env_step_limit, make_env
from es_mpi.core.errors import ConfigError
from es_mpi.parts.policies import make_policy
from es_mpi.run.rollout import run_episode
from es_mpi.core.seeding import Purpose, episode_seed, rng


def make_env_and_policy(job, render_mode=None):
    if job.objective.function is not None:
        from es_mpi.parts.objective_task import make_objective_task

        return make_objective_task(job.objective)
    env = make_env(job.env, render_mode=render_mode, atari=job.atari)
    try:
        policy = make_policy(job.policy, env.observation_space, env.action_space)
    except ValueError as err:
        raise ConfigError(job.path, "policy", str(err)) from None
    return env, policy


def initial_params(job, policy):
    return policy.init_params(rng(job.run.seed, purpose=Purpose.INIT_PARAMS))


def max_steps(job, env):
    """The hard episode cap: a fixed step_cap, else the env's own limit (else unbounded)."""
    if isinstance(job.env.step_cap, int):
        return job.env.step_cap
    return env_step_limit(env) or 10**9


def normalizer_for(job, obstat):
    return obstat.normalizer(job.obs_norm.clip) if job.obs_norm.enabled else None


def evaluate_center(job, env, policy, params_p, normalizer, iteration, episode_indices, seed=None):
    """Evaluation episodes of the centre parameters; seeds are f(seed, iteration, episode index)."""
    seed = job.run.seed if seed is None else seed
    act = policy.bind(params_p)
    cap = max_steps(job, env)
    return [run_episode(env, act, episode_seed(seed, iteration, e, Purpose.EVAL_EPISODE), cap, normalizer)
            for e in episode_indices]


def finite_mean(values):
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else -math.inf
