"""Share of iteration time spent outside episodes, for a big policy and population.

Default: Humanoid-v5, 256x256 MLP, 1,000 pairs (2,000 episodes per iteration), 2 ranks.
A full iteration of that size takes many minutes on a small machine, so the two parts are
timed separately, for the real sizes, under a real mpiexec:

- outside episodes (per iteration, per rank): ask, expanding each of the rank's members into
  parameters (member_params + bind + its seeds), the results Allgatherv, tell (the
  weighted noise sum over the node-shared table), the observation-statistics gather, the
  checksum/flags Allgathers, the metrics CSV row, and a checkpoint write divided by
  checkpoint.every. These are the calls trainer.step makes, with the same arguments' sizes;
  each is preceded by a Barrier so that waiting for a slower rank is not counted.
- inside episodes: run_episode of real members of the initial population (seconds per
  episode and per step).

share = outside / (outside + episodes per rank x seconds per episode). The initial policy
falls after a few dozen steps, which is the worst case for the share; the report also gives
it for 1,000-step episodes (seconds per step x 1,000), the length of a walking policy.
"""

import argparse
import json
import pathlib
import sys
import tempfile
import time

import common

JOB = """\
[env]
id = "{env}"
[policy]
hidden = {hidden}
[strategy]
pairs = {pairs}
[noise]
size = {noise}
"""


def timed(seconds, key, function, *args):
    start = time.perf_counter()
    out = function(*args)
    seconds.setdefault(key, []).append(time.perf_counter() - start)
    return out


