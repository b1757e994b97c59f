"""Training timesteps/s per rank, divided by the raw gymnasium env.step rate of the same env.

The training rate comes from a real `mpiexec -n RANKS python -m es_mpi train` run: its
metrics.csv gives, per iteration, the timesteps spent and the wall time of the whole
iteration (episodes, gathers, tell, checksum, logging), so the rate includes everything
training pays for, with every rank busy. The first iteration (imports, JIT-free warm-up,
page faults of the noise table) is dropped; the figure is the median over the others.

The raw rate is a gymnasium.make env stepped with pre-sampled random actions in one process
(resets included, as in training), measured before and after the training run in the same
invocation; a second raw figure runs RANKS such processes at once, which is the fair
denominator when every core is busy (turbo, shared caches).

`--jobs jobs/x.toml ...` measures shipped jobs instead, each on 1 rank in one run: the raw rate of
the env the job makes (es_mpi's own factory and env kwargs), the job's training rate as shipped
with evaluation off, then with its own evaluation (its share of the wall time), and the env's
share of the rollout as the job plays it (the same states, so the ratio without the
random-action bias: a policy that pins Swimmer's joints at their limits makes MuJoCo's step
about 1.35x dearer than random actions do).
"""

import argparse
import csv
import multiprocessing
import pathlib
import tempfile
import time

import gymnasium as gym

import common

DEFAULT_ENVS = ("HalfCheetah-v5", "Hopper-v5", "Humanoid-v5")


def raw_step_rate(env_id, seconds, seed=0, make=None):
    """env.step calls per second with random actions (resets included), and the mean episode length.
    `make()`: the env to step (default gymnasium.make(env_id))."""
    import gymnasium as gym

    env = gym.make(env_id) if make is None else make()
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(4096)]
    env.reset(seed=seed)
    steps, episodes, start = 0, 1, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for action in actions[:256]:
            _, _, terminated, truncated, _ = env.step(actions[(steps + 7 * episodes) % len(actions)])
            steps += 1
            if terminated or truncated:
                env.reset()
                episodes += 1
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed, steps / episodes


class TimedEnv(gym.Wrapper):
    """Adds up the time spent inside the wrapped env's step and reset: the part a raw loop also
    pays. Wrapped round a whole env, or as the innermost wrapper (`timed_inside`), so that gymnasium's
    wrappers outside it count as es-mpi's time (they are what training pays beside the env)."""

    def __init__(self, env):
        super().__init__(env)
        self.seconds = 0.0

    def reset(self, **kwargs):
        start = time.perf_counter()
        out = self.env.reset(**kwargs)
        self.seconds += time.perf_counter() - start
        return out

    def step(self, action):
        start = time.perf_counter()
        out = self.env.step(action)
        self.seconds += time.perf_counter() - start
        return out


def env_share_of_rollout(env_id, hidden, seconds, rounds):
    """Per round: time inside env.step/reset over the time of es_mpi's rollout, as training plays it
    (as many lanes as training uses, observation normalisation on), for members of the initial
    population. The same states are visited in both, so this is the throughput ratio without the
    random-action bias and without load from other processes (which slows both alike)."""
    from es_mpi.parts.job_file import job_from_text
    from es_mpi.run.obstat import ObsStat
    from es_mpi.run.rollout import EnvLanes, Start, play, run_episode
    from es_mpi.parts.build import build_task

    job = job_from_text(f'[env]\nid = "{env_id}"\n[policy]\nhidden = {list(hidden)}\n',
                        pathlib.Path("throughput.toml"))
    task = build_task(job)
    env, policy = task.env, task.policy
    n_lanes = policy.useful_lanes(job.run.lanes)
    timed = [TimedEnv(env)] + [TimedEnv(task.make_env()) for _ in range(n_lanes - 1)]
    forward, params_p, cap = policy.lanes(n_lanes), task.initial_params(), task.step_limit
    normalizer = ObsStat(policy.sizes[0]).normalizer(job.obs_norm.clip)
    shares, first = [], 0
    for _ in range(rounds):
        for lane_env in timed:
            lane_env.seconds = 0.0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            if n_lanes == 1:
                run_episode(timed[0], policy.bind(params_p), first, cap, normalizer)
            else:
                play(EnvLanes(timed), forward, range(n_lanes), lambda k, first=first: Start(params_p, first + k, step_cap=cap),
                     normalizer)
            first += len(timed)
        shares.append(sum(lane_env.seconds for lane_env in timed) / (time.perf_counter() - start))
    return shares


def _raw_worker(args):
    return raw_step_rate(*args)


