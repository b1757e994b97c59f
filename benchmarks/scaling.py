"""Strong scaling of real training: the same job (fixed population) on 1, 2, 4, ... N ranks.

Each rank count runs `mpiexec -n R python -m es_mpi train JOB` and reads its metrics.csv.
Per iteration (first dropped, then the median over the rest):

- timesteps/s of the whole job (timesteps of the iteration / its wall time). The job and its
  seeds are the same for every R, so every R plays the very same episodes (contract 1): only
  the time differs.
- parallel efficiency = rate(R) / (R x rate(1)).
- load imbalance = max / mean over ranks of the time spent in episodes (metrics.csv).
- bytes per rank per iteration, derived from trainer.step (comm_bytes.expected_bytes).
- the machine's own ceiling: R processes stepping the raw env at once (random actions, no MPI),
  per-process rate over one process's rate, measured right after each training run. On a
  shared or turbo-boosting machine R busy cores do not give R times one core's rate, whatever
  the program; efficiency / ceiling is the part the trainer is responsible for.

A second table measures those bytes (benchmarks/comm_bytes.py counts every buffer the trainer
hands to mpi4py) for two policy sizes and two populations, to show they follow the population
and not the parameter count (contract 2).
"""

import argparse
import json
import os
import pathlib
import tempfile

import common
import comm_bytes
import throughput

DEFAULT_ENVS = ("Hopper-v5", "HalfCheetah-v5")


def default_ranks():
    """1, 2, 4, ... up to the core count, and the core count itself."""
    cores = os.cpu_count() or 1
    ranks = [1]
    while ranks[-1] * 2 <= cores:
        ranks.append(ranks[-1] * 2)
    return ranks if ranks[-1] == cores else ranks + [cores]


def hidden_list(text):
    return [int(x) for x in text.split(",")]


def obs_size(env_id):
    import gymnasium as gym

    env = gym.make(env_id)
    size = int(env.observation_space.shape[0])
    env.close()
    return size


def scaling_rows(env_id, args):
    rows, rate_1, raw_1 = [], None, None
    size = obs_size(env_id)
    for n_ranks in args.ranks:
        its = throughput.training_rows(env_id, args.hidden, args.pairs, args.iterations, n_ranks, args.timeout)
        raw = common.median(throughput.raw_rates_concurrent(env_id, args.raw_seconds, n_ranks))
        rates = [r["steps"] / r["iteration_s"] for r in its]
        rate = common.median(rates)
        if n_ranks == 1:
            rate_1, raw_1 = rate, raw
        efficiency, ceiling = rate / (n_ranks * rate_1), raw / raw_1
        sent, received = comm_bytes.expected_bytes(2 * args.pairs, n_ranks, 0, size, args.obs_probability)
        rows.append({
            "env": env_id, "ranks": n_ranks,
            "timesteps per iteration": f"{common.median(r['steps'] for r in its):.0f}",
            "timesteps/s": f"{rate:.0f} ({common.spread(rates)})",
            "efficiency": f"{efficiency:.2f}",
            "machine ceiling": f"{ceiling:.2f}",
            "efficiency / ceiling": f"{efficiency / ceiling:.2f}",
            "imbalance": f"{common.median(r['imbalance'] for r in its):.3f} "
                         f"({common.spread(r['imbalance'] for r in its)})",
            "episodes share": f"{common.median(r['episodes_s'] / r['iteration_s'] for r in its):.1%}",
            "wait s": f"{common.median(r['wait_s'] for r in its):.4f}",
            "update s": f"{common.median(r['update_s'] for r in its):.4f}",
            "bytes per rank sent / received": f"{sent:,.0f} / {received:,.0f}",
        })
    return rows


def measured_bytes(env_id, hidden, pairs, n_ranks, iterations, timeout):
    """comm_bytes.py's JSON for a short real training run."""
    with tempfile.TemporaryDirectory(prefix="es-bench-") as tmp:
        job = pathlib.Path(tmp) / "bytes.toml"
        job.write_text(throughput.JOB_TEMPLATE.format(env=env_id, hidden=list(hidden), pairs=pairs,
                                                      noise=5_000_000, iterations=iterations))
        out = common.run_mpi(n_ranks, [pathlib.Path(comm_bytes.__file__), job, "--run-dir",
                                       pathlib.Path(tmp) / "run"], timeout)
    return json.loads(out.strip().splitlines()[-1])


