"""`es-mpi eval` and `es-mpi inspect`: checkpoints reloaded in plain Python, no MPI."""

import json
import math

import numpy as np

from . import checkpoint as ckpt_io
from .config import job_from_text
from .errors import UserError
from .obstat import ObsStat
from .runtime import evaluate_center, make_env_and_policy, normalizer_for
from .vbn_reference import reference_from_checkpoint


def load_for_play(path):
    """(path, checkpoint, job, env, policy, normalizer) ready to play the centre policy."""
    path, ckpt = ckpt_io.resolve(path)
    job = job_from_text(ckpt.config_toml, path)
    env, policy = make_env_and_policy(job)
    if ckpt.params.size != policy.n_params:
        raise ckpt_io.CheckpointError(path, f"params has {ckpt.params.size} entries, the policy needs {policy.n_params}")
    if job.policy.vbn:
        policy.set_reference(reference_from_checkpoint(path, ckpt, job, env.observation_space))
    obstat = ObsStat(int(np.prod(env.observation_space.shape)))
    obstat.load_state_dict(ckpt.obstat)
    return path, ckpt, job, env, policy, normalizer_for(job, obstat)


def eval_command(args):
    path, ckpt, job, env, policy, normalizer = load_for_play(args.checkpoint)
    episodes = job.eval.episodes if args.episodes is None else args.episodes
    if episodes < 1:
        raise UserError(f"--episodes: need at least 1, got {episodes}")
    print(f"{path}: {job.env.id}, iteration {ckpt.iteration}, {ckpt.timesteps} timesteps")
    results = evaluate_center(job, env, policy, ckpt.params, normalizer, ckpt.iteration, range(episodes), args.seed)
    for index, episode in enumerate(results):
        print(f"episode {index:4d}: return {episode.total_return:10.2f}  length {episode.length}")
    returns = np.array([e.total_return for e in results])
    print(f"mean {returns.mean():.2f}  std {returns.std():.2f}  min {returns.min():.2f}  "
          f"max {returns.max():.2f}  over {episodes} episodes")
    if args.seed is None and episodes == job.eval.episodes and math.isfinite(ckpt.eval_return):
        print(f"(training recorded {ckpt.eval_return:.2f} for these episodes at iteration {ckpt.iteration})")
    env.close()
    return 0


def inspect_command(args):
    path, ckpt = ckpt_io.resolve(args.checkpoint)
    print(f"checkpoint: {path}")
    print(f"iteration: {ckpt.iteration}\ntimesteps: {ckpt.timesteps}\nparameters: {ckpt.params.size}")
    print(f"eval return at this iteration: {ckpt.eval_return:.2f}\nbest eval return: {ckpt.best_eval_return:.2f}")
    print(f"step cap: {ckpt.step_cap}")
    print("versions: " + json.dumps(ckpt.versions, sort_keys=True))
    for name, array in sorted(ckpt.extra.items()):
        print(f"extra/{name}: shape {tuple(np.shape(array))}, dtype {np.asarray(array).dtype}")
    metrics = ckpt.metrics
    if metrics:
        returns = metrics["return_mean"]
        evals = metrics["eval_return"][np.isfinite(metrics["eval_return"])]
        print(f"metrics: {len(returns)} iterations; population return mean first {returns[0]:.2f}, "
              f"last {returns[-1]:.2f}; evaluations {len(evals)}"
              + (f", last {evals[-1]:.2f}, best {evals.max():.2f}" if len(evals) else ""))
        print(f"mean timesteps/s {np.mean(metrics['timesteps_per_s']):.0f}, repairs {int(metrics['repairs'][-1])}")
    print("config:\n" + ckpt.config_toml)
    return 0
