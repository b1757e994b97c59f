"""Contract 2: per iteration the ranks exchange O(population) scalars, never the parameters.

The bytes are counted at the mpi4py calls of a real 2-rank training run
(benchmarks/instrumented_train.py wraps COMM_WORLD's collectives and runs the CLI's Trainer).
"""

import json
import sys

import pytest

from conftest import MPIEXEC, PYTHON, REPO, run

sys.path.insert(0, str(REPO / "benchmarks"))
from instrumented_train import expected_bytes  # noqa: E402

JOB = """
[env]
id = "Hopper-v5"
[policy]
hidden = {hidden}
[strategy]
pairs = {pairs}
[noise]
size = 200_000
[obs_norm]
enabled = false
[eval]
every = 0
[checkpoint]
every = 100
[stop]
iterations = 2
"""


def received_per_rank(write_job, tmp_path, hidden, pairs):
    name = f"h{len(hidden)}-{hidden[0]}-p{pairs}"
    job = write_job(JOB.format(hidden=hidden, pairs=pairs), name=f"{name}.toml")
    command = [MPIEXEC, "-n", "2", "--oversubscribe", "--bind-to", "none", PYTHON,
               str(REPO / "benchmarks" / "instrumented_train.py"), str(job), "--run-dir", str(tmp_path / name)]
    result = run(command, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["iterations"] == 2
    return report["n_params"], [sum(received for _, received in rank["sites"].values()) for rank in report["per_rank"]]


@pytest.mark.mpi
def test_bytes_per_iteration_grow_with_the_population_not_the_parameters(write_job, tmp_path):
    small_params, small = received_per_rank(write_job, tmp_path, [8], 6)
    large_params, large = received_per_rank(write_job, tmp_path, [128, 128], 6)
    _, doubled = received_per_rank(write_job, tmp_path, [8], 12)
    assert large_params > 100 * small_params
    assert small == large
    assert small == [expected_bytes(12, 2, rank, 11, 0.0, obs_norm=False)[1] for rank in range(2)]
    assert doubled == [expected_bytes(24, 2, rank, 11, 0.0, obs_norm=False)[1] for rank in range(2)]
