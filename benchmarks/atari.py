"""Atari throughput: raw env rates, training agent steps/s per rank, forward pass per observation, VBN share.

Run from the repository root:
    python benchmarks/atari.py [--game ALE/Pong-v5] [--ranks 2] [--pairs 4] [--iterations 3] [--steps 1000]
Writes a markdown table to benchmarks/results/atari.md (--name to change). In one run:
- the raw rate of gymnasium's preprocessing (AtariPreprocessing + FrameStackObservation, random
  actions, one process) and of ale-py's C++ vector env (1 lane, and the lanes training uses);
- training agent steps/s per rank of a real `mpiexec -n RANKS es-mpi train` (eval off), for both
  networks with and without VBN, beside the gymnasium raw rate measured right before it;
- whether one flat matmul over a batch (shared weights) keeps each observation's bits;
- the forward pass per observation at batch sizes 1, 2, 4 and 16 (one lane per member, see
  policies/conv.ConvLanes) against the im2col pass it replaced (benchmarks/conv_baseline.py), timed
  in turns within this run, and the VBN reference pass per member, as a share of the iteration;
- the pass split by stage at the lanes training uses: frames, each layer's matmuls (the BLAS
  work, the floor numpy can reach), and the rest (affines, ReLU, the output layer).
`--forward-only` measures the forward passes alone (no env rates, no training).
"""

import argparse
import csv
import multiprocessing
import pathlib
import tempfile
import time

import common  # noqa: F401  (puts this checkout first on sys.path)
import conv_baseline  # noqa: E402

import es_mpi  # noqa: E402,F401  (one BLAS thread, set before numpy loads BLAS)
import numpy as np  # noqa: E402

from es_mpi.parts.job_file import job_from_text  # noqa: E402
from es_mpi.parts.atari import AtariLanes, make_gymnasium_atari_env  # noqa: E402
from es_mpi.parts.build import build_task  # noqa: E402
from es_mpi.parts.policies.conv import NETWORKS, ConvLayer, build_layers, frame_windows  # noqa: E402
from es_mpi.run.vbn_reference import collect_reference  # noqa: E402

BATCHES = (1, 2, 4, 16)
VBN_BATCH = 128


def job_text(game, network, vbn, pairs, steps, iterations, lanes=16):
    return f"""
[run]
lanes = {lanes}
[env]
id = "{game}"
[atari]
max_episode_steps = {steps}
[policy]
kind = "cnn"
network = "{network}"
vbn = {str(vbn).lower()}
vbn_batch = {VBN_BATCH}
vbn_probability = 0.05
[strategy]
pairs = {pairs}
[noise]
size = 20_000_000
[obs_norm]
enabled = false
[eval]
every = 0
[checkpoint]
every = 1000
[stop]
iterations = {iterations}
"""


def bench_job(game, network="paper", vbn=False, pairs=1, steps=1000, iterations=1):
    return job_from_text(job_text(game, network, vbn, pairs, steps, iterations), pathlib.Path("bench.toml"))


def gymnasium_rate(game, steps):
    """Agent steps/s of gymnasium's preprocessing pipeline with random actions."""
    job = bench_job(game)
    env = make_gymnasium_atari_env(job.env, job.atari)
    draw = np.random.default_rng(0)
    env.reset(seed=0)
    start = time.perf_counter()
    for n in range(steps):
        _, _, terminated, truncated, _ = env.step(int(draw.integers(env.action_space.n)))
        if terminated or truncated:
            env.reset(seed=n)
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate


def concurrent_gymnasium_rate(game, steps, processes):
    """Per-process agent steps/s of gymnasium's pipeline with `processes` of them at once (as ranks run)."""
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        return float(np.mean(pool.starmap(gymnasium_rate, [(game, steps)] * processes)))


