"""The CEM forms solve real environments through the real CLI (one process, MPI singleton),
judged by `es-mpi eval` on the final checkpoint."""

import re

import pytest
from conftest import REPO, run_es

pytestmark = pytest.mark.slow


def eval_mean(run_dir, episodes):
    played = run_es("eval", run_dir, "--episodes", episodes, timeout=300)
    assert played.returncode == 0, played.stderr[-2000:]
    return float(re.search(rf"mean (\S+) .* over {episodes} episodes", played.stdout).group(1))


def test_tabular_cem_solves_taxi(tmp_path):
    """jobs/taxi_cem.toml: greedy mean return >= 7.0 over 1,000 evaluation episodes."""
    run_dir = tmp_path / "taxi"
    trained = run_es("train", REPO / "jobs/taxi_cem.toml", "--run-dir", run_dir, "--set", "eval.every=0", timeout=600)
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert eval_mean(run_dir, 1000) >= 7.0


def test_action_space_cem_solves_cartpole(tmp_path):
    """jobs/cartpole_cem_action.toml (stops at 60 iterations at most): mean >= 475 over 100 episodes."""
    run_dir = tmp_path / "cartpole"
    trained = run_es("train", REPO / "jobs/cartpole_cem_action.toml", "--run-dir", run_dir, timeout=600)
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "done (target_return)" in trained.stdout, trained.stdout[-2000:]
    assert eval_mean(run_dir, 100) >= 475.0
