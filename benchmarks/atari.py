"""Atari throughput: policy forward cost, training frames/s per rank against the raw env rate, VBN share.

Run from the repository root (one process, an MPI singleton; per-rank figures):
    python benchmarks/atari.py [--game ALE/Pong-v5] [--pairs 4] [--iterations 2] [--steps 1000]
Writes a markdown table to benchmarks/results/atari.md.
"""

import argparse
import os
import pathlib
import platform
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import es_mpi  # noqa: E402,F401  (one BLAS thread per rank, set before numpy loads BLAS)
import numpy as np  # noqa: E402

from es_mpi.job.parse import job_from_text  # noqa: E402
from es_mpi.run.mpi import world  # noqa: E402
from es_mpi.parts.build import build_task  # noqa: E402
from es_mpi.run.trainer import Trainer  # noqa: E402
from es_mpi.run.vbn_reference import collect_reference  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "atari.md"


def job_text(game, network, vbn, pairs, steps, iterations):
    return f"""
[env]
id = "{game}"
[atari]
max_episode_steps = {steps}
[policy]
kind = "cnn"
network = "{network}"
vbn = {str(vbn).lower()}
vbn_batch = 128
vbn_probability = 0.05
[strategy]
pairs = {pairs}
[noise]
size = 20_000_000
[obs_norm]
enabled = false
[eval]
every = 0
[stop]
iterations = {iterations}
"""


def raw_env_rate(game, steps):
    """Preprocessed env steps/s with random actions (wrappers + frame stack, no policy)."""
    job = job_from_text(job_text(game, "paper", False, 1, steps, 1), pathlib.Path("bench.toml"))
    env = build_task(job).env
    draw = np.random.default_rng(0)
    env.reset(seed=0)
    n, start = 0, time.perf_counter()
    while n < steps:
        _, _, terminated, truncated, _ = env.step(int(draw.integers(env.action_space.n)))
        n += 1
        if terminated or truncated:
            env.reset(seed=n)
    rate = n / (time.perf_counter() - start)
    env.close()
    return rate


def forward_costs(game, network, vbn, repeats):
    """(microseconds per single-frame action, milliseconds per member bind) for one network."""
    job = job_from_text(job_text(game, network, vbn, 1, 200, 1), pathlib.Path("bench.toml"))
    task = build_task(job)
    env, policy = task.env, task.policy
    if vbn:
        policy.set_reference(collect_reference(env, 128, 0.05, 0, 200))
    params_p = task.initial_params()
    start = time.perf_counter()
    act = policy.bind(params_p)
    bind_ms = (time.perf_counter() - start) * 1e3
    obs, _ = env.reset(seed=0)
    x = np.asarray(obs, dtype=np.float32).ravel()
    act(x)
    start = time.perf_counter()
    for _ in range(repeats):
        act(x)
    env.close()
    return (time.perf_counter() - start) / repeats * 1e6, bind_ms, policy.n_params


def training_rate(game, network, vbn, pairs, steps, iterations):
    """Frames/s of this rank over `iterations` real iterations, and the share spent in member binds."""
    job_path = pathlib.Path(tempfile.mkdtemp(prefix="es-atari-bench-")) / "bench.toml"
    job_path.write_text(job_text(game, network, vbn, pairs, steps, iterations))
    job = job_from_text(job_path.read_text(), job_path, run_dir=job_path.parent / "run")
    trainer = Trainer(build_task(job), world(), force=True, log=lambda line: None)
    bind_s = [0.0]
    unbound = trainer.policy.bind

    def timed_bind(params_p):
        start = time.perf_counter()
        bound = unbound(params_p)
        bind_s[0] += time.perf_counter() - start
        return bound

    trainer.policy.bind = timed_bind
    frames, seconds = 0, 0.0
    for _ in range(iterations):
        row, _ = trainer.step()
        frames += row["timesteps"] - frames
        seconds += row["iteration_s"]
    trainer.close()
    return frames / seconds, bind_s[0] / iterations, seconds / iterations


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="ALE/Pong-v5")
    parser.add_argument("--pairs", type=int, default=4, help="mirrored pairs per iteration")
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--steps", type=int, default=1000, help="episode step cap (after frame skip)")
    parser.add_argument("--repeats", type=int, default=300, help="forward passes timed per network")
    args = parser.parse_args()

    lines = [f"# Atari benchmark ({args.game})", "",
             f"`python benchmarks/atari.py --game {args.game} --pairs {args.pairs} --iterations {args.iterations} "
             f"--steps {args.steps} --repeats {args.repeats}`; {platform.processor() or platform.machine()}, "
             "one rank, one BLAS thread.", "",
             "The raw env rate (preprocessed env, random actions, one process) is measured right before "
             "each row's training run, so both see the same machine load.", "",
             "| network | VBN | parameters | forward us/frame | bind ms/member | raw env steps/s "
             "| training frames/s per rank | / raw env rate | VBN reference s/iteration | share of iteration |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for network in ("paper", "nature"):
        for vbn in (False, True):
            forward_us, bind_ms, n_params = forward_costs(args.game, network, vbn, args.repeats)
            env_rate = raw_env_rate(args.game, 2000)
            fps, vbn_s, iteration_s = training_rate(args.game, network, vbn, args.pairs, args.steps, args.iterations)
            vbn_cells = f"{vbn_s:.3f} | {vbn_s / iteration_s:.1%}" if vbn else "- | -"
            lines.append(f"| {network} | {'yes' if vbn else 'no'} | {n_params} | {forward_us:.0f} | {bind_ms:.1f} "
                         f"| {env_rate:.0f} | {fps:.0f} | {fps / env_rate:.2f} | {vbn_cells} |")
            print(lines[-1], flush=True)
    load_1m, _, _ = os.getloadavg()
    lines += ["", f"Load average when done: {load_1m:.1f} on {os.cpu_count()} cores (a shared machine makes every "
                  "figure here noisy; compare rows of one run only)."]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
