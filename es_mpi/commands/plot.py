"""`es-mpi plot`: one metric of several run directories (metrics.csv), compared, to a PNG or SVG.

Runs of the same job and settings are one group: by default, the same job apart from run.seed
and where the run lives (run.name, run.dir); `--group-by` names the keys that decide instead.
A group is drawn as the median over its runs with a min-max band, on the stretch of x where
every run has data, so seeds compare the way papers report them.
"""

import csv
import io
import pathlib

import numpy as np

from es_mpi.core.errors import UserError
from es_mpi.core.guarded_read import UnreadableFile, read_text
from es_mpi.parts.job_file import job_from_text
from es_mpi.records import checkpoint as ckpt_io
from es_mpi.records.metrics import METRICS_NAME

MAX_METRICS_BYTES = 1 << 30  # a million iterations of 30 columns fit many times over

GRID_POINTS = 200
DEFAULT_METRIC = "eval_return"
NOT_A_SETTING = ("run.seed", "run.name", "run.dir")
X_AXES = {"timesteps": "timesteps", "frames": "emulator frames (timesteps x atari.frame_skip)",
          "episodes": "episodes", "wall": "training wall time (s)"}
FORMATS = (".png", ".svg")


def read_metrics(run_dir):
    """{column: float array} from RUN_DIR/metrics.csv."""
    path = pathlib.Path(run_dir) / METRICS_NAME
    try:
        rows = list(csv.DictReader(io.StringIO(read_text(path, MAX_METRICS_BYTES, "metrics"), newline="")))
    except UnreadableFile as err:
        raise UserError(f"{err}; is {run_dir} a run directory?") from None
    except csv.Error as err:
        raise UserError(f"{path}: not an es-mpi metrics file ({err})") from None
    if not rows:
        raise UserError(f"{path}: no iterations recorded yet")
    try:
        return {key: np.array([float(row[key]) for row in rows]) for key in rows[0]}
    except (ValueError, TypeError) as err:
        raise UserError(f"{path}: not an es-mpi metrics file ({err})") from None


def x_values(metrics, x_axis, run_dir):
    """Timesteps and wall time as recorded so far; episodes summed over the iterations; frames
    (Atari) are timesteps times the job's frame skip, as the ES paper counts them. Wall time adds
    up the iterations' times, so a resumed run's pause does not count."""
    if x_axis == "timesteps":
        return metrics["timesteps"]
    if x_axis == "frames":
        settings = flat_settings(run_dir)
        if settings is None or settings.get("atari.frame_skip") is None:
            raise UserError(f"--x frames: {run_dir} is not an Atari run with a checkpoint (no atari.frame_skip); "
                            "use --x timesteps")
        return metrics["timesteps"] * settings["atari.frame_skip"]
    if x_axis == "episodes":
        return np.cumsum(metrics["episodes"])
    return np.cumsum(metrics["iteration_s"])


def flat_settings(run_dir):
    """{"section.key": value} of the job in the run's newest valid checkpoint, or None."""
    found = ckpt_io.newest_valid(run_dir)
    if found is None:
        return None
    job = job_from_text(found[1].config_toml, found[0]).to_dict()
    return {f"{section}.{key}": value for section, table in job.items() for key, value in table.items()}


def group_key(settings, run_dir, group_by):
    """Runs with equal keys share a group; a run without a checkpoint is a group of its own."""
    if settings is None:
        return ("run", str(run_dir))
    if group_by:
        return tuple(repr(settings.get(key)) for key in group_by)
    return tuple(sorted((key, repr(value)) for key, value in settings.items() if key not in NOT_A_SETTING))


def group_label(settings, run_dir, group_by, differing):
    if settings is None:
        return pathlib.Path(run_dir).name
    if group_by:
        return " ".join(f"{key}={settings.get(key)}" for key in group_by)
    name = f"{settings['env.id']} {settings['strategy.name']}"
    if settings.get("objective.function"):
        name = f"{settings['objective.function']} {settings['strategy.name']}"
    extra = [f"{key}={settings[key]}" for key in differing
             if key in settings and key not in ("env.id", "strategy.name")]
    return " ".join([name, *extra[:3]])


