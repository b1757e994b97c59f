"""Sample efficiency: training timesteps, episodes and wall time until the evaluation return first reaches a target.

Each job file runs for S seeds with a real `es-mpi train JOB -n RANKS` (mpiexec), one seed after
the other, until the highest target, a timestep budget or a wall-clock budget (SIGUSR1 to the
launcher: the run checkpoints and exits 3). SIGTERM to this script, or a stop signal to a run,
stops the run the same way and the benchmark with it (exit 3, no report, no later seed). The
centre policy is evaluated every eval.every iterations (the job's, or --eval-every) on 10
deterministic episodes; "reached at" is the first evaluation whose mean return is at or above the
target, and the timesteps it reports are the training timesteps and episodes spent up to and
including that iteration (evaluation episodes are not counted, as ARS did not count them).
Wall time adds up the iterations' wall times (evaluations included; process start-up, the noise
table, checkpoint writes and the gap of a resumed run are not). Timesteps do not depend on the
machine's load; wall times do.

Built-in targets per env: the ES paper's row (Salimans et al. 2017, Table 3, in timesteps), augmented
random search's row (Mania, Guy and Recht 2018, Table 1: ARS V2-t's average episodes over 3 seeds) and
gymnasium's registry threshold (`gymnasium.spec(id).reward_threshold`). Each target's report says how many
seeds got there within the reference's budget: the paper's timesteps, or twice ARS's episodes. One PNG per
env shows the median and min-max over the seeds of the evaluation return against training episodes, with
the targets as lines (benchmarks/results/NAME-ENV.png).

The ES paper's table in docs/results.md (add --reuse to read runs that this code finished with the same
command and job, instead of training them again):
    python benchmarks/learning.py jobs/inverted_pendulum.toml jobs/swimmer.toml \
        jobs/halfcheetah.toml jobs/hopper.toml jobs/walker2d.toml --ranks 1 --targets paper
The registry thresholds within a wall-clock budget, one seed:
    python benchmarks/learning.py jobs/halfcheetah.toml --targets registry --max-timesteps 0 \
        --seeds 1 --ranks 1 --budget-seconds 3600 --runs-dir runs/learning_registry --name learning_registry
ARS's table, seeds 0-4 (by default each run stops at the target or at twice ARS's episodes of full length):
    python benchmarks/learning.py jobs/swimmer.toml jobs/hopper.toml jobs/halfcheetah.toml jobs/walker2d.toml \
        jobs/ant.toml jobs/humanoid.toml --targets ars --seeds 5 --ranks 2 --runs-dir runs/learning_ars --name learning_ars
"""

import argparse
import collections
import csv
import hashlib
import json
import math
import pathlib
import shlex
import signal
import subprocess
import sys
import time

import numpy as np

import common

# env id: (target return, timesteps ES needed), Salimans et al. 2017, Table 3
PAPER_ROWS = {
    "InvertedPendulum-v5": (1000.0, 455_000),
    "Swimmer-v5": (128.0, 1_390_000),
    "HalfCheetah-v5": (2385.0, 2_880_000),
    "Hopper-v5": (1718.0, 3_730_000),
    "Walker2d-v5": (1916.0, 12_900_000),
}
# env id: (target return, episodes ARS V2-t needed: the mean over 3 seeds), Mania, Guy and Recht 2018, Table 1
ARS_ROWS = {
    "Swimmer-v5": (325.0, 427),
    "Hopper-v5": (3120.0, 1_973),
    "HalfCheetah-v5": (3430.0, 1_707),
    "Walker2d-v5": (4390.0, 24_000),
    "Ant-v5": (3580.0, 20_800),
    "Humanoid-v5": (6000.0, 142_600),
}
ARS_EPISODE_FACTOR = 2  # a seed succeeds when it reaches ARS's threshold within twice ARS's episodes
OPTION_KEYS = (("policy", "hidden"), ("policy", "action"), ("strategy", "pairs"), ("strategy", "top_pairs"),
               ("strategy", "shaping"), ("strategy", "optimizer"), ("strategy", "momentum"), ("strategy", "sigma"),
               ("strategy", "learning_rate"), ("strategy", "l2"), ("obs_norm", "probability"),
               ("env", "alive_bonus"), ("env", "step_cap"))
REPORT_COLUMNS = ["env", "job", "target", "reference", "median steps", "steps per seed", "median episodes",
                  "episodes per seed", "median wall s", "wall s per seed", "seeds within budget", "beats reference"]
