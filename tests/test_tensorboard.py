"""[log] tensorboard: metrics rows as TensorBoard scalars, read back with TensorBoard's own reader."""

import csv

import pytest

from conftest import REPO, run_es, run_mpi

pytest.importorskip("tensorboardX")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

JOB = """
[env]
id = "Pendulum-v1"
step_cap = 50
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
keep = 5
[log]
tensorboard = true
[stop]
iterations = {iterations}
"""


def csv_rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def scalars(run_dir):
    events = event_accumulator.EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def assert_events_match_csv(run_dir):
    rows, logged = csv_rows(run_dir), scalars(run_dir)
    steps = [int(row["timesteps"]) for row in rows]
    for column in ("return_mean", "return_max", "iteration", "timesteps_per_s"):
        assert [step for step, _ in logged[column]] == steps
        assert [value for _, value in logged[column]] == pytest.approx([float(row[column]) for row in rows],
                                                                      rel=1e-6)
    evaluated = [(int(row["timesteps"]), float(row["eval_return"])) for row in rows if row["eval_return"] != "nan"]
    assert [step for step, _ in logged["eval_return"]] == [step for step, _ in evaluated]
    assert [v for _, v in logged["eval_return"]] == pytest.approx([v for _, v in evaluated], rel=1e-6)


@pytest.mark.mpi
def test_every_metrics_row_is_a_scalar_from_rank_0(write_job, tmp_path):
    run_dir = tmp_path / "run"
    done = run_mpi(2, "train", write_job(JOB.format(iterations=4)), "--run-dir", run_dir, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(list((run_dir / "tensorboard").iterdir())) == 1  # one writer: rank 0
    assert_events_match_csv(run_dir)


def test_resume_appends_without_doubling_the_replayed_iterations(write_job, tmp_path):
    run_dir = tmp_path / "run"
    text = JOB.replace("tensorboard = true", "tensorboard = false")
    done = run_es("train", write_job(text.format(iterations=5)), "--run-dir", run_dir, "--tensorboard", timeout=120)
    assert done.returncode == 0, done.stderr
    (run_dir / "ckpt-00000005.h5").unlink()  # as if killed after logging iteration 5: resume from 4
    (run_dir / "best.h5").unlink(missing_ok=True)
    done = run_es("train", write_job(text.format(iterations=7)), "--run-dir", run_dir, "--resume", "--tensorboard",
                  timeout=120)
    assert done.returncode == 0, done.stderr
    assert "resumed from iteration 4" in done.stdout
    assert len(list((run_dir / "tensorboard").iterdir())) == 2
    assert [row["iteration"] for row in csv_rows(run_dir)] == [str(i) for i in range(1, 8)]
    assert_events_match_csv(run_dir)


def test_without_the_extra_the_job_is_refused_in_one_line(write_job, tmp_path):
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "tensorboardX.py").write_text("raise ImportError('not installed')\n")
    done = run_es("train", write_job(JOB.format(iterations=1)), "--run-dir", tmp_path / "run", timeout=60,
                  env_extra={"PYTHONPATH": f"{blocked}:{REPO}"})
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "log.tensorboard" in done.stderr and "es-mpi[tensorboard]" in done.stderr
    assert not (tmp_path / "run").exists()


def test_a_resume_within_the_same_second_keeps_the_earlier_events(tmp_path, monkeypatch):
    """tensorboardX names its file by the second and truncates a file of that name; with the clock
    held at one second, the resumed writer must still leave the first run's events where they were."""
    import time

    from es_mpi.records.tensorboard import TensorBoardScalars

    monkeypatch.setattr(time, "time", lambda: 1_800_000_000.0)
    first = TensorBoardScalars(tmp_path, 0)
    first.write(dict(timesteps=10, iteration=1, return_mean=1.0, wall_time=1.0))
    first.close()
    resumed = TensorBoardScalars(tmp_path, 10)
    resumed.write(dict(timesteps=20, iteration=2, return_mean=2.0, wall_time=2.0))
    resumed.close()
    assert len(list((tmp_path / "tensorboard").iterdir())) == 2
    assert scalars(tmp_path)["return_mean"] == [(10, 1.0), (20, 2.0)]
