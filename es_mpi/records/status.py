"""status.json in the run directory: where a run stands, for people and scripts (rank 0 writes it).

Rewritten atomically every iteration (temporary file + rename), so a reader never sees half a file.
"""

import json
import math
import os
import pathlib
import time

from es_mpi.core.environment import slurm_restart_count
from es_mpi.records.safe_files import replace_text

STATUS_NAME = "status.json"
RECENT_ITERATIONS = 10


def _finite_or_none(value):
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def seconds_to_stop(stop, iteration, timesteps, rows):
    """Estimated seconds until the iteration or timestep budget is spent, from recent iterations."""
    recent = rows[-RECENT_ITERATIONS:]
    if not recent:
        return None
    seconds_per_iteration = sum(r["iteration_s"] for r in recent) / len(recent)
    remaining = max(0, stop.iterations - iteration)
    if stop.timesteps is not None:
        steps_per_iteration = (recent[-1]["timesteps"] - recent[0]["timesteps"]) / max(1, len(recent) - 1) \
            if len(recent) > 1 else recent[-1]["timesteps"] / max(1, recent[-1]["iteration"])
        if steps_per_iteration > 0:
            remaining = min(remaining, math.ceil(max(0, stop.timesteps - timesteps) / steps_per_iteration))
    return remaining * seconds_per_iteration


def status_record(*, state, job, iteration, timesteps, best_eval_return, last_eval_return, checkpoint, rows,
                  n_ranks, node_sizes=None, version_changes=()):
    """The status as a JSON-able dict; `state` is running, done (reason) or interrupted (signal);
    `node_sizes` the ranks of each node (run/nodes.py), each node holding one noise table."""
    now = time.time()
    age = None
    if checkpoint is not None and pathlib.Path(checkpoint).exists():
        age = now - pathlib.Path(checkpoint).stat().st_mtime
    return {
        "state": state,
        "updated_unix": now,
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now)),
        "env": None if job.objective.function else job.env.id,
        "objective": job.objective.function,
        "strategy": job.strategy.name,
        "ranks": n_ranks,
        "node_sizes": None if node_sizes is None else list(node_sizes),
        "iteration": iteration,
        "timesteps": timesteps,
        "best_eval_return": _finite_or_none(best_eval_return),
        "last_eval_return": _finite_or_none(last_eval_return),
        "last_return_mean": _finite_or_none(rows[-1]["return_mean"]) if rows else None,
        "last_checkpoint": None if checkpoint is None else str(checkpoint),
        "last_checkpoint_age_s": age,
        "stop_iterations": job.stop.iterations,
        "stop_timesteps": job.stop.timesteps,
        "stop_target_return": job.stop.target_return,
        "estimated_seconds_to_stop": seconds_to_stop(job.stop, iteration, timesteps, rows),
        "version_changes": list(version_changes),  # package versions that changed at the last resume
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "slurm_restart_count": slurm_restart_count(),
    }


def write_status(run_dir, record):
    replace_text(pathlib.Path(run_dir) / STATUS_NAME, json.dumps(record, indent=2) + "\n")