def raw_rates_concurrent(env_id, seconds, n_procs):
    """Per-process raw rates with n_procs processes stepping at once."""
    with multiprocessing.get_context("spawn").Pool(n_procs) as pool:
        return [rate for rate, _ in pool.map(_raw_worker, [(env_id, seconds, s) for s in range(n_procs)])]


JOB_TEMPLATE = """\
[run]
placement = "{placement}"
[env]
id = "{env}"
[policy]
hidden = {hidden}
[strategy]
pairs = {pairs}
[noise]
size = {noise}
[eval]
every = 0
[checkpoint]
every = 1000
[stop]
iterations = {iterations}
"""


def training_run(env_id, hidden, pairs, iterations, ranks, timeout, launcher=("-m", "es_mpi", "train"),
                 placement="dynamic"):
    """(per-iteration metrics rows of a real mpiexec training run, first iteration dropped; its stdout).

    `launcher`: what python runs with the job file and --run-dir (the CLI by default).
    """
    with tempfile.TemporaryDirectory(prefix="es-bench-") as tmp:
        job = pathlib.Path(tmp) / "throughput.toml"
        job.write_text(JOB_TEMPLATE.format(env=env_id, hidden=list(hidden), pairs=pairs, noise=5_000_000, placement=placement,
                                           iterations=iterations))
        stdout = common.run_mpi(ranks, [*launcher, job, "--run-dir", pathlib.Path(tmp) / "run"], timeout)
        with open(pathlib.Path(tmp) / "run" / "metrics.csv") as fh:
            rows = list(csv.DictReader(fh))
    previous = 0
    out = []
    for row in rows:
        timesteps = int(row["timesteps"])
        out.append(dict(steps=timesteps - previous, iteration_s=float(row["iteration_s"]),
                        update_s=float(row["update_s"]), imbalance=float(row["imbalance"]),
                        episodes_s=float(row["episodes_s"]), wait_s=float(row["wait_s"]),
                        episodes=int(row["episodes"])))
        previous = timesteps
    return out[1:], stdout


def training_rows(env_id, hidden, pairs, iterations, ranks, timeout):
    return training_run(env_id, hidden, pairs, iterations, ranks, timeout)[0]


def measure(env_id, args):
    raw = [raw_step_rate(env_id, args.raw_seconds)]
    rows = training_rows(env_id, args.hidden, args.pairs, args.iterations, args.ranks, args.timeout)
    raw.append(raw_step_rate(env_id, args.raw_seconds))
    concurrent = raw_rates_concurrent(env_id, args.raw_seconds, args.ranks)
    direct = env_share_of_rollout(env_id, args.hidden, args.raw_seconds, args.rounds)
    per_rank = [r["steps"] / r["iteration_s"] / args.ranks for r in rows]
    raw_rate = common.median(rate for rate, _ in raw)
    train_rate = common.median(per_rank)
    return {
        "env": env_id,
        "policy": "x".join(map(str, args.hidden)),
        "raw env.step/s (1 proc)": f"{raw_rate:.0f}",
        f"raw env.step/s ({args.ranks} procs at once)": f"{common.median(concurrent):.0f}",
        "raw episode length": f"{common.median(length for _, length in raw):.0f}",
        "training steps/s per rank": f"{train_rate:.0f} ({common.spread(per_rank)})",
        "training episode length": f"{common.median(r['steps'] / r['episodes'] for r in rows):.0f}",
        "ratio (1 proc)": f"{train_rate / raw_rate:.2f}",
        f"ratio ({args.ranks} procs)": f"{train_rate / common.median(concurrent):.2f}",
        "env share of rollout time": f"{common.median(direct):.2f} ({common.spread(direct)})",
        "update share": f"{common.median(r['update_s'] / r['iteration_s'] for r in rows):.1%}",
        "imbalance": f"{common.median(r['imbalance'] for r in rows):.2f}",
    }


MUJOCO_JOBS = ("swimmer", "hopper", "halfcheetah", "walker2d", "ant", "humanoid", "inverted_pendulum",
               "inverted_double_pendulum")


def job_training_rows(job_path, overrides, iterations, timeout):
    """metrics.csv rows of `es-mpi train JOB` on 1 rank with `overrides` and stop.iterations."""
    with tempfile.TemporaryDirectory(prefix="es-bench-") as tmp:
        sets = [arg for item in [*overrides, f"stop.iterations={iterations}"] for arg in ("--set", item)]
        common.run_mpi(1, ["-m", "es_mpi", "train", pathlib.Path(job_path).resolve(), *sets,
                           "--run-dir", pathlib.Path(tmp) / "run"], timeout)
        with open(pathlib.Path(tmp) / "run" / "metrics.csv") as fh:
            return list(csv.DictReader(fh))


