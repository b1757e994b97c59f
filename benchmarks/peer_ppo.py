"""What users pick instead: Stable-Baselines3 PPO against es-mpi's default job, on this machine, in one run.

PPO runs with RL Zoo's tuned HalfCheetah settings (hyperparams/ppo.yml: one env, VecNormalize on
observations and rewards, 256x256 ReLU networks, log_std_init -2) on CPU torch with --threads
threads; es-mpi runs jobs/halfcheetah.toml with `es-mpi train -n RANKS`. Both stop at the highest
target or their timestep budget. Both are evaluated on 10 deterministic episodes: PPO every
--ppo-eval-every training steps (observations normalised with the frozen training statistics, the
env's own rewards), es-mpi every eval.every iterations. The report gives, for each target, the
training timesteps and the wall time at the first evaluation at or above it: for PPO the seconds in
`learn` alone and with its evaluations; for es-mpi the summed iteration times (evaluations
included, as benchmarks/learning.py counts them).

Needs the optional `peers` extra (stable-baselines3 and torch): `.venv/bin/pip install -e '.[peers]'`
installs PyPI's torch (a CUDA build that runs on the CPU here; several GB). Never part of `make test`.
    python benchmarks/peer_ppo.py --threads 2 --ranks 2
"""

import argparse
import importlib.util
import os
import pathlib
import shlex
import time

import common
import learning

TARGETS = (2385.0, 3430.0, 4800.0)  # the ES paper's HalfCheetah row, ARS's row, the registry threshold
# RL Zoo's tuned PPO settings for HalfCheetah (hyperparams/ppo.yml, HalfCheetah-v3), as PPO's keywords
RL_ZOO_HALFCHEETAH = {"n_steps": 512, "batch_size": 64, "gamma": 0.98, "learning_rate": 2.0633e-05,
                      "ent_coef": 0.000401762, "clip_range": 0.1, "n_epochs": 20, "gae_lambda": 0.92,
                      "max_grad_norm": 0.8, "vf_coef": 0.58096}
# its policy_kwargs; the activation is named here and becomes torch.nn.ReLU only where torch is loaded
RL_ZOO_POLICY = {"log_std_init": -2, "ortho_init": False, "activation": "ReLU",
                 "net_arch": {"pi": [256, 256], "vf": [256, 256]}}
