"""es-mpi train | eval | inspect | plot | keys.

Exit codes: 0 done, 1 crash (a rank failed; the job was aborted), 2 bad input (job file,
checkpoint, argument), 3 stopped by a signal after writing a checkpoint (continue with --resume).
"""

import argparse
import os
import sys

from es_mpi.core.console import silence_stdout
from es_mpi.core.errors import EXIT_BAD_INPUT, UserError
from es_mpi.core.stop_signals import catch_stop_signals

EPILOG = """exit codes: 0 done; 1 crash (the whole MPI job is aborted); 2 bad input (job file,
checkpoint or argument: one-line error, nothing overwritten); 3 stopped by SIGTERM/SIGUSR1/SIGINT
after writing a checkpoint (continue with --resume)."""


MAX_LAUNCH_RANKS = 65536  # -n starts every rank on this machine; a cluster's ranks come from srun/mpiexec


def rank_count(text):
    """-n N: an integer from 1 to MAX_LAUNCH_RANKS."""
    if not text.strip().isdigit() or not 1 <= int(text) <= MAX_LAUNCH_RANKS:
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to {MAX_LAUNCH_RANKS}, got {text!r}")
    return int(text)


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line and exit code 2."""

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(EXIT_BAD_INPUT)


def build_parser():
    parser = Parser(prog="es-mpi", description="Distributed evolution strategies on MPI.", epilog=EPILOG,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    train = sub.add_parser("train", help="train from a TOML job file (under mpiexec, or with -n)",
                           description="Train a policy. Run under mpiexec/srun, or give -n N to have es-mpi "
                                       "start mpiexec itself (as root and with more ranks than cores too).",
                           epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("job", help="TOML job file (examples in jobs/; 'es-mpi keys' lists every key)")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="override a job setting, e.g. --set strategy.sigma=0.05 (repeatable)")
    train.add_argument("--tensorboard", dest="overrides", action="append_const", const="log.tensorboard=true",
                       help="also log the metrics as TensorBoard scalars (same as --set log.tensorboard=true)")
    train.add_argument("--run-dir", help="run directory (default runs/<run.name>)")
    mode = train.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true",
                      help="continue from the newest valid checkpoint in the run directory (start fresh if none)")
    mode.add_argument("--force", action="store_true", help="start over in an existing run directory, deleting it")
    train.add_argument("--strict-versions", action="store_true",
                       help="with --resume: refuse a checkpoint written with other package versions (numpy, "
                            "gymnasium, MuJoCo...); by default each change is printed, listed in status.json and counted "
                            "in the metrics (versions_changed)")
    train.add_argument("-n", "--np", type=rank_count, metavar="N",
                       help=f"start N ranks (1-{MAX_LAUNCH_RANKS}) with mpiexec on this machine (default: run in this "
                            "process, or under your mpiexec)")
    train.add_argument("--mpiexec", default=os.environ.get("ES_MPI_MPIEXEC"),
                       help="mpiexec to use with -n (default: the venv's, then PATH; env ES_MPI_MPIEXEC)")

    evaluate = sub.add_parser("eval", help="play a checkpoint's policy (no MPI needed)",
                              description="Play the centre policy of a checkpoint and print each episode's return.",
                              epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    evaluate.add_argument("checkpoint", help="checkpoint file, or a run directory (its newest valid checkpoint)")
    evaluate.add_argument("--episodes", type=int, default=None,
                          help="episodes to play (default: the job's eval.episodes)")
    evaluate.add_argument("--seed", type=int, default=None,
                          help="seed of the episode seeds (default: the job seed, which reproduces the "
                               "evaluation return recorded in training)")
    evaluate.add_argument("--video", metavar="OUT.mp4",
                          help="record the episodes (one: OUT.mp4; several: OUT-episode-K.mp4); needs the "
                               "'video' extra; MuJoCo picks EGL or OSMesa unless MUJOCO_GL is set")
    evaluate.add_argument("--trust-code", action="store_true",
                          help="allow the checkpoint's job to import the Python module it names (a custom env "
                               "'module:Name-v0' or objective 'module:function'); without it such a checkpoint is "
                               "refused, since a file never makes es-mpi run code")
    evaluate.add_argument("--all", action="store_true",
                          help="evaluate every checkpoint the run directory keeps, on the same episodes, "
                               "and print a table")

    plot = sub.add_parser("plot", help="compare runs: one metric over timesteps, frames, episodes or wall time (needs the 'plot' extra)",
                          description="Plot one metrics.csv column of several run directories. Runs of the same "
                                      "job apart from run.seed form one group: its median over seeds with a "
                                      "min-max band.")
    plot.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories")
    plot.add_argument("--metric", default="eval_return",
                      help="metrics.csv column to plot (default: %(default)s, the centre policy's evaluation return)")
    plot.add_argument("--x", choices=("timesteps", "frames", "episodes", "wall"), default="timesteps",
                      help="x axis: timesteps, frames (Atari: timesteps x atari.frame_skip), episodes, or training wall time in seconds (default: %(default)s)")
    plot.add_argument("--group-by", metavar="SECTION.KEY[,...]",
                      help="group runs by these job keys instead (e.g. strategy.sigma or env.id,strategy.name)")
    plot.add_argument("-o", "--output", default="learning-curves.png",
                      help="PNG or SVG file (default: %(default)s)")

    inspect = sub.add_parser("inspect", help="print a checkpoint's config, progress and versions",
                             description="Print a checkpoint's iteration, timesteps, package versions, "
                                         "metrics summary and job config.",
                             epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    inspect.add_argument("checkpoint", help="checkpoint file, or a run directory")

    sub.add_parser("keys", help="print every job-file section and key: type, default, range, meaning",
                   description="Print the job-file reference (Markdown), generated from the settings themselves.")
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if args.command == "train":
        catch_stop_signals()  # before the heavy imports and MPI: a stop during start-up is kept
    try:
        if args.command == "train":
            from es_mpi.commands.train import train_command

            return train_command(args, argv)
        if args.command == "eval":
            from es_mpi.commands.evaluate import eval_command

            return eval_command(args)
        if args.command == "plot":
            from es_mpi.commands.plot import plot_command

            return plot_command(args)
        if args.command == "inspect":
            from es_mpi.commands.evaluate import inspect_command

            return inspect_command(args)
        if args.command == "keys":
            from es_mpi.parts.job_file import job_reference

            print(job_reference())
    except BrokenPipeError:  # `es-mpi keys | head`: the reader had enough (train never gets here: core/console.py)
        silence_stdout()
        return 0
    except UserError as err:
        sys.stderr.write("es-mpi: error: " + " ".join(str(err).splitlines()) + "\n")
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
