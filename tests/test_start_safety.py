"""Start-up cannot lose or hang a job, and a checkpoint cannot run code.

Signals during start-up, an error on one rank at any point, a second writer, an unwritable or
empty run directory, a checkpoint that names a Python module, changed package versions.
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import tempfile
import time

import h5py
import pytest

from conftest import REPO, child_env, es_mpi_command, run_es, run_mpi
from es_mpi.records import checkpoint as ckpt_io

JOB = """
[env]
id = "{env_id}"
[policy]
hidden = [8]
[strategy]
pairs = 4
sigma = 0.1
[noise]
size = 100_000
[eval]
every = 0
[checkpoint]
every = 1
[stop]
iterations = {iterations}
"""

# A custom env module: registering an env on import is how gymnasium's 'module:Name-v0' ids work.
# Importing it leaves a marker, so a test sees whether es-mpi imported it.
EVIL_MODULE = """
import os, pathlib
import gymnasium as gym
pathlib.Path(os.environ["EVIL_MARKER"]).write_text("imported")
gym.register("Evil-v0", entry_point="gymnasium.envs.classic_control.cartpole:CartPoleEnv", max_episode_steps=30)
"""


def job_file(tmp_path, env_id="CartPole-v1", iterations=3, name="job.toml"):
    path = tmp_path / name
    path.write_text(JOB.format(env_id=env_id, iterations=iterations))
    return path


def one_error_line(stderr):
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("es-mpi: error:"), stderr
    return lines[0]


# ---------------------------------------------------------------- a checkpoint never imports code
@pytest.fixture(scope="module")
def module_run(tmp_path_factory):
    """A run trained from a job file (trusted: the user's own) whose env.id names a module."""
    base = tmp_path_factory.mktemp("module-run")
    modules = base / "modules"
    modules.mkdir()
    (modules / "evilmod.py").write_text(EVIL_MODULE)
    marker = base / "imported.txt"
    env = {"PYTHONPATH": f"{REPO}:{modules}", "EVIL_MARKER": str(marker)}
    job = job_file(base, env_id="evilmod:Evil-v0", iterations=2)
    result = run_es("train", job, "--run-dir", base / "run", env_extra=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert marker.exists()  # the job file you pass yourself is trusted
    return base / "run", marker, env


@pytest.fixture
def module_checkpoint(module_run):
    """The module's run, its import marker gone: the commands only read the run."""
    run_dir, marker, env = module_run
    marker.unlink(missing_ok=True)
    return run_dir, marker, env


def test_eval_refuses_a_checkpoint_that_names_a_module(module_checkpoint):
    run_dir, marker, env = module_checkpoint
    result = run_es("eval", run_dir, "--episodes", "1", env_extra=env)
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert "env.id" in line and "'evilmod'" in line and "--trust-code" in line
    assert not marker.exists()


def test_inspect_and_plot_never_import_task_code(module_checkpoint, tmp_path):
    run_dir, marker, env = module_checkpoint
    assert run_es("inspect", run_dir, env_extra=env).returncode == 0
    plotted = run_es("plot", run_dir, "--metric", "return_mean", "-o", tmp_path / "curves.png", env_extra=env)
    assert plotted.returncode == 0, plotted.stderr
    assert not marker.exists()


def test_trust_code_lets_eval_import_it(module_checkpoint):
    run_dir, marker, env = module_checkpoint
    result = run_es("eval", run_dir, "--episodes", "1", "--trust-code", env_extra=env)
    assert result.returncode == 0, result.stderr
    assert marker.exists()


# ---------------------------------------------------------------- signals during start-up
def start_and_signal(command, after_s, log_dir):
    """The signal lands inside start-up: Open MPI's full start (its libfabric probe included, which
    child_env leaves out elsewhere) takes about a second here, and the delays fall inside it."""
    env = child_env()
    del env["OMPI_MCA_btl"]
    process = subprocess.Popen(command, env=env, stdout=open(log_dir / "out.log", "w"),
                               stderr=open(log_dir / "err.log", "w"), cwd=REPO)
    time.sleep(after_s)
    process.send_signal(signal.SIGUSR1)
    return process.wait(timeout=300)


@pytest.mark.mpi
@pytest.mark.parametrize("after_s", [0.3, 0.8])
@pytest.mark.parametrize("ranks", [None, 2])
def test_a_stop_during_start_up_exits_3_and_resume_continues(tmp_path, after_s, ranks):
    job, run_dir = job_file(tmp_path), tmp_path / "run"
    args = ["train", job, "--run-dir", run_dir, "--resume"] + (["-n", str(ranks)] if ranks else [])
    code = start_and_signal(es_mpi_command(*args), after_s, tmp_path)
    assert code == 3, (tmp_path / "err.log").read_text()[-2000:]
    resumed = run_es(*args)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((run_dir / "status.json").read_text())["iteration"] == 3


# ---------------------------------------------------------------- an error on one rank ends the job
@pytest.mark.mpi
@pytest.mark.parametrize("where", ["1:start", "1:iteration", "0:checkpoint"])
def test_an_error_on_one_rank_ends_the_whole_job(tmp_path, where):
    job = job_file(tmp_path, iterations=100000)
    result = run_mpi(2, "train", job, "--run-dir", tmp_path / "run", timeout=120,
                     env_extra={"ES_MPI_FAIL_AT": where})  # a hang fails as a timeout
    assert result.returncode != 0
    if where == "1:start":
        assert "es-mpi: error: [rank 1] injected input error at start-up" in result.stderr
    elif where == "1:iteration":
        assert "[rank 1] Traceback" in result.stderr and "injected failure at iteration" in result.stderr
    else:  # a failed checkpoint write is one line on every rank's behalf, exit 1
        assert result.returncode == 1 and "es-mpi: error:" in result.stderr and "injected write error" in result.stderr


# ---------------------------------------------------------------- one writer per run directory
def test_a_second_run_in_the_same_directory_is_refused(tmp_path):
    job, run_dir = job_file(tmp_path, iterations=100000), tmp_path / "run"
    first = subprocess.Popen(es_mpi_command("train", job, "--run-dir", run_dir), env=child_env(), cwd=REPO,
                             stdout=open(tmp_path / "out.log", "w"), stderr=open(tmp_path / "err.log", "w"))
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "status.json").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        second = run_es("train", job, "--run-dir", run_dir, "--resume")
        assert second.returncode == 2
        line = one_error_line(second.stderr)
        assert "in use by es-mpi" in line and f"PID {first.pid} on {socket.gethostname()}" in line
    finally:
        first.send_signal(signal.SIGUSR1)
        assert first.wait(timeout=120) == 3
    assert not (run_dir / "es-mpi.lock").exists()  # let go at exit 3


def test_a_stale_lock_is_taken_over(tmp_path):
    job, run_dir = job_file(tmp_path), tmp_path / "run"
    run_dir.mkdir()
    gone = subprocess.Popen(["true"])
    gone.wait()
    (run_dir / "es-mpi.lock").write_text(json.dumps({"host": socket.gethostname(), "pid": gone.pid}))
    result = run_es("train", job, "--run-dir", run_dir)
    assert result.returncode == 0, result.stderr
    assert f"taking over the lock of {run_dir}: PID {gone.pid} on {socket.gethostname()} is gone" in result.stdout
    assert not (run_dir / "es-mpi.lock").exists()


# ---------------------------------------------------------------- unusable run directories
def test_an_unwritable_run_directory_is_refused_before_any_work(tmp_path):
    """As an unprivileged user, an existing directory it cannot write (root can write anywhere)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to an unprivileged user")
    shared = pathlib.Path(tempfile.mkdtemp(prefix="es-mpi-readonly-"))
    try:
        shared.chmod(0o755)
        job, run_dir = job_file(shared), shared / "run"
        run_dir.mkdir(mode=0o755)
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        env = child_env(HOME=str(shared), TMPDIR="/tmp")
        readable = subprocess.run([*as_nobody, *es_mpi_command("--help")], capture_output=True, timeout=60, cwd="/",
                                  env=env)
        if readable.returncode != 0:
            pytest.skip("an unprivileged user cannot run es-mpi from this checkout (a private parent folder)")
        command = [*as_nobody, *es_mpi_command("train", job, "--run-dir", run_dir, "--resume")]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd="/", env=env)
        assert result.returncode == 2
        assert "run.dir: cannot write in" in one_error_line(result.stderr)
        assert list(run_dir.iterdir()) == []
    finally:
        subprocess.run(["rm", "-rf", str(shared)], check=True)


@pytest.mark.parametrize("argument", [["--run-dir", ""], ["--set", 'run.dir=""']])
def test_an_empty_run_directory_is_refused(tmp_path, argument):
    result = run_es("train", job_file(tmp_path), *argument)
    assert result.returncode == 2
    assert "must not be empty" in one_error_line(result.stderr)


# ---------------------------------------------------------------- package versions on resume
def rewrite_versions(path, versions):
    """The checkpoint written again with other recorded versions (a real file, checksum recomputed)."""
    ckpt = ckpt_io.load(path)
    ckpt.versions = versions
    ckpt_io.save(path, ckpt)


def test_changed_versions_are_reported_and_strict_versions_refuses(tmp_path):
    job, run_dir = job_file(tmp_path, iterations=2), tmp_path / "run"
    assert run_es("train", job, "--run-dir", run_dir).returncode == 0
    newest = ckpt_io.periodic_checkpoints(run_dir)[0][1]
    versions = dict(ckpt_io.load(newest).versions, numpy="1.0.0")
    rewrite_versions(newest, versions)
    job.write_text(job.read_text().replace("iterations = 2", "iterations = 3"))
    strict = run_es("train", job, "--run-dir", run_dir, "--resume", "--strict-versions")
    assert strict.returncode == 2
    assert "numpy 1.0.0 -> " in one_error_line(strict.stderr) and "--strict-versions" in strict.stderr
    with h5py.File(newest, "r") as f:
        assert json.loads(f.attrs["versions"])["numpy"] == "1.0.0"  # nothing touched
    resumed = run_es("train", job, "--run-dir", run_dir, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "warning: numpy 1.0.0 -> " in resumed.stdout
    assert json.loads((run_dir / "status.json").read_text())["version_changes"][0].startswith("numpy 1.0.0 -> ")
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    column = lines[0].split(",").index("versions_changed")
    assert [line.split(",")[column] for line in lines[1:]] == ["0", "0", "1"]  # the resumed iteration says 1


def test_metrics_from_an_older_checkpoint_gain_the_newer_columns(tmp_path):
    """A run resumed from a checkpoint whose metrics lack a column added since: every row of
    metrics.csv still has every column (NaN where it was not recorded), in one header."""
    job, run_dir = job_file(tmp_path, iterations=2), tmp_path / "run"
    assert run_es("train", job, "--run-dir", run_dir).returncode == 0
    newest = ckpt_io.periodic_checkpoints(run_dir)[0][1]
    ckpt = ckpt_io.load(newest)
    del ckpt.metrics["versions_changed"]
    ckpt_io.save(newest, ckpt)
    job.write_text(job.read_text().replace("iterations = 2", "iterations = 3"))
    assert run_es("train", job, "--run-dir", run_dir, "--resume").returncode == 0
    rows = [line.split(",") for line in (run_dir / "metrics.csv").read_text().splitlines()]
    assert {len(row) for row in rows} == {len(rows[0])} and len(rows) == 4
    column = rows[0].index("versions_changed")
    assert [row[column] for row in rows[1:]] == ["nan", "nan", "0"]


# ---------------------------------------------------------------- srun without PMI
def test_srun_tasks_without_pmi_are_refused(tmp_path):
    """What plain `srun -n 2` (MpiDefault=none) gives each process: a step of 2 tasks, no MPI rank."""
    result = run_es("train", job_file(tmp_path), "--run-dir", tmp_path / "run",
                    env_extra={"SLURM_STEP_NUM_TASKS": "2", "SLURM_PROCID": "1"})
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert "srun started 2 tasks" in line and "srun --mpi=pmix" in line
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- checkpoints of an older es-mpi
def write_unsealed(path, ckpt):
    """A checkpoint as es-mpi wrote them before format 3: plain HDF5, no user block, format 2."""
    with h5py.File(path, "w") as f:
        f.attrs.update(format=ckpt_io.FORMAT, format_version=2, iteration=ckpt.iteration, timesteps=ckpt.timesteps,
                       step_cap=ckpt.step_cap, best_eval_return=ckpt.best_eval_return, eval_return=ckpt.eval_return,
                       config=ckpt.config_toml, versions=json.dumps(ckpt.versions),
                       checksum=ckpt_io.content_checksum(ckpt))
        f.create_dataset("params", data=ckpt.params)
        for name in ("strategy", "obstat", "metrics", "extra"):
            group = f.create_group(name)
            for key, value in getattr(ckpt, name).items():
                group.create_dataset(key, data=value)
            group.attrs["order"] = json.dumps(list(getattr(ckpt, name)))


def test_a_run_started_by_an_older_es_mpi_resumes(tmp_path):
    job, run_dir = job_file(tmp_path, iterations=2), tmp_path / "run"
    assert run_es("train", job, "--run-dir", run_dir).returncode == 0
    for _, path in ckpt_io.periodic_checkpoints(run_dir):
        write_unsealed(path, ckpt_io.load(path))
    assert ckpt_io.load(path).iteration in (1, 2)
    job.write_text(job.read_text().replace("iterations = 2", "iterations = 3"))
    resumed = run_es("train", job, "--run-dir", run_dir, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from iteration 2" in resumed.stdout
