"""es-mpi eval --video: real MuJoCo (EGL/OSMesa) and ALE frames in a real MP4."""

import subprocess

import numpy as np
import pytest

from conftest import REPO, child_env, es_mpi_command, run_es

imageio = pytest.importorskip("imageio.v3")
pytest.importorskip("moviepy")

MUJOCO_JOB = """
[env]
id = "InvertedPendulum-v5"
step_cap = 40
[policy]
hidden = [4]
[strategy]
pairs = 2
[noise]
size = 10000
[eval]
every = 1
episodes = 1
[stop]
iterations = 1
"""

ATARI_JOB = """
[env]
id = "ALE/Pong-v5"
step_cap = 25
[policy]
kind = "cnn"
[obs_norm]
enabled = false
[strategy]
pairs = 1
[noise]
size = 1_000_000
[eval]
every = 1
episodes = 1
[stop]
iterations = 1
"""


def trained(write_job, tmp_path, text):
    run_dir = tmp_path / "run"
    done = run_es("train", write_job(text), "--run-dir", run_dir, timeout=120)
    assert done.returncode == 0, done.stderr
    return run_dir


def episode_lengths(stdout):
    return [int(line.split("length")[1]) for line in stdout.splitlines() if line.startswith("episode ")]


def frames_of(path):
    return np.stack(list(imageio.imiter(path)))


def check_video(path, length):
    frames = frames_of(path)
    assert frames.shape[0] == length + 1  # the reset frame and one per step
    assert frames.ndim == 4 and frames.shape[-1] == 3
    assert all(frame.std() > 1.0 for frame in frames[:: max(1, length // 5)])  # not one colour
    return frames


def test_mujoco_video_has_one_frame_per_step(write_job, tmp_path):
    run_dir = trained(write_job, tmp_path, MUJOCO_JOB)
    out = tmp_path / "pendulum.mp4"
    done = run_es("eval", run_dir, "--video", out, timeout=120)
    assert done.returncode == 0, done.stderr
    (length,) = episode_lengths(done.stdout)
    check_video(out, length)


def test_several_episodes_give_one_file_each(write_job, tmp_path):
    run_dir = trained(write_job, tmp_path, MUJOCO_JOB)
    done = run_es("eval", run_dir, "--video", tmp_path / "ep.mp4", "--episodes", 2, timeout=120)
    assert done.returncode == 0, done.stderr
    for k, length in enumerate(episode_lengths(done.stdout)):
        check_video(tmp_path / f"ep-episode-{k}.mp4", length)


def test_atari_video_shows_the_game(write_job, tmp_path):
    pytest.importorskip("ale_py")
    run_dir = trained(write_job, tmp_path, ATARI_JOB)
    out = tmp_path / "pong.mp4"
    done = run_es("eval", run_dir, "--video", out, timeout=120)
    assert done.returncode == 0, done.stderr
    (length,) = episode_lengths(done.stdout)
    frames = check_video(out, length)
    assert frames.shape[1:3] == (210, 160)


def test_video_needs_an_mp4_name(write_job, tmp_path):
    run_dir = trained(write_job, tmp_path, MUJOCO_JOB)
    done = run_es("eval", run_dir, "--video", tmp_path / "x.avi", timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "only .mp4" in done.stderr


def test_a_broken_mujoco_gl_is_one_line(write_job, tmp_path):
    run_dir = trained(write_job, tmp_path, MUJOCO_JOB)
    done = subprocess.run(es_mpi_command("eval", run_dir, "--video", tmp_path / "x.mp4"), capture_output=True,
                          text=True, timeout=60, cwd=REPO, env=child_env(MUJOCO_GL="nosuchbackend"))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "MUJOCO_GL=nosuchbackend" in done.stderr
    assert not (tmp_path / "x.mp4").exists()
