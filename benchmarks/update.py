"""The update against the parameter count and the population, and its share of the iteration.

Under a real mpiexec (default 2 ranks, one node-shared noise table), for every population
(members; pairs = population / 2) and parameter count (a flat float32 vector, OpenAI-ES):

- ask, the results Allgatherv (population x 4 float64), tell (centered ranks, the weighted
  noise sum over the shared table, Adam), the observation-statistics gather at Humanoid's
  observation size, and the checksum of parameters + statistics with its two Allgathers.
  These are the calls trainer.step makes, at their real sizes. Each is timed after a Barrier
  (waiting for a slower rank is not counted); the figure is the slowest rank's, median over
  repeats.
- weighted_noise_sum alone, as GB/s of noise rows read (pairs x parameters x 4 bytes), beside
  np.copyto's bandwidth timed right after it at every size, the same ranks copying at once.

Then the share of the iteration for Humanoid-v5 with a 256x256 MLP (its parameter count is
added to the sweep): the parts above plus what else happens outside episodes (expanding each
of the rank's members into a bound policy with its seeds, metrics row, a checkpoint write
divided by checkpoint.every), against episodes per rank x seconds per episode from real
run_episode episodes. The initial policy falls after a few dozen steps, the worst case for the
share; the share is also given for 1,000-step episodes (a reset + 1,000 x seconds per step,
both measured), the length of a walking policy.
"""

import argparse
import json
import pathlib
import re
import sys
import tempfile
import time

import common

NATURE_DQN_PARAMS = 1_693_362  # conv 8224 + 32832 + 36928, fc 1,606,144, 18-action head 9,234
HUMANOID_JOB = """\
[env]
id = "Humanoid-v5"
[policy]
hidden = {hidden}
[strategy]
pairs = 1
"""


class Clock:
    """Seconds per named part, one list per part; a Barrier before each so only the part is timed."""

    def __init__(self, comm):
        self.comm, self.seconds = comm, {}

    def __call__(self, key, function, *args):
        self.comm.Barrier()
        start = time.perf_counter()
        out = function(*args)
        self.seconds.setdefault(key, []).append(time.perf_counter() - start)
        return out


def slowest_rank(comm, seconds):
    """{key: [per repeat, max over the ranks that timed it]} on rank 0."""
    everyone = comm.gather(seconds, root=0)
    if comm.rank != 0:
        return None
    keys = {key for rank in everyone for key in rank}
    return {key: [max(values) for values in zip(*[rank[key] for rank in everyone if key in rank])]
            for key in keys}


class ResetClock:
    """The env with its reset timed: a Humanoid reset costs several steps, which a 1,000-step
    episode pays once and a 20-step one pays per 20 steps."""

    def __init__(self, env):
        self.env, self.step, self.seconds = env, env.step, 0.0

    def reset(self, **kwargs):
        start = time.perf_counter()
        out = self.env.reset(**kwargs)
        self.seconds += time.perf_counter() - start
        return out


