"""Atari jobs for real: validation, reference batch, 1 vs 2 ranks, resume, eval and inspect."""

import csv
import pathlib

import h5py
import numpy as np
import pytest

from conftest import run_es, run_mpi
from es_mpi.commands.plot import read_metrics, x_values
from es_mpi.core.errors import ConfigError
from es_mpi.parts.job_file import job_from_text
from es_mpi.parts.build import build_task
from es_mpi.run.vbn_reference import collect_reference

TINY_PONG = """
[env]
id = "ALE/Pong-v5"
[atari]
max_episode_steps = 25
repeat_action_probability = 0.25
[policy]
kind = "cnn"
vbn = true
vbn_batch = 6
vbn_probability = 0.5
[strategy]
pairs = 2
[noise]
size = 1_000_000
[obs_norm]
enabled = false
[eval]
every = 2
episodes = 1
[checkpoint]
every = 1
[stop]
iterations = 2
"""

BAD_COMBINATIONS = [
    ("[obs_norm]\nenabled = true", "obs_norm.enabled"),
    ("[policy]\nkind = 'mlp'", "policy.kind"),
    ("[env]\nkwargs = {frameskip = 4}", "env.kwargs.frameskip"),
    ("[env]\nkwargs = {repeat_action_probability = 0.25}", "env.kwargs.repeat_action_probability"),
    ("[atari]\nrepeat_action_probability = 1.5", "atari.repeat_action_probability"),
    ("[atari]\nframe_skip = 0", "atari.frame_skip"),
]


def pong_job():
    return job_from_text(TINY_PONG, pathlib.Path("pong.toml"))


def built(text, path):
    """Parse and build: what training and eval do before anything else."""
    return build_task(job_from_text(text, pathlib.Path(path)))


@pytest.mark.parametrize("change, key", BAD_COMBINATIONS)
def test_incompatible_settings_name_the_key(change, key):
    header, _, body = change.partition("\n")
    lines = [line for line in TINY_PONG.splitlines() if line.split(" =")[0] != body.split(" =")[0]]
    text = "\n".join(lines).replace(header, header + "\n" + body, 1)
    with pytest.raises(ConfigError, match=f": {key.replace('.', '[.]')}: "):
        built(text, "pong.toml")


def test_atari_section_and_cnn_need_an_ale_game():
    with pytest.raises(ConfigError, match=": atari: only applies to Atari"):
        built('[env]\nid = "CartPole-v1"\n[atari]\nnoop_max = 3\n', "c.toml")
    with pytest.raises(ConfigError, match=": policy.kind: 'cnn' needs an Atari"):
        built('[env]\nid = "CartPole-v1"\n[policy]\nkind = "cnn"\n', "c.toml")
    with pytest.raises(ConfigError, match=": policy.vbn: needs obs_norm.enabled = false"):
        built('[env]\nid = "CartPole-v1"\n[policy]\nvbn = true\n', "c.toml")
    assert "atari" not in job_from_text('[env]\nid = "CartPole-v1"\n', pathlib.Path("c.toml")).to_dict()


def test_preprocessed_env_and_deterministic_reference_batch():
    job = pong_job()
    task = build_task(job)
    env = task.env
    assert env.observation_space.shape == (4, 84, 84) and env.observation_space.dtype == np.uint8
    assert env.spec.max_episode_steps == 25
    first = collect_reference(env, 6, 0.5, job.run.seed, 25)
    second = collect_reference(env, 6, 0.5, job.run.seed, 25)
    other_seed = collect_reference(env, 6, 0.5, job.run.seed + 1, 25)
    assert first.shape == (6, 4, 84, 84) and first.dtype == np.uint8
    assert np.array_equal(first, second) and not np.array_equal(first, other_seed)
    env.close()


def test_bad_combination_on_the_command_line_is_one_line_exit_2(tmp_path):
    job = tmp_path / "pong.toml"
    job.write_text(TINY_PONG)
    result = run_es("train", job, "--set", "obs_norm.enabled=true", "--run-dir", tmp_path / "run", timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "obs_norm.enabled" in result.stderr
    assert "Traceback" not in result.stderr


def final_state(run_dir, iteration=2):
    with h5py.File(pathlib.Path(run_dir) / f"ckpt-{iteration:08d}.h5", "r") as f:
        return f["params"][()].tobytes(), f["extra/vbn_reference"][()]


@pytest.mark.mpi
@pytest.mark.parametrize("sticky", [0.25, 0.0])
def test_two_ranks_match_one_rank_resume_eval_and_inspect(tmp_path, sticky):
    """Lanes vary too: 2 ranks play 4 lanes of one vector env, 1 rank one episode at a time, the
    resumed run 2 lanes then 3. Sticky actions reseed every episode; without them resets are unseeded.
    Space Invaders scores within 60 steps, so the members' returns differ and the update depends on them."""
    job = tmp_path / "invaders.toml"
    job.write_text(TINY_PONG.replace("repeat_action_probability = 0.25", f"repeat_action_probability = {sticky}")
                   .replace("ALE/Pong-v5", "ALE/SpaceInvaders-v5").replace("max_episode_steps = 25", "max_episode_steps = 60"))
    two = run_mpi(2, "train", job, "--run-dir", tmp_path / "two", "--set", "run.lanes=4", timeout=240)
    assert two.returncode == 0, two.stderr
    one = run_es("train", job, "--run-dir", tmp_path / "one", "--set", "run.lanes=1", timeout=240)
    assert one.returncode == 0, one.stderr
    params_two, reference_two = final_state(tmp_path / "two")
    params_one, reference_one = final_state(tmp_path / "one")
    assert reference_two.shape == (6, 4, 84, 84) and reference_two.dtype == np.uint8
    assert np.array_equal(reference_one, reference_two)
    assert params_one == params_two
    with open(tmp_path / "one" / "metrics.csv") as metrics:
        rows = list(csv.DictReader(metrics))
    assert any(float(row["return_max"]) > float(row["return_min"]) for row in rows)

    half = run_mpi(2, "train", job, "--run-dir", tmp_path / "resumed", "--set", "stop.iterations=1",
                   "--set", "run.lanes=2", timeout=240)
    assert half.returncode == 0, half.stderr
    rest = run_mpi(2, "train", job, "--run-dir", tmp_path / "resumed", "--resume", "--set", "run.lanes=3", timeout=240)
    assert rest.returncode == 0 and "resumed from iteration 1" in rest.stdout, rest.stderr
    params_resumed, reference_resumed = final_state(tmp_path / "resumed")
    assert params_resumed == params_two and np.array_equal(reference_resumed, reference_two)

    played = run_es("eval", tmp_path / "two", "--episodes", "2", timeout=120)
    assert played.returncode == 0, played.stderr
    assert "over 2 episodes" in played.stdout
    shown = run_es("inspect", tmp_path / "two", timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "extra/vbn_reference: shape (6, 4, 84, 84), dtype uint8" in shown.stdout

    metrics = read_metrics(tmp_path / "two")
    assert np.array_equal(x_values(metrics, "frames", tmp_path / "two"), metrics["timesteps"] * 4)
    plotted = run_es("plot", tmp_path / "two", tmp_path / "one", "--x", "frames", "--metric", "return_max",
                     "-o", tmp_path / "frames.svg", timeout=120)
    assert plotted.returncode == 0, plotted.stderr
    assert ">emulator frames (timesteps x atari.frame_skip)<" in (tmp_path / "frames.svg").read_text()
