"""The node-cooperative update: one rank's `tell` when its node has K ranks (issue 11, item 5).

Each rank of a node computes only its column slice of the update (core/node_share.py), so one
rank's tell at K ranks per node is the tell of a strategy built with NodeShare(rank, K): the real
code path (ranking, shaping, the slice's noise sum and optimizer step, the digest of its columns,
the whole-vector norms every rank computes), timed in one process with the node barrier left out
(on a node it costs microseconds). K = 1 is today's whole update on every rank. Times are this
process's CPU time (time.process_time), median over repeats: the machine is shared.

At K ranks on one node the slices read the table at once: the node's memory bandwidth, not one
core's, then bounds the update (the total read is pairs x parameters x 4 bytes per update
whatever K). The report gives that floor beside the measured slice, at --node-memory-gbs.

The share of the iteration uses the Humanoid-v5 256x256 episodes that scaling_model.py measured
(benchmarks/results/scaling_model_inputs.json): members per rank x seconds per episode + tell.

Writes benchmarks/results/node_update.md and node_update.json.
"""

import argparse
import json
import time

import common

RANKS_PER_NODE = (1, 2, 4, 8, 16, 128)
HUMANOID_256 = "Humanoid-v5 256x256"
TABLE_FLOATS = 50_000_000  # 200 MB, the training default