def flat_batch_changes_bits(max_batch=16):
    """{(network, layer): batch sizes at which one flat (B*Q, I) @ (I, U) matmul with shared weights
    gives other bits than each observation's own (Q, I) @ (I, U)}: why play stacks per observation."""
    draw, found = np.random.default_rng(0), {}
    for network in NETWORKS:
        hidden, output = build_layers(network, (4, 84, 84), 6)
        for index, layer in enumerate([*hidden, output]):
            conv = isinstance(layer, ConvLayer)  # one tap's matmul: (positions, window) @ (window, filters)
            rows, inputs = (layer.out_hwc[0] * layer.out_hwc[1], layer.window) if conv else (1, layer.fan_in)
            units = layer.out_hwc[-1]
            weights_iu = draw.standard_normal((inputs, units)).astype(np.float32)
            x_bqi = draw.standard_normal((max_batch, rows, inputs)).astype(np.float32)
            alone = np.stack([x_bqi[b] @ weights_iu for b in range(max_batch)])
            found[(network, index + 1)] = [b for b in range(2, max_batch + 1) if not np.array_equal(
                (x_bqi[:b].reshape(-1, inputs) @ weights_iu).reshape(b, rows, units), alone[:b])]
    return found


def vector_rate(game, n_lanes, steps):
    """Agent steps/s (all lanes together) of the C++ vector env with random actions."""
    job = bench_job(game)
    lanes = AtariLanes(job.env, job.atari, n_lanes)
    lanes.start(list(range(n_lanes)), list(range(n_lanes)))
    draw = np.random.default_rng(0)
    done, start = 0, time.perf_counter()
    while done < steps:
        lanes.step(draw.integers(lanes.single_action_space.n, size=n_lanes))
        done += n_lanes
    rate = done / (time.perf_counter() - start)
    lanes.close()
    return rate


