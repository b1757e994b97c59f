"""The node runtime (run/node_runtime.py): it frees every window and communicator it made, after a
run and after a start-up that failed partway, and nothing from a non-finite centre is recorded."""

import csv
import json

import numpy as np
import pytest

from conftest import MPIEXEC, PYTHON, REPO, run, run_es, run_mpi
from test_hardening import TINY_JOB


def probe(node_size, fail=None):
    command = [MPIEXEC, "-n", "2", "--oversubscribe", "--bind-to", "none", PYTHON, str(REPO / "tests" / "runtime_probe.py")]
    env = {"ES_MPI_NODE_SIZE": str(node_size)}
    if fail:
        env["ES_MPI_FAIL_AT"] = fail
    result = run(command, timeout=120, env_extra=env)  # a hang fails as a timeout
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.mpi
@pytest.mark.parametrize("node_size", [1, 2], ids=["two-nodes", "one-node"])
def test_the_runtime_frees_every_window_and_communicator_it_made(node_size):
    reports = probe(node_size)
    assert sorted(m for r in reports for m in r["members"]) == list(range(6))  # it ran: the ranks shared the members
    for report in reports:
        # the node communicator (+ the leaders' on a leader); noise, 4 node arrays of OpenAI-ES, counter, results
        assert report["comms"] == (2 if report["rank"] == 0 or node_size == 1 else 1), report
        assert report["windows"] == 1 + 4 + 2, report
        assert report["live"] == 0, report


@pytest.mark.mpi
@pytest.mark.parametrize("node_size", [1, 2], ids=["two-nodes", "one-node"])
def test_a_start_up_refused_partway_frees_what_it_had_made(node_size):
    """The refusal comes after the communicators, the noise table and the strategy's node arrays exist."""
    reports = probe(node_size, fail="all:runtime")
    for report in reports:
        assert report["refused"] and "injected input error at runtime start-up" in report["refused"]
        assert report["windows"] == 1 + 4 and report["comms"] >= 1, report
        assert report["live"] == 0, report


@pytest.mark.mpi
def test_a_start_up_refused_partway_ends_the_job_with_one_line(tmp_path):
    """2 ranks as 2 nodes: exit 2, one line from rank 0, no traceback, no hang, no run directory."""
    job = tmp_path / "job.toml"
    job.write_text(TINY_JOB)
    run_dir = tmp_path / "run"
    result = run_mpi(2, "train", job, "--run-dir", run_dir, timeout=120,
                     env_extra={"ES_MPI_FAIL_AT": "all:runtime", "ES_MPI_NODE_SIZE": "1"})
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("es-mpi:")]
    assert lines == ["es-mpi: error: injected input error at runtime start-up (ES_MPI_FAIL_AT)"], result.stderr[-2000:]
    assert not run_dir.exists()


def test_nothing_from_a_non_finite_centre_reaches_the_metrics(tmp_path):
    """strategy.sigma = 1e308 makes the centre NaN: the run stops at that iteration, and metrics.csv and
    TensorBoard end at the iteration before it."""
    pytest.importorskip("tensorboardX")
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    job = tmp_path / "job.toml"
    job.write_text(TINY_JOB.replace("pairs = 2", 'name = "simple_es"\npopulation = 4') + "[log]\ntensorboard = true\n")
    run_dir = tmp_path / "run"
    result = run_es("train", job, "--run-dir", run_dir, "--set", "strategy.sigma=1e308", "--set", "stop.iterations=5",
                    timeout=120)
    assert result.returncode == 1, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.startswith("es-mpi:")]
    assert len(lines) == 1 and "not finite" in lines[0], lines
    bad_iteration = int(lines[0].split("iteration ")[1].split(":")[0])
    with open(run_dir / "metrics.csv", newline="") as fh:
        iterations = [int(row["iteration"]) for row in csv.DictReader(fh)]
    assert iterations == list(range(1, bad_iteration))
    events = event_accumulator.EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    logged = [value for _, value in ((e.step, e.value) for e in events.Scalars("iteration"))] \
        if "iteration" in events.Tags()["scalars"] else []
    assert logged == list(range(1, bad_iteration))
    assert f"it {bad_iteration:5d}" not in result.stdout
    assert all(np.isfinite(float(v)) for v in logged)
