"""Record a trace for the trace env (es_mpi/parts/trace_env.py): what real episodes cost a core.

Plays --episodes training-like episodes of a real env in one process and writes one row per
episode to an .npz. The members are the centre (a job's initial one, or a checkpoint's) plus
sigma x Gaussian noise in mirrored pairs, as a training population is; they play through
es-mpi's own episode loop (run/rollout.py) with the job's observation normalisation and
observation recording, so an episode costs what it costs in training.

Per episode it stores:
- lengths_e, truncated_e (the env's time limit ended it), returns_e (the env's own);
- cpu_s_e: the CPU seconds of the whole episode (time.thread_time: reset, steps, policy, loop),
  less the timers' own cost. This is what the trace env replays: CPU time is what a core of its
  own would spend, and it does not count the time this shared machine gave to other processes;
- step_cpu_s_e and step_wall_s_e: env.step alone (thread_time and perf_counter), policy_cpu_s_e:
  the policy's forward pass with the observation normalisation, step_sd_s_e: the standard
  deviation of one step's CPU seconds within the episode (the per-step spread);
- wall_s_e: the episode's wall time (perf_counter), which on a loaded machine exceeds cpu_s_e.
And the env's shapes (obs_size, action_low_a, action_high_a), the job played (job_toml: what
benchmarks/emulated_cluster.py trains on the trace), the source, the sigma and the
machine's 1-minute load average at the start and end of the recording (load_2).

Example (the committed traces, benchmarks/traces/README.md):
    python benchmarks/record_traces.py --job jobs/hopper.toml --out benchmarks/traces/hopper-initial.npz
    python benchmarks/record_traces.py --checkpoint RUN/ckpt-00000070.h5 --out benchmarks/traces/hopper-mid.npz
"""

import argparse
import datetime
import os
import pathlib
import sys
import time

import gymnasium as gym
import numpy as np

import common  # noqa: F401  (puts this checkout's es_mpi first on sys.path)
from es_mpi.parts.job_file import job_from_text, load_job
from es_mpi.parts.build import build_task
from es_mpi.records import checkpoint as ckpt_io
from es_mpi.run.evaluation import normalizer_for
from es_mpi.run.obstat import ObsStat
from es_mpi.run.rollout import run_episode
from es_mpi.run.trained_policy import ready_to_play


class TimedEnv(gym.Wrapper):
    """The env with each step's CPU and wall seconds kept (time.thread_time, time.perf_counter)."""

    def __init__(self, env):
        super().__init__(env)
        self.step_cpu_t, self.step_wall_s = [], 0.0

    def step(self, action):
        cpu, wall = time.thread_time(), time.perf_counter()
        out = self.env.step(action)
        self.step_wall_s += time.perf_counter() - wall
        self.step_cpu_t.append(time.thread_time() - cpu)
        return out


def timer_cost_s(repeats=20_000):
    """CPU seconds one (thread_time, perf_counter) pair of reads costs, to take off each timed call."""
    start = time.thread_time()
    for _ in range(repeats):
        time.thread_time(), time.perf_counter()
    return (time.thread_time() - start) / repeats


def centre(args):
    """(task, centre params, normalizer, description) of the job's initial centre or a checkpoint's."""
    if args.checkpoint is None:
        job = load_job(args.job)
        task = build_task(job)
        size = int(np.prod(task.env.observation_space.shape))
        return task, task.initial_params(), normalizer_for(job, ObsStat(size)), f"initial centre of {args.job}"
    path, ckpt = ckpt_io.resolve(args.checkpoint)
    task, normalizer = ready_to_play(path, ckpt, job_from_text(ckpt.config_toml, path))
    return task, ckpt.params, normalizer, f"checkpoint {pathlib.Path(path).name} (iteration {ckpt.iteration})"


