"""Every strategy under a real mpiexec: 1, 2 and 3 ranks give byte-identical state, a resumed
run equals one that never stopped, and `es-mpi eval` plays the checkpoints."""

import numpy as np
import pytest

from es_mpi.parts.strategies import STRATEGIES
from es_mpi.records import checkpoint as ckpt_io

from conftest import run_es, run_mpi
from strategy_cases import strategy_cases, strategy_toml

pytestmark = pytest.mark.mpi

OBJECTIVE = """
[objective]
function = "es_mpi.objectives:rosenbrock"
dim = 6
initial_std = 0.5
[noise]
size = 10000
[obs_norm]
enabled = false
[eval]
every = 2
episodes = 3
[checkpoint]
every = 2
keep = 5
[stop]
iterations = 4
[strategy]
"""

TAXI_TABULAR = """
[env]
id = "Taxi-v4"
step_cap = 40
[policy]
kind = "tabular"
[obs_norm]
enabled = false
[noise]
size = 10000
[eval]
every = 2
episodes = 3
[checkpoint]
every = 2
keep = 5
[stop]
iterations = 4
[strategy]
"""

CARTPOLE_MLP = """
[env]
id = "CartPole-v1"
step_cap = 60
[policy]
hidden = [8]
[obs_norm]
enabled = true
probability = 0.5
[noise]
size = 10000
[eval]
every = 2
episodes = 3
[checkpoint]
every = 2
keep = 5
[stop]
iterations = 4
[strategy]
"""

# every registered strategy; these shrunk to small or odd populations, CMA-ES in both variants
CASES = strategy_cases({
    "openai_es": {"": dict(pairs=4)},
    "nes": {"": dict(population=7, mirrored=False)},
    "simple_es": {"": dict(population=7)},
    "ga": {"": dict(population=9, truncation=0.3)},
    "cma_es": {"full": dict(variant="full", population=7), "separable": dict(variant="separable", population=7)},
    "cem": {"": dict(population=7, extra_std=0.1)},
    "cem_tabular": {"": dict(policies=7, percentile=50.0, memory=2)},
    "cem_action": {"": dict(population=7, percentile=50.0, batch_size=16, memory=1)},
})


def job_frame(name):
    """An objective, unless the strategy needs an environment: tabular CEM its Taxi, others CartPole."""
    if not STRATEGIES.classes[name].needs_environment:
        return OBJECTIVE
    return TAXI_TABULAR if name == "cem_tabular" else CARTPOLE_MLP


JOBS = {case: job_frame(name) + strategy_toml(name, settings) for case, (name, settings) in CASES.items()}


def state_bytes(path):
    ckpt = ckpt_io.load(path)
    state = {f"strategy/{k}": np.asarray(v).tobytes() for k, v in ckpt.strategy.items()}
    state.update({f"obstat/{k}": np.asarray(v).tobytes() for k, v in ckpt.obstat.items()})
    state["params"] = ckpt.params.tobytes()
    for column in ("return_mean", "return_max", "eval_return", "timesteps"):
        state[f"metrics/{column}"] = ckpt.metrics[column].tobytes()
    return state


@pytest.mark.parametrize("name", sorted(JOBS))
def test_rank_counts_resume_and_eval_agree(tmp_path, write_job, name):
    job = write_job(JOBS[name])
    final = {}
    for ranks in (1, 2):
        run_dir = tmp_path / f"ranks{ranks}"
        result = run_mpi(ranks, "train", job, "--run-dir", run_dir, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        final[ranks] = state_bytes(ckpt_io.checkpoint_path(run_dir, 4))
    resumed_dir = tmp_path / "ranks3"
    first = run_mpi(3, "train", job, "--run-dir", resumed_dir, "--set", "stop.iterations=2", timeout=120)
    assert first.returncode == 0, first.stderr[-2000:]
    second = run_mpi(3, "train", job, "--run-dir", resumed_dir, "--resume", timeout=120)
    assert second.returncode == 0 and "resumed from iteration 2" in second.stdout, second.stderr[-2000:]
    final[3] = state_bytes(ckpt_io.checkpoint_path(resumed_dir, 4))
    assert final[1] == final[2] == final[3]
    played = run_es("eval", tmp_path / "ranks1", "--episodes", "2", timeout=60)
    assert played.returncode == 0 and "over 2 episodes" in played.stdout, played.stderr[-2000:]
