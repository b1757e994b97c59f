"""A scaling model of the built code: checked against the emulated cluster, then projected to 4,096 ranks.

The arithmetic is benchmarks/built_model_events.py: each node's ranks claim the units of the
node's block from its counter (on an evaluation iteration, the node's evaluation episodes first),
lanes capped at Placement.share, each member's episode costing what its trace says; then the
per-call costs of the exchange, update, ObsStat.add and ask; and the pipelined mode
(run.pipeline: built_model_events.pipelined). Every input is a measurement, named in the report:

- episodes: the trace files that benchmarks/emulated_cluster.py replays (benchmarks/traces/),
  member m of iteration t drawing the episode the trace env draws from its env seed
  (emulated_cluster.asked_episodes for the measured points; the same draw, cached, for the
  projections; an evaluation episode e of iteration t draws by its seed of the state before t,
  episode_seed(seed, t - 1, e, EVAL_EPISODE), from the same pool, as emulated_cluster.serial_work
  does); for tasks without a trace, the episodes benchmarks/scaling_model.py measured
  (results/scaling_model_inputs.json), drawn the same way;
- the update: one rank's tell from results/node_update.json (OpenAI-ES, 1,000 pairs, its column
  slice at K ranks per node): pairs x the measured cost per pair at the slice's width, at least
  what the node's memory bandwidth allows (stated, as in scaling_model.py);
- the exchange and agreement: scaling_projection's hierarchical gathers with the on-node
  collectives of results/scaling_model_inputs.json and the stated network;
- ObsStat.add (vectorized) and ask: measured here, in CPU seconds, medians.

Part 1 replays each point of the emulated cluster's results (--emulated; same trace, mode, time
scale, episodes per rank, node size, iterations and seeds) and reports the gap. Part 2 projects 128-4,096 ranks,
128 per node, 10 episodes per rank, for the tasks of docs/scaling.md's table, from initial-centre
and from mid-training episodes, without and with evaluation, synchronous and pipelined
(--pipeline-iterations 0 leaves the pipelined mode out).

Writes benchmarks/results/<--name>.md and .json.
"""

import argparse
import dataclasses
import json
import math
import pathlib
import random

import common
import built_model_events as events
import emulated_cluster
import scaling_model
import scaling_projection

EMULATED = common.RESULTS / "emulated_cluster.json"
NODE_UPDATE = common.RESULTS / "node_update.json"
SCALING_INPUTS = common.RESULTS / "scaling_model_inputs.json"
TRACES = emulated_cluster.TRACES
RANKS = (128, 256, 1024, 4096)
SHUFFLES = 40  # random first-fill interleavings per measured point

# (task, inputs task of scaling_model_inputs.json, trace stem or None, linear inputs task the trace's
# costs are scaled from): the rows of docs/scaling.md's table, and Walker2d, which has traces.
TASKS = (
    ("Hopper-v5 linear", "Hopper-v5 linear", "hopper", None),
    ("Hopper-v5 64x64", "Hopper-v5 64x64", "hopper", "Hopper-v5 linear"),
    ("Hopper-v5 256x256", "Hopper-v5 256x256", "hopper", "Hopper-v5 linear"),
    ("HalfCheetah-v5 linear", "HalfCheetah-v5 linear", None, None),
    ("HalfCheetah-v5 64x64", "HalfCheetah-v5 64x64", None, None),
    ("HalfCheetah-v5 256x256", "HalfCheetah-v5 256x256", None, None),
    ("Humanoid-v5 linear", "Humanoid-v5 linear", "humanoid", None),
    ("Humanoid-v5 64x64", "Humanoid-v5 64x64", "humanoid", "Humanoid-v5 linear"),
    ("Humanoid-v5 256x256", "Humanoid-v5 256x256", "humanoid", "Humanoid-v5 linear"),
    ("ALE/Pong-v5 paper", "ALE/Pong-v5 paper", None, None),
    ("Walker2d-v5 linear", None, "walker2d", None),
)
TARGET_EFFICIENCY, TARGET_UPDATE_SHARE = 0.9, 0.03
PIPELINE_NOTE = (
    "The pipelined mode's model (run.pipeline; checked against the emulated cluster's pipelined points above): "
    "iteration t+1 opens once iteration t-1's last member is done and exchanged, a rank whose claim of t "
    "comes back past its block claims from t+1 (noticing at the end of a pass), each rank pays its ask, "
    "update slice and ObsStat.add when it enters an iteration, and lanes keep their share; efficiency = "
    "episode seconds of all the iterations / (ranks x the wall time of them all), the first iteration's "
    "start and the last one's tail included (built_model_events.pipelined). Its figures move by up to about "
    "0.05 from one run of this script to the next: the costs timed here (ask, ObsStat.add) shift the moments "
    "ranks enter iterations, and with them which units they claim.")


