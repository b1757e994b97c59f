"""es_mpi.load_policy: a checkpoint's policy in your own gymnasium loop, exactly as `eval` plays it."""

import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, child_env, run_es
from es_mpi.core.errors import CheckpointError
from es_mpi.core.seeding import Purpose, episode_seed

NORMALISED_JOB = """
[run]
seed = 5
[env]
id = "Pendulum-v1"
[policy]
hidden = [8]
[strategy]
pairs = 4
sigma = 0.1
[noise]
size = 100_000
[obs_norm]
enabled = true
probability = 1.0
[eval]
every = 1
episodes = 3
[stop]
iterations = 3
"""

VBN_JOB = """
[env]
id = "CartPole-v1"
[policy]
hidden = [8]
vbn = true
vbn_batch = 16
vbn_probability = 0.5
[obs_norm]
enabled = false
[strategy]
pairs = 4
sigma = 0.1
[noise]
size = 100_000
[eval]
every = 1
episodes = 3
[stop]
iterations = 3
"""


def trained(write_job, tmp_path, text):
    run_dir = tmp_path / "run"
    done = run_es("train", write_job(text), "--run-dir", run_dir, timeout=120)
    assert done.returncode == 0, done.stderr
    return run_dir


def eval_return_of_es_mpi_eval(path):
    """What `es-mpi eval` plays, and what training recorded for the same episodes (best.h5 was evaluated)."""
    done = run_es("eval", path, timeout=120)
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("evaluation return ")]
    assert line.endswith(": identical"), line
    return line.split()[2].rstrip(";")


def own_loop_return(path):
    """The loop in docs/running.md, on the episode seeds `eval` uses by default."""
    import es_mpi

    policy = es_mpi.load_policy(path)
    env = policy.make_env()
    returns = []
    for episode in range(policy.job.eval.episodes):
        obs, _ = env.reset(seed=episode_seed(policy.job.run.seed, policy.iteration, episode, Purpose.EVAL_EPISODE))
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return repr(float(np.mean(returns)))


@pytest.mark.parametrize("text", [NORMALISED_JOB, VBN_JOB], ids=["obs-norm", "vbn"])
def test_own_loop_gets_the_returns_of_es_mpi_eval(write_job, tmp_path, text):
    best = trained(write_job, tmp_path, text) / "best.h5"
    assert own_loop_return(best) == eval_return_of_es_mpi_eval(best)


def test_a_checkpoint_that_names_a_module_is_refused_unimported(write_job, tmp_path):
    run_dir = trained(write_job, tmp_path, VBN_JOB.replace('"CartPole-v1"', '"tests.faulty_env:FaultyCartPole-v0"'))
    probe = ("import sys, es_mpi\nfrom es_mpi.core.errors import UserError\n"
             f"try:\n    es_mpi.load_policy({str(run_dir)!r})\nexcept UserError as err:\n    print(err)\n"
             "print('imported' if 'tests.faulty_env' in sys.modules else 'not imported')\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=REPO,
                          env=child_env())
    assert done.returncode == 0, done.stderr
    assert "env.id: names the Python module 'tests.faulty_env'" in done.stdout and done.stdout.endswith("not imported\n")


def test_an_objective_checkpoint_is_not_a_policy(tmp_path):
    run_dir = tmp_path / "run"
    done = run_es("train", REPO / "jobs" / "sphere_nes.toml", "--run-dir", run_dir, "--set", "stop.iterations=1",
                  timeout=120)
    assert done.returncode == 0, done.stderr
    import es_mpi

    with pytest.raises(CheckpointError, match="objective"):
        es_mpi.load_policy(run_dir)


def test_import_es_mpi_stays_light_and_load_policy_needs_no_mpi(write_job, tmp_path):
    run_dir = trained(write_job, tmp_path, NORMALISED_JOB)
    probe = ("import sys, es_mpi\nprint(sorted(m for m in ('gymnasium', 'mujoco', 'mpi4py') if m in sys.modules))\n"
             f"policy = es_mpi.load_policy({str(run_dir)!r})\n"
             "print(policy([0.0, 1.0, 0.0]).shape, 'mpi4py' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=REPO,
                          env=child_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]", "(1,) False"]