def record(args):
    task, params_p, normalizer, source = centre(args)
    sigma = args.sigma if args.sigma is not None else task.job.strategy.sigma
    env = TimedEnv(task.env)
    rng = np.random.default_rng(args.seed)
    overhead_s = timer_cost_s()
    rows = {name: [] for name in ("lengths_e", "truncated_e", "returns_e", "cpu_s_e", "step_cpu_s_e", "step_wall_s_e",
                                  "step_sd_s_e", "policy_cpu_s_e", "wall_s_e")}
    load_start = os.getloadavg()
    noise_p = None
    for e in range(args.episodes):
        if e % 2 == 0:
            noise_p = rng.standard_normal(params_p.size).astype(params_p.dtype)
        act = task.policy.bind(params_p + (sigma if e % 2 == 0 else -sigma) * noise_p)
        policy_cpu = [0.0]

        def timed_act(x, act=act, policy_cpu=policy_cpu):
            start = time.thread_time()
            action = act(x)
            policy_cpu[0] += time.thread_time() - start
            return action

        env.step_cpu_t, env.step_wall_s = [], 0.0
        seed = int(rng.integers(2**31 - 1))
        cpu, wall = time.thread_time(), time.perf_counter()
        episode = run_episode(env, timed_act, seed, task.step_limit, normalizer, record_obs=task.job.obs_norm.enabled)
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        # Each step reads two clocks around env.step and one around the policy (each read pair costs overhead_s).
        timers_s = episode.length * 1.5 * overhead_s
        steps_t = np.array(env.step_cpu_t)
        rows["lengths_e"].append(episode.length)
        rows["truncated_e"].append(episode.capped)
        rows["returns_e"].append(episode.total_return)
        rows["cpu_s_e"].append(max(cpu - timers_s, 0.0))
        rows["step_cpu_s_e"].append(steps_t.sum())
        rows["step_wall_s_e"].append(env.step_wall_s)
        rows["step_sd_s_e"].append(steps_t.std())
        rows["policy_cpu_s_e"].append(policy_cpu[0])
        rows["wall_s_e"].append(wall)
    task.close()
    low, high = task.env.action_space.low, task.env.action_space.high
    return dict(
        lengths_e=np.array(rows["lengths_e"], dtype=np.int32), truncated_e=np.array(rows["truncated_e"], dtype=bool),
        **{name: np.array(values, dtype=np.float64) for name, values in rows.items()
           if name not in ("lengths_e", "truncated_e")},
        obs_size=np.int64(np.prod(task.env.observation_space.shape)),
        action_low_a=np.asarray(low, dtype=np.float32).ravel(), action_high_a=np.asarray(high, dtype=np.float32).ravel(),
        env_id=np.array(task.job.env.id), job_toml=np.array(task.job.to_toml()), source=np.array(source), sigma=np.float64(sigma),
        timer_cost_s=np.float64(overhead_s),
        recorded=np.array(datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        machine=np.array(f"{os.cpu_count()} cores, {common.cpu_model()}"),
        load_2=np.array([load_start[0], os.getloadavg()[0]]))


def summary(trace):
    lengths, cpu = trace["lengths_e"], trace["cpu_s_e"]
    return (f"{trace['env_id']} ({trace['source']}): {lengths.size} episodes, length median {np.median(lengths):.0f} "
            f"(min {lengths.min()}, max {lengths.max()}, {trace['truncated_e'].mean():.0%} at the time limit), "
            f"CPU per step {1e6 * cpu.sum() / lengths.sum():.1f} us (env.step {1e6 * trace['step_cpu_s_e'].sum() / lengths.sum():.1f} us, "
            f"policy {1e6 * trace['policy_cpu_s_e'].sum() / lengths.sum():.1f} us), "
            f"wall / CPU {trace['wall_s_e'].sum() / cpu.sum():.2f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--job", help="job file: play its initial centre")
    source.add_argument("--checkpoint", help="checkpoint file or run directory: play its centre (its own job)")
    parser.add_argument("--out", required=True, help="the .npz to write")
    parser.add_argument("--episodes", type=int, default=200, help="episodes to record (default 200)")
    parser.add_argument("--sigma", type=float, default=None, help="perturbation size (default: the job's strategy.sigma)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the perturbations and env seeds (default 0)")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error("--episodes must be at least 1")
    trace = record(args)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **trace)
    print(f"{out}: {summary(trace)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
