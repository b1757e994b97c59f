"""es-mpi eval --video: real MuJoCo (EGL/OSMesa) and ALE frames in a real MP4."""

import json
import math
import subprocess

import numpy as np
import pytest

from conftest import REPO, child_env, es_mpi_command, run_cli, run_es
from es_mpi.parts.job_file import job_from_text
from es_mpi.records import checkpoint as ckpt_io

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


# The centre of a HalfCheetah run that runs several body lengths, out of a fixed camera's view:
# committed as text, since training it takes minutes; tests/data/make_running_halfcheetah.py remakes it.
RUNNING_HALFCHEETAH = REPO / "tests" / "data" / "running-halfcheetah.json"
# Its episodes are cut to 200 of the 500 steps it trained on (rendering a frame costs more than a step):
# enough to run over 15 m, which the test checks from the return.
FILMED_STEPS = 200


def running_halfcheetah_checkpoint(path):
    """A checkpoint of today's format holding the committed centre, its job cut to FILMED_STEPS steps.
    The strategy state and the metrics history, which eval never reads, are left out (one metrics
    column, as the format needs), and so is the evaluation return, which was over 500 steps."""
    centre = json.loads(RUNNING_HALFCHEETAH.read_text())
    job = job_from_text(centre["config_toml"], str(RUNNING_HALFCHEETAH), [f"env.step_cap={FILMED_STEPS}"])
    obstat = {key: np.asarray(value, dtype=np.float64) for key, value in centre["obstat"].items()}
    ckpt_io.save(path, ckpt_io.Checkpoint(
        config_toml=job.to_toml(), iteration=centre["iteration"], timesteps=centre["timesteps"],
        step_cap=FILMED_STEPS, best_eval_return=-math.inf, eval_return=math.nan,
        params=np.asarray(centre["params"], dtype=np.float32), strategy={}, obstat=obstat,
        metrics={"iteration": np.arange(1, centre["iteration"] + 1)}, versions=ckpt_io.package_versions()))
    return path


def trained(write_job, tmp_path, text):
    run_dir = tmp_path / "run"
    done = run_es("train", write_job(text), "--run-dir", run_dir, timeout=120)
    assert done.returncode == 0, done.stderr
    return run_dir


@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory):
    """One InvertedPendulum run for the tests that only play it (eval writes nothing into it)."""
    base = tmp_path_factory.mktemp("pendulum")
    job = base / "job.toml"
    job.write_text(MUJOCO_JOB)
    done = run_es("train", job, "--run-dir", base / "run", timeout=120)
    assert done.returncode == 0, done.stderr
    return base / "run"


def episode_lengths(stdout):
    return [int(line.split("length")[1]) for line in stdout.splitlines() if line.startswith("episode ")]


def episode_lines(stdout):
    return [line for line in stdout.splitlines() if line.startswith("episode ")]


def frames_of(path):
    return np.stack(list(imageio.imiter(path)))


def check_video(path, length):
    frames = frames_of(path)
    assert frames.shape[0] == length + 1  # the reset frame and one per step
    assert frames.ndim == 4 and frames.shape[-1] == 3
    assert all(frame.std() > 1.0 for frame in frames[:: max(1, length // 5)])  # not one colour
    return frames


def test_mujoco_video_has_one_frame_per_step(pendulum_run, tmp_path):
    out = tmp_path / "pendulum.mp4"
    done = run_es("eval", pendulum_run, "--video", out, timeout=120)
    assert done.returncode == 0, done.stderr
    (length,) = episode_lengths(done.stdout)
    check_video(out, length)


def agent_share(frame_hw3):
    """Share of pixels in the cheetah's colours: red well above green. The floor (green, white,
    black) and the sky (grey) have none of them."""
    rgb = frame_hw3.astype(np.int16)
    return float(np.mean(rgb[..., 0] - rgb[..., 1] > 30))


def floor_share_of(frame_hw3):
    """Share of pixels in the floor's light green squares (green above red and blue)."""
    rgb = frame_hw3.astype(np.int16)
    return float(np.mean((rgb[..., 1] - rgb[..., 0] > 10) & (rgb[..., 1] > 150)))


def empty_floor_frame():
    """The floor and sky with no agent in view: gymnasium's free camera, placed on the cheetah by
    the first render, then the cheetah moved 20 m on."""
    import gymnasium as gym
    import mujoco

    from es_mpi.commands.video import choose_mujoco_gl

    choose_mujoco_gl()
    env = gym.make("HalfCheetah-v5", render_mode="rgb_array")
    env.reset(seed=0)
    env.render()
    env.unwrapped.data.qpos[0] += 20.0
    mujoco.mj_forward(env.unwrapped.model, env.unwrapped.data)
    frame = env.render()
    env.close()
    return frame


@pytest.mark.slow
def test_the_camera_follows_a_running_halfcheetah(tmp_path):
    best = running_halfcheetah_checkpoint(tmp_path / "best.h5")
    out = tmp_path / "cheetah.mp4"
    done = run_es("eval", best, "--video", out, timeout=300)
    assert done.returncode == 0, done.stderr
    (length,) = episode_lengths(done.stdout)
    assert length == FILMED_STEPS
    episode_return = float(done.stdout.split("return")[1].split()[0])
    # A step's reward is at most its forward speed (ctrl cost aside), so the return bounds the
    # distance: return / 20 steps per second >= 15 m, far beyond a fixed camera's few metres.
    assert episode_return > 300, done.stdout
    unrecorded = run_cli("eval", best, "--episodes", 1)
    assert episode_lines(unrecorded.stdout) == episode_lines(done.stdout)  # the video's floor changes nothing
    frames = check_video(out, length)
    floor_share = agent_share(empty_floor_frame())
    assert floor_share < 0.001
    for fraction in (0.2, 0.4, 0.6, 0.8, 1.0):
        frame = frames[round(fraction * length)]
        share = agent_share(frame)
        assert share > 0.01, f"agent out of view at {fraction:.0%} of the episode ({share:.4f} of the pixels)"
        assert floor_share_of(frame) > 0.1, f"no floor under the agent at {fraction:.0%} of the episode"


def test_several_episodes_give_one_file_each(pendulum_run, tmp_path):
    done = run_es("eval", pendulum_run, "--video", tmp_path / "ep.mp4", "--episodes", 2, timeout=120)
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


def test_video_needs_an_mp4_name(pendulum_run, tmp_path):
    done = run_cli("eval", pendulum_run, "--video", tmp_path / "x.avi")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "only .mp4" in done.stderr


def test_a_broken_mujoco_gl_is_one_line(pendulum_run, tmp_path):
    done = subprocess.run(es_mpi_command("eval", pendulum_run, "--video", tmp_path / "x.mp4"), capture_output=True,
                          text=True, timeout=60, cwd=REPO, env=child_env(MUJOCO_GL="nosuchbackend"))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "MUJOCO_GL=nosuchbackend" in done.stderr
    assert not (tmp_path / "x.mp4").exists()


CARTPOLE_JOB = """
[env]
id = "CartPole-v1"
step_cap = 20
[policy]
hidden = [4]
[strategy]
pairs = 2
[noise]
size = 10000
[stop]
iterations = 1
"""


def test_classic_control_video_draws_with_pygame(write_job, tmp_path):
    run_dir = trained(write_job, tmp_path, CARTPOLE_JOB)
    out = tmp_path / "cartpole.mp4"
    done = run_es("eval", run_dir, "--video", out, timeout=120)
    assert done.returncode == 0, done.stderr
    (length,) = episode_lengths(done.stdout)
    check_video(out, length)
