"""Strong scaling of real training: the same job (fixed population) on 1, 2, 4, ... N ranks.

Each rank count trains the job under mpiexec with benchmarks/instrumented_train.py (the CLI's
Trainer and train(), plus meters) and reads its metrics.csv. Per iteration (first dropped, then
the median over the rest):

- timesteps/s of the whole job (timesteps of the iteration / its wall time). The job and its
  seeds are the same for every R, so every R plays the very same episodes (contract 1): only
  the time differs.
- parallel efficiency = rate(R) / (R x rate(1)) from wall time (the target's definition), and
  from CPU time: CPU seconds of one rank at R = 1 / CPU seconds of all R ranks. The second
  leaves out time the machine gave to other jobs (it is shared) but keeps waiting for other
  ranks (Open MPI polls while it waits).
- load imbalance = max / mean over ranks of the wall time spent in episodes (metrics.csv), for
  each `run.placement` (static slices and dynamic claims), measured in the same run.
- bytes per rank per iteration, counted at the mpi4py calls.

Then, from the per-member episode lengths (the same at every R), the work imbalance (max / mean
timesteps per rank) of the trainer's static slices for larger rank counts than this machine
has cores, beside a dynamic placement (each pair claimed in global order by the first rank to
be free), and a table of bytes for two policy sizes and two populations, with every rank its own
virtual node (ES_MPI_NODE_SIZE=1, so the results cross MPI as they would between machines), to
show that the bytes follow the population and not the parameter count (contract 2).
"""

import argparse
import json
import os
import pathlib

import common
import instrumented_train
import throughput

DEFAULT_ENVS = ("Hopper-v5", "HalfCheetah-v5")
LAUNCHER = (pathlib.Path(instrumented_train.__file__).resolve(),)


def default_ranks():
    """1, 2, 4, ... up to the core count, and the core count itself."""
    cores = os.cpu_count() or 1
    ranks = [1]
    while ranks[-1] * 2 <= cores:
        ranks.append(ranks[-1] * 2)
    return ranks if ranks[-1] == cores else ranks + [cores]


def hidden_list(text):
    return [int(x) for x in text.split(",")]


def instrumented_run(env_id, hidden, pairs, iterations, n_ranks, timeout, placement="dynamic"):
    """(metrics rows, first iteration dropped; instrumented_train's JSON)."""
    rows, stdout = throughput.training_run(env_id, hidden, pairs, iterations, n_ranks, timeout, LAUNCHER, placement)
    return rows, json.loads(stdout.strip().splitlines()[-1])


def rank_totals(result, rank):
    sites = result["per_rank"][rank]["sites"].values()
    return sum(s for s, _ in sites), sum(r for _, r in sites)


def scaling_rows(env_id, args):
    """Table rows per rank count and placement (one rank: static only), and the per-member lengths
    of the run with one rank."""
    rows, rate_1, cpu_1, lengths = [], None, None, None
    runs = [(n, placement) for n in args.ranks for placement in (("static",) if n == 1 else args.placements)]
    for n_ranks, placement in runs:
        its, result = instrumented_run(env_id, args.hidden, args.pairs, args.iterations, n_ranks, args.timeout,
                                       placement)
        rates = [r["steps"] / r["iteration_s"] for r in its]
        cpu = [sum(values) for values in zip(*[rank["cpu_s"][1:] for rank in result["per_rank"]])]
        rate = common.median(rates)
        if n_ranks == 1:
            rate_1, cpu_1, lengths = rate, common.median(cpu), result["lengths"][1:]
        sent, received = rank_totals(result, 0)
        rows.append({
            "env": env_id, "ranks": n_ranks, "placement": placement,
            "timesteps per iteration": f"{common.median(r['steps'] for r in its):.0f}",
            "timesteps/s": f"{rate:.0f} ({common.spread(rates)})",
            "efficiency (wall)": f"{rate / (n_ranks * rate_1):.2f}",
            "efficiency (CPU time)": f"{cpu_1 / common.median(cpu):.2f}",
            "imbalance": f"{common.median(r['imbalance'] for r in its):.3f} "
                         f"({common.spread(r['imbalance'] for r in its)})",
            "episodes share": f"{common.median(r['episodes_s'] / r['iteration_s'] for r in its):.1%}",
            "wait s": f"{common.median(r['wait_s'] for r in its):.4f}",
            "update s": f"{common.median(r['update_s'] for r in its):.4f}",
            "bytes per rank sent / received": f"{sent:,.0f} / {received:,.0f}",
        })
    return rows, lengths


