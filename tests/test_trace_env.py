"""The trace env (es_mpi/parts/trace_env.py): recorded episodes replayed from the seed, as sleeps."""

import os
import time

import numpy as np
import pytest

from conftest import no_hang, run_es
from es_mpi.core.errors import ConfigError
from es_mpi.parts.job_file import job_from_text
from es_mpi.parts.build import build_task

LENGTHS = [3, 7, 12, 20]
TRUNCATED = [False, False, True, False]


def write_trace(path, lengths=LENGTHS, truncated=TRUNCATED, cpu_s=None, **extra):
    cpu_s = [0.0] * len(lengths) if cpu_s is None else cpu_s
    arrays = dict(lengths_e=np.array(lengths, dtype=np.int32), truncated_e=np.array(truncated, dtype=bool),
                  cpu_s_e=np.array(cpu_s, dtype=np.float64), obs_size=np.int64(5),
                  action_low_a=np.full(2, -1.0, dtype=np.float32), action_high_a=np.full(2, 1.0, dtype=np.float32))
    arrays.update(extra)
    np.savez(path, **arrays)
    return path


def trace_job_text(trace, time_scale=1.0):
    return f"""
[env]
id = "es_mpi/Trace-v0"
kwargs = {{trace = "{trace}", time_scale = {time_scale}}}
[policy]
hidden = []
action = "continuous"
"""


def make(trace, time_scale=1.0):
    """The trace env as a job file names it, through the build step training uses."""
    return build_task(job_from_text(trace_job_text(trace, time_scale), "job.toml")).env


def play(env, seed):
    """-> (length, return, terminated, truncated, recorded episode index) of one episode."""
    _, info = env.reset(seed=seed)
    length, total = 0, 0.0
    while True:
        _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        length, total = length + 1, total + reward
        if terminated or truncated:
            return length, total, terminated, truncated, info["episode"]


def test_a_seed_replays_the_same_recorded_episode_in_any_env(tmp_path):
    trace = write_trace(tmp_path / "t.npz")
    first, second = make(trace), make(trace)
    seeds = range(40)
    played = [play(first, s) for s in seeds]
    # Another env, the seeds in another order (another rank, another placement): the same episodes.
    replayed = {s: play(second, s) for s in reversed(seeds)}
    assert played == [replayed[s] for s in seeds]
    for length, _, terminated, truncated, episode in played:
        assert length == LENGTHS[episode]
        assert truncated == TRUNCATED[episode] and terminated != truncated
    assert {p[-1] for p in played} == set(range(len(LENGTHS)))  # the draw reaches every recorded episode
    assert first.observation_space.shape == (5,) and first.action_space.shape == (2,)


def test_an_episode_sleeps_the_seconds_it_asks_for_and_returns_them(tmp_path):
    trace = write_trace(tmp_path / "t.npz", cpu_s=[0.01, 0.02, 0.03, 0.04])
    env = make(trace, time_scale=2.0)
    for seed in range(3):
        start = time.perf_counter()
        length, total, _, _, episode = play(env, seed)
        elapsed = time.perf_counter() - start
        asked = 2.0 * [0.01, 0.02, 0.03, 0.04][episode]
        assert total == pytest.approx(asked, rel=1e-12)
        assert elapsed >= asked


def test_envs_of_one_process_share_its_core(tmp_path):
    """Two lanes stepping in turn take the sum of their episodes' seconds, as on one real core."""
    trace = write_trace(tmp_path / "t.npz", lengths=[10], truncated=[False], cpu_s=[0.06])
    lanes = [make(trace), make(trace)]
    start = time.perf_counter()
    for seed, env in enumerate(lanes):
        env.reset(seed=seed)
    for _ in range(10):
        for env in lanes:
            env.step(env.action_space.sample())
    assert time.perf_counter() - start >= 0.12


def test_time_spent_between_two_steps_on_something_else_is_not_step_work(tmp_path):
    """A pause of 0.1 s in the middle of an episode (the pipelined mode's tell) does not pay for the
    work its steps still owe: the episode lasts its seconds plus the pause."""
    trace = write_trace(tmp_path / "t.npz", lengths=[10], truncated=[False], cpu_s=[0.2])
    env = make(trace)
    start = time.perf_counter()
    env.reset(seed=0)
    for step in range(10):
        if step == 5:
            time.sleep(0.1)
        env.step(env.action_space.sample())
    assert time.perf_counter() - start >= 0.3


@pytest.mark.parametrize("change, key", [
    (dict(lengths_e=np.array([3, 0, 5, 2], dtype=np.int32)), "lengths_e"),
    (dict(cpu_s_e=np.array([0.1, np.nan, 0.1, 0.1])), "cpu_s_e"),
    (dict(truncated_e=np.array([False, True], dtype=bool)), "truncated_e"),
    (dict(action_high_a=np.full(3, 1.0, dtype=np.float32)), "action_low_a"),
])
def test_a_bad_trace_is_a_config_error_naming_the_array(tmp_path, change, key):
    trace = write_trace(tmp_path / "t.npz", **change)
    with pytest.raises(ConfigError, match=key):
        make(trace)


def test_a_trace_that_is_no_regular_file_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "t.npz"
    os.mkfifo(fifo)
    with no_hang(), pytest.raises(ConfigError, match="the trace must be a regular file, not a FIFO"):
        make(fifo)


def test_a_missing_trace_file_is_one_line_exit_2(tmp_path):
    job = tmp_path / "job.toml"
    job.write_text(trace_job_text(tmp_path / "missing.npz"))
    done = run_es("train", job, "--run-dir", tmp_path / "run", timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing.npz" in lines[0] and "env" in lines[0]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()