PEERS_MISSING = ("peer_ppo.py needs the 'peers' extra (stable-baselines3 and PyPI's torch, which runs on the "
                 "CPU): .venv/bin/pip install -e '.[peers]'")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="HalfCheetah-v5", help="gymnasium env id (default %(default)s)")
    parser.add_argument("--job", type=pathlib.Path, default=common.REPO / "jobs" / "halfcheetah.toml",
                        help="es-mpi job for the same env (default: the default job)")
    parser.add_argument("--target", type=float, action="append",
                        help="target evaluation return (repeatable; default 2385, 3430, 4800)")
    parser.add_argument("--seed", type=int, default=0, help="seed of both runs (default %(default)s)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="torch threads for PPO (default: every core, %(default)s)")
    parser.add_argument("--ranks", type=int, default=min(2, os.cpu_count() or 1),
                        help="MPI ranks for es-mpi (default %(default)s)")
    parser.add_argument("--ppo-max-timesteps", type=int, default=1_000_000,
                        help="PPO's budget (default: RL Zoo's n_timesteps, %(default)s)")
    parser.add_argument("--ppo-eval-every", type=int, default=5_120,
                        help="evaluate PPO every N training steps, rounded up to whole rollouts of 512 "
                             "(default %(default)s)")
    parser.add_argument("--es-max-timesteps", type=int, default=20_000_000,
                        help="es-mpi's budget (default %(default)s)")
    parser.add_argument("--eval-episodes", type=int, default=10, help="evaluation episodes (default %(default)s)")
    parser.add_argument("--budget-seconds", type=float,
                        help="wall-clock budget of each run (PPO stops after the rollout that passes it; "
                             "es-mpi gets SIGUSR1)")
    parser.add_argument("--runs-dir", type=pathlib.Path, default=common.REPO / "runs" / "peer_ppo",
                        help="where es-mpi's run directory goes (default %(default)s)")
    parser.add_argument("--note", help="a sentence for the report (say, what else ran on the machine)")
    parser.add_argument("--name", type=common.report_name, default="peer_ppo",
                        help="report name: benchmarks/results/NAME.md")
    args = parser.parse_args(argv)
    args.targets = sorted(args.target or TARGETS)
    if args.threads < 1 or args.ranks < 1 or args.ppo_eval_every < 1:
        parser.error("--threads, --ranks and --ppo-eval-every must be at least 1")
    return args


def first_reaches(points, targets):
    """{target: (timesteps, training s, s with evaluations) at PPO's first evaluation >= target, or None}.

    points: (timesteps, training s, s with evaluations, evaluation return) per evaluation, in order."""
    reaches = {}
    for target in targets:
        reaches[target] = next(((steps, train_s, total_s) for steps, train_s, total_s, value in points
                                if value >= target), None)
    return reaches


def fmt_ratio(numerator, denominator):
    return "-" if numerator is None or denominator is None or denominator <= 0 else f"{numerator / denominator:.2f}"


def report_lines(args, ppo_reaches, es_reaches, versions, es_command):
    """The report's body: one row per target with both runs' steps and wall times."""
    columns = ["target", "PPO steps", "PPO s (learn)", "PPO s (with evaluations)", "es-mpi steps",
               "es-mpi s (with evaluations)", "es-mpi s / PPO s (with evaluations)"]
    rows = []
    for target in args.targets:
        ppo, es = ppo_reaches[target], es_reaches[target]
        rows.append({"target": f"{target:g}",
                     "PPO steps": learning.fmt_steps(ppo and ppo[0]),
                     "PPO s (learn)": learning.fmt_seconds(ppo and ppo[1]),
                     "PPO s (with evaluations)": learning.fmt_seconds(ppo and ppo[2]),
                     "es-mpi steps": learning.fmt_steps(es and es.timesteps),
                     "es-mpi s (with evaluations)": learning.fmt_seconds(es and es.seconds),
                     "es-mpi s / PPO s (with evaluations)": fmt_ratio(es and es.seconds, ppo and ppo[2])})
    return [f"{args.env}, seed {args.seed}, measured one after the other in one run: Stable-Baselines3 PPO "
            f"(RL Zoo's HalfCheetah settings, {args.threads} torch thread(s), evaluated every "
            f"{args.ppo_eval_every:,} steps) and es-mpi `{learning.relative(args.job)}` on {args.ranks} MPI "
            f"rank(s). Each first reach is the first evaluation ({args.eval_episodes} deterministic episodes) at "
            "or above the target; steps are training timesteps (evaluation episodes are not counted); '-' where "
            "a run never got there within its budget "
            f"(PPO {args.ppo_max_timesteps:,} steps, es-mpi {args.es_max_timesteps:,}"
            f"{'' if args.budget_seconds is None else f', {args.budget_seconds:g} s each'}).",
            *(["", args.note] if args.note else []), "",
            common.markdown_table(columns, rows), "",
            "Versions: " + ", ".join(f"{name} {version}" for name, version in versions.items()), "",
            "es-mpi's training command:", "", "```", shlex.join(["python", *es_command[1:]]), "```"]


def check_peers_installed():
    """Fail before any training when the peers extra is missing."""
    if any(importlib.util.find_spec(name) is None for name in ("torch", "stable_baselines3")):
        raise SystemExit(PEERS_MISSING)


def train_ppo(args):
    """PPO until the highest target or its budget; returns its evaluation points and versions."""
    import gymnasium
    import numpy as np
    import stable_baselines3
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    torch.set_num_threads(args.threads)
    train_env = VecNormalize(DummyVecEnv([lambda: Monitor(gymnasium.make(args.env))]),
                             gamma=RL_ZOO_HALFCHEETAH["gamma"])
    policy = dict(RL_ZOO_POLICY, activation_fn=getattr(torch.nn, RL_ZOO_POLICY["activation"]))
    del policy["activation"]
    model = PPO("MlpPolicy", train_env, seed=args.seed, device="cpu", policy_kwargs=policy, verbose=0,
                **RL_ZOO_HALFCHEETAH)
    eval_env = gymnasium.make(args.env)

    def evaluate(episode_seed):
        returns = []
        for episode in range(args.eval_episodes):
            obs, _ = eval_env.reset(seed=episode_seed + episode)
            total, done = 0.0, False
            while not done:
                action, _ = model.predict(train_env.normalize_obs(obs[np.newaxis]), deterministic=True)
                obs, reward, terminated, truncated, _ = eval_env.step(action[0])
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
        return float(np.mean(returns))

    points, train_s, start = [], 0.0, time.perf_counter()
    while model.num_timesteps < args.ppo_max_timesteps:
        learn_start = time.perf_counter()
        model.learn(total_timesteps=args.ppo_eval_every, reset_num_timesteps=False)
        train_s += time.perf_counter() - learn_start
        value = evaluate(10_000 * len(points))
        points.append((model.num_timesteps, train_s, time.perf_counter() - start, value))
        print(f"PPO {model.num_timesteps:,} steps, {train_s:.0f} s: evaluation {value:.0f}", flush=True)
        if value >= args.targets[-1] or (args.budget_seconds is not None and points[-1][2] >= args.budget_seconds):
            break
    versions = {"stable-baselines3": stable_baselines3.__version__, "torch": torch.__version__}
    return points, versions


def train_es(args):
    """es-mpi's job through benchmarks/learning.py's runner; returns {target: Reach or None} and the command."""
    options = argparse.Namespace(eval_episodes=args.eval_episodes, eval_every=None, ranks=args.ranks, set=[])
    run_dir = learning.relative(args.runs_dir / f"{args.job.stem}-seed{args.seed}")
    command = learning.train_command(args.job, args.seed, options, args.targets[-1], args.es_max_timesteps, run_dir)
    rows, _ = learning.run_seed(args.job, command, run_dir, args.budget_seconds, reuse=False)
    return {target: learning.first_reach(rows, target) for target in args.targets}, command


def main():
    args = parse_args()
    check_peers_installed()
    es_reaches, es_command = train_es(args)
    points, versions = train_ppo(args)
    body = report_lines(args, first_reaches(points, args.targets), es_reaches, versions, es_command)
    common.write_report(args.name, "Peers: Stable-Baselines3 PPO against es-mpi, wall time and steps to a return",
                        body)


if __name__ == "__main__":
    main()