def forward_costs(game, network, repeats, rounds):
    """({batch: (im2col us, current us, im2col / current)} per observation, ms per VBN member bind,
    parameters, lanes). The two passes alternate call by call on the same members and frames, each
    call timed alone, so that a shared machine's preemptions hit a few calls instead of every
    measurement; figures are medians over calls, the ratio is of the medians."""
    job = bench_job(game, network, vbn=True)
    task = build_task(job)
    env, policy = task.env, task.policy
    policy.set_reference(collect_reference(env, VBN_BATCH, 0.05, 0, 1000))
    draw = np.random.default_rng(0)
    params_p = task.initial_params()
    members = [params_p + np.float32(0.02) * draw.standard_normal(params_p.size, dtype=np.float32)
               for _ in range(max(BATCHES))]
    start = time.perf_counter()
    policy.bind(params_p)
    bind_ms = (time.perf_counter() - start) * 1e3
    obs = draw.integers(0, 256, (max(BATCHES), *env.observation_space.shape), dtype=np.uint8)
    costs, clock = {}, time.perf_counter
    for batch in BATCHES:
        lanes = policy.lanes(batch)
        for lane in range(batch):
            lanes.load(lane, members[lane])
        baseline, frames = conv_baseline.Im2colLanes(policy, members[:batch]), obs[:batch]
        baseline(frames), lanes(frames)  # warm the caches
        old_s, new_s = [], []
        for _ in range(rounds * max(1, repeats // batch)):
            start = clock()
            baseline(frames)
            middle = clock()
            lanes(frames)
            old_s.append(middle - start)
            new_s.append(clock() - middle)
        old_us, new_us = common.median(old_s) / batch * 1e6, common.median(new_s) / batch * 1e6
        costs[batch] = (old_us, new_us, old_us / new_us)
    training_lanes = policy.useful_lanes(job.run.lanes)
    lanes = policy.lanes(training_lanes)
    for lane in range(training_lanes):
        lanes.load(lane, members[lane])
    stages = stage_costs(policy, lanes, obs[:training_lanes], rounds * max(1, repeats // training_lanes))
    env.close()
    return costs, bind_ms, policy.n_params, training_lanes, stages


def stage_costs(policy, lanes, frames, calls):
    """{stage: median µs per observation} of `lanes.logits(frames)` taken apart: the frames' layout
    and cast, each layer's matmuls (`linear`), and the rest (affines, ReLU, output bias)."""
    b, clock = len(frames), time.perf_counter
    layers = [*policy.hidden, policy.output]
    seconds = {name: [] for name in ["frames", *[f"layer {i + 1} matmuls" for i in range(len(layers))], "rest"]}
    for _ in range(calls):
        start = clock()
        x = frame_windows(frames, policy.obs_chw, policy.hidden[0])
        seconds["frames"].append(clock() - start)
        rest = 0.0
        for index, layer in enumerate(layers):
            start = clock()
            z = layer.linear(x, lanes.weights[index][:b])
            middle = clock()
            if index < len(policy.hidden):
                x = policy.finish(index, z, lanes.scales[index][:b] if policy.vbn else None, lanes.shifts[index][:b])
            else:
                np.add(z, lanes.shifts[-1][:b])
            seconds[f"layer {index + 1} matmuls"].append(middle - start)
            rest += clock() - middle
        seconds["rest"].append(rest)
    return {name: common.median(values) / b * 1e6 for name, values in seconds.items()}


def forward_lines(forward):
    lines = ["## Forward pass per observation (us), one member per lane: im2col (before) / now (ratio)", "",
             "The two passes alternate call by call within this run; medians over calls, the ratio of the medians. "
             "Each pass's weights push the other's out of cache, so both figures are worse than a pass alone "
             "(the split below).",
             "", "| network | parameters | lanes in training | " + " | ".join(f"batch {b}" for b in BATCHES)
             + " | VBN bind ms/member |", "|---|---|---|" + "---|" * len(BATCHES) + "---|"]
    for network, (costs, bind_ms, n_params, lanes, _) in forward.items():
        cells = [f"{costs[b][0]:.0f} / {costs[b][1]:.0f} ({costs[b][2]:.2f}x)" for b in BATCHES]
        lines.append(f"| {network} | {n_params} | {lanes} | " + " | ".join(cells) + f" | {bind_ms:.1f} |")
    lines += ["", "## The pass taken apart, µs per observation at the lanes training uses (medians over calls)", "",
              "The matmuls are BLAS work on each member's own weights: the floor of a numpy pass.", ""]
    for network, (*_, lanes, stages) in forward.items():
        matmuls = sum(us for name, us in stages.items() if name.endswith("matmuls"))
        lines += [f"{network}, {lanes} lanes: " + ", ".join(f"{name} {us:.1f}" for name, us in stages.items())
                  + f"; total {sum(stages.values()):.1f}, of which matmuls {matmuls:.1f}", ""]
    return lines


def training_rate(game, network, vbn, ranks, pairs, steps, iterations, timeout, lanes):
    """(agent steps/s per rank, seconds per iteration) of a real mpiexec training run, first iteration dropped."""
    with tempfile.TemporaryDirectory(prefix="es-atari-bench-") as tmp:
        job = pathlib.Path(tmp) / "bench.toml"
        job.write_text(job_text(game, network, vbn, pairs, steps, iterations, lanes))
        common.run_mpi(ranks, ["-m", "es_mpi", "train", job, "--run-dir", pathlib.Path(tmp) / "run"], timeout)
        with open(pathlib.Path(tmp) / "run" / "metrics.csv") as fh:
            rows = list(csv.DictReader(fh))
    steps_i = np.diff([0] + [int(row["timesteps"]) for row in rows])[1:]
    seconds_i = np.array([float(row["iteration_s"]) for row in rows])[1:]
    return steps_i.sum() / ranks / seconds_i.sum(), float(np.median(seconds_i))


def write_report(lines, name):
    out = common.RESULTS / f"{name}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="ALE/Pong-v5")
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=4, help="mirrored pairs per iteration")
    parser.add_argument("--iterations", type=int, default=3, help="training iterations (the first is dropped)")
    parser.add_argument("--steps", type=int, default=1000, help="episode step cap (agent steps)")
    parser.add_argument("--raw-steps", type=int, default=3000, help="agent steps per raw env measurement")
    parser.add_argument("--repeats", type=int, default=200, help="observations timed per forward measurement")
    parser.add_argument("--rounds", type=int, default=9,
                        help="forward timing: rounds of --repeats observations per batch size, each call timed alone")
    parser.add_argument("--forward-only", action="store_true", help="time the forward passes only")
    parser.add_argument("--networks", nargs="+", default=["paper", "nature"])
    parser.add_argument("--trials", type=int, default=1, help="training runs per row, taking turns with the other rows")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--name", type=common.report_name, default="atari")
    args = parser.parse_args()

    lines = [f"# Atari benchmark ({args.game})", "", f"`{common.command_line()}`", "", *common.machine_lines(), ""]
    forward = {network: forward_costs(args.game, network, args.repeats, args.rounds) for network in args.networks}
    if args.forward_only:
        write_report(lines + forward_lines(forward), args.name)
        return
    lanes_used = max(lanes for *_, lanes, _ in forward.values())
    gym_raw = gymnasium_rate(args.game, args.raw_steps)
    gym_concurrent = concurrent_gymnasium_rate(args.game, args.raw_steps, args.ranks)
    vector_one = vector_rate(args.game, 1, args.raw_steps)
    vector_lanes = vector_rate(args.game, lanes_used, args.raw_steps)
    lines += ["## Raw env rates (random actions, one process)", "",
              f"| gymnasium preprocessing | same, per process, {args.ranks} at once | vector env, 1 lane | vector env, "
              f"{lanes_used} lanes | vector / gymnasium |", "|---|---|---|---|---|",
              f"| {gym_raw:.0f} | {gym_concurrent:.0f} | {vector_one:.0f} | {vector_lanes:.0f} "
              f"| {vector_lanes / gym_raw:.2f} |", ""]
    flat = flat_batch_changes_bits()
    lines += ["## One flat matmul for a batch (shared weights) against each observation's own", "",
              "| layer (network, index) | batch sizes 2-16 whose bits differ |", "|---|---|"]
    lines += [f"| {network} {index} | {', '.join(map(str, sizes)) or 'none'} |" for (network, index), sizes in flat.items()]
    lines.append("")
    lines += forward_lines(forward)
    lines += [f"## Training, {args.ranks} ranks, {args.pairs} pairs, episodes capped at {args.steps} steps", "",
              "The gymnasium raw rates are measured right before each training run, so both see the same load; "
              f"medians over {args.trials} trial(s), the runs taking turns (ratios: the median of each trial's).", "",
              "| network | VBN | run.lanes | agent steps/s per rank | gymnasium raw steps/s (1 process) | / gymnasium raw "
              f"| gymnasium raw, {args.ranks} at once | / that | / vector env raw, {lanes_used} lanes | s/iteration "
              "| VBN reference share of the iteration |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    members_per_rank = 2 * args.pairs / args.ranks
    runs = [(network, vbn, 16) for network in args.networks for vbn in (False, True)]
    runs += [("paper", True, 1)] if "paper" in args.networks else []
    trials = {run: [] for run in runs}
    for _ in range(args.trials):  # the runs take turns, so that a change in load hits all of them
        for network, vbn, lanes in runs:
            raw = gymnasium_rate(args.game, args.raw_steps)
            concurrent = concurrent_gymnasium_rate(args.game, args.raw_steps, args.ranks)
            rate, iteration_s = training_rate(args.game, network, vbn, args.ranks, args.pairs, args.steps,
                                              args.iterations, args.timeout, lanes)
            trials[network, vbn, lanes].append((rate, raw, rate / raw, concurrent, rate / concurrent, iteration_s))
            print(network, vbn, lanes, [f"{value:.2f}" for value in trials[network, vbn, lanes][-1]], flush=True)
    for (network, vbn, lanes), measured in trials.items():
        rate, raw, ratio, concurrent, concurrent_ratio, iteration_s = (common.median(column) for column in zip(*measured))
        share = f"{forward[network][1] * 1e-3 * members_per_rank / iteration_s:.1%}" if vbn else "-"
        lines.append(f"| {network} | {'yes' if vbn else 'no'} | {lanes} | {rate:.0f} | {raw:.0f} | {ratio:.2f} "
                     f"| {concurrent:.0f} | {concurrent_ratio:.2f} | {rate / vector_lanes:.2f} | {iteration_s:.2f} "
                     f"| {share} |")
    lines += ["", "VBN share: one member's reference pass (the bind above) times the members per rank, over the "
                  "median iteration."]
    write_report(lines, args.name)


if __name__ == "__main__":
    main()
