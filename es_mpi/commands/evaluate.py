"""`es-mpi eval` and `es-mpi inspect`: checkpoints reloaded in plain Python, no MPI."""

import json
import math
import pathlib
import shutil

import numpy as np

from es_mpi.commands import video
from es_mpi.core.errors import CheckpointError, UserError
from es_mpi.parts.envs import uses_mujoco
from es_mpi.parts.job_file import job_from_text
from es_mpi.records import checkpoint as ckpt_io
from es_mpi.run.evaluation import evaluate_center, evaluation_return
from es_mpi.run.trained_policy import ready_to_play


def load_for_play(path, render_mode=None, trust_code=False):
    """(path, checkpoint, task, normalizer) ready to play the centre policy: loaded once, built once.

    The checkpoint's job is someone else's text: a module it names is imported only with trust_code."""
    path, ckpt = ckpt_io.resolve(path)
    job = job_from_text(ckpt.config_toml, path)
    if render_mode is not None and uses_mujoco(job.env.id):
        video.choose_mujoco_gl()
    task, normalizer = ready_to_play(path, ckpt, job, render_mode, trust_code)
    return path, ckpt, task, normalizer


def eval_command(args):
    if args.all:
        return eval_all_command(args)
    if args.video:
        video.check_video_support(args.video)
    path, ckpt, task, normalizer = load_for_play(args.checkpoint, "rgb_array" if args.video else None,
                                                 args.trust_code)
    job, env = task.job, task.env
    episodes = (1 if args.video else job.eval.episodes) if args.episodes is None else args.episodes
    if episodes < 1:
        raise UserError(f"--episodes: need at least 1, got {episodes}")
    if args.seed is not None and args.seed < 0:
        raise UserError(f"--seed: must be >= 0, got {args.seed}")
    print(f"{path}: {job.task_name()}, iteration {ckpt.iteration}, {ckpt.timesteps} timesteps")
    if args.video:
        folder = video.scratch_folder(args.video)
        env = video.recording(env, folder)
    results = evaluate_center(task, env, ckpt.params, normalizer, ckpt.iteration, range(episodes), args.seed)
    env.close()
    if args.video:
        for written in video.move_recordings(folder, args.video, episodes):
            print(f"video: {written}")
        shutil.rmtree(folder.parent)
    for index, episode in enumerate(results):
        print(f"episode {index:4d}: return {episode.total_return:10.2f}  length {episode.length}")
    returns = np.array([e.total_return for e in results])
    print(f"mean {returns.mean():.2f}  std {returns.std():.2f}  min {returns.min():.2f}  "
          f"max {returns.max():.2f}  over {episodes} episodes")
    if args.seed is None and episodes == job.eval.episodes and math.isfinite(ckpt.eval_return):
        mean = evaluation_return(returns)
        verdict = "identical" if mean == ckpt.eval_return else "DIFFERENT"
        print(f"evaluation return {mean!r}; training recorded {ckpt.eval_return!r} for these episodes "
              f"of the state after iteration {ckpt.iteration}: {verdict}")
    return 0


def kept_checkpoints(run_dir):
    """Every checkpoint a run directory keeps: periodic ones by iteration, then best.h5."""
    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: --all needs a run directory")
    paths = [path for _, path in sorted(ckpt_io.periodic_checkpoints(run_dir))]
    if (run_dir / ckpt_io.BEST_NAME).exists():
        paths.append(run_dir / ckpt_io.BEST_NAME)
    if not paths:
        raise CheckpointError(run_dir, "no checkpoints in this run directory")
    return paths


def eval_all_command(args):
    """One table row per kept checkpoint: the same episodes for each, so rows compare."""
    if args.video:
        raise UserError("--video and --all do not go together; give one checkpoint for a video")
    print(f"{'checkpoint':<20} {'iteration':>9} {'timesteps':>11} {'mean':>10} {'std':>9} {'min':>10} {'max':>10}")
    for candidate in kept_checkpoints(args.checkpoint):
        try:
            path, ckpt, task, normalizer = load_for_play(candidate, trust_code=args.trust_code)
        except CheckpointError as err:
            print(f"{candidate.name:<20} unreadable: {err.reason}")
            continue
        episodes = task.job.eval.episodes if args.episodes is None else args.episodes
        seed = task.job.run.seed if args.seed is None else args.seed
        results = evaluate_center(task, task.env, ckpt.params, normalizer, 0, range(episodes), seed)
        task.close()
        returns = np.array([e.total_return for e in results])
        print(f"{path.name:<20} {ckpt.iteration:>9d} {ckpt.timesteps:>11d} {returns.mean():>10.2f} "
              f"{returns.std():>9.2f} {returns.min():>10.2f} {returns.max():>10.2f}")
    return 0


def inspect_command(args):
    path, ckpt = ckpt_io.resolve(args.checkpoint)
    print(f"checkpoint: {path}")
    print(f"iteration: {ckpt.iteration}\ntimesteps: {ckpt.timesteps}\nparameters: {ckpt.params.size}")
    print(f"eval return of these parameters: {ckpt.eval_return:.2f} (nan: not evaluated; best.h5 always is)\n"
          f"best eval return: {ckpt.best_eval_return:.2f}")
    print(f"step cap: {ckpt.step_cap}")
    print("versions: " + json.dumps(ckpt.versions, sort_keys=True))
    for name, array in sorted(ckpt.extra.items()):
        print(f"extra/{name}: shape {tuple(np.shape(array))}, dtype {np.asarray(array).dtype}")
    print(metrics_summary(ckpt.metrics))
    print("config:\n" + ckpt.config_toml)
    return 0


def metrics_summary(metrics):
    """One line per metric column: first, last, min, max over the iterations (NaNs ignored)."""
    if not metrics:
        return "metrics: none recorded"
    n_rows = len(next(iter(metrics.values())))
    lines = [f"metrics: {n_rows} iterations", f"  {'name':<18}{'first':>14}{'last':>14}{'min':>14}{'max':>14}"]
    for name, column in sorted(metrics.items()):
        values = np.asarray(column, dtype=np.float64)
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            lines.append(f"  {name:<18}{'-':>14}{'-':>14}{'-':>14}{'-':>14}")
            continue
        lines.append(f"  {name:<18}{values[0]:>14.4g}{values[-1]:>14.4g}{finite.min():>14.4g}{finite.max():>14.4g}")
    return "\n".join(lines)