COLUMN_LEGEND = (
    "'steps' and 'episodes' are the training timesteps and episodes spent up to the first evaluation at or "
    "above the target (evaluation episodes are not counted, as ARS did not count them), '-' where a seed "
    "never got there. Wall time adds up the iterations' wall times (evaluations included; start-up, "
    "checkpoint writes and the gap of a resumed run are not) and depends on the machine's load; timesteps "
    "and episodes do not. The median counts a seed that never reached the target as worse than any that did. "
    "'seeds within budget' counts the seeds that got there within the ES paper's timesteps or within "
    f"{ARS_EPISODE_FACTOR}x ARS's episodes; 'beats reference' compares the median with the paper's "
    "timesteps or ARS's episodes (Mania, Guy and Recht 2018, Table 1: ARS V2-t, mean of 3 seeds).")
STOP_GRACE_S = 600  # after SIGUSR1 the run finishes its iteration and checkpoints
STOPPED_EXIT_CODE = 3  # es-mpi's own code for "stopped after writing a checkpoint"


class RunStopped(Exception):
    """A seed's run was stopped from outside (SIGTERM to this script, or a signal to the run itself):
    no later seed may start, or a stopped benchmark would leave runs going that nobody watches."""


class ForwardStop:
    """While a run trains, SIGTERM to this script is passed on to the run (which checkpoints and exits 3)."""

    def __init__(self, process):
        self.process, self.signalled = process, False

    def __enter__(self):
        self.previous = signal.signal(signal.SIGTERM, self._forward)
        return self

    def _forward(self, signum, frame):
        self.signalled = True
        self.process.send_signal(signal.SIGTERM)

    def __exit__(self, *exc):
        signal.signal(signal.SIGTERM, self.previous)


class Target:
    def __init__(self, value, source, paper_steps=None, ars_episodes=None):
        self.value, self.source = float(value), source
        self.paper_steps, self.ars_episodes = paper_steps, ars_episodes


Reach = collections.namedtuple("Reach", "timesteps seconds episodes")


def target_sources(which):
    """The set of built-in sources that --targets names ("all": every one); one name or several."""
    names = {which} if isinstance(which, str) else set(which)
    return {"paper", "ars", "registry"} if "all" in names else names


def builtin_targets(env_id, which):
    """[Target] for the env: the ES paper's row, ARS's row and/or the registry threshold, lowest first."""
    sources = target_sources(which)
    targets = []
    if "paper" in sources and env_id in PAPER_ROWS:
        value, steps = PAPER_ROWS[env_id]
        targets.append(Target(value, "ES paper", steps))
    if "ars" in sources and env_id in ARS_ROWS:
        value, episodes = ARS_ROWS[env_id]
        targets.append(Target(value, "ARS", ars_episodes=episodes))
    if "registry" in sources:
        import gymnasium

        threshold = gymnasium.spec(env_id).reward_threshold
        if threshold is not None and all(t.value != threshold for t in targets):
            targets.append(Target(threshold, "gymnasium registry"))
    return sorted(targets, key=lambda t: t.value)


def read_metrics(path):
    """metrics.csv rows as dicts of floats."""
    with open(path, newline="") as fh:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(fh)]


def first_reach(rows, target):
    """Reach(training timesteps, seconds, training episodes) at the first evaluation >= target, or None.

    The seconds add up the iterations' wall times (evaluation included): process start-up,
    checkpoint writes and the gap of a stopped and resumed run are not counted. The episodes add
    up each iteration's training episodes, through the row that reports the evaluation; evaluation
    episodes are not among them. Since evaluations play among the members, that row's evaluation is
    of the state before its own iteration, so its episodes did not train the evaluated policy: the
    figures are one iteration conservative (runs made before were evaluated after the update).
    """
    seconds, episodes = 0.0, 0
    for row in rows:
        seconds += row["iteration_s"]
        episodes += int(row["episodes"])
        if math.isfinite(row["eval_return"]) and row["eval_return"] >= target:
            return Reach(int(row["timesteps"]), seconds, episodes)
    return None


def within_reference(reach, target):
    """Whether one seed's Reach (or None) came within the target's budget: the ES paper's timesteps or
    twice ARS's episodes; None when the target has no reference."""
    if target.paper_steps is not None:
        return reach is not None and reach.timesteps <= target.paper_steps
    if target.ars_episodes is not None:
        return reach is not None and reach.episodes <= ARS_EPISODE_FACTOR * target.ars_episodes
    return None


