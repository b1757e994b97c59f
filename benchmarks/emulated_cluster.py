"""An emulated cluster: `es-mpi train` on recorded traces with many ranks on one small machine.

Each rank count R trains the trace's job (the job the trace was recorded with, from the trace
file) for a few iterations with `es-mpi train -n R`, oversubscribed, in virtual nodes of
--node-size ranks (ES_MPI_NODE_SIZE), with the env replaced by the trace env
(es_mpi/parts/trace_env.py, id es_mpi/Trace-v0): each episode is a recorded one, drawn from
the env seed, and its steps sleep for the CPU time the real episode cost, stretched by a time
scale. So the ranks spend their episodes asleep, as busy cores would be busy, and the run
measures what does not sleep: placement, the tail of the longest episodes, waiting at the
exchange, the update.

Population = --episodes-per-rank x R (mirrored pairs), evaluation off (--eval-every to turn it
on: its episodes then count as serial work too), the job's own lanes, placement and strategy
settings otherwise, in each mode of --modes (synchronous, pipelined: run.pipeline). Parallel
efficiency per run:

    efficiency = serial work / (R x wall time), summed over the iterations after the first,

where serial work is the seconds the iteration's episodes asked to sleep (each reward of the
trace env is its step's seconds, so an episode's return is its seconds and the metrics carry
return_mean x episodes; the benchmark computes the same from the trace and the seeds, and stops
if they disagree) and wall time is the metrics' iteration_s (rank 0: synchronous, from ask to
agreement; pipelined, from one tell's end to the next). Pipelined, that window starts at the
first iteration's tell, when a good part of the second has already been played (counted as work
inside the window): it overstates the steady state, and can exceed 1. So each run also reports
the whole run, every iteration over the time from the first iteration's start to the last tell:
start-up, the pipeline's fill and the last iteration's tail (with nothing to overlap it)
included, it understates the steady state, and is the figure the targets are checked with.

The time scale is chosen per trace so that an episode lasts --episode-s on average (so an
iteration lasts about 10 of them whatever the trace): the processes' own work per step (the
episode loop, the policy: tens of microseconds on this kind of machine) must stay small beside a
step, and that work is what keeps dozens of ranks from being idle. The fixed costs (update, exchange, agreement) are not scaled: they run for real, on
2 cores shared by all ranks, so they weigh more than on a real cluster at a small time scale,
and less at a large one; the report gives update_s beside the efficiency.

Waiting must not use the CPU either: Open MPI's blocking calls poll. The runs set
    OMPI_MCA_mpi_yield_when_idle=1                      (yield in the progress loop when idle)
    OMPI_MCA_threads_pthreads_yield_strategy=nanosleep  (yield by sleeping, not sched_yield)
    OMPI_MCA_threads_pthreads_nanosleep_time=NS         (--nanosleep-us, default 2,000 us)
With sched_yield (the default strategy) a waiting rank still takes any idle core. es-mpi's own
waits are MPI calls (node barriers, the placement counter's Fetch_and_op under a shared lock,
the leaders' Allgatherv, the agreement's collectives), so they follow these settings. The CPU
use of all the run's processes is recorded twice: over the measured iterations (sampled from
/proc) and over the whole run, start-up included (getrusage of the children).

Results: benchmarks/results/<--name>.md and .json. Example:
    python benchmarks/emulated_cluster.py --ranks 8 16 32 64
"""

import argparse
import itertools
import json
import math
import os
import pathlib
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

import common
from es_mpi.core.seeding import Purpose, episode_seed
from es_mpi.parts.job_file import job_from_text
from es_mpi.parts.trace_env import TRACE_ENV_ID, TraceEnv, load_trace
from learning import read_metrics

TRACES = common.REPO / "benchmarks" / "traces"
DEFAULT_TRACES = (TRACES / "hopper-mid.npz",)
# The trace job's noise table: it only has to hold the recorded policy's parameters (ARS's linear
# policies have thousands), and a small one is quick to fill on every virtual node.
NOISE_SIZE = 1_000_000
MODES = ("synchronous", "pipelined")


def yield_settings(nanosleep_us):
    """Open MPI settings that make a waiting rank sleep instead of polling (see the module's doc);
    none for 0 (Open MPI's own waiting, to measure what it costs)."""
    if nanosleep_us == 0:
        return {}
    return {"OMPI_MCA_mpi_yield_when_idle": "1", "OMPI_MCA_threads_pthreads_yield_strategy": "nanosleep",
            "OMPI_MCA_threads_pthreads_nanosleep_time": str(int(nanosleep_us * 1000))}


def time_scale_for(trace, episode_s):
    """The stretch that makes the trace's mean episode last episode_s."""
    return float(episode_s / trace["cpu_s_e"].mean())


