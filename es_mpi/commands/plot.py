"""`es-mpi plot`: learning curves from run directories (metrics.csv) to a PNG.

Runs whose jobs agree on what is learned (env, policy, strategy, noise, obs_norm; not seed,
stopping rule or checkpointing) are one group,
drawn as the mean over its runs with a min-max band; the band is drawn where all runs have data.
"""

import csv
import pathlib

import numpy as np

from es_mpi.records import checkpoint as ckpt_io
from es_mpi.job.parse import job_from_text
from es_mpi.core.errors import UserError

GRID_POINTS = 200
GROUP_SECTIONS = ("env", "policy", "strategy", "noise", "obs_norm")


def read_metrics(run_dir):
    """{column: float array} from RUN_DIR/metrics.csv."""
    path = pathlib.Path(run_dir) / "metrics.csv"
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as err:
        raise UserError(f"{path}: cannot read metrics ({err.strerror}); is {run_dir} a run directory?") from None
    if not rows:
        raise UserError(f"{path}: no iterations recorded yet")
    try:
        return {key: np.array([float(row[key]) for row in rows]) for key in ("timesteps", "iteration_s",
                                                                                "return_mean")}
    except (KeyError, ValueError, TypeError) as err:
        raise UserError(f"{path}: not an es-mpi metrics file ({err})") from None


def group_key(run_dir):
    """(key, label): the job's GROUP_SECTIONS, from the newest checkpoint."""
    found = ckpt_io.newest_valid(run_dir)
    if found is None:
        return str(run_dir), pathlib.Path(run_dir).name
    job = job_from_text(found[1].config_toml, found[0]).to_dict()
    return repr([job[name] for name in GROUP_SECTIONS]), f"{job['env']['id']} {job['strategy']['name']}"


def band(xs_runs, ys_runs):
    """Common x grid up to the shortest run; min, mean, max of the runs on it."""
    end = min(xs[-1] for xs in xs_runs)
    start = max(xs[0] for xs in xs_runs)
    grid = np.linspace(start, end, GRID_POINTS) if end > start else np.array([end])
    on_grid = np.array([np.interp(grid, xs, ys) for xs, ys in zip(xs_runs, ys_runs)])
    return grid, on_grid.min(axis=0), on_grid.mean(axis=0), on_grid.max(axis=0)


def plot_command(args):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("plot needs matplotlib: pip install 'es-mpi[plot]'") from None
    groups = {}
    for run_dir in args.run_dirs:
        key, label = group_key(run_dir)
        if key not in groups and any(label == other for other, _ in groups.values()):
            label = f"{label} #{len(groups) + 1}"
        groups.setdefault(key, (label, []))[1].append(read_metrics(run_dir))
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for color, (label, runs) in enumerate(groups.values()):
        ys = [run["return_mean"] for run in runs]
        for axis, xs in ((axes[0], [run["timesteps"] for run in runs]),
                         (axes[1], [np.cumsum(run["iteration_s"]) for run in runs])):
            grid, low, mean, high = band(xs, ys)
            axis.plot(grid, mean, color=f"C{color}", label=f"{label} ({len(runs)} run{'s' * (len(runs) > 1)})")
            axis.fill_between(grid, low, high, color=f"C{color}", alpha=0.25, linewidth=0)
    axes[0].set_xlabel("timesteps")
    axes[1].set_xlabel("training wall time (s)")
    axes[0].set_ylabel("population mean return")
    for axis in axes:
        axis.grid(alpha=0.3)
    axes[0].legend(loc="best", fontsize="small")
    figure.suptitle("mean over runs, band: min to max")
    figure.tight_layout()
    output = pathlib.Path(args.output)
    try:
        figure.savefig(output, dpi=100)
    except OSError as err:
        raise UserError(f"{output}: cannot write the plot ({err.strerror})") from None
    print(f"plot: {output} ({sum(len(r) for _, r in groups.values())} runs in {len(groups)} groups)")
    return 0
