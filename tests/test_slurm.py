"""slurm/*.sbatch on a real one-node Slurm (.ci/slurm.sh brings it up; root and apt-get needed).

All jobs are submitted at once (the test node advertises 8 CPUs) and each test waits for its own.
The reference is an uninterrupted 1-rank run; the interrupted runs use 2 ranks, so the byte
comparison also checks that the rank count does not matter.
"""

import contextlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from es_mpi.records import checkpoint as ckpt_io

from conftest import REPO, child_env

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

HARNESS = REPO / ".ci" / "slurm.sh"
ITERATIONS = 60
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
                "DEADLINE", "PREEMPTED"}
JOB = f"""
[run]
seed = 11
[env]
id = "Pendulum-v1"
[policy]
hidden = [8]
[strategy]
pairs = 4
[noise]
size = 100000
[eval]
every = 5
episodes = 2
[checkpoint]
every = 5
keep = 20
[stop]
iterations = {ITERATIONS}
"""


def slurm_env():
    venv = pathlib.Path(sys.executable).parent.parent
    return child_env(ES_MPI_VENV=str(venv), ES_MPI_MPIEXEC_ARGS="--bind-to none")


def harness(action, timeout, script=HARNESS):
    return subprocess.run([str(script), action], capture_output=True, text=True, timeout=timeout)


@contextlib.contextmanager
def brought_up(script, what):
    """The cluster of a .ci/ script: the one already up, or one started here and stopped on exit."""
    if os.geteuid() != 0:
        pytest.skip(f"{what} tests need root to install and start it (.ci/{script.name} up)")
    if shutil.which("sbatch") is None and shutil.which("apt-get") is None:
        pytest.skip(f"{what} tests need Slurm installed or apt-get to install it")
    was_up = shutil.which("sbatch") is not None and harness("status", 30, script).returncode == 0
    if not was_up:
        started = harness("up", 600, script)
        if started.returncode != 0:
            pytest.fail(f".ci/{script.name} up failed:\n{started.stderr[-3000:]}")
    try:
        yield
    finally:
        if not was_up:
            harness("down", 120, script)


@pytest.fixture(scope="module")
def cluster():
    with brought_up(HARNESS, "one-node Slurm"):
        yield


def sbatch(*args, cwd=REPO):
    done = subprocess.run(["sbatch", "--parsable", *map(str, args)], capture_output=True, text=True,
                          timeout=60, env=slurm_env(), cwd=cwd)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().split(";")[0]


def job_fields(job_id):
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True,
                         timeout=30).stdout
    return dict(item.split("=", 1) for item in out.split() if "=" in item)


