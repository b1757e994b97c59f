"""Seeing results: es-mpi plot of several run directories, es-mpi eval --all, status.json."""

import json
import signal
import subprocess
import time

import pytest

from conftest import child_env, mpiexec_command, run_cli, run_es

JOB = """
[run]
seed = {seed}
[env]
id = "Pendulum-v1"
[policy]
hidden = [4]
[strategy]
pairs = 2
[noise]
size = 10000
[eval]
every = 2
episodes = 1
[checkpoint]
every = 2
[stop]
iterations = {iterations}
"""


def train(write_job, tmp_path, seed, iterations=4):
    run_dir = tmp_path / f"run-{seed}"
    done = run_es("train", write_job(JOB.format(seed=seed, iterations=iterations), f"job{seed}.toml"),
                  "--run-dir", run_dir, timeout=120)
    assert done.returncode == 0, done.stderr
    return run_dir


def test_plot_writes_a_png_from_two_runs(write_job, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.image

    runs = [train(write_job, tmp_path, seed) for seed in (1, 2)]
    out = tmp_path / "curves.png"
    done = run_es("plot", *runs, "-o", out, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "2 runs in 1 groups" in done.stdout
    image = matplotlib.image.imread(out)
    assert image.ndim == 3 and image.shape[0] > 100 and image.std() > 0


def test_plot_names_a_directory_without_metrics(tmp_path):
    done = run_cli("plot", tmp_path)
    assert done.returncode == 2 and str(tmp_path) in done.stderr and done.stderr.count("\n") == 1


def test_eval_all_prints_a_row_per_kept_checkpoint(write_job, tmp_path):
    run_dir = train(write_job, tmp_path, 3)
    done = run_cli("eval", run_dir, "--all")
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()[1:]]
    assert [row[0] for row in rows] == ["ckpt-00000002.h5", "ckpt-00000004.h5", "best.h5"]
    assert [int(row[1]) for row in rows[:2]] == [2, 4]


def test_status_json_after_a_run(write_job, tmp_path):
    run_dir = train(write_job, tmp_path, 4)
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "done (iterations)"
    assert status["iteration"] == 4 and status["timesteps"] == 4 * 4 * 200
    assert status["last_checkpoint"].endswith("ckpt-00000004.h5")
    assert status["estimated_seconds_to_stop"] == 0.0


@pytest.mark.mpi
def test_status_json_after_an_interruption(write_job, tmp_path):
    run_dir = tmp_path / "run"
    job = write_job(JOB.format(seed=5, iterations=100000))
    process = subprocess.Popen(mpiexec_command(2, "train", job, "--run-dir", run_dir), env=child_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                running = json.loads((run_dir / "status.json").read_text())
                if running["iteration"] >= 3:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        assert running["state"] == "running" and running["estimated_seconds_to_stop"] > 0
        process.send_signal(signal.SIGUSR1)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 3, stderr
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "interrupted (SIGUSR1)"
    assert status["last_checkpoint"].endswith(f"ckpt-{status['iteration']:08d}.h5")
    assert (run_dir / f"ckpt-{status['iteration']:08d}.h5").exists()