def evaluation_curve(rows):
    """(training episodes, evaluation return) at every finite evaluation of one run, as two arrays."""
    episodes_e = np.cumsum([int(row["episodes"]) for row in rows])
    finite = [k for k, row in enumerate(rows) if math.isfinite(row["eval_return"])]
    return episodes_e[finite].astype(float), np.array([rows[k]["eval_return"] for k in finite], dtype=float)


def curve_band(per_seed_rows):
    """Median, min and max over seeds of the evaluation return on the union of the evaluation points.

    At each point a seed counts with its latest evaluation at or before it; before its first
    evaluation it does not count, and after its run ended (at the target or a budget) it keeps its
    last one. Returns (episodes_g, median_g, low_g, high_g).
    """
    curves = [evaluation_curve(rows) for rows in per_seed_rows]
    curves = [(x, y) for x, y in curves if x.size]
    if not curves:
        return tuple(np.empty(0) for _ in range(4))
    episodes_g = np.unique(np.concatenate([x for x, _ in curves]))
    held_sg = np.full((len(curves), episodes_g.size), np.nan)
    for s, (x, y) in enumerate(curves):
        latest_g = np.searchsorted(x, episodes_g, side="right") - 1
        started_g = latest_g >= 0
        held_sg[s, started_g] = y[latest_g[started_g]]
    return episodes_g, np.nanmedian(held_sg, axis=0), np.nanmin(held_sg, axis=0), np.nanmax(held_sg, axis=0)


