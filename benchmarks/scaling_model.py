"""The plan past this machine: iteration time and parallel efficiency projected to 4,096 ranks.

Measures here, then projects with benchmarks/scaling_projection.py:
- episodes: real episodes of each task's population at its initial centre (one rank, one episode
  at a time, run_episode as the trainer plays it): length, seconds per step, member binding;
  all timed as this process's CPU time, which leaves out the other jobs' share of a shared machine;
- the update: weighted_noise_sum (OpenAI-ES's tell) over full-width and column-slice widths of the
  parameter vector (a 200 MB table, as in training), and the optimizer step per column;
- on-node collectives: benchmarks/collective_costs.py under mpiexec -n 2.
The network between nodes is an alpha-beta model with stated constants (--network-latency-us,
--network-gbs), and a node's memory bandwidth shared by its ranks is stated (--node-memory-gbs).

Writes benchmarks/results/<name>.md, <name>.png and <name>_inputs.json; --inputs FILE projects
from saved inputs without measuring again.
"""

import argparse
import json
import math
import pathlib
import time

import common
import scaling_projection as model

MUJOCO = ("Hopper-v5", "HalfCheetah-v5", "Humanoid-v5")
POLICIES = ((), (64, 64), (256, 256))
ATARI = "ALE/Pong-v5"
RANKS = (16, 64, 256, 1024, 4096)
PER_NODE = (32, 128)
SLICE_NODE_SIZES = (32, 128)
SUM_TABLE_FLOATS = 50_000_000
TARGET_TASKS = ("Hopper-v5 linear", "Hopper-v5 64x64", "Hopper-v5 256x256", "Humanoid-v5 256x256")
PLOT_TASKS = ("Hopper-v5 linear", "HalfCheetah-v5 64x64", "Humanoid-v5 256x256", "ALE/Pong-v5 paper")


def policy_name(hidden):
    return "x".join(map(str, hidden)) if hidden else "linear"


def job_text(env_id, hidden, pairs):
    """The task's job: linear policies normalise on every episode (the ARS jobs), MLPs on 1%."""
    if env_id == ATARI:
        return (f'[env]\nid = "{env_id}"\n[atari]\nmax_episode_steps = 5000\n[policy]\nkind = "cnn"\n'
                f'network = "paper"\nvbn = false\n[strategy]\npairs = {pairs}\n[noise]\nsize = 2_000_000\n'
                '[obs_norm]\nenabled = false\n')
    probability = 1.0 if not hidden else 0.01
    return (f'[env]\nid = "{env_id}"\n[policy]\nhidden = [{", ".join(map(str, hidden))}]\n'
            f'[strategy]\npairs = {pairs}\n[noise]\nsize = 2_000_000\n[obs_norm]\nprobability = {probability}\n')


def measure_episodes(name, text):
    """Per episode: (length, seconds per step, seconds to bind the member's parameters)."""
    from es_mpi.core.seeding import episode_seed
    from es_mpi.parts.job_file import job_from_text
    from es_mpi.parts.build import build_task
    from es_mpi.run.noise import local_table
    from es_mpi.run.rollout import run_episode

    job = job_from_text(text, pathlib.Path(f"{name}.toml"))
    task = build_task(job)
    strategy = task.make_strategy(local_table(job.noise.size, job.noise.seed))
    strategy.ask(1)
    episodes = []
    for member in range(strategy.population):
        start = time.process_time()
        act = strategy.member_actor(member, task.policy)
        bound = time.process_time()
        episode = run_episode(task.env, act, episode_seed(job.run.seed, 1, member), task.step_limit)
        done = time.process_time()
        episodes.append((episode.length, (done - bound) / max(episode.length, 1), bound - start))
    obs = task.env.observation_space.shape
    row_floats = 0 if not job.obs_norm.enabled else 2 * math.prod(obs) + 1
    task.close()
    return episodes, task.policy.n_params, row_floats, job.obs_norm.probability if job.obs_norm.enabled else 0.0