def static_loads(pair_steps, n_ranks):
    """Timesteps per rank with the trainer's contiguous slices of pairs."""
    n = len(pair_steps)
    return [sum(pair_steps[n * r // n_ranks:n * (r + 1) // n_ranks]) for r in range(n_ranks)]


def dynamic_loads(pair_steps, n_ranks):
    """Timesteps per rank when each pair, in global order, goes to the rank that is free first."""
    loads = [0] * n_ranks
    for steps in pair_steps:
        loads[loads.index(min(loads))] += steps
    return loads


def imbalance(loads):
    return max(loads) / (sum(loads) / len(loads)) if sum(loads) else 1.0


def placement_rows(env_id, lengths, rank_counts):
    rows = []
    pair_steps_by_iteration = [[a + b for a, b in zip(its[::2], its[1::2])] for its in lengths]
    for n_ranks in rank_counts:
        row = {"env": env_id, "ranks": n_ranks,
               "pairs per rank": f"{len(pair_steps_by_iteration[0]) / n_ranks:.1f}"}
        for name, loads in (("static slices", static_loads), ("dynamic, global order", dynamic_loads)):
            values = [imbalance(loads(pair_steps, n_ranks)) for pair_steps in pair_steps_by_iteration]
            row[name] = f"{common.median(values):.3f} ({common.spread(values)})"
        rows.append(row)
    return rows


def bytes_rows(args):
    env_id, n_ranks = args.envs[0], max(args.ranks)
    rows, sites = [], {}
    size = obs_size(env_id)
    os.environ["ES_MPI_NODE_SIZE"] = "1"  # every rank a node: the results cross MPI
    for pairs in args.bytes_pairs:
        for hidden in args.bytes_hidden:
            _, result = instrumented_run(env_id, hidden, pairs, args.bytes_iterations, n_ranks, args.timeout)
            totals = [rank_totals(result, rank) for rank in range(n_ranks)]
            expected = instrumented_train.expected_bytes(result["population"], result["node_sizes"], 0, size,
                                                         args.obs_probability)
            rows.append({"policy": "x".join(map(str, hidden)), "parameters": f"{result['n_params']:,}",
                         "population": result["population"],
                         "measured sent / received, rank 0": f"{totals[0][0]:,.0f} / {totals[0][1]:,.0f}",
                         "measured received, all ranks": " / ".join(f"{r:,.0f}" for _, r in totals),
                         "expected sent / received, rank 0": f"{expected[0]:,.0f} / {expected[1]:,.0f}",
                         "received per member": f"{totals[0][1] / result['population']:.1f}"})
            sites = result["per_rank"][0]["sites"]
    del os.environ["ES_MPI_NODE_SIZE"]
    site_rows = [{"call site (rank 0, last run above)": site, "sent": f"{s:,.0f}", "received": f"{r:,.0f}"}
                 for site, (s, r) in sites.items()]
    return rows, site_rows


def obs_size(env_id):
    import gymnasium as gym

    env = gym.make(env_id)
    size = int(env.observation_space.shape[0])
    env.close()
    return size


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=list(DEFAULT_ENVS), help="gymnasium env ids")
    parser.add_argument("--ranks", nargs="+", type=int, default=default_ranks(),
                        help="rank counts, 1 included (default 1, 2, 4, ... up to the core count)")
    parser.add_argument("--placements", nargs="+", choices=("static", "dynamic"), default=["static", "dynamic"],
                        help="run.placement values to measure above one rank, in the same run (default both)")
    parser.add_argument("--placement-ranks", nargs="+", type=int, default=[2, 4, 8, 16, 32],
                        help="rank counts of the placement table (default 2 4 8 16 32)")
    parser.add_argument("--hidden", type=hidden_list, default=[64, 64], help="hidden layer sizes (default 64,64)")
    parser.add_argument("--pairs", type=int, default=32, help="mirrored pairs per iteration (default 32)")
    parser.add_argument("--iterations", type=int, default=6, help="training iterations per run; the first is dropped")
    parser.add_argument("--bytes-hidden", nargs="+", type=hidden_list, default=[[64, 64], [256, 256]],
                        help="policies of the bytes table (default 64,64 256,256)")
    parser.add_argument("--bytes-pairs", nargs="+", type=int, default=[32, 128],
                        help="pairs of the bytes table (default 32 128)")
    parser.add_argument("--bytes-iterations", type=int, default=2, help="iterations of each bytes run")
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed per mpiexec run")
    parser.add_argument("--name", type=common.report_name, default="scaling",
                        help="report name under benchmarks/results/")
    args = parser.parse_args()
    if 1 not in args.ranks:
        parser.error("--ranks must include 1: efficiency is relative to one rank")
    args.ranks = sorted(set(args.ranks))
    args.obs_probability = 0.01  # the job default (obs_norm.probability); the jobs here do not change it
    rows, placements = [], []
    for env_id in args.envs:
        env_rows, lengths = scaling_rows(env_id, args)
        rows += env_rows
        placements += placement_rows(env_id, lengths, args.placement_ranks)
    byte_rows, site_rows = bytes_rows(args)
    body = [f"Same job for every rank count: {'x'.join(map(str, args.hidden))} MLP, {args.pairs} pairs "
            f"({2 * args.pairs} episodes per iteration), {args.iterations} iterations (first dropped), "
            "eval off; mpiexec --oversubscribe --bind-to none. Medians over iterations, min-max in brackets. "
            "Targets: efficiency >= 0.9 at the largest rank count; imbalance <= 1.1 on Hopper.",
            "efficiency (CPU time): CPU seconds of the one-rank run / CPU seconds of all ranks, per iteration. "
            "imbalance: max / mean over ranks of the wall time in episodes. episodes share: time in episodes "
            "over the iteration, rank 0. wait s: from rank 0's last episode to the end of the results exchange. "
            "update s: the rest (ask, tell, statistics gather, checksum). bytes: payload rank 0 handed to MPI "
            "per iteration, counted.", "",
            common.markdown_table(list(rows[0]), rows), "",
            "Work imbalance (max / mean timesteps per rank) of the same episodes (the one-rank run's lengths, "
            "every iteration but the first) placed on more ranks: the trainer's contiguous static slices of "
            "pairs, and a dynamic placement where each pair, in global member order, goes to the first rank "
            "to be free (timesteps as the cost of an episode):", "",
            common.markdown_table(list(placements[0]), placements), "",
            f"Bytes per rank and iteration, counted by benchmarks/instrumented_train.py on {args.envs[0]}, "
            f"{max(args.ranks)} ranks, each its own virtual node (ES_MPI_NODE_SIZE=1), "
            f"{args.bytes_iterations} iterations (construction excluded), "
            "beside the figure derived from trainer.step (the observation-statistics rows are a random "
            "1% sample of episodes, so the measured figure scatters around the expected one):", "",
            common.markdown_table(list(byte_rows[0]), byte_rows), "",
            common.markdown_table(list(site_rows[0]), site_rows)]
    common.write_report(args.name, "Scaling: rank count, efficiency, imbalance, bytes", body)


if __name__ == "__main__":
    main()
