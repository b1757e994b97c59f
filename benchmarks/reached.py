"""Training episodes, timesteps and seconds to each target, read from run directories: trains nothing.

benchmarks/learning.py trains its own runs. The long rows of ARS's table (Walker2d, Ant, Humanoid:
hours per seed) are plain `es-mpi train` runs continued over several sittings with --resume, which
exact resume makes one run each. This reads each run directory's newest valid checkpoint (its
sealed config and its whole metrics history, so a half-written metrics.csv cannot skew it), groups
the runs by env, and writes learning.py's report for them: per target, the episodes per seed
(ordered by run.seed), their median (a seed short of the target counts as worse than any that got
there), the seeds within the reference's budget, and the curves (benchmarks/results/NAME-ENV.png).
A run still under way is read as it stands at its newest checkpoint.

ARS's long rows in docs/results.md:
    python benchmarks/reached.py runs/ars/walker2d-seed{0,1,2,3,4} runs/ars/ant-seed{0,1,2,3,4} \\
        runs/ars/humanoid-seed{0,1,2,3,4} --targets ars --name learning_ars_long
"""

import argparse
import math
import pathlib
import sys

import common
import learning
from es_mpi.core.errors import UserError
from es_mpi.parts.job_file import job_from_text
from es_mpi.records import checkpoint

NEEDED_COLUMNS = ("timesteps", "episodes", "iteration_s", "eval_return")


class BadRun(Exception):
    """A run directory this report cannot read: its message is the one-line error."""


def read_run(run_dir):
    """(env id, seed, job settings dict, metrics rows) from the run's newest valid checkpoint."""
    try:
        path, ckpt = checkpoint.resolve(run_dir)
        job = job_from_text(ckpt.config_toml, path).to_dict()
    except UserError as err:
        raise BadRun(str(err)) from None
    missing = [name for name in NEEDED_COLUMNS if name not in ckpt.metrics]
    if missing:
        raise BadRun(f"{path}: metrics: no {', '.join(missing)} column (written by an older es-mpi)")
    rows = [{name: float(column[k]) for name, column in ckpt.metrics.items()} for k in range(ckpt.iteration)]
    return job["env"]["id"], job["run"]["seed"], job, rows


def group_runs(run_dirs):
    """{env id: [(seed, run dir, job, rows)] ordered by seed}; two runs of one seed in an env are refused."""
    by_env = {}
    for run_dir in run_dirs:
        env_id, seed, job, rows = read_run(run_dir)
        by_env.setdefault(env_id, []).append((seed, run_dir, job, rows))
    for env_id, runs in by_env.items():
        runs.sort(key=lambda run: run[0])
        seeds = [run[0] for run in runs]
        repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
        if repeated:
            raise BadRun(f"{env_id}: seed {repeated[0]} is given twice ("
                         + ", ".join(str(run[1]) for run in runs if run[0] == repeated[0])
                         + "): one run per seed, or one report per job")
    return by_env


def runs_label(runs):
    """The run directories of one env, short: the first and the last when there are more than two."""
    names = [str(learning.relative(run[1])) for run in runs]
    return " ... ".join([names[0], names[-1]]) if len(names) > 2 else ", ".join(names)


def run_details(env_id, runs):
    """Markdown lines for one env: the options of its first run, then where each seed stands."""
    lines = [f"- {env_id}: {learning.options_text(runs[0][2])}"]
    for seed, run_dir, _, rows in runs:
        best = max((row["eval_return"] for row in rows if math.isfinite(row["eval_return"])), default=math.nan)
        lines.append(f"  - seed {seed} (`{learning.relative(run_dir)}`): iteration {len(rows)}, "
                     f"{int(sum(row['episodes'] for row in rows)):,} training episodes, "
                     f"{int(rows[-1]['timesteps']) if rows else 0:,} timesteps, "
                     f"{sum(row['iteration_s'] for row in rows):,.0f} s of iterations; evaluation return: "
                     f"last {learning.final_return(rows):.0f}, best {best:.0f}")
    return lines


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=pathlib.Path, help="run directories (es-mpi train --run-dir)")
    parser.add_argument("--targets", nargs="+", choices=("paper", "ars", "registry", "all"), default=["ars"],
                        help="built-in targets, as learning.py's (default: ARS's row)")
    parser.add_argument("--target", type=float, action="append", default=[],
                        help="a target return instead of the built-in ones (repeatable)")
    parser.add_argument("--note", help="a sentence for the report (say, where the runs ran)")
    parser.add_argument("--name", type=common.report_name, default="reached",
                        help="report name: benchmarks/results/NAME.md")
    parser.add_argument("--no-plots", dest="plots", action="store_false",
                        help="skip the curves (benchmarks/results/NAME-ENV.png, drawn with matplotlib)")
    return parser.parse_args(argv)


def report(args):
    table, details, plots = [], [], []
    for env_id, runs in group_runs(args.runs).items():
        targets = ([learning.Target(v, "--target") for v in args.target] if args.target
                   else learning.builtin_targets(env_id, args.targets))
        if not targets:
            raise BadRun(f"{env_id}: no built-in target of {' '.join(args.targets)} for this env; give --target")
        per_seed = [run[3] for run in runs]
        table += [learning.target_row(env_id, runs_label(runs), target, per_seed) for target in targets]
        details += run_details(env_id, runs)
        if args.plots:
            path = learning.plot_env(env_id, [(runs_label(runs), per_seed)], targets,
                                     common.RESULTS / f"{args.name}-{env_id}.png")
            plots.append(f"- {env_id}: `{path.relative_to(common.REPO)}`")
    body = ["Read from the run directories' newest valid checkpoints; nothing was trained. A run's seeds are "
            "its `run.seed`; a run continued with --resume counts every sitting's iterations. " + learning.COLUMN_LEGEND,
            *(["", args.note] if args.note else []), "",
            common.markdown_table(learning.REPORT_COLUMNS, table), "", "Runs:", "", *details, "",
            *(["Curves (median and min-max over the seeds against training episodes):", "", *plots, ""]
              if plots else [])]
    common.write_report(args.name, "Learning, read from run directories: episodes to reach a return", body)


def main():
    args = parse_args()
    if args.plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("reached.py: the curves need matplotlib: pip install 'es-mpi[plot]', or give --no-plots",
                  file=sys.stderr)
            raise SystemExit(2) from None
    common.refusing(BadRun, "reached.py", report, args)


if __name__ == "__main__":
    main()