def trace_job(trace_path, ranks, episodes_per_rank, iterations, time_scale, eval_every, lanes=None, placement=None,
              pipeline=False):
    """The trace's recorded job with the trace env in place of the real one, -> Job."""
    trace = load_trace(trace_path)
    recorded = job_from_text(str(trace["job_toml"]), trace_path)
    pairs = episodes_per_rank * ranks // 2
    top = recorded.strategy.top_pairs
    overrides = [
        f'env.id="{TRACE_ENV_ID}"',
        f'env.kwargs={{trace = "{pathlib.Path(trace_path).resolve()}", time_scale = {time_scale!r}}}',
        "env.alive_bonus=0.0", "env.step_cap=\"env\"",
        f"strategy.pairs={pairs}", f"strategy.top_pairs={max(1, round(top * pairs / recorded.strategy.pairs)) if top else 0}",
        f"eval.every={eval_every}", f"stop.iterations={iterations}", f"checkpoint.every={iterations}",
        f"noise.size={NOISE_SIZE}", f"run.pipeline={str(pipeline).lower()}",
    ]
    if lanes is not None:
        overrides.append(f"run.lanes={lanes}")
    if placement is not None:
        overrides.append(f'run.placement="{placement}"')
    return job_from_text(recorded.to_toml(), trace_path, overrides)


def asked_episodes(job, iteration, members, purpose=Purpose.EPISODE):
    """[(length, seconds)] that each member (or evaluation episode) of `iteration` asks the trace env
    for: the recorded episode its env seed draws, its seconds times the job's time scale; both cut
    at a fixed step cap."""
    env = TraceEnv(**job.env.kwargs)
    cap = job.env.step_cap if isinstance(job.env.step_cap, int) else math.inf
    out = []
    for m in members:
        e = env.reset(seed=episode_seed(job.run.seed, iteration, m, purpose))[1]["episode"]
        length = int(env.lengths_e[e])
        out.append((min(length, cap), env.seconds_e[e] * min(1.0, cap / length)))
    return out


def population(job):
    return 2 * job.strategy.pairs


def serial_work(job, rows):
    """{iteration: serial seconds} of metrics rows, evaluation episodes included, from the traces and
    the seeds; RuntimeError if the metrics disagree (the timesteps with the drawn lengths, return_mean
    x episodes and eval_return x eval.episodes with the seconds)."""
    previous = {int(r["iteration"]): r["timesteps"] for r in rows}
    serial = {}
    for row in rows:
        t = int(row["iteration"])
        asked = asked_episodes(job, t, range(population(job)))
        steps = row["timesteps"] - previous.get(t - 1, 0 if t == 1 else math.nan)
        seconds = sum(s for _, s in asked)
        if not math.isnan(steps) and steps != sum(n for n, _ in asked):
            raise RuntimeError(f"iteration {t}: the traces draw {sum(n for n, _ in asked)} steps, metrics.csv has {steps}")
        if not math.isclose(seconds, row["return_mean"] * row["episodes"], rel_tol=1e-9):
            raise RuntimeError(f"iteration {t}: the traces ask {seconds} s, metrics.csv's returns "
                               f"{row['return_mean'] * row['episodes']} s")
        if not math.isnan(row["eval_return"]):
            told = t - 2 if job.run.pipeline else t - 1  # the state t's members perturbed
            evaluation = sum(s for _, s in asked_episodes(job, max(0, told), range(job.eval.episodes),
                                                          Purpose.EVAL_EPISODE))
            if not math.isclose(evaluation, row["eval_return"] * job.eval.episodes, rel_tol=1e-9):
                raise RuntimeError(f"iteration {t}: the traces ask {evaluation} s for evaluation, metrics.csv's "
                                   f"eval_return {row['eval_return'] * job.eval.episodes} s")
            seconds += evaluation
        serial[t] = seconds
    return serial


def efficiency(serial, rows, ranks):
    """Serial work / (ranks x wall time) over the metrics rows."""
    return sum(serial[int(r["iteration"])] for r in rows) / (ranks * sum(r["iteration_s"] for r in rows))