def plot_env(env_id, runs, targets, path):
    """One PNG for an env: per job, the median and min-max band over its seeds against training
    episodes; the targets as horizontal lines, ARS's episodes (and twice them) as vertical ones."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.2))
    for label, per_seed_rows in runs:
        episodes_g, median_g, low_g, high_g = curve_band(per_seed_rows)
        line, = axes.step(episodes_g, median_g, where="post", label=f"{label}: median of {len(per_seed_rows)} seeds")
        axes.fill_between(episodes_g, low_g, high_g, step="post", alpha=0.25, color=line.get_color(), label="min-max")
    for target in targets:
        axes.axhline(target.value, color="black", linestyle="--", linewidth=0.8)
        axes.annotate(f"{target.value:g} ({target.source})", (0, target.value), textcoords="offset points",
                      xytext=(4, 3), xycoords=("axes fraction", "data"), fontsize=8)
        if target.ars_episodes is not None:
            axes.axvline(target.ars_episodes, color="grey", linestyle=":", label=f"ARS: {target.ars_episodes:,} episodes")
            axes.axvline(ARS_EPISODE_FACTOR * target.ars_episodes, color="grey", linestyle="-.",
                         label=f"{ARS_EPISODE_FACTOR}x ARS")
    axes.set_xlabel("training episodes (evaluation episodes not counted)")
    axes.set_ylabel("evaluation return (10 deterministic episodes)")
    axes.set_title(f"{env_id}: a seed keeps its last evaluation after its run ended", fontsize=10)
    axes.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def final_return(rows):
    """The last evaluation return of the run (NaN if it was never evaluated)."""
    finite = [row["eval_return"] for row in rows if math.isfinite(row["eval_return"])]
    return finite[-1] if finite else math.nan


def timestep_budget(env_id, targets, args):
    """--max-timesteps; by default the most that a row can still be won within: the ES paper's steps for
    the env (when its row is among the targets) and, for an ARS target, twice its episodes at the env's
    full episode length (no seed is cut short before twice ARS's episodes); else the job's own."""
    if args.max_timesteps is not None:
        return args.max_timesteps or None
    paper = env_id in PAPER_ROWS and "paper" in target_sources(args.targets)
    bounds = [PAPER_ROWS[env_id][1]] if paper else []
    ars_targets = [t for t in targets if t.ars_episodes is not None]
    if ars_targets:
        import gymnasium

        steps_per_episode = gymnasium.spec(env_id).max_episode_steps
        bounds += [ARS_EPISODE_FACTOR * t.ars_episodes * steps_per_episode for t in ars_targets]
    return max(bounds) if bounds else None


def train_command(job, seed, args, stop_return, max_timesteps, run_dir):
    overrides = [f"run.seed={seed}", f"eval.episodes={args.eval_episodes}",
                 f"stop.target_return={stop_return}", "stop.iterations=100000000"]
    if args.eval_every is not None:
        overrides.append(f"eval.every={args.eval_every}")
    overrides += args.set
    if max_timesteps:
        overrides.append(f"stop.timesteps={max_timesteps}")
    command = [common.PYTHON, "-m", "es_mpi", "train", str(job), "-n", str(args.ranks), "--run-dir", str(run_dir),
               "--force"]
    for override in overrides:
        command += ["--set", override]
    return command


def job_digest(job_path):
    """sha256 of the job's settings (comments and layout aside): --reuse needs the same job."""
    from es_mpi.parts.job_file import load_job

    settings = json.dumps(load_job(job_path).to_dict(), sort_keys=True)
    return hashlib.sha256(settings.encode()).hexdigest()


def code_digest(package=common.REPO / "es_mpi"):
    """sha256 of the es_mpi sources (paths and bytes): a run trained by other code, committed or not,
    is not this code's result, and --reuse must not report it as one."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def reuse_refusal(record, command, job_sha256, code_sha256):
    """Why a finished run's record cannot stand for training `command` now, or None when it can."""
    if record.get("command") != command[1:]:
        return "another command trained it"
    if record.get("job_sha256") != job_sha256:
        return "the job's settings changed since"
    if record.get("code_sha256") != code_sha256:
        return "other es_mpi code trained it (or its record predates the code check)"
    if record.get("exit_code") not in (0, 3):
        return f"it ended with exit code {record.get('exit_code')}"
    return None


def run_seed(job_path, command, run_dir, budget_seconds, reuse):
    """Train one seed, unless --reuse finds it finished with the same command, job settings and es_mpi
    code (whatever its wall-clock budget: the report shows each run's); returns the metrics rows and
    the run's record."""
    record_path = run_dir / "learning.json"
    metrics_path = run_dir / "metrics.csv"
    job_sha256, code_sha256 = job_digest(job_path), code_digest()
    if reuse and record_path.exists() and metrics_path.exists():
        record = json.loads(record_path.read_text())
        refusal = reuse_refusal(record, command, job_sha256, code_sha256)
        if refusal is None:
            print(f"reusing {run_dir}", flush=True)
            return read_metrics(metrics_path), record
        print(f"not reusing {run_dir}: {refusal}; training it again", flush=True)
    print(f"== {shlex.join(command)}", flush=True)
    log_path = run_dir.with_suffix(".log")
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=common.REPO,
                                   env=common.mpi_environment())
        budget_spent = False
        with ForwardStop(process) as stop:
            try:
                code = process.wait(timeout=budget_seconds)
            except subprocess.TimeoutExpired:
                budget_spent = True
                process.send_signal(signal.SIGUSR1)
                code = process.wait(timeout=STOP_GRACE_S)
    if stop.signalled or (code == STOPPED_EXIT_CODE and not budget_spent):
        raise RunStopped(f"{run_dir}: stopped by a signal (exit {code}); no later seed was started, and this one "
                         f"is not counted as finished (see {log_path})")
    if code not in (0, STOPPED_EXIT_CODE):
        raise RuntimeError(f"{shlex.join(command)} exited {code}; see {log_path}")
    record = {"command": command[1:], "job_sha256": job_sha256, "code_sha256": code_sha256, "exit_code": code,
              "budget_seconds": budget_seconds, "finished_unix": time.time()}
    record_path.write_text(json.dumps(record) + "\n")
    return read_metrics(metrics_path), record


def relative(path):
    """The path relative to the repo (where the runs start) when it is inside it, for readable commands."""
    path = pathlib.Path(path).resolve()
    try:
        return path.relative_to(common.REPO)
    except ValueError:
        return path


def job_options(job_path, overrides):
    """The env id and the options line (`options_text`) of a job file with `overrides` (SECTION.KEY=VALUE)."""
    from es_mpi.parts.job_file import load_job

    job = load_job(job_path, overrides).to_dict()
    return job["env"]["id"], options_text(job, [tuple(o.split("=", 1)[0].split(".", 1)) for o in overrides])


def options_text(job, extra_keys=()):
    """'key=value, ...' of the settings that tell the tuned jobs apart (eval.every included), then the
    (section, key) pairs of `extra_keys`, so a probe's report names the options it set."""
    keys = [("eval", "every")] + [(section, key) for section, key in OPTION_KEYS
                                  if not (key == "momentum" and job.get(section, {}).get("optimizer") != "sgd")]
    parts = []
    for section, key in dict.fromkeys(keys + list(extra_keys)):
        if key in job.get(section, {}):
            value = job[section][key]
            parts.append(f"{section}.{key}={json.dumps(value) if isinstance(value, (list, str)) else value}")
    return ", ".join(parts)