def sweep_point(comm, nodes, noise, copy_target, copy_source, population, n_params, obs_size, obs_probability, repeats):
    """Timings of the update's parts at one size; rank 0 gets {part: [seconds per repeat]}."""
    import numpy as np

    from es_mpi.parts.strategies.openai_es import OpenAIES, OpenAIESSettings, weighted_noise_sum
    from es_mpi.run import agreement
    from es_mpi.run.mpi import MPI, allgather_variable, static_slice

    def allgather_rows(local_kf, n_cols):
        """Every rank's rows of its static slice, in global order: one Allgatherv of float64."""
        counts = np.array([(b - a) * n_cols for a, b in slices], dtype=np.int64)
        out_nf = np.empty((population, n_cols), dtype=np.float64)
        comm.Allgatherv(np.ascontiguousarray(local_kf, dtype=np.float64).reshape(-1),
                        [out_nf, counts, np.array([a * n_cols for a, _ in slices], dtype=np.int64), MPI.DOUBLE])
        return out_nf

    from es_mpi.run.obstat import ObsStat

    strategy = OpenAIES(OpenAIESSettings(pairs=population // 2), np.zeros(n_params, dtype=np.float32), noise, 0)
    obstat = ObsStat(obs_size)
    slices = [(2 * a, 2 * b) for a, b in (static_slice(population // 2, r, comm.size) for r in range(comm.size))]
    start, stop = slices[comm.rank]
    n_obs, n_recorded = 2 * obs_size + 1, round(obs_probability * (stop - start))
    clock = Clock(comm)
    for t in range(1, repeats + 1):
        draw = np.random.default_rng(t)
        clock("ask", strategy.ask, t)
        rows_k4 = np.column_stack([draw.standard_normal(stop - start), np.full(stop - start, 30.0),
                                   np.zeros(stop - start), np.zeros(stop - start)])
        results_n4 = clock("results gather", allgather_rows, rows_k4, 4)
        clock("tell", strategy.tell, results_n4[:, 0].copy())
        weights_n = draw.standard_normal(population // 2).astype(np.float32)
        clock("noise sum alone", weighted_noise_sum, noise, strategy.offsets_n, weights_n, n_params)
        clock("copy", np.copyto, copy_target, copy_source)
        obs_rows = np.abs(draw.standard_normal((n_recorded, n_obs)))
        gathered = clock("obs-stat gather", allgather_variable, comm, obs_rows, n_obs)
        clock("obs-stat add", obstat.add, gathered)

        def agree():
            return agreement.exchange(nodes, agreement.state_checksum(strategy, obstat), 1.0, 0)

        clock("checksum + flags", agree)
    return slowest_rank(comm, clock.seconds)


def humanoid_point(comm, noise, args):
    """Per member expansion, metrics row, checkpoint write, and real episodes of Humanoid."""
    from es_mpi.records import checkpoint as ckpt_io
    from es_mpi.parts.job_file import job_from_text
    from es_mpi.records.metrics import MetricsLog
    from es_mpi.run.obstat import ObsStat
    from es_mpi.run.rollout import run_episode
    from es_mpi.parts.build import build_task
    from es_mpi.run.evaluation import normalizer_for
    from es_mpi.core.seeding import Purpose, episode_seed, rng
    from es_mpi.parts.strategies.openai_es import OpenAIES, OpenAIESSettings

    job = job_from_text(HUMANOID_JOB.format(hidden=list(args.hidden)), pathlib.Path("update.toml"))
    task = build_task(job)
    env, policy = task.env, task.policy
    strategy = OpenAIES(OpenAIESSettings(pairs=args.expand_sample), task.initial_params(), noise, 0)
    obstat = ObsStat(policy.sizes[0])
    normalizer = normalizer_for(job, obstat)
    clock, tmp = Clock(comm), pathlib.Path(tempfile.mkdtemp(prefix="es-bench-"))
    metrics = MetricsLog(tmp / "metrics.csv" if comm.rank == 0 else None)
    episode_s, reset_s, episode_steps = [], [], []
    timed_env = ResetClock(env)
    for t in range(1, args.repeats + 1):
        strategy.ask(t)

        def expand_members():
            for member in range(2 * args.expand_sample):
                rng(job.run.seed, t, member, purpose=Purpose.OBS_SAMPLE).random()
                episode_seed(job.run.seed, t, member)
                strategy.member_actor(member, policy)

        clock("member expansion", expand_members)
        for member in range(comm.rank * args.episodes, (comm.rank + 1) * args.episodes):
            begin, timed_env.seconds = time.perf_counter(), 0.0
            episode = run_episode(timed_env, strategy.member_actor(member % (2 * args.expand_sample), policy),
                                  episode_seed(job.run.seed, t, member), task.step_limit, normalizer)
            episode_s.append(time.perf_counter() - begin)
            reset_s.append(timed_env.seconds)
            episode_steps.append(episode.length)
        if comm.rank == 0:
            row = dict(iteration=t, timesteps=t * 1000, return_mean=0.0, update_s=0.1, imbalance=1.0,
                       wall_time=time.time())
            clock.seconds.setdefault("metrics row", []).append(timed_once(metrics.append, row))
            ckpt = ckpt_io.Checkpoint(
                config_toml=job.to_toml(), iteration=t, timesteps=t * 1000, step_cap=1000,
                best_eval_return=0.0, eval_return=0.0, params=strategy.center(),
                strategy=strategy.state_dict(), obstat=obstat.state_dict(), metrics=metrics.columns(),
                versions=ckpt_io.package_versions())
            clock.seconds.setdefault("checkpoint write", []).append(
                timed_once(ckpt_io.save, ckpt_io.checkpoint_path(tmp, t), ckpt))
    seconds = slowest_rank(comm, clock.seconds)
    episodes = comm.gather(list(zip(episode_s, reset_s, episode_steps)), root=0)
    env.close()
    if comm.rank != 0:
        return None
    all_s, all_reset, all_steps = zip(*[e for rank in episodes for e in rank])
    per_member = [s / (2 * args.expand_sample) for s in seconds.pop("member expansion")]
    return dict(n_params=policy.n_params, obs_size=policy.sizes[0], checkpoint_every=job.checkpoint.every,
                obs_probability=job.obs_norm.probability, expand_s_per_member=common.median(per_member),
                metrics_row_s=common.median(seconds["metrics row"]),
                checkpoint_s=common.median(seconds["checkpoint write"]),
                episode_s=common.median(all_s), episode_steps=common.median(all_steps),
                reset_s=common.median(all_reset), step_s=(sum(all_s) - sum(all_reset)) / max(1, sum(all_steps)))


def timed_once(function, *args):
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def table_comparison(comm, shared_table, n_params, pairs, repeats):
    """weighted_noise_sum over the node-shared window and over a private numpy copy of the table,
    alternated: numpy asks for transparent huge pages for large arrays, the MPI shared-memory
    window gets them only where the kernel allows them for shared memory."""
    import numpy as np

    from es_mpi.run.noise import local_table
    from es_mpi.parts.strategies.openai_es import weighted_noise_sum

    private_table = local_table(shared_table.size, 0)
    draw = np.random.default_rng(0)
    offsets_n = draw.integers(0, shared_table.size - n_params + 1, size=pairs)
    weights_n = draw.standard_normal(pairs).astype(np.float32)
    clock = Clock(comm)
    for _ in range(repeats):
        for name, table in (("node-shared window", shared_table), ("private table", private_table)):
            clock(name, weighted_noise_sum, table, offsets_n, weights_n, n_params)
    return slowest_rank(comm, clock.seconds)


def shmem_huge_pages():
    """The kernel's transparent-huge-page mode for shared memory (the bracketed word)."""
    try:
        text = pathlib.Path("/sys/kernel/mm/transparent_hugepage/shmem_enabled").read_text()
    except OSError:
        return "unknown"
    chosen = re.search(r"\[(\S+)\]", text)
    return chosen.group(1) if chosen else text.strip()


def worker(args):
    """Runs on every rank; rank 0 prints one JSON line."""
    from es_mpi.core.environment import node_size_from_env
    from es_mpi.run.mpi import world
    from es_mpi.run.node_runtime import Handles
    from es_mpi.run.noise import SharedNoiseTable
    from noise_sum import copy_buffers

    comm = world()
    handles = Handles()
    nodes = handles.node_layer(comm, node_size_from_env())
    noise = SharedNoiseTable(args.noise, 0, nodes, handles.window)
    humanoid = humanoid_point(comm, noise.array, args)
    n_params = comm.bcast(humanoid["n_params"] if comm.rank == 0 else None, root=0)
    obs_size = comm.bcast(humanoid["obs_size"] if comm.rank == 0 else None, root=0)
    copy_target, copy_source = copy_buffers()
    copy_source_bytes = copy_source.nbytes
    sweep = []
    for population in args.populations:
        for size in sorted(set(args.params) | {n_params}):
            seconds = sweep_point(comm, nodes, noise.array, copy_target, copy_source, population, size, obs_size, 0.01,
                                  args.repeats)
            if comm.rank == 0:
                sweep.append(dict(population=population, n_params=size, seconds=seconds))
    del copy_target, copy_source
    pairs = min(args.populations) // 2
    tables = table_comparison(comm, noise.array, n_params, pairs, args.repeats)
    handles.free()
    if comm.rank == 0:
        tables = dict(pairs=pairs, n_params=n_params, seconds=tables, shmem_huge_pages=shmem_huge_pages())
        print(json.dumps(dict(humanoid=humanoid, copy_bytes=copy_source_bytes, sweep=sweep, tables=tables)))


UPDATE_PARTS = ("results gather", "tell", "obs-stat gather", "checksum + flags")


def report(args, result):
    sweep_rows = []
    for point in result["sweep"]:
        med = {key: common.median(values) for key, values in point["seconds"].items()}
        read_gb = point["population"] // 2 * point["n_params"] * 4 / 1e9
        gbs = read_gb / med["noise sum alone"]
        copy_gbs = result["copy_bytes"] / 1e9 / med["copy"]
        sweep_rows.append({
            "population": f"{point['population']:,}", "parameters": f"{point['n_params']:,}",
            **{f"{key} ms": f"{med[key] * 1e3:.2f}" for key in ("ask", *UPDATE_PARTS)},
            "tell min-max ms": common.spread(s * 1e3 for s in point["seconds"]["tell"]),
            "noise sum GB/s per rank": f"{gbs:.1f}", "copy GB/s per rank": f"{copy_gbs:.1f}",
            "noise sum / copy": f"{gbs / copy_gbs:.0%}"})
    human = result["humanoid"]
    share_rows = []
    for point in result["sweep"]:
        if point["n_params"] != human["n_params"]:
            continue
        med = {key: common.median(values) for key, values in point["seconds"].items()}
        members = point["population"] // args.ranks
        update_s = sum(med[key] for key in UPDATE_PARTS)
        outside_s = (update_s + med["ask"] + med["obs-stat add"] + members * human["expand_s_per_member"]
                     + human["metrics_row_s"] + human["checkpoint_s"] / human["checkpoint_every"])
        for name, steps, seconds_per_episode in [
                ("initial policy", human["episode_steps"], human["episode_s"]),
                ("1,000-step episodes", 1000, human["reset_s"] + human["step_s"] * 1000)]:
            episodes_s = members * seconds_per_episode
            share_rows.append({
                "population": f"{point['population']:,}", "episodes": f"{name} ({steps:.0f} steps)",
                "episode s per rank": f"{episodes_s:.1f}",
                "tell + gathers + checksum s": f"{update_s:.3f}",
                "their share": f"{update_s / (update_s + episodes_s):.2%}",
                "ranks where theirs reaches 3%": f"{args.ranks * episodes_s * 3 / (97 * update_s):,.0f}",
                "member expansion s": f"{members * human['expand_s_per_member']:.3f}",
                "all outside episodes s": f"{outside_s:.3f}",
                "share outside episodes": f"{outside_s / (outside_s + episodes_s):.2%}"})
    body = [f"mpiexec -n {args.ranks}, one node-shared noise table of {args.noise:,} floats; medians of "
            f"{args.repeats} repeats of the slowest rank, each part timed after a Barrier.", "",
            "Update parts against population (members) and parameter count. noise sum GB/s = pairs x "
            "parameters x 4 bytes read / seconds of weighted_noise_sum alone; copy GB/s = bytes copied / "
            f"seconds of np.copyto of {result['copy_bytes'] / 1e6:.0f} MB, timed right after it in each "
            f"repeat with the {args.ranks} ranks copying at once (a paired reference under the same load):", "",
            common.markdown_table(list(sweep_rows[0]), sweep_rows), "",
            f"Share of the iteration, Humanoid-v5 {'x'.join(map(str, args.hidden))} MLP "
            f"({human['n_params']:,} parameters), {args.ranks} ranks. Episodes: {args.episodes} real "
            f"episodes per rank and repeat ({human['episode_s']:.4f} s per episode, "
            f"of which reset {human['reset_s'] * 1e3:.1f} ms, then {human['step_s'] * 1e6:.0f} us per step with "
            "the policy); member expansion "
            f"{human['expand_s_per_member'] * 1e3:.2f} ms per member (bind + seeds), metrics row "
            f"{human['metrics_row_s'] * 1e3:.2f} ms, checkpoint write {human['checkpoint_s'] * 1e3:.1f} ms / "
            f"every {human['checkpoint_every']}. Target: <= 3%.",
            "Every rank runs the whole tell (the same float operations everywhere), so its time per rank "
            "does not shrink with more ranks while the episodes per rank do: 'ranks where theirs reaches "
            "3%' = the rank count at which tell + gathers + checksum would be 3% of the iteration at this "
            "population (gathers assumed not to grow).", "",
            common.markdown_table(list(share_rows[0]), share_rows)]
    tables = result["tables"]
    read_gb = tables["pairs"] * tables["n_params"] * 4 / 1e9
    shared_gbs, private_gbs = (read_gb / common.median(tables["seconds"][name])
                               for name in ("node-shared window", "private table"))
    body += ["", f"weighted_noise_sum of {tables['pairs']:,} rows x {tables['n_params']:,} parameters, alternated, "
             f"GB/s per rank: node-shared MPI window {shared_gbs:.1f}, private numpy copy of the table "
             f"{private_gbs:.1f} (ratio {shared_gbs / private_gbs:.2f}). "
             f"numpy madvises large arrays to transparent huge pages; this kernel's setting for shared memory "
             f"(/sys/kernel/mm/transparent_hugepage/shmem_enabled) is '{tables['shmem_huge_pages']}'."]
    common.write_report(args.name, "Update: tell, gathers and checksum against parameters and population", body)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--populations", nargs="+", type=int, default=[1000, 3000, 10000],
                        help="members per iteration, even (default 1000 3000 10000)")
    parser.add_argument("--params", nargs="+", type=int, default=[10_000, 100_000, 500_000, NATURE_DQN_PARAMS],
                        help=f"parameter counts (default 10000 100000 500000 {NATURE_DQN_PARAMS}, Nature DQN); "
                             "the Humanoid policy's count is added")
    parser.add_argument("--hidden", type=lambda s: [int(x) for x in s.split(",")], default=[256, 256],
                        help="Humanoid hidden layer sizes (default 256,256)")
    parser.add_argument("--ranks", type=int, default=2, help="MPI ranks (default 2)")
    parser.add_argument("--noise", type=int, default=50_000_000, help="noise table floats (default: the job default)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (default 5)")
    parser.add_argument("--episodes", type=int, default=4, help="real Humanoid episodes per rank and repeat")
    parser.add_argument("--expand-sample", type=int, default=10,
                        help="pairs expanded per repeat to time member expansion (default 10)")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds allowed for the mpiexec run")
    parser.add_argument("--name", type=common.report_name, default="update",
                        help="report name under benchmarks/results/")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if any(p < 2 or p % 2 for p in args.populations):
        parser.error("--populations must be even numbers >= 2 (mirrored pairs)")
    if args.worker:
        return worker(args)
    out = common.run_mpi(args.ranks, [pathlib.Path(__file__).resolve(), "--worker", *sys.argv[1:]], args.timeout)
    report(args, json.loads(out.strip().splitlines()[-1]))


if __name__ == "__main__":
    main()