class ProcessTreeCPU:
    """CPU seconds of a process and all its descendants, sampled from /proc every `interval_s`."""

    def __init__(self, root_pid, interval_s=1.0):
        self.root, self.interval_s = root_pid, interval_s
        self.samples = []  # (time.time(), CPU seconds of the live tree)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _table():
        """{pid: (ppid, CPU seconds)} of every process readable now."""
        tick = os.sysconf("SC_CLK_TCK")
        table = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                text = pathlib.Path(entry.path, "stat").read_text()
            except OSError:
                continue
            fields = text[text.rindex(")") + 2:].split()
            table[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
        return table

    def sample(self):
        table = self._table()
        tree, frontier = set(), {self.root}
        while frontier:
            tree |= frontier
            frontier = {pid for pid, (ppid, _) in table.items() if ppid in frontier} - tree
        self.samples.append((time.time(), sum(table[pid][1] for pid in tree if pid in table)))

    def _run(self):
        while not self._stop.wait(self.interval_s):
            self.sample()

    def stop(self):
        self._stop.set()
        self._thread.join()

    def cores_between(self, start, end):
        """Mean cores used between two time.time() stamps, from the samples inside them (nan if < 2)."""
        inside = [(t, c) for t, c in self.samples if start <= t <= end]
        if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
            return math.nan
        return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


def run_emulated(job, ranks, node_size, nanosleep_us, timeout, workdir):
    """Train `job` on `ranks` ranks; -> (metrics rows, whole-run CPU seconds, wall seconds, cores in iterations)."""
    job_path = workdir / f"job-{ranks}.toml"
    job_path.write_text(job.to_toml())
    run_dir = workdir / f"run-{ranks}"
    env = {**common.mpi_environment(), **yield_settings(nanosleep_us), "ES_MPI_NODE_SIZE": str(node_size)}
    command = [common.PYTHON, "-m", "es_mpi", "train", str(job_path), "-n", str(ranks), "--run-dir", str(run_dir),
               "--force"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                               cwd=common.REPO, start_new_session=True)
    meter = ProcessTreeCPU(process.pid)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        output, _ = process.communicate()
        raise RuntimeError(f"{ranks} ranks: no result within {timeout} s:\n{output[-3000:]}") from None
    finally:
        meter.stop()
    wall_s = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode != 0:
        raise RuntimeError(f"{ranks} ranks: es-mpi train exited {process.returncode}:\n{output[-3000:]}")
    rows = read_metrics(run_dir / "metrics.csv")
    cpu_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    cores = meter.cores_between(rows[0]["wall_time"], rows[-1]["wall_time"])
    return rows, cpu_s, wall_s, cores


def measure(trace_path, ranks, lanes, mode, args, workdir):
    """One run at `ranks` in `mode`: its efficiency and what explains it, as a dict."""
    trace = load_trace(trace_path)
    scale = time_scale_for(trace, args.episode_s)
    job = trace_job(trace_path, ranks, args.episodes_per_rank, args.iterations, scale, args.eval_every,
                    lanes, args.placement, pipeline=mode == "pipelined")
    rows, cpu_s, wall_s, cores = run_emulated(job, ranks, args.node_size, args.nanosleep_us, args.timeout, workdir)
    serial = serial_work(job, rows)
    measured = rows[1:]  # the first iteration pays for warming up
    return dict(
        trace=pathlib.Path(trace_path).name, env=str(trace["env_id"]), source=str(trace["source"]), mode=mode, ranks=ranks,
        nodes=math.ceil(ranks / args.node_size), node_size=args.node_size, population=population(job),
        lanes=job.run.lanes, placement=job.run.placement, time_scale=scale,
        step_ms=1000 * scale * trace["cpu_s_e"].sum() / trace["lengths_e"].sum(), iterations=len(measured),
        efficiency=efficiency(serial, measured, ranks), efficiency_whole_run=efficiency(serial, rows, ranks),
        serial_s=sum(serial[int(r["iteration"])] for r in measured),
        iteration_s=sum(r["iteration_s"] for r in measured),
        iteration_s_median=common.median(r["iteration_s"] for r in measured),
        imbalance_median=common.median(r["imbalance"] for r in measured),
        wait_s_median=common.median(r["wait_s"] for r in measured),
        update_s_median=common.median(r["update_s"] for r in measured),
        cores_in_iterations=cores, cpu_s=cpu_s, wall_s=wall_s, cores_whole_run=cpu_s / wall_s,
        load_at_end=os.getloadavg()[0])


def report(results, args):
    columns = ["trace", "mode", "lanes", "ranks", "nodes", "population", "efficiency", "efficiency, whole run",
               "imbalance (median)", "iteration s (median)",
               "wait s (median)", "update s (median)", "cores in iterations", "cores whole run", "load"]
    rows = [{"trace": r["trace"], "mode": r["mode"], "lanes": r["lanes"], "ranks": r["ranks"], "nodes": f"{r['nodes']} x {r['node_size']}",
             "population": r["population"], "efficiency": f"{r['efficiency']:.3f}",
             "efficiency, whole run": f"{r['efficiency_whole_run']:.3f}",
             "imbalance (median)": f"{r['imbalance_median']:.2f}", "iteration s (median)": f"{r['iteration_s_median']:.2f}",
             "wait s (median)": f"{r['wait_s_median']:.3f}", "update s (median)": f"{r['update_s_median']:.3f}",
             "cores in iterations": f"{r['cores_in_iterations']:.2f}", "cores whole run": f"{r['cores_whole_run']:.2f}",
             "load": f"{r['load_at_end']:.1f}"} for r in results]
    first = results[0]
    scales = ", ".join(sorted({f"{r['trace']} x{r['time_scale']:.1f} ({r['step_ms']:.1f} ms per step)" for r in results}))
    lines = [
        f"Modes: {', '.join(args.modes)}. Each run: `es-mpi train -n R` on the trace env, "
        f"{args.iterations} iterations, the first dropped; {args.episodes_per_rank} episodes per rank; "
        f"placement {first['placement']}, evaluation "
        f"{'every ' + str(args.eval_every) if args.eval_every else 'off'}; virtual nodes of {args.node_size} ranks; "
        f"an episode lasts {args.episode_s} s on average (time scale: {scales}); "
        f"Open MPI waits by nanosleep of {args.nanosleep_us} us.",
        "",
        "efficiency = serial work / (ranks x sum of iteration_s) over the iterations after the first; whole run: "
        "over every iteration, from the first one's start (pipelined, the first window overstates the steady "
        "state and the whole run understates it; see the module's doc). Serial work = the seconds the episodes "
        "asked to sleep (checked equal to return_mean x episodes of metrics.csv). Cores: CPU use of all processes of the "
        "run, over the measured iterations (/proc samples) and over the whole run with start-up (getrusage).",
        "",
        "The machine is shared with other work (its load average is in the last column): the ranks sleep, so "
        "load matters less than for real episodes, but the update, exchange and start-up run on 2 busy cores.",
        "",
        common.markdown_table(columns, rows),
    ]
    common.write_report(args.name, "Emulated cluster: parallel efficiency on recorded traces", lines)
    path = common.RESULTS / f"{args.name}.json"
    path.write_text(json.dumps({"command": common.command_line(), "results": results}, indent=1) + "\n")
    print(f"written to {path.relative_to(common.REPO)}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", nargs="+", default=[str(p.relative_to(common.REPO)) for p in DEFAULT_TRACES],
                        help="trace files (benchmarks/record_traces.py; default: Hopper mid-training)")
    parser.add_argument("--ranks", nargs="+", type=int, default=[8, 16, 32, 64], help="rank counts (default 8 16 32 64)")
    parser.add_argument("--node-size", type=int, default=8, help="ranks per virtual node (default 8)")
    parser.add_argument("--episodes-per-rank", type=int, default=10, help="population / ranks (even; default 10)")
    parser.add_argument("--iterations", type=int, default=3, help="iterations per run, the first not measured (default 3)")
    parser.add_argument("--episode-s", type=float, default=1.5, help="mean emulated episode in seconds (default 1.5)")
    parser.add_argument("--nanosleep-us", type=int, default=2000,
                        help="Open MPI's sleep while waiting (default 2000; 0: Open MPI's defaults, which poll)")
    parser.add_argument("--eval-every", type=int, default=0, help="evaluation every N iterations (default 0: off)")
    parser.add_argument("--lanes", type=int, nargs="+", default=[None],
                        help="run.lanes, one run set each (default: the trace's job's)")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES),
                        help="synchronous and/or pipelined (run.pipeline); default both")
    parser.add_argument("--placement", choices=("dynamic", "static"), default=None,
                        help="run.placement (default: the trace's job's)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per run before it is stopped (default 300)")
    parser.add_argument("--name", type=common.report_name, default="emulated_cluster",
                        help="report name under benchmarks/results/")
    args = parser.parse_args(argv)
    if args.episodes_per_rank < 2 or args.episodes_per_rank % 2 or args.iterations < 2 or min(args.ranks) < 1:
        parser.error("--episodes-per-rank must be even and at least 2, --iterations at least 2, --ranks positive")
    results = []
    with tempfile.TemporaryDirectory(prefix="emulated-cluster-") as tmp:
        for trace_path in args.traces:
            for lanes, ranks, mode in itertools.product(args.lanes, args.ranks, args.modes):
                result = measure(trace_path, ranks, lanes, mode, args, pathlib.Path(tmp))
                print(f"{result['trace']} {mode} lanes {result['lanes']} {ranks} ranks: "
                      f"efficiency {result['efficiency']:.3f}, "
                      f"{result['cores_in_iterations']:.2f} cores in iterations", flush=True)
                results.append(result)
    report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
