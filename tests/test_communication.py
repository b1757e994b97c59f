"""Contract 2: per iteration the ranks exchange O(population) scalars, never the parameters, and
only the node leaders carry them between nodes.

The bytes are counted at the mpi4py calls of real training runs (benchmarks/instrumented_train.py
wraps the world, node and leaders communicators and runs the CLI's Trainer).
"""

import csv
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
enabled = {obs_norm}
probability = 1.0
[eval]
every = 0
[checkpoint]
every = 100
[stop]
iterations = 2
"""


def instrumented(write_job, tmp_path, hidden, pairs, n_ranks, node_size, obs_norm=False):
    name = f"h{len(hidden)}-{hidden[0]}-p{pairs}-r{n_ranks}-n{node_size}-o{int(obs_norm)}"
    job = write_job(JOB.format(hidden=hidden, pairs=pairs, obs_norm=str(obs_norm).lower()), name=f"{name}.toml")
    command = [MPIEXEC, "-n", str(n_ranks), "--oversubscribe", "--bind-to", "none", PYTHON,
               str(REPO / "benchmarks" / "instrumented_train.py"), str(job), "--run-dir", str(tmp_path / name)]
    result = run(command, timeout=300, env_extra={"ES_MPI_NODE_SIZE": str(node_size)})
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["iterations"] == 2
    with open(tmp_path / name / "metrics.csv") as fh:
        report["node_bytes"] = [float(row["node_bytes"]) for row in csv.DictReader(fh)]
    return report


def per_rank(report, kinds=("world", "node", "leaders")):
    """[(sent, received)] per rank, summed over the call sites on the given communicators."""
    return [(sum(s for site, (s, _) in rank["sites"].items() if site.split(":")[0] in kinds),
             sum(r for site, (_, r) in rank["sites"].items() if site.split(":")[0] in kinds))
            for rank in report["per_rank"]]


@pytest.mark.mpi
def test_bytes_per_iteration_grow_with_the_population_not_the_parameters(write_job, tmp_path):
    """Two ranks, each its own node: the results cross MPI as they would between machines."""
    small = instrumented(write_job, tmp_path, [8], 6, 2, 1)
    large = instrumented(write_job, tmp_path, [128, 128], 6, 2, 1)
    doubled = instrumented(write_job, tmp_path, [8], 12, 2, 1)
    assert large["n_params"] > 100 * small["n_params"]
    assert per_rank(small) == per_rank(large)
    assert per_rank(small) == [expected_bytes(12, [1, 1], rank, 11, 0.0, obs_norm=False) for rank in range(2)]
    assert per_rank(doubled) == [expected_bytes(24, [1, 1], rank, 11, 0.0, obs_norm=False) for rank in range(2)]


@pytest.mark.mpi
def test_within_one_node_the_results_never_pass_through_mpi(write_job, tmp_path):
    """Three ranks on one node: a few scalars of agreement per rank, whatever the population."""
    small = instrumented(write_job, tmp_path, [8], 6, 3, 3)
    doubled = instrumented(write_job, tmp_path, [8], 12, 3, 3)
    assert per_rank(small) == per_rank(doubled) == [expected_bytes(12, [3], rank, 11, 0.0, obs_norm=False)
                                                    for rank in range(3)]
    assert small["node_bytes"] == [0.0, 0.0]


@pytest.mark.mpi
def test_bytes_between_nodes_do_not_grow_with_the_ranks_per_node(write_job, tmp_path):
    """Two nodes of one rank and two nodes of two ranks, every episode's observation row sampled:
    the leaders' calls carry the same bytes, and the trainer's node_bytes metric says so too."""
    thin = instrumented(write_job, tmp_path, [8], 6, 2, 1, obs_norm=True)
    wide = instrumented(write_job, tmp_path, [8], 6, 4, 2, obs_norm=True)
    thin_leaders, wide_leaders = per_rank(thin, ("leaders",)), per_rank(wide, ("leaders",))
    assert wide["node_sizes"] == [2, 2]
    assert thin_leaders == [wide_leaders[0], wide_leaders[2]]
    assert wide_leaders[1] == wide_leaders[3] == (0, 0)
    row_bytes = 8 * (2 * 11 + 1)
    assert thin_leaders[0][1] > 12 * row_bytes  # the observation rows crossed
    # node_bytes: the results (12 x 5 float64), the 12 observation rows, the agreement's rows (2 nodes x
    # 4 uint64) and its peaks and sums (2 x 5 float64)
    assert thin["node_bytes"] == wide["node_bytes"] == [12 * 40 + 12 * row_bytes + 2 * 32 + 80] * 2
