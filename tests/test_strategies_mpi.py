"""Every strategy under a real mpiexec: 1, 2 and 3 ranks give byte-identical state, a resumed
run equals one that never stopped, and `es-mpi eval` plays the checkpoints."""

import numpy as np
import pytest

from es_mpi.records import checkpoint as ckpt_io

from conftest import run_es, run_mpi

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

STRATEGIES = {
    "openai_es": "name = 'openai_es'\npairs = 4\n",
    "nes": "name = 'nes'\npopulation = 7\nmirrored = false\n",
    "simple_es": "name = 'simple_es'\npopulation = 7\n",
    "ga": "name = 'ga'\npopulation = 9\ntruncation = 0.3\n",
    "cma_es_full": "name = 'cma_es'\nvariant = 'full'\npopulation = 7\n",
    "cma_es_separable": "name = 'cma_es'\nvariant = 'separable'\npopulation = 7\n",
    "cem": "name = 'cem'\npopulation = 7\nextra_std = 0.1\n",
}

ENV_JOBS = {
    "cem_tabular": """
[env]
id = "Taxi-v4"
step_cap = 40
[policy]
kind = "tabular"
[obs_norm]
enabled = false
[noise]
size = 10000
[strategy]
name = "cem_tabular"
policies = 7
percentile = 50.0
memory = 2
[eval]
every = 2
episodes = 3
[checkpoint]
every = 2
keep = 5
[stop]
iterations = 4
""",
    "cem_action": """
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
[strategy]
name = "cem_action"
population = 7
percentile = 50.0
batch_size = 16
memory = 1
[eval]
every = 2
episodes = 3
[checkpoint]
every = 2
keep = 5
[stop]
iterations = 4
""",
}

JOBS = {**{name: OBJECTIVE + body for name, body in STRATEGIES.items()}, **ENV_JOBS}


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
