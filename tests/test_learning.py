"""OpenAI-ES learns: CartPole-v1 solved (mean >= 475 over 100 evaluation episodes) under 2 ranks."""

import re

import pytest

from conftest import REPO, run_es, run_mpi


@pytest.mark.mpi
@pytest.mark.slow
def test_openai_es_solves_cartpole_with_two_ranks(tmp_path):
    run_dir = tmp_path / "run"
    trained = run_mpi(2, "train", REPO / "jobs" / "cartpole.toml", "--run-dir", run_dir,
                      "--set", "stop.iterations=80", timeout=600)
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "done (target_return)" in trained.stdout, trained.stdout[-2000:]
    evaluated = run_es("eval", run_dir / "best.h5", "--episodes", "100", "--seed", "2024")
    assert evaluated.returncode == 0, evaluated.stderr
    mean = float(re.search(r"^mean (\S+)", evaluated.stdout, re.M).group(1))
    assert mean >= 475, evaluated.stdout[-500:]