def wall_rates(rows):
    """Per iteration after the first: (timesteps, wall seconds between metrics rows, seconds evaluating)."""
    return [(int(b["timesteps"]) - int(a["timesteps"]), float(b["wall_time"]) - float(a["wall_time"]),
             float(b["eval_s"])) for a, b in zip(rows, rows[1:])]


def timed_inside(env):
    """`env` (a gymnasium.make env) with a TimedEnv between its last wrapper and the env itself."""
    outer = env
    while isinstance(outer.env, gym.Wrapper):
        outer = outer.env
    core = TimedEnv(outer.env)
    outer.env = core
    return env, core


def job_env_share(job, seconds, rounds):
    """Per round: time inside the env's own step/reset (gymnasium's wrappers count as es-mpi's) over
    the time of es_mpi's rollout of iteration 1's members, played as training plays them (the job's
    lanes, normaliser, alive bonus, observation recording); -> (shares, env us/step, overhead us/step)."""
    from es_mpi.core.seeding import Purpose, episode_seed
    from es_mpi.parts.build import build_task
    from es_mpi.run.noise import local_table
    from es_mpi.run.obstat import ObsStat
    from es_mpi.run.evaluation import normalizer_for
    from es_mpi.run.rollout import Actors, EnvLanes, Start, play

    task = build_task(job)
    strategy = task.make_strategy(local_table(job.noise.size, job.noise.seed))
    policy = task.policy
    n_lanes = policy.useful_lanes(job.run.lanes) if strategy.plays_params else 1
    envs, timed = zip(*[timed_inside(env) for env in [task.env, *(task.make_env() for _ in range(n_lanes - 1))]])
    forward = policy.lanes(n_lanes) if n_lanes > 1 else Actors()
    normalizer = normalizer_for(job, ObsStat(int(policy.sizes[0])))
    strategy.ask(1)
    shares, env_us, overhead_us = [], [], []

    def member(m):
        player = strategy.member_params(m) if n_lanes > 1 else strategy.member_actor(m, policy)
        return Start(player, episode_seed(job.run.seed, 1, m), job.obs_norm.enabled, job.env.alive_bonus,
                     task.step_limit)

    for _ in range(rounds):
        for lane_env in timed:
            lane_env.seconds = 0.0
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            episodes = play(EnvLanes(envs), forward, range(strategy.population), member, normalizer)
            steps += sum(episode.length for episode in episodes.values())
        elapsed, inside = time.perf_counter() - start, sum(lane_env.seconds for lane_env in timed)
        shares.append(inside / elapsed)
        env_us.append(inside / steps * 1e6)
        overhead_us.append((elapsed - inside) / steps * 1e6)
    task.close()
    return shares, common.median(env_us), common.median(overhead_us)


def rate_spread(values):
    return f"{min(values):.0f}-{max(values):.0f}"


