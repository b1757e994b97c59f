"""How much of a perturbed member's training return is its start state, at one checkpoint.

ARS-style updates keep the top b pairs by max(r+, r-). Where returns depend on the start state
(the env's reset noise) as much as on the direction, which pairs make the top b is partly chance.
This plays D draws of P mirrored pairs around a checkpoint's centre, sigma from its job, each
member from S start states, and reports per draw: the std of a member's training return over its
start states (mean over members), the std of the members' mean returns, the share of episodes that
ended before the step limit, and how many different top-b sets the S start states give.

Training returns as training scores them: the job's alive bonus subtracted per step, the
checkpoint's observation normalisation. Directions are standard normals from --seed (the noise
table's rows are the same distribution); nothing here trains or changes the checkpoint.

Hopper's hover (docs/results.md, "What the misses come to"):
    python benchmarks/start_noise.py runs/hopper_top2/hopper-seed4/ckpt-00000230.h5 --name start_noise_hopper
"""

import argparse

import common

import numpy as np  # noqa: E402  (after common, which puts this checkout first on sys.path)

from es_mpi.core.errors import UserError  # noqa: E402
from es_mpi.parts.job_file import job_from_text  # noqa: E402
from es_mpi.records import checkpoint as ckpt_io  # noqa: E402
from es_mpi.run.evaluation import evaluate_center, evaluation_return  # noqa: E402
from es_mpi.run.rollout import run_episode  # noqa: E402
from es_mpi.run.trained_policy import ready_to_play, refuse_objectives  # noqa: E402


def play_draw(task, normalizer, center_p, sigma, alive_bonus, directions_np, starts_seeds):
    """(returns_n2z, lengths_n2z): each pair's + and - member from each start seed."""
    shape = (len(directions_np), 2, len(starts_seeds))
    returns_n2z, lengths_n2z = np.empty(shape), np.empty(shape, dtype=int)
    for k, direction_p in enumerate(directions_np):
        for side, sign in enumerate((1.0, -1.0)):
            act = task.policy.bind((center_p + sign * sigma * direction_p).astype(np.float32))
            for s, seed in enumerate(starts_seeds):
                episode = run_episode(task.env, act, int(seed), task.step_limit, normalizer,
                                      reward_offset=alive_bonus)
                returns_n2z[k, side, s], lengths_n2z[k, side, s] = episode.total_return, episode.length
    return returns_n2z, lengths_n2z


def draw_row(returns_n2z, lengths_n2z, step_limit, top):
    """One report row: start-state spread against member spread, falls, distinct top-b sets."""
    top_sets = {tuple(sorted(np.argsort(-returns_n2z[:, :, s].max(axis=1), kind="stable")[:top]))
                for s in range(returns_n2z.shape[2])}
    return {"member return std over start states": f"{returns_n2z.std(axis=2).mean():.0f}",
            "std of members' mean returns": f"{returns_n2z.mean(axis=2).std():.0f}",
            "episodes ended early": f"{np.mean(lengths_n2z < step_limit):.0%}",
            f"distinct top-{top} sets": f"{len(top_sets)} of {returns_n2z.shape[2]}"}


def count(low):
    """argparse type: an int of at least `low`."""
    def parse(text):
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="checkpoint file, or a run directory (its newest valid checkpoint)")
    parser.add_argument("--draws", type=count(1), default=3, help="draws of pairs (default 3)")
    parser.add_argument("--pairs", type=count(0), default=0, help="pairs per draw (default: the job's strategy.pairs)")
    parser.add_argument("--top", type=count(0), default=0,
                        help="b of the top-b sets compared (default: the job's top_pairs, else half the pairs)")
    parser.add_argument("--starts", type=count(1), default=4, help="start states per member (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the directions and start states (default 0)")
    parser.add_argument("--name", type=common.report_name, default="start_noise",
                        help="report name under benchmarks/results/")
    return parser.parse_args(argv)


def open_checkpoint(checkpoint):
    """(path, checkpoint, job, task, normalizer) of a mirrored-pairs (OpenAI-ES) checkpoint, ready to
    play; UserError for anything else, before an env is made."""
    path, ckpt = ckpt_io.resolve(checkpoint)
    job = job_from_text(ckpt.config_toml, path)
    refuse_objectives(path, job)
    if not hasattr(job.strategy, "sigma_at"):
        raise UserError(f"{path}: its strategy ({job.strategy.name}) has no mirrored pairs to perturb with")
    return (path, ckpt, job, *ready_to_play(path, ckpt, job))


def report(args):
    """Play the draws and write the report; UserError (bad checkpoint or option) before playing any."""
    path, ckpt, job, task, normalizer = open_checkpoint(args.checkpoint)
    settings = job.strategy
    sigma = settings.sigma_at(ckpt.iteration)
    pairs = args.pairs or settings.pairs
    top = args.top or settings.top_pairs or max(1, pairs // 2)
    draw = np.random.default_rng(args.seed)
    try:
        if top > pairs:
            raise UserError(f"--top must be at most the pairs ({pairs}), got {top}")
        evaluation = evaluation_return([episode.total_return for episode in evaluate_center(
            task, task.env, ckpt.params, normalizer, ckpt.iteration, range(job.eval.episodes))])
        rows = []
        for _ in range(args.draws):
            directions_np = draw.standard_normal((pairs, ckpt.params.size))
            starts_seeds = draw.integers(0, 2**31 - 1, size=args.starts)
            returns_n2z, lengths_n2z = play_draw(task, normalizer, ckpt.params, sigma,
                                                 job.env.alive_bonus, directions_np, starts_seeds)
            rows.append({"draw": len(rows), **draw_row(returns_n2z, lengths_n2z, task.step_limit, top)})
    finally:
        task.close()
    columns = list(rows[0])
    common.write_report(args.name, "Start-state noise of perturbed members at one checkpoint", [
        f"Checkpoint `{path}`: {job.env.id}, iteration {ckpt.iteration}, the centre's evaluation "
        f"return {evaluation:.0f} (the job's evaluation episodes). {args.draws} draws of {pairs} pairs at sigma "
        f"{sigma:g}, each member from {args.starts} start states; training returns (alive bonus "
        f"{job.env.alive_bonus:g} per step subtracted).", "",
        common.markdown_table(columns, rows)])


def main():
    common.refusing(UserError, "start_noise.py", report, parse_args())


if __name__ == "__main__":
    main()
