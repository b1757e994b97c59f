"""Writes tests/data/running-halfcheetah.json, the policy test_video.py films: a HalfCheetah that runs
several body lengths, out of a fixed camera's view. Training it takes minutes of one core, too long to
repeat in every test run, so its centre is committed: the job, the parameters and the observation
statistics as text (a few KB, whatever the checkpoint format), from which the test writes a checkpoint.

Run it from the repository root when the policy or its job must change (the video test's return
check fails then):
    python tests/data/make_running_halfcheetah.py                  # trains, about 320k steps
    python tests/data/make_running_halfcheetah.py --from BEST.h5   # takes an existing checkpoint
"""

import argparse
import json
import math
import pathlib
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
OUTPUT = HERE / "running-halfcheetah.json"
MIN_RETURN = 300  # test_video.py's bound: return / 20 steps per second >= 15 m run

# The default job's settings, cut to about 20 iterations of 500-step episodes on one core.
JOB = """
[env]
id = "HalfCheetah-v5"
step_cap = 500
[policy]
hidden = []
[strategy]
pairs = 16
sigma = 0.03
learning_rate = 0.02
l2 = 0.0
[noise]
size = 5_000_000
[obs_norm]
enabled = true
probability = 1.0
[eval]
every = 5
episodes = 1
[stop]
timesteps = 320_000
"""


def es_mpi(*args):
    done = subprocess.run([sys.executable, "-m", "es_mpi", *map(str, args)], capture_output=True, text=True,
                          cwd=HERE.parent.parent)
    if done.returncode != 0:
        sys.exit(done.stderr)
    return done.stdout


def centre_as_text(path):
    """What eval needs of a checkpoint, exactly: float32 and float64 values print as the shortest
    decimal that reads back to the same bits."""
    from es_mpi.records import checkpoint as ckpt_io

    ckpt = ckpt_io.load(path)
    return {"config_toml": ckpt.config_toml, "iteration": ckpt.iteration, "timesteps": ckpt.timesteps,
            "step_cap": ckpt.step_cap, "eval_return": ckpt.eval_return,
            "params": [float(value) for value in ckpt.params],
            "obstat": {key: (value.tolist() if value.ndim else float(value)) for key, value in ckpt.obstat.items()}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", type=pathlib.Path, help="a checkpoint to take instead of training")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        best = args.source
        if best is None:
            job = pathlib.Path(folder) / "running-halfcheetah.toml"
            job.write_text(JOB)
            es_mpi("train", job, "--run-dir", pathlib.Path(folder) / "run")
            best = pathlib.Path(folder) / "run" / "best.h5"
        played = es_mpi("eval", best, "--episodes", 1)
        episode_return = float(played.split("return")[1].split()[0])
        if not math.isfinite(episode_return) or episode_return <= MIN_RETURN:
            sys.exit(f"the policy's return {episode_return} is not above {MIN_RETURN}")
        OUTPUT.write_text(json.dumps(centre_as_text(best), indent=1) + "\n")
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size} bytes), episode return {episode_return}")


if __name__ == "__main__":
    main()
