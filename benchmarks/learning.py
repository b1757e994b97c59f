"""Sample efficiency: training timesteps (and wall time) until the evaluation return first reaches a target.

Each job file runs for S seeds with a real `es-mpi train JOB -n RANKS` (mpiexec), one seed after
the other, until the highest target, a timestep budget or a wall-clock budget (SIGUSR1 to the
launcher: the run checkpoints and exits 3). The centre policy is evaluated every eval.every
iterations (the job's, or --eval-every) on 10 deterministic episodes; "reached at" is the first evaluation
whose mean return is at or above the target, and the timesteps it reports are the training
timesteps spent up to and including that iteration (evaluation episodes are not counted).
Wall time adds up the iterations' wall times (evaluations included; process start-up, the noise
table, checkpoint writes and the gap of a resumed run are not). Timesteps do not depend on the
machine's load; wall times do.

Built-in targets per env: the ES paper's row (Salimans et al. 2017, Table 3) and gymnasium's
registry threshold (`gymnasium.spec(id).reward_threshold`).

The README's table (add --reuse to read finished runs instead of training them again):
    python benchmarks/learning.py jobs/inverted_pendulum.toml jobs/swimmer.toml \
        jobs/halfcheetah.toml jobs/hopper.toml jobs/walker2d.toml --ranks 1 --targets paper
The registry thresholds within a wall-clock budget, one seed:
    python benchmarks/learning.py jobs/halfcheetah.toml --targets registry --max-timesteps 0 \
        --seeds 1 --ranks 1 --budget-seconds 3600 --runs-dir runs/learning_registry --name learning_registry
"""

import argparse
import csv
import hashlib
import json
import math
import pathlib
import shlex
import signal
import subprocess
import time

import common

# env id: (target return, timesteps ES needed), Salimans et al. 2017, Table 3
PAPER_ROWS = {
    "InvertedPendulum-v5": (1000.0, 455_000),
    "Swimmer-v5": (128.0, 1_390_000),
    "HalfCheetah-v5": (2385.0, 2_880_000),
    "Hopper-v5": (1718.0, 3_730_000),
    "Walker2d-v5": (1916.0, 12_900_000),
}
OPTION_KEYS = (("policy", "hidden"), ("policy", "action"), ("strategy", "pairs"), ("strategy", "top_pairs"),
               ("strategy", "shaping"), ("strategy", "optimizer"), ("strategy", "momentum"), ("strategy", "sigma"),
               ("strategy", "learning_rate"), ("strategy", "l2"), ("obs_norm", "probability"),
               ("env", "alive_bonus"), ("env", "step_cap"))
STOP_GRACE_S = 600  # after SIGUSR1 the run finishes its iteration and checkpoints


class Target:
    def __init__(self, value, source, paper_steps=None):
        self.value, self.source, self.paper_steps = float(value), source, paper_steps


def builtin_targets(env_id, which):
    """[Target] for the env: the ES paper's row and/or the registry threshold, lowest first."""
    targets = []
    if which in ("paper", "all") and env_id in PAPER_ROWS:
        value, steps = PAPER_ROWS[env_id]
        targets.append(Target(value, "ES paper", steps))
    if which in ("registry", "all"):
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
    """(timesteps, seconds of training) at the first evaluation >= target, or None.

    The seconds add up the iterations' wall times (evaluation included): process start-up,
    checkpoint writes and the gap of a stopped and resumed run are not counted.
    """
    seconds = 0.0
    for row in rows:
        seconds += row["iteration_s"]
        if math.isfinite(row["eval_return"]) and row["eval_return"] >= target:
            return int(row["timesteps"]), seconds
    return None


def final_return(rows):
    """The last evaluation return of the run (NaN if it was never evaluated)."""
    finite = [row["eval_return"] for row in rows if math.isfinite(row["eval_return"])]
    return finite[-1] if finite else math.nan


def timestep_budget(env_id, args):
    """--max-timesteps; by default the ES paper's steps for the env (past them its row is lost), else the job's."""
    if args.max_timesteps is not None:
        return args.max_timesteps or None
    return PAPER_ROWS[env_id][1] if env_id in PAPER_ROWS else None


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
    from es_mpi.job.parse import load_job

    settings = json.dumps(load_job(job_path).to_dict(), sort_keys=True)
    return hashlib.sha256(settings.encode()).hexdigest()