def wait_final(job_id, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fields = job_fields(job_id)
        if fields.get("JobState") in FINAL_STATES:
            return fields
        time.sleep(1)
    raise AssertionError(f"job {job_id} not finished after {timeout} s: {job_fields(job_id)}")


def wait_iteration(run_dir, at_least, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if json.loads((run_dir / "status.json").read_text())["iteration"] >= at_least:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"{run_dir} did not reach iteration {at_least}")


@pytest.fixture(scope="module")
def jobs(cluster, tmp_path_factory):
    """Submit everything at once (reference, two to interrupt, a 3-task array), then interrupt.

    The interruptions happen here, while those runs are still early, not in the tests, which only
    look at the outcomes (tests run one after another; the jobs would be done by then)."""
    base = tmp_path_factory.mktemp("slurm")
    job_file = base / "job.toml"
    job_file.write_text(JOB)
    common = ["--chdir", base, "--time=00:10:00"]
    submitted = {"base": base}
    submitted["reference"] = sbatch(*common, "--ntasks=1", "--output", base / "reference.out",
                                    REPO / "slurm/train.sbatch", job_file, "--run-dir", base / "reference")
    for name in ("usr1", "requeue"):
        submitted[name] = sbatch(*common, "--ntasks=2", "--output", base / f"{name}.out",
                                 REPO / "slurm/train.sbatch", job_file, "--run-dir", base / name)
    submitted["array"] = sbatch(*common, "--ntasks=1", "--array=0-2", "--output", base / "array-%a.out",
                                REPO / "slurm/array.sbatch", job_file, base / "array", "--set", "stop.iterations=3")
    wait_iteration(base / "usr1", 3)
    subprocess.run(["scancel", "--batch", "--signal=USR1", submitted["usr1"]], check=True, timeout=30)
    wait_iteration(base / "requeue", 7)
    subprocess.run(["scontrol", "requeue", submitted["requeue"]], check=True, timeout=30)
    return submitted


def final_checkpoint(run_dir):
    return ckpt_io.load(ckpt_io.checkpoint_path(run_dir, ITERATIONS))


def assert_same_result(run_dir, reference_dir):
    mine, reference = final_checkpoint(run_dir), final_checkpoint(reference_dir)
    assert mine.params.tobytes() == reference.params.tobytes()
    for key, value in reference.strategy.items():
        assert np.asarray(mine.strategy[key]).tobytes() == np.asarray(value).tobytes(), key


def test_train_sbatch_completes_with_checkpoint(jobs):
    fields = wait_final(jobs["reference"])
    log = (jobs["base"] / "reference.out").read_text()
    assert fields["JobState"] == "COMPLETED", log
    assert fields["ExitCode"] == "0:0" and fields["Restarts"] == "0"
    assert f"done (iterations) at iteration {ITERATIONS}" in log
    status = json.loads((jobs["base"] / "reference" / "status.json").read_text())
    assert status["state"] == "done (iterations)" and status["iteration"] == ITERATIONS
    assert status["slurm_job_id"] == jobs["reference"]
    assert final_checkpoint(jobs["base"] / "reference").iteration == ITERATIONS


def test_usr1_checkpoints_requeues_and_resumes_identically(jobs):
    run_dir = jobs["base"] / "usr1"
    fields = wait_final(jobs["usr1"])
    log = (jobs["base"] / "usr1.out").read_text()
    assert fields["JobState"] == "COMPLETED" and fields["Restarts"] == "1", log
    assert "stopped by signal SIGUSR1" in log and "requeueing job" in log
    stopped_at = int(log.split("stopped by signal SIGUSR1 after iteration ")[1].split(";")[0])
    assert stopped_at < ITERATIONS
    assert f"resumed from iteration {stopped_at} " in log
    assert_same_result(run_dir, jobs["base"] / "reference")
    wait_final(jobs["reference"])


def test_scontrol_requeue_resumes_identically(jobs):
    run_dir = jobs["base"] / "requeue"
    fields = wait_final(jobs["requeue"])
    log = (jobs["base"] / "requeue.out").read_text()
    assert fields["JobState"] == "COMPLETED" and fields["Restarts"] == "1", log
    assert "got SIGTERM" in log and "resumed from iteration" in log
    wait_final(jobs["reference"])
    assert_same_result(run_dir, jobs["base"] / "reference")
    status = json.loads((run_dir / "status.json").read_text())
    assert status["slurm_restart_count"] == 1 and status["iteration"] == ITERATIONS


def test_array_gives_one_run_directory_per_seed(jobs):
    task_ids = [f"{jobs['array']}_{task}" for task in range(3)]
    for task_id in task_ids:
        assert wait_final(task_id)["JobState"] == "COMPLETED", task_id
    params, seeds = [], []
    for task in range(3):
        path, ckpt = ckpt_io.newest_valid(jobs["base"] / "array" / f"seed-{task}")
        assert ckpt.iteration == 3, path
        seeds.append(int(ckpt.config_toml.split("seed = ")[1].split("\n")[0]))
        params.append(ckpt.params.tobytes())
    assert seeds == [0, 1, 2]
    assert len(set(params)) == 3


def test_srun_without_pmi_is_refused_not_run_twice(cluster, tmp_path):
    """A real `srun --mpi=none -n 2` inside a job: both copies refuse with one line, none trains."""
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    done = subprocess.run(["srun", "--mpi=none", "-n", "2", sys.executable, "-m", "es_mpi", "train", str(job),
                           "--run-dir", str(tmp_path / "run")], capture_output=True, text=True, timeout=180,
                          env=slurm_env(), cwd=REPO)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("es-mpi: error:")]
    assert len(lines) == 2 and all("srun started 2 tasks" in line for line in lines), done.stderr
    assert not (tmp_path / "run").exists()