def fmt_steps(steps):
    return "-" if steps is None else f"{steps:,}"


def fmt_seconds(seconds):
    return "-" if seconds is None else f"{seconds:.0f}"


def summarise(values, fmt):
    """Median over seeds (a missing value counts as worse than any) and the per-seed list."""
    known = sorted(v for v in values if v is not None)
    missing = len(values) - len(known)
    ordered = known + [None] * missing
    mid = len(ordered) // 2
    if len(ordered) % 2:
        median = ordered[mid]
    else:
        median = None if ordered[mid] is None else (ordered[mid - 1] + ordered[mid]) / 2
    per_seed = " / ".join(fmt(v) for v in values)
    return fmt(median if median is None else type(known[0])(median)), per_seed, median


def rows_for_job(job_path, args):
    eval_override = [] if args.eval_every is None else [f"eval.every={args.eval_every}"]
    env_id, options = job_options(job_path, eval_override + args.set)
    targets = [Target(v, "--target") for v in args.target] if args.target else builtin_targets(env_id, args.targets)
    if not targets:
        raise SystemExit(f"{job_path}: no built-in target for {env_id}; give --target")
    stop_return = args.stop_return if args.stop_return is not None else targets[-1].value
    max_timesteps = timestep_budget(env_id, targets, args)
    per_seed, records, commands = [], [], []
    for seed in args.seed_list:
        run_dir = relative(args.runs_dir / f"{pathlib.Path(job_path).stem}-seed{seed}")
        command = train_command(job_path, seed, args, stop_return, max_timesteps, run_dir)
        commands.append(command)
        rows, record = run_seed(job_path, command, run_dir, args.budget_seconds, args.reuse)
        per_seed.append(rows)
        records.append(record)
    table = [target_row(env_id, job_path, target, per_seed) for target in targets]
    finals = [final_return(rows) for rows in per_seed]
    spent = [int(rows[-1]["timesteps"]) if rows else 0 for rows in per_seed]
    episodes_spent = [int(sum(row["episodes"] for row in rows)) for rows in per_seed]
    endings = [f"wall-clock budget {r['budget_seconds']:g} s" if r["exit_code"] == 3 else "stopping rule"
               for r in records]
    budgets = ""
    if any(r["budget_seconds"] for r in records):
        budgets = ", wall-clock budgets " + " / ".join(f"{r['budget_seconds'] or 0:g} s" for r in records)
    detail = (f"- `{job_path}` ({env_id}): {options}; stops at return {stop_return:g}"
              f"{'' if not max_timesteps else f' or {max_timesteps:,} timesteps'}; per seed: final evaluation "
              f"return {' / '.join(f'{f:.0f}' for f in finals)}, timesteps spent "
              f"{' / '.join(f'{s:,}' for s in spent)}, training episodes spent "
              f"{' / '.join(f'{e:,}' for e in episodes_spent)}, ended by {' / '.join(endings)}{budgets}")
    return table, detail, commands, (env_id, per_seed, targets)


def reference_text(target):
    if target.paper_steps is not None:
        return f"ES paper: {target.paper_steps:,} steps"
    if target.ars_episodes is not None:
        return f"ARS: {target.ars_episodes:,} episodes"
    return "-"