def seconds_of(function, repeats):
    """Median CPU seconds of this process for one call."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        function()
        times.append(time.process_time() - start)
    return common.median(times)


def measure_update(n_params, table, pairs, repeats):
    """weighted_noise_sum per (pair x column) at full width, per pair for each node's column slice,
    and the Adam step per column."""
    import numpy as np

    from es_mpi.parts.strategies.openai_es import weighted_noise_sum
    from es_mpi.parts.strategies.optim import make_optimizer

    draw = np.random.default_rng(0)
    offsets_n = draw.integers(0, table.size - n_params + 1, size=pairs)
    weights_n = draw.standard_normal(pairs).astype(np.float32)
    per_pair = {}
    for per_node in (1, *SLICE_NODE_SIZES):
        columns = math.ceil(n_params / per_node)
        start = (n_params - columns) // 2  # a slice from the middle of the vector
        per_pair[columns] = seconds_of(lambda: weighted_noise_sum(table, offsets_n + start, weights_n, columns),
                                       repeats) / pairs
    optimizer = make_optimizer("adam", n_params, 0.01, 0.0, 0.9, 0.999)
    descent_p = np.ones(n_params, dtype=np.float32)
    step_s = seconds_of(lambda: optimizer.step(descent_p), repeats)
    return {"sum_s_per_pair": per_pair, "step_s_per_column": step_s / n_params}


def measure_collectives(repeats):
    output = common.run_mpi(2, [common.REPO / "benchmarks" / "collective_costs.py", repeats], timeout=300)
    return json.loads(output.strip().splitlines()[-1])


def measure(args):
    from es_mpi.run.noise import local_table

    table = local_table(SUM_TABLE_FLOATS, 123)
    specs = [(env_id, hidden, args.pairs) for env_id in MUJOCO for hidden in POLICIES]
    specs.append((ATARI, None, args.atari_pairs))
    tasks = []
    for env_id, hidden, pairs in specs:
        name = f"{env_id} {'paper' if hidden is None else policy_name(hidden)}"
        print(f"measuring {name}", flush=True)
        episodes, n_params, row_floats, probability = measure_episodes(name, job_text(env_id, hidden or (), pairs))
        update = measure_update(n_params, table, args.sum_pairs, args.repeats)
        tasks.append({"name": name, "episodes": episodes, "n_params": n_params, "row_floats": row_floats,
                      "obs_probability": probability, **update})
    return {"tasks": tasks, "collectives": measure_collectives(args.collective_repeats)}


def node_link(collectives):
    """(latency, bandwidth) between ranks of a node from the 2-rank Allgatherv: latency = the
    smallest message, bandwidth = the largest message received / its extra time. Fastest repeats:
    a dedicated node's cost, without this shared machine's scheduling."""
    times = {int(size): s["min"] for size, s in collectives["allgatherv_s"].items()}
    latency = times[min(times)]
    largest = max(times)
    return model.Link(latency, largest / max(times[largest] - latency, 1e-12))


def model_task(task):
    """Per-pair costs: each episode costs binding + length x the task's median seconds per step
    (medians, because the machine is shared: one episode's own time mostly measures its neighbours)."""
    step_s = common.median(step for _, step, _ in task["episodes"])
    bind_s = common.median(bind for _, _, bind in task["episodes"])
    costs = [bind_s + length * step_s for length, _, _ in task["episodes"]]
    pairs = tuple(a + b for a, b in zip(costs[::2], costs[1::2]))
    return model.Task(task["name"], pairs, task["n_params"], task["row_floats"], task["obs_probability"],
                      {int(k): v for k, v in task["sum_s_per_pair"].items()}, task["step_s_per_column"])


def machine_of(inputs, args):
    collectives = inputs["collectives"]
    return model.Machine(node_link(collectives),
                         model.Link(args.network_latency_us * 1e-6, args.network_gbs * 1e9),
                         args.node_memory_gbs * 1e9, collectives["claim_s"]["min"], collectives["barrier_s"]["min"])


def population_for(n_ranks, args):
    """Pairs per iteration: episodes_per_rank per rank, at least min_episodes (10,240 at 1,024 ranks)."""
    return max(args.min_episodes, args.episodes_per_rank * n_ranks) // 2


def projections(tasks, machine, args):
    return {(task.name, design.name, n_ranks, per_node):
            model.project(task, design, n_ranks, per_node, population_for(n_ranks, args), machine)
            for task in tasks for design in model.DESIGNS for n_ranks in args.ranks for per_node in args.per_node}


def percentiles(values):
    import numpy as np

    p10, p50, p90 = np.percentile(values, [10, 50, 90])
    return p10, p50, p90


def inputs_rows(inputs):
    rows = []
    for task in inputs["tasks"]:
        lengths = [length for length, _, _ in task["episodes"]]
        steps_us = [step * 1e6 for _, step, _ in task["episodes"]]
        l10, l50, l90 = percentiles(lengths)
        s10, s50, s90 = percentiles(steps_us)
        widths = sorted(task["sum_s_per_pair"].items(), key=lambda item: -int(item[0]))
        sums = "; ".join(f"{int(w):,}: {s * 1e6:.2f}" for w, s in widths)
        rows.append({"task": task["name"], "parameters": f"{task['n_params']:,}", "episodes": len(lengths),
                     "length median (p10-p90)": f"{l50:.0f} ({l10:.0f}-{l90:.0f})",
                     "us per step median (p10-p90)": f"{s50:.0f} ({s10:.0f}-{s90:.0f})",
                     "bind ms": f"{common.median(b for _, _, b in task['episodes']) * 1e3:.2f}",
                     "noise sum us per pair, by columns (all; 1/32; 1/128)": sums,
                     "optimizer ns per column": f"{task['step_s_per_column'] * 1e9:.2f}",
                     "obs row floats x probability": f"{task['row_floats']} x {task['obs_probability']:g}"})
    return rows


def projection_rows(tasks, results, args, per_node_values):
    rows = []
    for task in tasks:
        for per_node in per_node_values:
            for n_ranks in args.ranks:
                got = {d.name: results[(task.name, d.name, n_ranks, per_node)] for d in model.DESIGNS}
                best, today = got["all together"], got["today"]
                row = {"task": task.name, "ranks": f"{n_ranks:,}", "per node": per_node,
                       "episodes": f"{best.population:,}"}
                row.update({f"eff. {name}": f"{p.efficiency:.2f}" for name, p in got.items()})
                row.update({"iteration s today / all": f"{today.iteration_s:.3g} / {best.iteration_s:.3g}",
                            "imbalance static / dynamic": f"{today.imbalance:.2f} / {best.imbalance:.2f}",
                            "update share today / all": f"{today.shares()['update']:.1%} / "
                                                        f"{best.shares()['update']:.1%}",
                            "MB into a node today / all": f"{today.node_bytes / 1e6:.3g} / {best.node_bytes / 1e6:.3g}",
                            "limit (all together)": model.limit(best)})
                rows.append(row)
    return rows


def target_lines(tasks, results, args, machine):
    lines = []
    big = 1024 if 1024 in args.ranks else max(args.ranks)
    top = max(args.per_node)
    for name in TARGET_TASKS:
        if any(t.name == name for t in tasks):
            p = results[(name, "all together", big, top)]
            verdict = "meets" if p.efficiency >= 0.9 else f"misses; limit: {model.limit(p)}"
            task = next(t for t in tasks if t.name == name)
            larger = model.project(task, model.DESIGNS[-1], big, top, 4 * population_for(big, args), machine)
            lines.append(f"- Efficiency >= 0.9 at {big:,} ranks, {name}, {top} per node: {p.efficiency:.2f} "
                         f"all together (today {results[(name, 'today', big, top)].efficiency:.2f}) -> {verdict}. "
                         f"With 4x the population ({larger.population:,} episodes): {larger.efficiency:.2f}.")
    shares = {t.name: results[(t.name, "all together", big, top)].shares()["update"] for t in tasks}
    worst = max(shares, key=shares.get)
    narrow = {t.name: t.sum_s_per_pair[min(t.sum_s_per_pair)] for t in tasks}
    lines.append(f"- Update share <= 3% at {top} ranks per node ({big:,} ranks, all together): "
                 + ", ".join(f"{name} {shares[name]:.1%}" for name in shares if name in TARGET_TASKS)
                 + f"; the largest is {shares[worst]:.1%} ({worst}) -> "
                 + ("meets" if shares[worst] <= 0.03 else "misses") + ". What limits it: a rank's slice of "
                 f"1/{top} of the columns still pays weighted_noise_sum's per-row cost, "
                 f"{narrow[worst] * 1e6:.2f} us per pair for {worst} (a loop of ufunc calls per row).")
    below, equal = 0, 0
    for t in tasks:
        for n in args.ranks:
            pairs = model.population_pairs(t.pair_costs_s, population_for(n, args))
            static = model.episode_seconds(pairs, n, min(top, n), dynamic=False)
            dynamic = model.episode_seconds(pairs, n, min(top, n), dynamic=True)
            below += dynamic < static * (1 - 1e-9)
            equal += abs(dynamic - static) <= static * 1e-9
    lines.append(f"- Replayed traces, dynamic below static (claims not counted): {below} of "
                 f"{len(tasks) * len(args.ranks)} (task, ranks) cases at {top} per node, equal in {equal} "
                 "(equal-length episodes: HalfCheetah, Pong); each claim adds "
                 f"{machine.claim_s * 1e6:.1f} us.")
    flat = [results[(t.name, "all together", n, p)].node_bytes for t in tasks[:1] for n in (max(args.ranks),)
            for p in args.per_node]
    lines.append(f"- Bytes into a node per iteration, hierarchical, {tasks[0].name} at {max(args.ranks):,} ranks: "
                 + " / ".join(f"{b / 1e6:.3g} MB" for b in flat)
                 + f" at {' / '.join(map(str, args.per_node))} per node (O(population); today multiplies by "
                   "the ranks per node).")
    return lines


def plot(tasks, results, args, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in PLOT_TASKS if any(t.name == n for t in tasks)] or [tasks[0].name]
    columns = 2 if len(names) > 1 else 1
    rows = math.ceil(len(names) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.6 * rows + 0.8), sharey=True,
                                squeeze=False)
    styles = {32: ":", 128: "-"}
    for axis, name in zip(axes.flat, names):
        for index, design in enumerate(model.DESIGNS):
            for per_node in args.per_node:
                values = [results[(name, design.name, n, per_node)].efficiency for n in args.ranks]
                axis.plot(args.ranks, values, styles.get(per_node, "--"), marker="o", markersize=3,
                          color=f"C{index}", label=f"{design.name}, {per_node}/node")
        axis.set_xscale("log", base=2)
        axis.set_xticks(args.ranks, [f"{n:,}" for n in args.ranks])
        axis.axhline(0.9, color="grey", linewidth=0.8)
        axis.set_title(name, fontsize=10)
        axis.set_xlabel("ranks")
        axis.set_ylim(0, 1.05)
        axis.grid(alpha=0.3)
    for axis in axes[:, 0]:
        axis.set_ylabel("projected parallel efficiency")
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=3, fontsize=8)
    figure.tight_layout(rect=(0, 0.12, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def report_body(inputs, tasks, machine, results, args, png_name):
    collectives = inputs["collectives"]
    node = machine.node
    allgather = ", ".join(f"{int(b):,} B: {s['min'] * 1e6:.1f} ({s['median'] * 1e6:.1f}) us"
                          for b, s in collectives["allgatherv_s"].items())
    return [
        "Projected, not measured: iteration time and parallel efficiency (serial time of the iteration / "
        "(ranks x iteration time)) of today's design, each change of issue 11 alone, and all together. "
        f"Population: {args.episodes_per_rank} episodes per rank, at least {args.min_episodes:,} "
        f"({population_for(1024, args) * 2:,} at 1,024 ranks). "
        "A rank plays one episode at a time (lanes left out).", "",
        "Inputs measured here (`python benchmarks/scaling_model.py` measures them all in one run):", "",
        f"- episodes: {args.pairs} pairs per MuJoCo task, {args.atari_pairs} for Atari (paper network, "
        "no VBN), at the initial centre, played by run_episode, in CPU seconds of the process. An episode "
        "costs bind + length x the task's median seconds per step; pairs are resampled (fixed seed) up to "
        "the population. Initial-centre episodes are short (Hopper, Humanoid fall early): the per-rank "
        "work is then smallest, so fixed costs (update, exchange) weigh most.",
        f"- update: weighted_noise_sum over {args.sum_pairs} rows of a {SUM_TABLE_FLOATS:,}-float table, "
        "full width and the column slice a rank takes at 32 and 128 ranks per node; Adam step per column. "
        "Linear in pairs (a loop over rows).",
        "- on-node collectives, mpiexec -n 2, fastest (median) of the repeats; the model uses the "
        "fastest, a dedicated node's cost, since the medians carry this shared machine's scheduling: "
        f"Allgatherv per rank {allgather}; Barrier {_min_median(collectives['barrier_s'])}; bcast "
        f"{_min_median(collectives['bcast_s'])}; Fetch_and_op claim {_min_median(collectives['claim_s'])}. "
        "Node link fitted: "
        f"{node.latency_s * 1e6:.1f} us, {node.bytes_per_s / 1e9:.2f} GB/s.",
        f"- stated, not measured: network {args.network_latency_us:g} us + bytes / {args.network_gbs:g} GB/s "
        f"(alpha-beta, recursive doubling); a node streams {args.node_memory_gbs:g} GB/s from memory in "
        "all, shared by ranks summing the noise table at once (today every rank streams the whole table "
        "slice; the shared L3 may serve some of those repeated reads, so today's update is a pessimistic "
        "bound).", "",
        "Measured inputs per task:", "",
        common.markdown_table(list(inputs_rows(inputs)[0]), inputs_rows(inputs)), "",
        f"![projected parallel efficiency]({png_name})", "",
        "Targets of issue 11 in this projection:", "", *target_lines(tasks, results, args, machine), "",
        f"Projection at {max(args.per_node)} ranks per node (eff. = parallel efficiency; MB into a node = "
        "network bytes per node per iteration; limit = the largest loss of the all-together design):", "",
        common.markdown_table(*_table(tasks, results, args, [max(args.per_node)])), "",
        f"At {min(args.per_node)} ranks per node:", "",
        common.markdown_table(*_table(tasks, results, args, [min(args.per_node)])),
    ]


def _min_median(timing):
    return f"{timing['min'] * 1e6:.2f} ({timing['median'] * 1e6:.2f}) us"


def _table(tasks, results, args, per_node_values):
    rows = projection_rows(tasks, results, args, per_node_values)
    return list(rows[0]), rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=pathlib.Path, help="project from these saved inputs, measure nothing")
    parser.add_argument("--pairs", type=int, default=24, help="pairs of real episodes per MuJoCo task (default 24)")
    parser.add_argument("--atari-pairs", type=int, default=3, help="pairs of real Atari episodes (default 3)")
    parser.add_argument("--sum-pairs", type=int, default=200, help="rows of each timed noise sum (default 200)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of each update part (default 3)")
    parser.add_argument("--collective-repeats", type=int, default=200, help="repeats per collective")
    parser.add_argument("--ranks", nargs="+", type=int, default=list(RANKS), help="projected rank counts")
    parser.add_argument("--per-node", nargs="+", type=int, default=list(PER_NODE), help="ranks per node")
    parser.add_argument("--episodes-per-rank", type=int, default=10, help="population per rank (default 10)")
    parser.add_argument("--min-episodes", type=int, default=1000, help="smallest population (default 1000)")
    parser.add_argument("--network-latency-us", type=float, default=2.0, help="network alpha (default 2 us)")
    parser.add_argument("--network-gbs", type=float, default=12.5, help="network GB/s (default 12.5)")
    parser.add_argument("--node-memory-gbs", type=float, default=200.0,
                        help="memory GB/s a node streams in all (default 200)")
    parser.add_argument("--name", type=common.report_name, default="scaling_model",
                        help="report name under benchmarks/results/")
    args = parser.parse_args()
    if args.inputs:
        inputs = json.loads(args.inputs.read_text())
    else:
        inputs = measure(args)
        common.RESULTS.mkdir(parents=True, exist_ok=True)
        (common.RESULTS / f"{args.name}_inputs.json").write_text(json.dumps(inputs))
    tasks = [model_task(task) for task in inputs["tasks"]]
    machine = machine_of(inputs, args)
    results = projections(tasks, machine, args)
    png = common.RESULTS / f"{args.name}.png"
    plot(tasks, results, args, png)
    common.write_report(args.name, "Scaling model: projected efficiency to 4,096 ranks",
                        report_body(inputs, tasks, machine, results, args, png.name))


if __name__ == "__main__":
    main()
