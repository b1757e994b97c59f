"""`es-mpi eval` and `es-mpi inspect`: checkpoints reload without MPI, reproduce the evaluation
return recorded in training, and damaged or mismatched files give one line and exit code 2."""

import concurrent.futures
import re
import subprocess

import numpy as np
import pytest

from conftest import REPO, child_env, es_mpi_command, run_cli, run_es, run_mpi
from es_mpi.records import checkpoint as ckpt_io
from test_checkpoint import DAMAGE_REASONS, damaged_files, sample_checkpoint

JOB = """
[env]
id = "CartPole-v1"
[policy]
hidden = [8]
[strategy]
pairs = 4
sigma = 0.1
learning_rate = 0.05
[noise]
size = 100_000
[obs_norm]
enabled = true
probability = 0.5
[eval]
every = 2
episodes = 5
[checkpoint]
every = 1
keep = 5
[stop]
iterations = 4
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A CartPole run trained on 2 ranks, observation normalisation on: its run directory."""
    base = tmp_path_factory.mktemp("trained")
    job = base / "cartpole.toml"
    job.write_text(JOB)
    result = run_mpi(2, "train", job, "--run-dir", base / "run", timeout=180)
    assert result.returncode == 0, result.stderr
    return base / "run"


@pytest.fixture(scope="module")
def no_mpi_env(tmp_path_factory):
    """An environment in which `import mpi4py` fails: a fake package first on PYTHONPATH."""
    fake = tmp_path_factory.mktemp("fake") / "mpi4py"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('mpi4py is blocked in this test')\n")
    return child_env(PYTHONPATH=f"{fake.parent}:{REPO}")


def run_without_mpi(env, *args):
    return subprocess.run(es_mpi_command(*args), capture_output=True, text=True, timeout=120, env=env, cwd=REPO)


def test_the_mpi_block_works(no_mpi_env):
    result = subprocess.run([es_mpi_command()[0], "-c", "import mpi4py"],
                            capture_output=True, text=True, timeout=60, env=no_mpi_env)
    assert result.returncode != 0 and "blocked" in result.stderr


def test_best_h5_holds_the_centre_that_its_evaluation_played(trained):
    """Iteration t's evaluation plays the centre its members perturbed (the state after t - 1): best.h5
    is that state, and a periodic checkpoint, not evaluated yet, records no evaluation return."""
    best = ckpt_io.load(trained / "best.h5")
    assert best.iteration in (1, 3)  # before evaluation iterations 2 and 4
    same = ckpt_io.load(trained / f"ckpt-{best.iteration:08d}.h5")
    np.testing.assert_array_equal(best.params, same.params)
    assert best.obstat["count"] == same.obstat["count"] and best.timesteps == same.timesteps
    assert np.isnan(same.eval_return) and best.eval_return == best.best_eval_return
    reported = ckpt_io.load(trained / "ckpt-00000004.h5").metrics
    assert reported["eval_return"][best.iteration] == best.eval_return  # on the row of iteration + 1


def test_eval_without_mpi_reproduces_the_training_evaluation(trained, no_mpi_env):
    path = trained / "best.h5"
    ckpt = ckpt_io.load(path)
    assert np.isfinite(ckpt.eval_return)
    assert ckpt.obstat["count"] > 10  # observation statistics were really gathered and are used
    result = run_without_mpi(no_mpi_env, "eval", path)
    assert result.returncode == 0, result.stderr
    assert len(re.findall(r"^episode +\d+: return", result.stdout, re.M)) == 5
    match = re.search(r"evaluation return (\S+); training recorded (\S+) .*: (\w+)$", result.stdout, re.M)
    assert match, result.stdout
    assert float(match.group(1)) == ckpt.eval_return
    assert float(match.group(2)) == ckpt.eval_return
    assert match.group(3) == "identical"


def test_eval_of_a_run_dir_plays_its_newest_checkpoint(trained, no_mpi_env):
    result = run_without_mpi(no_mpi_env, "eval", trained, "--episodes", "2", "--seed", "11")
    assert result.returncode == 0, result.stderr
    assert "ckpt-00000004.h5: CartPole-v1, iteration 4" in result.stdout
    assert len(re.findall(r"^episode", result.stdout, re.M)) == 2
    assert "training recorded" not in result.stdout  # other episodes than training's


def test_inspect_prints_config_progress_versions_and_metrics(trained, no_mpi_env):
    result = run_without_mpi(no_mpi_env, "inspect", trained / "ckpt-00000004.h5")
    assert result.returncode == 0, result.stderr
    ckpt = ckpt_io.load(trained / "ckpt-00000004.h5")
    out = result.stdout
    assert "iteration: 4\n" in out
    assert f"timesteps: {ckpt.timesteps}\n" in out
    assert '"gymnasium": ' in out and '"numpy": ' in out and '"h5py": ' in out
    assert "metrics: 4 iterations" in out
    assert re.search(r"^  return_mean +\S+ +\S+ +\S+ +\S+$", out, re.M)
    assert re.search(r"^  eval_return +nan +\S+", out, re.M)
    assert "config:\n[run]" in out and 'id = "CartPole-v1"' in out and "probability = 0.5" in out


def run_all(commands):
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futures = {key: pool.submit(run_es, *args, timeout=60) for key, args in commands.items()}
        return {key: future.result() for key, future in futures.items()}


@pytest.fixture(scope="module")
def damaged_results(tmp_path_factory):
    directory = tmp_path_factory.mktemp("damaged")
    good = directory / "good.h5"
    ckpt_io.save(good, sample_checkpoint())
    files = damaged_files(directory, good)
    commands = {(kind, command): (command, path) for kind, path in files.items() for command in ("eval", "inspect")}
    return files, run_all(commands)


@pytest.mark.parametrize("command", ["eval", "inspect"])
@pytest.mark.parametrize("kind", sorted(DAMAGE_REASONS))
def test_damaged_checkpoint_gives_one_line_and_exit_2(damaged_results, kind, command):
    files, results = damaged_results
    result = results[(kind, command)]
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"es-mpi: error: {files[kind]}: ")
    assert DAMAGE_REASONS[kind] in lines[0]


def test_checkpoint_that_does_not_fit_its_own_job_is_refused(tmp_path):
    unknown_env = sample_checkpoint()
    unknown_env.config_toml = '[env]\nid = "NoSuchEnv-v0"\n'
    ckpt_io.save(tmp_path / "unknown_env.h5", unknown_env)
    ckpt_io.save(tmp_path / "wrong_size.h5", sample_checkpoint())  # 300 params; the default policy has 4610
    results = run_all({name: ("eval", tmp_path / f"{name}.h5") for name in ("unknown_env", "wrong_size")})
    for name, words in (("unknown_env", "env.id: unknown environment"), ("wrong_size", "params has 300 entries")):
        lines = results[name].stderr.splitlines()
        assert results[name].returncode == 2 and len(lines) == 1, lines
        assert str(tmp_path / f"{name}.h5") in lines[0] and words in lines[0]


@pytest.mark.parametrize("args, words", [
    (["--episodes", "0"], "--episodes: need at least 1"),
    (["--seed", "-3"], "--seed: must be >= 0"),
])
def test_bad_eval_arguments(trained, args, words):
    result = run_cli("eval", trained, *args)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and words in lines[0], lines