def group_runs(run_dirs, group_by=None):
    """[(label, [run_dir, ...])] in the order the groups first appear."""
    settings = {run_dir: flat_settings(run_dir) for run_dir in run_dirs}
    groups = {}
    for run_dir in run_dirs:
        groups.setdefault(group_key(settings[run_dir], run_dir, group_by), []).append(run_dir)
    known = [settings[runs[0]] for runs in groups.values() if settings[runs[0]] is not None]
    keys = sorted(set().union(*known)) if known else []
    differing = [key for key in keys if key not in NOT_A_SETTING
                 and len({repr(s.get(key)) for s in known}) > 1]
    return [(group_label(settings[runs[0]], runs[0], group_by, differing), runs) for runs in groups.values()]


def band(xs_runs, ys_runs):
    """Common x grid where every run has data; min, median, max of the runs on it."""
    end = min(xs[-1] for xs in xs_runs)
    start = max(xs[0] for xs in xs_runs)
    grid = np.linspace(start, end, GRID_POINTS) if end > start else np.array([end])
    on_grid = np.array([np.interp(grid, xs, ys) for xs, ys in zip(xs_runs, ys_runs)])
    return grid, on_grid.min(axis=0), np.median(on_grid, axis=0), on_grid.max(axis=0)


def metric_curve(run_dir, metrics, metric, x_axis):
    """(x, y) of the rows where the metric was recorded (eval_return: every eval.every iterations)."""
    if metric not in metrics:
        raise UserError(f"--metric {metric}: {run_dir}/metrics.csv has no such column; it has "
                        + ", ".join(metrics))
    xs, ys = x_values(metrics, x_axis, run_dir), metrics[metric]
    recorded = np.isfinite(ys)
    if not recorded.any():
        raise UserError(f"--metric {metric}: never recorded in {run_dir}/metrics.csv"
                        + (" (eval.every = 0?)" if metric == DEFAULT_METRIC else ""))
    return xs[recorded], ys[recorded]


def parse_group_by(text):
    if text is None:
        return None
    keys = [key.strip() for key in text.split(",") if key.strip()]
    if not keys or any(key.count(".") != 1 for key in keys):
        raise UserError(f"--group-by {text!r}: give SECTION.KEY names, comma-separated (e.g. env.id,strategy.sigma)")
    return keys


def plot_command(args):
    output = pathlib.Path(args.output)
    if output.suffix.lower() not in FORMATS:
        raise UserError(f"--output {output}: the plot is written as .png or .svg")
    group_by = parse_group_by(args.group_by)
    try:
        import matplotlib

        matplotlib.use("Agg")
        matplotlib.rcParams["svg.fonttype"] = "none"  # SVG text stays text: searchable, editable
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("plot needs matplotlib: pip install 'es-mpi[plot]'") from None
    groups = group_runs(args.run_dirs, group_by)
    figure, axis = plt.subplots(figsize=(8, 5))
    for color, (label, runs) in enumerate(groups):
        curves = [metric_curve(run_dir, read_metrics(run_dir), args.metric, args.x) for run_dir in runs]
        grid, low, median, high = band([x for x, _ in curves], [y for _, y in curves])
        seeds = f"{len(runs)} seed{'s' * (len(runs) > 1)}"
        axis.plot(grid, median, color=f"C{color}", label=f"{label} ({seeds})")
        if len(runs) > 1:
            axis.fill_between(grid, low, high, color=f"C{color}", alpha=0.25, linewidth=0)
    axis.set_xlabel(X_AXES[args.x])
    axis.set_ylabel(args.metric.replace("_", " ") + (" (centre policy)" if args.metric == DEFAULT_METRIC else ""))
    axis.grid(alpha=0.3)
    axis.legend(loc="best", fontsize="small")
    several = any(len(runs) > 1 for _, runs in groups)
    axis.set_title("median over seeds, band: min to max" if several else "one run per curve")
    figure.tight_layout()
    try:
        figure.savefig(output, dpi=100)
    except OSError as err:
        raise UserError(f"{output}: cannot write the plot ({err.strerror})") from None
    n_runs = sum(len(runs) for _, runs in groups)
    print(f"plot: {output} ({args.metric} of {n_runs} runs in {len(groups)} groups)")
    return 0