# ----------------------------------------------------------------- measured inputs
def tell_points(rows):
    """[(columns, seconds per pair)] of one rank's OpenAI-ES tell, from node_update.json's openai_es rows
    (one per K ranks per node), narrowest first."""
    return sorted((r["columns"], r["tell_s"] / (r["population"] // 2)) for r in rows if r["strategy"] == "openai_es")


def tell_per_pair(points, columns):
    """Seconds per pair of a tell over `columns` columns: linear between the measured slice widths; below
    the narrowest, the narrowest's (the per-row cost stays); above the widest, in proportion to it."""
    if columns <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if columns <= x1:
            return y0 + (y1 - y0) * (columns - x0) / (x1 - x0)
    x, y = points[-1]
    return y * columns / x


def measure_obstat(width, rows=2000, repeats=5):
    """Seconds per float of ObsStat.add (es_mpi/run/obstat.py) on `rows` rows of `width` floats."""
    import numpy as np

    from es_mpi.run.obstat import ObsStat

    rows_kf = np.random.default_rng(width).random((rows, width))
    stat = ObsStat((width - 1) // 2)
    return scaling_model.seconds_of(lambda: stat.add(rows_kf), repeats) / (rows * width)


def measure_ask(pairs_values, repeats=5):
    """{pairs: seconds} of OpenAI-ES's ask (the noise offsets of the iteration, strategies/base.draw_offsets)."""
    from es_mpi.parts.strategies.base import draw_offsets

    return {p: scaling_model.seconds_of(lambda: draw_offsets(0, 1, p, 50_000_000, 159_505), repeats)
            for p in sorted(set(pairs_values))}


def machine(inputs, network_latency_us, network_gbs, node_memory_gbs, between_nodes_on_node=False):
    """scaling_projection's Machine: the measured on-node collectives; between nodes the stated network,
    or the node's own link (virtual nodes of one machine, as in the emulated cluster)."""
    collectives = inputs["collectives"]
    node = scaling_model.node_link(collectives)
    network = node if between_nodes_on_node else scaling_projection.Link(network_latency_us * 1e-6, network_gbs * 1e9)
    return scaling_projection.Machine(node, network, node_memory_gbs * 1e9, collectives["claim_s"]["min"],
                                      collectives["barrier_s"]["min"])


@dataclasses.dataclass
class Inputs:
    machine: object  # between real nodes
    emulated_machine: object  # virtual nodes on one machine
    tell_points: list
    obstat_s_per_float: float
    obstat_width: int
    ask_s: dict


def update_seconds(inputs, machine_, n_params, pairs, per_node):
    """One rank's tell at its node's column slice (node_update.json's cost per pair at that width), or
    the node's memory bandwidth when the node's ranks together read the table rows slower than that."""
    compute_s = pairs * tell_per_pair(inputs.tell_points, math.ceil(n_params / per_node))
    return max(compute_s, pairs * n_params * 4 / machine_.node_memory_bytes_per_s)


def leaders_allgather_seconds(total_bytes, n_ranks, per_node, machine_):
    """One more Allgatherv of the node leaders inside the exchange's node barriers (the evaluation
    episodes' rows, run/node_results.py): nothing crosses with a single node."""
    n_nodes = n_ranks // per_node
    if n_nodes <= 1:
        return 0.0
    return math.ceil(math.log2(n_nodes)) * machine_.network.latency_s \
        + total_bytes * (n_nodes - 1) / n_nodes / machine_.network.bytes_per_s


def fixed_costs(inputs, machine_, n_params, row_floats, probability, kept_pairs, population, n_ranks, per_node,
                eval_episodes=0):
    """FixedCosts of one iteration: ask, exchange with agreement, update, ObsStat.add (expected rows), and
    the evaluation episodes' rows (RESULT_COLUMNS float64 each) exchanged by the leaders when evaluating."""
    from es_mpi.run.node_results import RESULT_COLUMNS

    task = scaling_projection.Task("", (), n_params, row_floats, probability, {}, 0.0)
    exchange_s = scaling_projection.exchange_seconds(task, population, n_ranks, per_node, machine_, hierarchical=True)
    obstat_s = population * probability * row_floats * inputs.obstat_s_per_float
    ask_s = _ask_seconds(inputs, population // 2)
    eval_exchange_s = leaders_allgather_seconds(8 * RESULT_COLUMNS * eval_episodes, n_ranks, per_node, machine_)
    return events.FixedCosts(ask_s, exchange_s, update_seconds(inputs, machine_, n_params, kept_pairs, per_node),
                             obstat_s, eval_exchange_s)


def _ask_seconds(inputs, pairs):
    """The measured ask at the nearest measured pair count at or above, scaled down linearly."""
    above = [p for p in inputs.ask_s if p >= pairs] or [max(inputs.ask_s)]
    p = min(above)
    return inputs.ask_s[p] * pairs / p


# ----------------------------------------------------------------- episodes
def units_of(episodes, group=2):
    """Units in global order from (length, seconds) per member."""
    members = [events.Episode(int(n), float(s)) for n, s in episodes]
    return [tuple(members[i:i + group]) for i in range(0, len(members), group)]


class Draws:
    """The recorded episode that member m of iteration t replays (TraceEnv.reset's draw from the env
    seed), cached per number of recorded episodes; checked against emulated_cluster.asked_episodes."""

    def __init__(self, seed):
        self.seed, self.cache = seed, {}

    def indices(self, n_recorded, iteration, population, purpose=None):
        from gymnasium.utils import seeding

        from es_mpi.core.seeding import Purpose, episode_seed

        purpose = Purpose.EPISODE if purpose is None else purpose
        key = (n_recorded, iteration, purpose)
        got = self.cache.setdefault(key, [])
        for m in range(len(got), population):
            got.append(int(seeding.np_random(episode_seed(self.seed, iteration, m, purpose))[0].integers(n_recorded)))
        return got[:population]


# ----------------------------------------------------------------- part 1: the emulated points
def emulated_points(inputs, args):
    """Each point of emulated_cluster.json replayed by the model: -> rows."""
    measured = json.loads(args.emulated.read_text())
    rows = []
    for point in measured["results"]:
        iterations = point["iterations"] + 1  # the first is not measured
        trace_path = TRACES / point["trace"]
        episodes_per_rank = point["population"] // point["ranks"]
        job = emulated_cluster.trace_job(trace_path, point["ranks"], episodes_per_rank, iterations,
                                         point["time_scale"], 0, point["lanes"], point["placement"])
        population = emulated_cluster.population(job)
        n_params, lanes, row_floats, probability = job_shape(job)
        sizes = [point["node_size"]] * point["nodes"]
        kept = job.strategy.top_pairs or job.strategy.pairs
        costs = fixed_costs(inputs, inputs.emulated_machine, n_params, row_floats, probability, kept, population,
                            point["ranks"], point["node_size"])
        per_iteration = [units_of(emulated_cluster.asked_episodes(job, t, range(population)))
                         for t in range(2, iterations + 1)]

        def run(fill, costs_=costs):
            its = [events.iteration(u, sizes, lanes, costs_, fill_order=fill, claim_s=inputs.machine.claim_s)
                   for u in per_iteration]
            return its, events.efficiency(its, point["ranks"])

        its, model = run(None)
        mode = point.get("mode", "synchronous")
        _, robin = run(events.round_robin)
        draw = random.Random(point["ranks"])
        shuffled = sorted(run(lambda n, k: events.shuffled(n, k, draw))[1] for _ in range(SHUFFLES))
        pipelined = math.nan
        if args.pipeline_iterations:
            longer = emulated_cluster.trace_job(trace_path, point["ranks"], episodes_per_rank,
                                                1 + args.pipeline_iterations, point["time_scale"], 0, point["lanes"],
                                                point["placement"])
            pipelined = events.pipelined(
                [units_of(emulated_cluster.asked_episodes(longer, t, range(population)))
                 for t in range(2, 2 + args.pipeline_iterations)], sizes, lanes, costs,
                inputs.machine.claim_s).efficiency(point["ranks"])
        emulated = point["efficiency"]
        if mode == "pipelined":  # the model of the mode over the whole run, as the run's whole-run figure
            every = [units_of(emulated_cluster.asked_episodes(job, t, range(population))) for t in range(1, iterations + 1)]
            model = events.pipelined(every, sizes, lanes, costs, inputs.machine.claim_s).efficiency(point["ranks"])
            emulated = point["efficiency_whole_run"]
        measured_fixed = events.FixedCosts(update_s=point["update_s_median"])  # the run's own non-episode time
        _, with_measured_fixed = run(None, measured_fixed)
        rows.append(dict(
            mode=mode, trace=point["trace"], ranks=point["ranks"], nodes=point["nodes"], node_size=point["node_size"],
            population=population, lanes=lanes,
            slots=most_held(population // 2, sizes, lanes),
            emulated=emulated, model=model,
            gap=model - emulated, model_round_robin=robin, model_pipelined=pipelined,
            model_shuffled_p10=shuffled[len(shuffled) // 10], model_shuffled_p90=shuffled[(9 * len(shuffled)) // 10],
            model_with_measured_fixed=with_measured_fixed,
            imbalance_emulated=point["imbalance_median"],
            imbalance_model=common.median(i.imbalance for i in its),
            fixed_s_model=common.median(i.fixed_s for i in its), fixed_s_emulated=point["update_s_median"],
            iteration_s_emulated=point["iteration_s_median"],
            iteration_s_model=common.median(i.iteration_s for i in its)))
    return rows, measured["command"]


def job_shape(job):
    """(parameters, lanes, observation row floats, observation probability) of a built job's task."""
    from es_mpi.parts.build import build_task

    task = build_task(job)
    try:
        n_params = task.policy.n_params
        lanes = task.policy.useful_lanes(job.run.lanes)
        obs = math.prod(task.env.observation_space.shape)
    finally:
        task.close()
    enabled = job.obs_norm.enabled
    return n_params, lanes, (2 * obs + 1) if enabled else 0, job.obs_norm.probability if enabled else 0.0


# ----------------------------------------------------------------- part 2: projections
@dataclasses.dataclass
class Projected:
    """A task of the projection: its episode pools by phase, and what its update and lanes cost."""
    name: str
    n_params: int
    lanes: int
    row_floats: int
    probability: float
    pools: dict  # phase -> [(length, seconds)]
    sources: dict  # phase -> where the pool comes from


def default_lanes(n_params, conv):
    """policy.useful_lanes(16) (run.lanes' default) of an MLP or the Atari conv policy (parts/policies)."""
    from es_mpi.parts.policies.conv import CONV_LANE_WEIGHT_BYTES
    from es_mpi.parts.policies.mlp import LANE_WEIGHT_BYTES

    limit = CONV_LANE_WEIGHT_BYTES if conv else LANE_WEIGHT_BYTES
    return max(1, min(16, limit // (4 * n_params)))


def projected_tasks(inputs_json):
    from es_mpi.parts.trace_env import load_trace

    measured = {t["name"]: t for t in inputs_json["tasks"]}
    tasks = []
    for name, measured_name, trace, scaled_from in TASKS:
        m = measured.get(measured_name)
        pools, sources = {}, {}
        if trace:
            for phase in ("initial", "mid"):
                recorded = load_trace(TRACES / f"{trace}-{phase}.npz")
                pool = list(zip(recorded["lengths_e"].tolist(), recorded["cpu_s_e"].tolist()))
                source = f"traces/{trace}-{phase}.npz"
                if scaled_from:
                    ratio, bind = _relative_cost(m, measured[scaled_from])
                    pool = [(n, s * ratio + bind) for n, s in pool]
                    source += f" x {ratio:.2f} per step, + {bind * 1e3:.2f} ms binding ({measured_name} / linear, " \
                              "inputs)"
                pools[phase], sources[phase] = pool, source
            if m is None:
                job = emulated_cluster.trace_job(TRACES / f"{trace}-mid.npz", 8, 10, 2, 1.0, 0)
                n_params, lanes, row_floats, probability = job_shape(job)
            else:
                n_params, row_floats, probability = m["n_params"], m["row_floats"], m["obs_probability"]
                lanes = default_lanes(n_params, conv=False)
        else:
            pool = [(n, n * s + b) for n, s, b in m["episodes"]]
            same = "every episode 1,000 steps (never ends early)" if "HalfCheetah" in name \
                else "no mid-training episodes measured"
            pools = {"initial": pool, "mid": pool}
            sources = {"initial": f"scaling_model_inputs.json ({len(pool)} episodes, initial centre)",
                       "mid": f"= initial: {same}"}
            n_params, row_floats, probability = m["n_params"], m["row_floats"], m["obs_probability"]
            lanes = default_lanes(n_params, conv="Pong" in name)
        tasks.append(Projected(name, n_params, lanes, row_floats, probability, pools, sources))
    return tasks


def _relative_cost(task, linear):
    """(cost per step, extra binding seconds) of a measured task against its linear policy's: medians of
    scaling_model_inputs.json's episodes."""
    ratio = common.median(s for _, s, _ in task["episodes"]) / common.median(s for _, s, _ in linear["episodes"])
    return ratio, common.median(b for _, _, b in task["episodes"]) - common.median(b for _, _, b in linear["episodes"])


def project(task, phase, n_ranks, per_node, inputs, draws, args, eval_episodes=0):
    """Projection of `task` at n_ranks from the `phase` pool, evaluating the centre every iteration
    when eval_episodes (its episodes drawn by the seeds of the state before the iteration, t - 1): -> dict."""
    from es_mpi.core.seeding import Purpose

    pool = task.pools[phase]
    population = args.episodes_per_rank * n_ranks
    sizes = [per_node] * (n_ranks // per_node) + ([n_ranks % per_node] if n_ranks % per_node else [])
    costs = fixed_costs(inputs, inputs.machine, task.n_params, task.row_floats, task.probability, population // 2,
                        population, n_ranks, per_node, eval_episodes)
    its = []
    for t in range(2, 2 + args.iterations):
        units = units_of(pool[i] for i in draws.indices(len(pool), t, population))
        evaluation = [events.Episode(*pool[i]) for i in draws.indices(len(pool), t - 1, eval_episodes,
                                                                      Purpose.EVAL_EPISODE)]
        its.append(events.iteration(units, sizes, task.lanes, costs, evaluation, claim_s=inputs.machine.claim_s))
    iteration_s = sum(i.iteration_s for i in its)
    pipelined = math.nan
    if args.pipeline_iterations and not eval_episodes:
        run = events.pipelined([units_of(pool[i] for i in draws.indices(len(pool), t, population))
                                for t in range(2, 2 + args.pipeline_iterations)], sizes, task.lanes, costs,
                               inputs.machine.claim_s)
        pipelined = run.efficiency(n_ranks)
    return dict(task=task.name, phase=phase, ranks=n_ranks, per_node=per_node, population=population,
                model_pipelined=pipelined,
                lanes=task.lanes, efficiency=events.efficiency(its, n_ranks),
                imbalance=common.median(i.imbalance for i in its),
                iteration_s=iteration_s / len(its), play_s=sum(i.play_s for i in its) / len(its),
                update_s=costs.update_s, fixed_s=costs.total_s,
                update_share=sum(i.update_s for i in its) / iteration_s,
                fixed_share=sum(i.fixed_s for i in its) / iteration_s,
                tail_share=sum(i.play_s - i.busy_mean_s for i in its) / iteration_s,
                members_min=min(i.members_min for i in its), members_max=max(i.members_max for i in its),
                slots=most_held(population // 2, sizes, task.lanes))


def most_held(pairs, sizes, lanes):
    """The most members a rank of any node holds at once: min(lanes, Placement.share), the node's
    pairs over its ranks (evaluation episodes do not raise it)."""
    return min(lanes, max(events.share_members(b - a, size, 2) for (a, b), size in
                          zip(events.node_blocks(pairs, sizes), sizes)))


def check_draws(draws):
    """The cached draws equal the trace env's own (emulated_cluster.asked_episodes) on the first members."""
    from es_mpi.parts.trace_env import load_trace

    for stem in ("hopper-mid", "humanoid-initial"):
        path = TRACES / f"{stem}.npz"
        job = emulated_cluster.trace_job(path, 8, 10, 3, 1.0, 0)
        asked = emulated_cluster.asked_episodes(job, 2, range(40))
        recorded = load_trace(path)
        mine = [(int(recorded["lengths_e"][i]), float(recorded["cpu_s_e"][i])) for i in draws.indices(200, 2, 40)]
        if job.run.seed != draws.seed or [n for n, _ in asked] != [n for n, _ in mine] or \
                any(not math.isclose(s, t) for (_, s), (_, t) in zip(asked, mine)):
            raise RuntimeError(f"{stem}: the model's draws differ from the trace env's")


# ----------------------------------------------------------------- the report
def agreement_lines(rows, command, args):
    table = [{"mode": r["mode"], "ranks": r["ranks"], "nodes": f"{r['nodes']} x {r['node_size']}", "population": r["population"],
              "members held at once": r["slots"], "emulated": f"{r['emulated']:.3f}", "model": f"{r['model']:.3f}",
              "gap (model - emulated)": f"{r['gap']:+.3f}",
              "model, other first fills (round robin; shuffled p10-p90)":
                  f"{r['model_round_robin']:.3f}; {r['model_shuffled_p10']:.3f}-{r['model_shuffled_p90']:.3f}",
              "model with the run's update_s": f"{r['model_with_measured_fixed']:.3f}",
              **({} if math.isnan(r["model_pipelined"]) else
                 {f"the model's pipelined mode ({args.pipeline_iterations} iterations, start and end included)":
                      f"{r['model_pipelined']:.3f}"}),
              "imbalance emulated / model (medians)": f"{r['imbalance_emulated']:.2f} / {r['imbalance_model']:.2f}",
              "iteration s emulated / model": f"{r['iteration_s_emulated']:.2f} / {r['iteration_s_model']:.2f}",
              "non-episode s emulated / model": f"{r['fixed_s_emulated']:.3f} / {r['fixed_s_model']:.4f}"}
             for r in rows]
    worst = max(abs(r["gap"]) for r in rows)
    return [
        f"Each point of [{args.emulated.stem}.md]({args.emulated.stem}.md) (`{command}`) replayed by the model: the "
        "same trace, mode (the synchronous model, or the pipelined one for a pipelined point), time scale, episodes per rank, virtual nodes, lanes and placement, and the same iterations "
        "(the 2nd to the last; the first is not measured), so every member replays the episode it replayed "
        "in the run (emulated_cluster.asked_episodes). Efficiency as the benchmark computes it: episode "
        "seconds / (ranks x iteration seconds); for a pipelined point, over the whole run (every iteration, "
        "from the first one's start: the benchmark's window after the first tell overstates it), which is what "
        "the pipelined model computes.", "",
        "The model fills each rank's first slots in one burst, rank by rank (rollout.play fills all its "
        "slots before its first step; ranks start their iterations at different moments). How the ranks' "
        "first claims really interleaved is not recorded; the next column shows the model with the ranks "
        f"filling in turn, and over {SHUFFLES} random interleavings. The non-episode time is the model's "
        "per-call costs (ask, exchange and agreement, update, ObsStat.add); the emulated run's update_s "
        "(ask, update, agreement on 2 shared cores whose waiting ranks poll by 2 ms nanosleeps) is larger, "
        "and the column 'with the run's update_s' shows that it moves the efficiency by at most a few "
        "thousandths.", "",
        common.markdown_table(list(table[0]), table), "",
        f"Largest gap: {worst:.3f} -> {'within' if worst <= 0.03 else 'outside'} the 0.03 that issue 21 asks.",
        *(["", PIPELINE_NOTE] if any(not math.isnan(r["model_pipelined"]) for r in rows) else []),
    ]


def _found(rows, task, phase, ranks):
    return next(r for r in rows if r["task"] == task and r["phase"] == phase and r["ranks"] == ranks)


def _both(rows, task, ranks, key, fmt):
    """'initial / mid-training' of one projected figure."""
    return " / ".join(format(_found(rows, task, phase, ranks)[key], fmt) for phase in ("initial", "mid"))


def _by_ranks(rows, tasks, ranks, key):
    table = [{"task": t.name, **{f"{n:,}": _both(rows, t.name, n, key, ".2f") for n in ranks}} for t in tasks]
    return common.markdown_table(list(table[0]), table)


def projection_lines(rows, tasks, args):
    lines = ["Sources of the episodes (each member draws one, by its env seed, as the trace env does):", ""]
    lines.append(common.markdown_table(["task", "parameters", "lanes", "initial centre", "mid-training"], [
        {"task": t.name, "parameters": f"{t.n_params:,}", "lanes": t.lanes, "initial centre": t.sources["initial"],
         "mid-training": t.sources["mid"]} for t in tasks]))
    lines += ["", f"Efficiency, {args.per_node} ranks per node, {args.episodes_per_rank} episodes per rank, "
              "synchronous (eff. initial / mid-training):", "", _by_ranks(rows, tasks, args.ranks, "efficiency")]
    if args.pipeline_iterations:
        lines += ["", f"The pipelined mode (run.pipeline), modelled; {args.pipeline_iterations} iterations, "
                  "same settings (eff. initial / mid-training):", "",
                  _by_ranks(rows, tasks, args.ranks, "model_pipelined"), "", PIPELINE_NOTE]
    big = 1024 if 1024 in args.ranks else max(args.ranks)
    lines += ["", f"At {big:,} ranks: where the time goes (shares of the iteration; tail = last rank's play "
              "minus the mean rank's busy time), initial / mid-training:", ""]
    detail = [{"task": t.name, "efficiency": _both(rows, t.name, big, "efficiency", ".2f"),
               "imbalance": _both(rows, t.name, big, "imbalance", ".2f"),
               "iteration s": _both(rows, t.name, big, "iteration_s", ".3g"),
               "tail": _both(rows, t.name, big, "tail_share", ".1%"),
               "update ms": " / ".join(f"{_found(rows, t.name, p, big)['update_s'] * 1e3:.3g}"
                                       for p in ("initial", "mid")),
               "update share": _both(rows, t.name, big, "update_share", ".1%"),
               "all non-episode": _both(rows, t.name, big, "fixed_share", ".1%")} for t in tasks]
    lines.append(common.markdown_table(list(detail[0]), detail))
    return lines


def evaluation_lines(rows, with_eval, args):
    big = with_eval[0]["ranks"]
    table = []
    for r in with_eval:
        without = _found(rows, r["task"], r["phase"], big)
        table.append({"task": r["task"], "phase": r["phase"], "without evaluation": f"{without['efficiency']:.2f}",
                      "with evaluation": f"{r['efficiency']:.2f}",
                      "evaluation's cost": f"{1 - without['iteration_s'] / r['iteration_s']:.1%}",
                      "members held at once, without / with": f"{without['slots']} / {r['slots']}",
                      "episodes per rank, min-max, without / with":
                          f"{without['members_min']}-{without['members_max']} / {r['members_min']}-{r['members_max']}"})
    return [f"With evaluation as built: {args.eval_episodes} episodes of the centre every iteration (the Humanoid "
            "job's eval.every = 1; Hopper's is 2), placement units cut into node blocks, first in each node's "
            "claim order, played in the members' lanes, a rank holding at most min(lanes, "
            "Placement.share) members (the pairs' share: evaluation episodes do not raise it); their rows take one more Allgatherv of the leaders. "
            "The evaluation's episodes count as work. The evaluation's cost is the iteration time it adds, as a "
            f"share of the iteration with it (the same iterations and members without it). At {big:,} ranks, "
            f"{args.per_node} per node:", "", common.markdown_table(list(table[0]), table)]


def target_lines(rows, args):
    big = 1024
    at = [r for r in rows if r["ranks"] == big]
    if not at:
        return []
    met = [r for r in at if r["efficiency"] >= TARGET_EFFICIENCY]
    humanoid = {r["phase"]: r for r in at if r["task"] == "Humanoid-v5 256x256"}
    lines = [f"- Efficiency >= {TARGET_EFFICIENCY} at 1,024 ranks, 128 per node, every task, synchronous mode: "
             f"{len(met)} of {len(at)} (task, phase) cases meet it; "
             + ", ".join(f"{r['task']} {r['phase']} {r['efficiency']:.2f}" for r in at if r not in met)
             + " miss it. What limits them is the tail (the tail column above)."]
    piped = [r for r in at if not math.isnan(r["model_pipelined"])]
    if piped:
        reach = [r for r in piped if r["model_pipelined"] >= TARGET_EFFICIENCY]
        lines.append(f"- The same target for the pipelined mode (issue 21's): the model reaches "
                     f"{TARGET_EFFICIENCY} in {len(reach)} of {len(piped)} cases (lowest: "
                     + ", ".join(f"{r['task']} {r['phase']} {r['model_pipelined']:.2f}"
                                 for r in sorted(piped, key=lambda r: r["model_pipelined"])[:3]) + ").")
    if humanoid:
        first = humanoid["initial"]
        verdicts = "; ".join(
            f"{'met' if humanoid[p]['update_share'] <= TARGET_UPDATE_SHARE else 'missed'} {label} "
            f"({humanoid[p]['update_share']:.1%})" for p, label in (("initial", "at the initial centre"),
                                                                     ("mid", "mid-training")))
        lines.append(f"- Update share <= 3% at 1,024 ranks, Humanoid-v5 256x256: {verdicts}; the update is "
                     f"{first['update_s'] * 1e3:.3g} ms for {first['population'] // 2:,} pairs.")
    return lines


def inputs_lines(inputs, args):
    measured = "; ".join(f"{x:,} columns: {y * 1e6:.2f} us" for x, y in inputs.tell_points)
    ask = ", ".join(f"{p:,} pairs: {s * 1e3:.3g} ms" for p, s in sorted(inputs.ask_s.items()))
    node = inputs.machine.node
    return [
        "Inputs (each a measurement; where from):", "",
        f"- update: one rank's tell = pairs x its cost per pair at the columns of the rank's slice, from "
        f"[node_update.json](node_update.md)'s OpenAI-ES rows (1,000 pairs, 159,505 parameters, K = 1-128 ranks per "
        f"node; per pair: {measured}), linear between those widths and the narrowest's below it (the per-row "
        f"cost stays); at least the node's memory bandwidth allows (stated: {args.node_memory_gbs:g} GB/s, as "
        "scaling_model.py). All pairs enter the update (OpenAI-ES's default) in the projections; the emulated "
        "points use their job's top_pairs.",
        f"- ObsStat.add (vectorized, es_mpi/run/obstat.py): {inputs.obstat_s_per_float * 1e9:.2f} ns per float of a "
        f"row, measured here on 2,000 rows of {inputs.obstat_width} floats (CPU time, median of 5); rows = population "
        "x obs_norm.probability.",
        f"- ask (OpenAI-ES's noise offsets, strategies/base.draw_offsets), measured here: {ask}.",
        f"- exchange and agreement: scaling_projection's hierarchical gathers (results, observation rows, "
        f"checksums, flags) with the on-node link fitted to scaling_model_inputs.json's 2-rank collectives "
        f"({node.latency_s * 1e6:.1f} us, {node.bytes_per_s / 1e9:.2f} GB/s; barrier "
        f"{inputs.machine.barrier_s * 1e6:.2f} us; claim {inputs.machine.claim_s * 1e6:.2f} us) and, between nodes, "
        f"the stated network ({args.network_latency_us:g} us + bytes / {args.network_gbs:g} GB/s); the emulated "
        "points' virtual nodes share one machine, so their leaders use the on-node link.",
        "- episodes: see each part.",
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", nargs="+", type=int, default=list(RANKS), help="projected rank counts")
    parser.add_argument("--per-node", type=int, default=128, help="ranks per node in the projections (default 128)")
    parser.add_argument("--episodes-per-rank", type=int, default=10, help="population / ranks (default 10)")
    parser.add_argument("--iterations", type=int, default=3, help="iterations per projection (default 3)")
    parser.add_argument("--eval-episodes", type=int, default=10,
                        help="evaluation episodes of the projection with evaluation (default 10, the jobs' "
                             "eval.episodes)")
    parser.add_argument("--pipeline-iterations", type=int, default=6,
                        help="iterations of the pipelined mode's projections (0: leave it out; default 6)")
    parser.add_argument("--emulated", type=pathlib.Path, default=EMULATED,
                        help="the emulated cluster's results to check the model against (default %(default)s)")
    parser.add_argument("--network-latency-us", type=float, default=2.0, help="network alpha (default 2 us)")
    parser.add_argument("--network-gbs", type=float, default=12.5, help="network GB/s (default 12.5)")
    parser.add_argument("--node-memory-gbs", type=float, default=200.0, help="a node's memory GB/s (default 200)")
    parser.add_argument("--name", type=common.report_name, default="built_model",
                        help="report name under benchmarks/results/")
    args = parser.parse_args(argv)

    scaling_inputs = json.loads(SCALING_INPUTS.read_text())
    points = tell_points(json.loads(NODE_UPDATE.read_text())["rows"])
    tasks = projected_tasks(scaling_inputs)
    width = max(t.row_floats for t in tasks)
    pairs = [args.episodes_per_rank * n // 2 for n in args.ranks] + [320]
    inputs = Inputs(machine(scaling_inputs, args.network_latency_us, args.network_gbs, args.node_memory_gbs),
                    machine(scaling_inputs, args.network_latency_us, args.network_gbs, args.node_memory_gbs, True),
                    points, measure_obstat(width), width, measure_ask(pairs))

    agreement, command = emulated_points(inputs, args)
    for r in agreement:
        print(f"{r['ranks']} ranks: emulated {r['emulated']:.3f}, model {r['model']:.3f}, gap {r['gap']:+.3f}",
              flush=True)
    draws = Draws(0)
    check_draws(draws)
    rows = []
    for task in tasks:
        for phase in ("initial", "mid"):
            for n in args.ranks:
                rows.append(project(task, phase, n, args.per_node, inputs, draws, args))
        print(task.name, " ".join(f"{r['efficiency']:.2f}" for r in rows[-2 * len(args.ranks):]), flush=True)
    big = 1024 if 1024 in args.ranks else max(args.ranks)
    with_eval = [project(task, phase, big, args.per_node, inputs, draws, args, args.eval_episodes)
                 for task in tasks for phase in ("initial", "mid")]

    body = [
        "A model of what the built code does in one synchronous iteration (benchmarks/built_model_events.py): "
        "each node's ranks claim the mirrored pairs of the node's block from its counter, each holding at most "
        "min(lanes, Placement.share) members, whose steps take turns on the rank's core; then the exchange, "
        "update, ObsStat.add and agreement at their per-call costs; evaluation, when on, as placement units "
        "claimed first in each node's order and played in the same lanes; and the pipelined mode (run.pipeline), "
        "whose model is described in the note under the first table.", "",
        *inputs_lines(inputs, args), "",
        "## The model against the emulated cluster", "", *agreement_lines(agreement, command, args), "",
        "## Projected (synchronous)", "",
        *projection_lines(rows, tasks, args), "",
        *evaluation_lines(rows, with_eval, args), "",
        "Targets of issue 21:", "", *target_lines(rows, args),
    ]
    common.write_report(args.name, "Scaling model of the built code: checked against the emulated cluster, projected",
                        body)
    path = common.RESULTS / f"{args.name}.json"
    path.write_text(json.dumps({"command": common.command_line(), "agreement": agreement, "projections": rows,
                                "projections_with_evaluation": with_eval,
                                "inputs": {"tell_s_per_pair_by_columns": points,
                                           "obstat_s_per_float": inputs.obstat_s_per_float,
                                           "ask_s": {str(k): v for k, v in inputs.ask_s.items()}}}, indent=1) + "\n")
    print(f"written to {path.relative_to(common.REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