def measure_job(job_path, args):
    from es_mpi.parts.build import build_task
    from es_mpi.parts.job_file import load_job

    job = load_job(job_path)
    make = lambda: build_task(job).env  # noqa: E731 (the job's env: es_mpi's factory, the job's kwargs)
    raw = [raw_step_rate(job.env.id, args.raw_seconds, make=make)[0]]
    every = job.eval.every
    # whole evaluation periods after the dropped first iteration
    measured = args.iterations - 1 if not every else -(-(args.iterations - 1) // every) * every
    off = wall_rates(job_training_rows(job_path, ["eval.every=0"], 1 + measured, args.timeout))
    on = wall_rates(job_training_rows(job_path, [], 1 + measured, args.timeout)) if every else []
    raw.append(raw_step_rate(job.env.id, args.raw_seconds, make=make)[0])
    shares, env_us, overhead_us = job_env_share(job, args.raw_seconds, args.rounds)
    raw_rate = common.median(raw)
    off_rates = [steps / wall for steps, wall, _ in off]
    off_rate = common.median(off_rates)
    on_rate = sum(steps for steps, _, _ in on) / sum(wall for _, wall, _ in on) if on else float("nan")
    eval_share = sum(e for _, _, e in on) / sum(wall for _, wall, _ in on) if on else 0.0
    # both runs train the same (evaluation never changes training): the extra wall time is evaluation's,
    # its best.h5 writes included
    lost = 1 - sum(wall for _, wall, _ in off) / sum(wall for _, wall, _ in on) if on else 0.0
    return {
        "job": f"`{pathlib.Path(job_path).as_posix()}`",
        "raw env.step/s": f"{raw_rate:.0f} ({rate_spread(raw)})",
        "training steps/s, eval off": f"{off_rate:.0f} ({rate_spread(off_rates)})",
        "ratio, eval off": f"{off_rate / raw_rate:.2f}",
        "eval (episodes every n iterations)": f"{job.eval.episodes} every {every}" if every else "off",
        "training steps/s, job's eval": f"{on_rate:.0f}" if on else "-",
        "ratio, job's eval": f"{on_rate / raw_rate:.2f}" if on else "-",
        "eval episodes' share of wall time": f"{eval_share:.0%}" + (" (> 20%)" if eval_share > 0.2 else ""),
        "wall time added by eval": f"{lost:.0%}" + (" (> 20%)" if lost > 0.2 else ""),
        "env share of rollout (same states)": f"{common.median(shares):.2f} ({common.spread(shares)})",
        "env / es-mpi us per step": f"{env_us:.1f} / {overhead_us:.1f}",
    }


def main_jobs(args):
    rows = [measure_job(job_path, args) for job_path in args.jobs]
    body = [f"Each job on 1 rank (`es-mpi train JOB -n 1`-like `mpiexec -n 1`), as shipped, {args.iterations} "
            "iterations or more (whole evaluation periods), the first dropped. Raw: the job's env (es_mpi's "
            f"factory, the job's kwargs) stepped with random actions, resets included, {args.raw_seconds:g} s "
            "before and after the training runs (median, min-max). Training steps/s, eval off: median over "
            "iterations of timesteps / wall time between metrics rows (`--set eval.every=0`). With the job's "
            "eval: all measured iterations together (training timesteps only; evaluation steps are not "
            "counted), the evaluation episodes' share of that wall time (`eval_s`), and the wall time the job's "
            "evaluation adds: 1 - wall(eval off) / wall(job's eval) over the same iterations (evaluation never "
            "changes training, so both runs play the same episodes; this includes best.h5 writes).",
            "env share of rollout: time inside the env's own step/reset (gymnasium's wrappers count as es-mpi's) over "
            f"the rollout's time, iteration 1's members played as training plays them, {args.rounds} rounds of "
            f"{args.raw_seconds:g} s in one process; env / es-mpi us per step: the same split per step. "
            "These are the policy's states: a ratio under the env share means the policy's states step "
            "slower than random actions' (MuJoCo's cost depends on the state: contacts, joint limits).", "",
            common.markdown_table(list(rows[0]), rows)]
    common.write_report(args.name, "Throughput of the shipped jobs: training vs raw env.step, 1 rank", body)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=list(DEFAULT_ENVS), help="gymnasium env ids")
    parser.add_argument("--hidden", type=lambda s: [int(x) for x in s.split(",")], default=[64, 64],
                        help="hidden layer sizes, comma separated (e.g. 256,256)")
    parser.add_argument("--ranks", type=int, default=2, help="MPI ranks of the training run (default 2)")
    parser.add_argument("--pairs", type=int, default=16, help="mirrored pairs per iteration (default 16)")
    parser.add_argument("--iterations", type=int, default=6, help="training iterations; the first is dropped")
    parser.add_argument("--raw-seconds", type=float, default=3.0, help="seconds per raw env.step measurement")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the env-share measurement")
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed per training run")
    parser.add_argument("--name", type=common.report_name, default=None,
                        help="report name under benchmarks/results/ (default throughput, "
                             "with --jobs throughput_jobs)")
    parser.add_argument("--jobs", nargs="*", default=None,
                        help="measure these job files on 1 rank instead (no file named: every shipped MuJoCo job, "
                             + ", ".join(MUJOCO_JOBS) + ")")
    args = parser.parse_args()
    if args.jobs is not None:
        args.jobs = args.jobs or [f"jobs/{name}.toml" for name in MUJOCO_JOBS]
        args.name = args.name or "throughput_jobs"
        return main_jobs(args)
    args.name = args.name or "throughput"
    rows = [measure(env_id, args) for env_id in args.envs]
    body = [f"Training run: `mpiexec -n {args.ranks}`, {args.pairs} pairs, {args.iterations} iterations "
            "(first dropped), eval off; figures are medians over iterations (min-max in brackets).",
            "Ratio = training steps/s per rank / raw env.step/s. Targets: >= 0.9 HalfCheetah, >= 0.95 Hopper "
            "and Humanoid.",
            "env share of rollout time: time inside env.step/reset over the rollout's time (as many lanes "
            "as training plays), one process, "
            f"{args.rounds} rounds of {args.raw_seconds:g} s: the same ratio measured on the same states "
            "(random actions visit other states, e.g. a fallen Humanoid steps 2x slower) and robust to load "
            "from other processes.", "",
            common.markdown_table(list(rows[0]), rows)]
    common.write_report(args.name, "Throughput: training vs raw env.step", body)


if __name__ == "__main__":
    main()