def bytes_rows(args):
    env_id, n_ranks, size = args.envs[0], max(args.ranks), obs_size(args.envs[0])
    rows, sites = [], {}
    for pairs in args.bytes_pairs:
        for hidden in args.bytes_hidden:
            result = measured_bytes(env_id, hidden, pairs, n_ranks, args.bytes_iterations, args.timeout)
            per_rank = result["per_rank"]
            sent = [sum(s for s, _ in rank.values()) for rank in per_rank]
            received = [sum(r for _, r in rank.values()) for rank in per_rank]
            expected = comm_bytes.expected_bytes(result["population"], n_ranks, 0, size, args.obs_probability)
            rows.append({"policy": "x".join(map(str, hidden)), "parameters": f"{result['n_params']:,}",
                         "population": result["population"],
                         "measured sent / received, rank 0": f"{sent[0]:,.0f} / {received[0]:,.0f}",
                         "measured received, all ranks": " / ".join(f"{r:,.0f}" for r in received),
                         "expected sent / received, rank 0": f"{expected[0]:,.0f} / {expected[1]:,.0f}",
                         "received per member": f"{received[0] / result['population']:.1f}"})
            sites = per_rank[0]
    site_rows = [{"call site (rank 0, last run above)": site, "sent": f"{s:,.0f}", "received": f"{r:,.0f}"}
                 for site, (s, r) in sites.items()]
    return rows, site_rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=list(DEFAULT_ENVS), help="gymnasium env ids")
    parser.add_argument("--ranks", nargs="+", type=int, default=default_ranks(),
                        help="rank counts (default 1, 2, 4, ... up to the core count)")
    parser.add_argument("--hidden", type=hidden_list, default=[64, 64], help="hidden layer sizes (default 64,64)")
    parser.add_argument("--pairs", type=int, default=32, help="mirrored pairs per iteration (default 32)")
    parser.add_argument("--iterations", type=int, default=6, help="training iterations per run; the first is dropped")
    parser.add_argument("--raw-seconds", type=float, default=2.0,
                        help="seconds of each raw env.step measurement of the machine ceiling")
    parser.add_argument("--bytes-hidden", nargs="+", type=hidden_list, default=[[64, 64], [256, 256]],
                        help="policies of the bytes table (default 64,64 256,256)")
    parser.add_argument("--bytes-pairs", nargs="+", type=int, default=[32, 128],
                        help="pairs of the bytes table (default 32 128)")
    parser.add_argument("--bytes-iterations", type=int, default=2, help="iterations of each bytes run")
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed per mpiexec run")
    parser.add_argument("--name", default="scaling", help="report name under benchmarks/results/")
    args = parser.parse_args()
    if 1 not in args.ranks:
        parser.error("--ranks must include 1: efficiency is relative to one rank")
    args.ranks = sorted(set(args.ranks))
    args.obs_probability = 0.01  # the job default (obs_norm.probability); the jobs here do not change it
    rows = [row for env_id in args.envs for row in scaling_rows(env_id, args)]
    byte_rows, site_rows = bytes_rows(args)
    body = [f"Same job for every rank count: {'x'.join(map(str, args.hidden))} MLP, {args.pairs} pairs "
            f"({2 * args.pairs} episodes per iteration), {args.iterations} iterations (first dropped), "
            "eval off. Medians over iterations, min-max in brackets. Targets: efficiency >= 0.9 at the "
            "largest rank count; imbalance <= 1.1 on Hopper.",
            "episodes share: time in episodes over the iteration on rank 0. wait s: time from rank 0's "
            "last episode to the end of the results gather (waiting for slower ranks). update s: the rest "
            "(ask, tell, gathers of statistics, checksum).",
            "bytes per rank: payload handed to MPI per iteration by rank 0, derived from trainer.step; "
            "measured below.", "",
            common.markdown_table(list(rows[0]), rows), "",
            f"Bytes per rank and iteration, measured by benchmarks/comm_bytes.py on {args.envs[0]}, "
            f"{max(args.ranks)} ranks, {args.bytes_iterations} iterations (construction excluded), "
            "beside the figure derived from trainer.step (the observation-statistics rows are a random "
            "1% sample of episodes, so the measured figure scatters around the expected one):", "",
            common.markdown_table(list(byte_rows[0]), byte_rows), "",
            common.markdown_table(list(site_rows[0]), site_rows)]
    common.write_report(args.name, "Scaling: rank count, efficiency, imbalance, bytes", body)


if __name__ == "__main__":
    main()