def worker(args):
    """Runs on every rank; rank 0 prints one JSON line of median seconds."""
    import numpy as np

    from es_mpi import checkpoint as ckpt_io
    from es_mpi.config import job_from_text
    from es_mpi.metrics import MetricsLog
    from es_mpi.mpi import allgather_rows, allgather_variable, static_slice, world
    from es_mpi.noise import SharedNoiseTable
    from es_mpi.obstat import ObsStat
    from es_mpi.rollout import run_episode
    from es_mpi.runtime import initial_params, make_env_and_policy, max_steps, normalizer_for
    from es_mpi.seeding import Purpose, episode_seed, rng
    from es_mpi.strategies import make_strategy
    from es_mpi.trainer import params_checksum

    comm = world()
    text = JOB.format(env=args.env, hidden=list(args.hidden), pairs=args.pairs, noise=args.noise)
    job = job_from_text(text, pathlib.Path("update_cost.toml"))
    env, policy = make_env_and_policy(job)
    noise = SharedNoiseTable(job.noise.size, job.noise.seed, comm)
    strategy = make_strategy(job.strategy, initial_params(job, policy), noise.array, job.run.seed)
    obstat = ObsStat(policy.sizes[0])
    population, n_obs = strategy.population, 2 * policy.sizes[0] + 1
    slices = [(2 * a, 2 * b) for a, b in (static_slice(population // 2, r, comm.size) for r in range(comm.size))]
    start, stop = slices[comm.rank]
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="es-bench-"))
    metrics = MetricsLog(tmp / "metrics.csv" if comm.rank == 0 else None)
    seconds, episode_s, episode_steps = {}, [], []
    for t in range(1, args.repeats + 1):
        comm.Barrier()
        timed(seconds, "ask", strategy.ask, t)
        normalizer = normalizer_for(job, obstat)

        def expand_members():
            for member in range(start, stop):
                rng(job.run.seed, t, member, purpose=Purpose.OBS_SAMPLE).random()
                episode_seed(job.run.seed, t, member)
                policy.bind(strategy.member_params(member))

        timed(seconds, "member expansion", expand_members)
        for member in range(start, start + args.episodes):
            begin = time.perf_counter()
            episode = run_episode(env, policy.bind(strategy.member_params(member)),
                                  episode_seed(job.run.seed, t, member), max_steps(job, env), normalizer)
            episode_s.append(time.perf_counter() - begin)
            episode_steps.append(episode.length)
        draw = rng(t, purpose=Purpose.STRATEGY)
        rows_k4 = np.column_stack([draw.standard_normal(stop - start), np.full(stop - start, 30.0),
                                   np.zeros(stop - start), np.zeros(stop - start)])
        comm.Barrier()
        results_n4 = timed(seconds, "results gather", allgather_rows, comm, rows_k4, population, 4, slices)
        timed(seconds, "tell", strategy.tell, results_n4[:, 0].copy())
        n_recorded = max(1, round(job.obs_norm.probability * (stop - start)))
        obs_rows = draw.standard_normal((n_recorded, n_obs))
        comm.Barrier()
        gathered = timed(seconds, "obs-stat gather", allgather_variable, comm, obs_rows, n_obs)
        timed(seconds, "obs-stat add", obstat.add, gathered)

        def agree():
            state_sum = params_checksum(strategy.center(), obstat.sum_o, obstat.sumsq_o)
            sums = np.empty(comm.size, dtype=np.uint64)
            comm.Allgather(np.array([state_sum], dtype=np.uint64), sums)
            flags = np.empty((comm.size, 2))
            comm.Allgather(np.array([1.0, 0.0]), flags)

        comm.Barrier()
        timed(seconds, "checksum + flags", agree)
        if comm.rank == 0:
            row = dict(iteration=t, timesteps=t * 1000, return_mean=float(results_n4[:, 0].mean()),
                       update_s=0.1, imbalance=1.0, wall_time=time.time())
            timed(seconds, "metrics row", metrics.append, row)
            ckpt = ckpt_io.Checkpoint(
                config_toml=job.to_toml(), iteration=t, timesteps=t * 1000, step_cap=1000,
                best_eval_return=0.0, eval_return=0.0, params=strategy.center(),
                strategy=strategy.state_dict(), obstat=obstat.state_dict(), metrics=metrics.columns(),
                versions=ckpt_io.package_versions())
            timed(seconds, "checkpoint write", ckpt_io.save, ckpt_io.checkpoint_path(tmp, t), ckpt)
    comm.Barrier()
    if comm.rank == 0:
        medians = {key: common.median(values) for key, values in seconds.items()}
        spreads = {key: common.spread(values) for key, values in seconds.items()}
        print(json.dumps(dict(medians=medians, spreads=spreads, n_params=policy.n_params,
                              members_per_rank=stop - start, checkpoint_every=job.checkpoint.every,
                              episode_s=common.median(episode_s), episode_steps=common.median(episode_steps),
                              step_s=sum(episode_s) / max(1, sum(episode_steps)))))
    noise.free()


def report(args, result):
    med = result["medians"]
    outside = {key: value for key, value in med.items() if key != "checkpoint write"}
    outside["checkpoint write / every"] = med["checkpoint write"] / result["checkpoint_every"]
    outside_s = sum(outside.values())
    members = result["members_per_rank"]
    cases = [("initial policy", result["episode_steps"], result["episode_s"]),
             ("1,000-step episodes", 1000, result["step_s"] * 1000)]
    rows = [{"part": key, "seconds per iteration": f"{value:.4f}",
             "repeats min-max": result["spreads"].get(key, result["spreads"]["checkpoint write"])}
            for key, value in outside.items()]
    rows.append({"part": "**outside episodes, total**", "seconds per iteration": f"**{outside_s:.4f}**",
                 "repeats min-max": ""})
    share_rows = [{"episodes": name, "steps per episode": f"{steps:.0f}", "seconds per episode": f"{ep_s:.4f}",
                   "episode seconds per rank": f"{members * ep_s:.1f}",
                   "share outside episodes": f"{outside_s / (outside_s + members * ep_s):.2%}"}
                  for name, steps, ep_s in cases]
    body = [f"{args.env}, {'x'.join(map(str, args.hidden))} MLP ({result['n_params']} parameters), "
            f"{args.pairs} pairs ({2 * args.pairs} episodes per iteration), {args.ranks} ranks "
            f"({members} episodes per rank), noise table {args.noise} floats. "
            f"Medians of {args.repeats} repeats; {args.episodes} real episodes per repeat. Target <= 3%.", "",
            "Time outside episodes per iteration (each part measured after a Barrier):", "",
            common.markdown_table(["part", "seconds per iteration", "repeats min-max"], rows), "",
            "Share of the iteration outside episodes:", "",
            common.markdown_table(list(share_rows[0]), share_rows)]
    common.write_report(args.name, "Update cost: time outside episodes", body)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Humanoid-v5", help="gymnasium env id (default Humanoid-v5)")
    parser.add_argument("--hidden", type=lambda s: [int(x) for x in s.split(",")], default=[256, 256],
                        help="hidden layer sizes, comma separated (default 256,256)")
    parser.add_argument("--pairs", type=int, default=1000, help="mirrored pairs per iteration (default 1000)")
    parser.add_argument("--ranks", type=int, default=2, help="MPI ranks (default 2)")
    parser.add_argument("--noise", type=int, default=50_000_000, help="noise table floats (default: the job default)")
    parser.add_argument("--repeats", type=int, default=5, help="timed iterations (default 5)")
    parser.add_argument("--episodes", type=int, default=4, help="real episodes per repeat and rank (default 4)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed for the mpiexec run")
    parser.add_argument("--name", default="update_cost", help="report name under benchmarks/results/")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    out = common.run_mpi(args.ranks, [pathlib.Path(__file__).resolve(), "--worker", *sys.argv[1:]], args.timeout)
    report(args, json.loads(out.strip().splitlines()[-1]))


if __name__ == "__main__":
    main()