def target_row(env_id, job_path, target, per_seed):
    """One report row: a target's first reaches over the seeds (steps, episodes, wall time), how many
    seeds came within the reference's budget, and whether the median beats the reference."""
    reached = [first_reach(rows, target.value) for rows in per_seed]
    steps_median, steps_each, steps_value = summarise([r and r.timesteps for r in reached], fmt_steps)
    episodes_median, episodes_each, episodes_value = summarise([r and r.episodes for r in reached], fmt_steps)
    wall_median, wall_each, _ = summarise([r and r.seconds for r in reached], fmt_seconds)
    within = [within_reference(r, target) for r in reached]
    seeds_within = "-" if within[0] is None else f"{sum(within)} of {len(within)}"
    verdict = "-"
    if target.paper_steps is not None:
        verdict = "yes" if steps_value is not None and steps_value <= target.paper_steps else "no"
    elif target.ars_episodes is not None:
        verdict = "yes" if episodes_value is not None and episodes_value <= target.ars_episodes else "no"
    return {"env": env_id, "job": f"`{job_path}`", "target": f"{target.value:g} ({target.source})",
            "reference": reference_text(target), "median steps": steps_median, "steps per seed": steps_each,
            "median episodes": episodes_median, "episodes per seed": episodes_each,
            "median wall s": wall_median, "wall s per seed": wall_each,
            "seeds within budget": seeds_within, "beats reference": verdict}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("jobs", nargs="+", type=pathlib.Path, help="job files")
    parser.add_argument("--seeds", type=int, default=3, help="how many seeds (default %(default)s)")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds run from this one on (default %(default)s): another run can take later seeds")
    parser.add_argument("--ranks", type=int, default=2, help="MPI ranks per run (default %(default)s)")
    parser.add_argument("--targets", nargs="+", choices=("paper", "ars", "registry", "all"), default=["all"],
                        help="built-in targets, one or several: the ES paper's row, ARS's row (Table 1, in "
                             "episodes), the registry threshold, or all of them")
    parser.add_argument("--target", type=float, action="append", default=[],
                        help="a target return instead of the built-in ones (repeatable)")
    parser.add_argument("--stop-return", type=float, help="stop a run at this evaluation return "
                                                          "(default: the highest target)")
    parser.add_argument("--max-timesteps", type=int,
                        help="training timestep budget per run (default: the ES paper's steps for the env, "
                             "or for ARS's targets twice ARS's episodes at full length; 0: the job's own "
                             "stop.timesteps)")
    parser.add_argument("--budget-seconds", type=float,
                        help="wall-clock budget per run (then SIGUSR1: the run checkpoints and stops)")
    parser.add_argument("--eval-every", type=int,
                        help="evaluate every N iterations (default: the job's eval.every, listed in the report)")
    parser.add_argument("--eval-episodes", type=int, default=10, help="evaluation episodes (default %(default)s)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="extra job override for every run (repeatable)")
    parser.add_argument("--runs-dir", type=pathlib.Path, default=common.REPO / "runs" / "learning",
                        help="where the run directories go (default %(default)s)")
    parser.add_argument("--reuse", action="store_true",
                        help="parse a finished run instead of training it again, when the same command, job "
                             "settings and es_mpi sources trained it")
    parser.add_argument("--note", help="a sentence for the report (say, what else ran on the machine)")
    parser.add_argument("--name", type=common.report_name, default="learning",
                        help="report name: benchmarks/results/NAME.md")
    parser.add_argument("--no-plots", dest="plots", action="store_false",
                        help="skip the curves (benchmarks/results/NAME-ENV.png, drawn with matplotlib)")
    args = parser.parse_args(argv)
    if args.plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.exit(2, "learning.py: the curves need matplotlib: pip install 'es-mpi[plot]', or give --no-plots\n")
    args.seed_list = list(range(args.first_seed, args.first_seed + args.seeds))
    return args


def main():
    try:
        report(parse_args())
    except RunStopped as stopped:
        print(f"learning.py: {stopped}", file=sys.stderr)
        raise SystemExit(STOPPED_EXIT_CODE) from None


def report(args):
    """Train (or --reuse) every job's seeds, then write the report and the curves."""
    table, details, commands = [], [], []
    by_env = {}
    for job_path in args.jobs:
        job_table, detail, job_commands, (env_id, per_seed, targets) = rows_for_job(job_path, args)
        table += job_table
        details.append(detail)
        commands += job_commands
        runs, env_targets = by_env.setdefault(env_id, ([], {}))
        runs.append((pathlib.Path(job_path).stem, per_seed))
        env_targets.update({(t.value, t.source): t for t in targets})
    plots = []
    if args.plots:
        for env_id, (runs, env_targets) in by_env.items():
            path = plot_env(env_id, runs, list(env_targets.values()), common.RESULTS / f"{args.name}-{env_id}.png")
            plots.append(f"- {env_id}: `{path.relative_to(common.REPO)}`")
    body = [f"Seeds {', '.join(map(str, args.seed_list))}; {args.ranks} MPI rank(s) per run; the seeds of a job run "
            "one after the other. The centre policy is evaluated every eval.every iterations (per job below) on "
            f"{args.eval_episodes} deterministic episodes, so a first reach is known to within eval.every iterations; "
            + COLUMN_LEGEND, *(["", args.note] if args.note else []), "",
            common.markdown_table(REPORT_COLUMNS, table), "", "Jobs and options:", "", *details, "",
            *(["Curves (median and min-max over the seeds against training episodes):", "", *plots, ""] if plots else []),
            "Per-seed training commands:", "", "```", *(shlex.join(["python", *c[1:]]) for c in commands), "```"]
    common.write_report(args.name, "Learning: timesteps and episodes to reach a return", body)


if __name__ == "__main__":
    main()