def run_seed(job_path, command, run_dir, budget_seconds, reuse):
    """Train one seed, unless --reuse finds it finished with the same command and job settings (whatever
    its wall-clock budget: the report shows each run's); returns the metrics rows and the run's record."""
    record_path = run_dir / "learning.json"
    metrics_path = run_dir / "metrics.csv"
    job_sha256 = job_digest(job_path)
    if reuse and record_path.exists() and metrics_path.exists():
        record = json.loads(record_path.read_text())
        if record["command"] == command[1:] and record.get("job_sha256") == job_sha256 and \
                record["exit_code"] in (0, 3):
            print(f"reusing {run_dir}", flush=True)
            return read_metrics(metrics_path), record
    print(f"== {shlex.join(command)}", flush=True)
    log_path = run_dir.with_suffix(".log")
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=common.REPO,
                                   env=common.mpi_environment())
        try:
            code = process.wait(timeout=budget_seconds)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGUSR1)
            code = process.wait(timeout=STOP_GRACE_S)
    if code not in (0, 3):
        raise RuntimeError(f"{shlex.join(command)} exited {code}; see {log_path}")
    record = {"command": command[1:], "job_sha256": job_sha256, "exit_code": code, "budget_seconds": budget_seconds,
              "finished_unix": time.time()}
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
    """The env id and 'key=value, ...' of the settings that tell the tuned jobs apart (eval.every included)."""
    from es_mpi.job.parse import load_job

    job = load_job(job_path, overrides).to_dict()
    parts = [f"eval.every={job['eval']['every']}"]
    for section, key in OPTION_KEYS:
        if key in job.get(section, {}) and not (key == "momentum" and job[section].get("optimizer") != "sgd"):
            value = job[section][key]
            parts.append(f"{section}.{key}={json.dumps(value) if isinstance(value, (list, str)) else value}")
    return job["env"]["id"], ", ".join(parts)


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
    max_timesteps = timestep_budget(env_id, args)
    per_seed, records, commands = [], [], []
    for seed in args.seed_list:
        run_dir = relative(args.runs_dir / f"{pathlib.Path(job_path).stem}-seed{seed}")
        command = train_command(job_path, seed, args, stop_return, max_timesteps, run_dir)
        commands.append(command)
        rows, record = run_seed(job_path, command, run_dir, args.budget_seconds, args.reuse)
        per_seed.append(rows)
        records.append(record)
    table = []
    for target in targets:
        reached = [first_reach(rows, target.value) for rows in per_seed]
        steps_median, steps_each, steps_value = summarise([r and r[0] for r in reached], fmt_steps)
        wall_median, wall_each, _ = summarise([r and r[1] for r in reached], fmt_seconds)
        verdict = "-"
        if target.paper_steps is not None:
            verdict = "yes" if steps_value is not None and steps_value <= target.paper_steps else "no"
        table.append({"env": env_id, "job": f"`{job_path}`", "target": f"{target.value:g} ({target.source})",
                      "ES paper steps": fmt_steps(target.paper_steps), "median steps": steps_median,
                      "steps per seed": steps_each, "median wall s": wall_median, "wall s per seed": wall_each,
                      "beats paper": verdict})
    finals = [final_return(rows) for rows in per_seed]
    spent = [int(rows[-1]["timesteps"]) if rows else 0 for rows in per_seed]
    endings = [f"wall-clock budget {r['budget_seconds']:g} s" if r["exit_code"] == 3 else "stopping rule"
               for r in records]
    budgets = ""
    if any(r["budget_seconds"] for r in records):
        budgets = ", wall-clock budgets " + " / ".join(f"{r['budget_seconds'] or 0:g} s" for r in records)
    detail = (f"- `{job_path}` ({env_id}): {options}; stops at return {stop_return:g}"
              f"{'' if not max_timesteps else f' or {max_timesteps:,} timesteps'}; per seed: final evaluation "
              f"return {' / '.join(f'{f:.0f}' for f in finals)}, timesteps spent "
              f"{' / '.join(f'{s:,}' for s in spent)}, ended by {' / '.join(endings)}{budgets}")
    return table, detail, commands


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("jobs", nargs="+", type=pathlib.Path, help="job files")
    parser.add_argument("--seeds", type=int, default=3, help="how many seeds (default %(default)s)")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds run from this one on (default %(default)s): another run can take later seeds")
    parser.add_argument("--ranks", type=int, default=2, help="MPI ranks per run (default %(default)s)")
    parser.add_argument("--targets", choices=("paper", "registry", "all"), default="all",
                        help="built-in targets: the ES paper's row, the registry threshold, or both")
    parser.add_argument("--target", type=float, action="append", default=[],
                        help="a target return instead of the built-in ones (repeatable)")
    parser.add_argument("--stop-return", type=float, help="stop a run at this evaluation return "
                                                          "(default: the highest target)")
    parser.add_argument("--max-timesteps", type=int,
                        help="training timestep budget per run (default: the ES paper's steps for the env; "
                             "0: the job's own stop.timesteps)")
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
                        help="parse a finished run with the same command instead of training it again")
    parser.add_argument("--note", help="a sentence for the report (say, what else ran on the machine)")
    parser.add_argument("--name", default="learning", help="report name: benchmarks/results/NAME.md")
    args = parser.parse_args(argv)
    args.seed_list = list(range(args.first_seed, args.first_seed + args.seeds))
    return args


def main():
    args = parse_args()
    table, details, commands = [], [], []
    for job_path in args.jobs:
        job_table, detail, job_commands = rows_for_job(job_path, args)
        table += job_table
        details.append(detail)
        commands += job_commands
    columns = ["env", "job", "target", "ES paper steps", "median steps", "steps per seed", "median wall s",
               "wall s per seed", "beats paper"]
    body = [f"Seeds {', '.join(map(str, args.seed_list))}; {args.ranks} MPI rank(s) per run; the seeds of a job run "
            "one after the other. The centre policy is evaluated every eval.every iterations (per job below) on "
            f"{args.eval_episodes} deterministic episodes, so a first reach is known to within eval.every iterations; "
            "'steps' are the training timesteps spent up to the first evaluation at or above the target "
            "(evaluation episodes are not counted), '-' where a seed never got there. "
            "Wall time adds up the iterations' wall times (evaluations included; start-up, checkpoint writes "
            "and the gap of a resumed run are not) and depends on the machine's load; timesteps do not. "
            "The median counts a seed that never reached the target as worse than any that did.",
            *(["", args.note] if args.note else []), "",
            common.markdown_table(columns, table), "", "Jobs and options:", "", *details, "",
            "Per-seed training commands:", "", "```", *(shlex.join(["python", *c[1:]]) for c in commands), "```"]
    common.write_report(args.name, "Learning: timesteps to reach a return", body)


if __name__ == "__main__":
    main()