def cpu_seconds(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.process_time()
        function()
        times.append(time.process_time() - start)
    return times


def strategy_for(name, n_params, pairs, table, share):
    import numpy as np

    from es_mpi.parts.strategies.cem import CEM, CEMSettings
    from es_mpi.parts.strategies.cma_es import CMAES, CMAESSettings
    from es_mpi.parts.strategies.nes import NES, NESSettings
    from es_mpi.parts.strategies.openai_es import OpenAIES, OpenAIESSettings

    initial_p = np.zeros(n_params, dtype=np.float32)
    if name == "openai_es":
        return OpenAIES(OpenAIESSettings(pairs=pairs), initial_p, table, 0, share=share)
    if name == "nes":
        return NES(NESSettings(), initial_p, table, 0, share=share)
    if name == "cem":
        return CEM(CEMSettings(), initial_p, table, 0, share=share)
    return CMAES(CMAESSettings(variant="separable"), initial_p, table, 0, share=share)


def measure(name, n_params, pairs, table, per_node, repeats):
    """CPU seconds per repeat of one tell by the middle rank of a node of `per_node` ranks."""
    import numpy as np

    from es_mpi.core.node_share import NodeShare

    share = NodeShare(rank=per_node // 2, size=per_node, allocate=lambda shape, dtype: np.zeros(shape, dtype))
    strategy = strategy_for(name, n_params, pairs, table, share)
    draw = np.random.default_rng(per_node)
    strategy.ask(1)
    fitness_n = draw.standard_normal(strategy.population)

    def tell():
        with share.update_phase():  # as the node runtime runs it (run/node_runtime.py)
            strategy.tell(fitness_n)

    times = cpu_seconds(tell, repeats)
    start, stop = share.columns(n_params)
    return {"strategy": name, "population": strategy.population, "n_params": n_params, "per_node": per_node,
            "columns": stop - start, "tell_s": common.median(times), "tell_min_s": min(times),
            "tell_max_s": max(times)}


def humanoid_episode_s():
    """Median seconds of one Humanoid-v5 256x256 episode: at the initial policy (steps x s/step +
    binding), and at 1,000 steps (a walking policy's length) at the median s/step."""
    inputs = json.loads((common.RESULTS / "scaling_model_inputs.json").read_text())
    task = next(t for t in inputs["tasks"] if t["name"] == HUMANOID_256)
    initial = common.median([steps * step_s + bind_s for steps, step_s, bind_s in task["episodes"]])
    return initial, 1000 * common.median([step_s for _, step_s, _ in task["episodes"]])


def report(args, rows, episodes):
    base = {(r["strategy"]): r["tell_s"] for r in rows if r["per_node"] == 1}
    lines = [f"# Node-cooperative update: one rank's tell at K ranks per node", "",
             f"Command: `{common.command_line()}`", "", *common.machine_lines(), "",
             "One rank's `tell` when its node's K ranks split the parameter columns (core/node_share.py), "
             "timed as the real code path in one process with `NodeShare(rank=K // 2, size=K)` and no "
             f"barrier; CPU seconds, median (min-max) of {args.repeats} repeats; a {TABLE_FLOATS:,}-float table. "
             "K = 1 is the whole update, what every rank ran before. Node floor = pairs x parameters x 4 bytes "
             f"/ {args.node_memory_gbs:g} GB/s (--node-memory-gbs): the K slices read the table at once.", "",
             "| strategy | population | parameters | ranks per node K | columns per rank | tell ms | min-max ms | "
             "speed-up vs K=1 | node bandwidth floor ms |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        floor_ms = r["population"] * r["n_params"] * 4 / (args.node_memory_gbs * 1e9) * 1e3
        if r["strategy"] == "openai_es":
            floor_ms /= 2  # one table row per mirrored pair
        lines.append(f"| {r['strategy']} | {r['population']:,} | {r['n_params']:,} | {r['per_node']} | "
                     f"{r['columns']:,} | {r['tell_s'] * 1e3:.3g} | {r['tell_min_s'] * 1e3:.3g}-"
                     f"{r['tell_max_s'] * 1e3:.3g} | {base[r['strategy']] / r['tell_s']:.1f} | {floor_ms:.3g} |")
    initial_s, walking_s = episodes
    lines += ["", f"Share of the iteration, OpenAI-ES {args.pairs:,} pairs on Humanoid-v5 256x256 at 128 ranks per "
              f"node: episode {initial_s * 1e3:.1f} ms at the initial policy (median of scaling_model.py's "
              f"episodes: the worst case) or {walking_s:.2f} s at 1,000 steps (a walking policy); update = "
              "max(measured slice, node floor); members per rank = population / ranks. Target: update <= 3%.", "",
              "| ranks | members per rank | update ms K=1 (every rank whole) | update ms K=128 | "
              "share K=1, initial | share K=128, initial | share K=1, 1,000 steps | share K=128, 1,000 steps |",
              "|---|---|---|---|---|---|---|---|"]
    openai = {r["per_node"]: r for r in rows if r["strategy"] == "openai_es"}
    floor_s = args.pairs * openai[1]["n_params"] * 4 / (args.node_memory_gbs * 1e9)
    for ranks in (128, 512, 1024, 2048):
        members = -(-2 * args.pairs // ranks)
        whole, node = openai[1]["tell_s"], max(openai[128]["tell_s"], floor_s)
        shares = [update / (update + members * episode_s) for episode_s in episodes for update in (whole, node)]
        lines.append(f"| {ranks:,} | {members} | {whole * 1e3:.3g} | {node * 1e3:.3g} | "
                     + " | ".join(f"{share:.1%}" for share in shares) + " |")
    lines += ["", "The gathers and the checksum are not in these shares (benchmarks/update.py times them)."]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1000, help="OpenAI-ES pairs (default 1000)")
    parser.add_argument("--params", type=int, default=159_505, help="parameters (default Humanoid 256x256)")
    parser.add_argument("--repeats", type=int, default=5, help="timed tells per point (default 5)")
    parser.add_argument("--node-memory-gbs", type=float, default=100.0,
                        help="a node's memory bandwidth for the floor (default 100 GB/s)")
    parser.add_argument("--strategies", default="openai_es,nes,cem,cma_es_separable")
    parser.add_argument("--name", type=common.report_name, default="node_update")
    args = parser.parse_args()

    from es_mpi.run.noise import local_table

    table = local_table(TABLE_FLOATS, 123)
    rows = []
    for name in args.strategies.split(","):
        for per_node in RANKS_PER_NODE:
            rows.append(measure(name, args.params, args.pairs, table, per_node, args.repeats))
            print(json.dumps(rows[-1]), flush=True)
    text = report(args, rows, humanoid_episode_s())
    (common.RESULTS / f"{args.name}.md").write_text(text)
    (common.RESULTS / f"{args.name}.json").write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()
