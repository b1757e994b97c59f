"""Options from after the ES paper: ARS top-b directions with return-std steps, the step and sigma schedules,
and the alive bonus."""

import csv
import dataclasses
import math
import pathlib

import numpy as np
import pytest

from conftest import run_es
from es_mpi.parts.job_file import job_from_text
from es_mpi.core.errors import ConfigError
from es_mpi.run.noise import local_table
from es_mpi.run.rollout import run_episode
from es_mpi.parts.build import build_task
from es_mpi.parts.strategies import make_strategy
from es_mpi.parts.strategies.openai_es import OpenAIESSettings


def sgd_es(noise, **options):
    settings = OpenAIESSettings(pairs=5, sigma=0.1, learning_rate=0.5, optimizer="sgd", momentum=0.0, l2=0.0,
                                **options)
    return make_strategy(settings, np.zeros(30, np.float32), noise, seed=0)


def test_top_pairs_with_return_std_takes_the_ars_step():
    noise = local_table(100_000, 2)
    es = sgd_es(noise, top_pairs=2, shaping="return_std")
    es.ask(1)
    returns_n2 = np.array([[1.0, 4.0], [9.0, 0.0], [2.0, 2.5], [-3.0, 8.5], [0.0, 1.0]])
    es.tell(returns_n2.ravel())
    kept = [1, 3]  # best members 9.0 and 8.5; pair 0's best is only 4.0
    std = returns_n2[kept].std()
    epsilon_kp = np.stack([noise[o:o + 30].astype(np.float64) for o in es.offsets_n[kept]])
    weights_k = (returns_n2[kept, 0] - returns_n2[kept, 1]) / std
    expected = 0.5 * (weights_k @ epsilon_kp) / (2 * 2 * 0.1)
    np.testing.assert_allclose(es.center(), expected, rtol=1e-5, atol=1e-6)


def test_keeping_every_pair_is_the_plain_update():
    noise = local_table(100_000, 2)
    fitness_n = np.random.default_rng(3).standard_normal(10)
    plain, all_kept = sgd_es(noise), sgd_es(noise, top_pairs=5)
    for es in (plain, all_kept):
        es.ask(1)
        es.tell(fitness_n.copy())
    assert plain.center().tobytes() == all_kept.center().tobytes()


def test_return_std_ignores_the_reward_scale_and_survives_equal_returns():
    noise = local_table(100_000, 2)
    fitness_n = np.random.default_rng(4).standard_normal(10)
    small, large, flat = (sgd_es(noise, shaping="return_std") for _ in range(3))
    for es, fitness in ((small, fitness_n), (large, 1000.0 * fitness_n), (flat, np.full(10, 7.0))):
        es.ask(1)
        es.tell(fitness)
    np.testing.assert_allclose(small.center(), large.center(), rtol=1e-5)
    assert np.all(flat.center() == 0.0)


def test_more_top_pairs_than_pairs_is_refused(tmp_path):
    path = tmp_path / "job.toml"
    with pytest.raises(ConfigError, match="strategy.top_pairs"):
        job_from_text('[strategy]\npairs = 4\ntop_pairs = 5\n', path)


def test_the_step_size_decays_per_iteration_to_its_floor_and_is_constant_by_default():
    noise = local_table(100_000, 2)
    fitness_n = np.random.default_rng(5).standard_normal(10)
    constant, decaying = sgd_es(noise), sgd_es(noise, learning_rate_decay=0.5, learning_rate_min=0.1)
    steps = {}
    for iteration in (0, 1, 2, 3):
        for name, es in (("constant", constant), ("decaying", decaying)):
            before = es.center().copy()
            es.ask(iteration)
            es.tell(fitness_n.copy())
            steps[name, iteration] = es.center() - before
    for iteration, rate in ((0, 0.5), (1, 0.25), (2, 0.125), (3, 0.1)):  # 0.5 x 0.5^3 = 0.0625 is floored
        np.testing.assert_allclose(steps["decaying", iteration], steps["constant", iteration] * rate / 0.5, rtol=1e-5)
    assert all(constant.settings.learning_rate_at(t) == 0.5 for t in (0, 1, 10**6))


@pytest.mark.parametrize("key", ["learning_rate", "sigma"])
def test_a_floor_above_the_start_is_refused(tmp_path, key):
    path = tmp_path / "job.toml"
    with pytest.raises(ConfigError, match=f"strategy.{key}_min"):
        job_from_text(f'[strategy]\n{key} = 0.01\n{key}_min = 0.02\n', path)


def test_sigma_decays_per_iteration_to_its_floor_in_both_the_members_and_the_update():
    noise = local_table(100_000, 2)
    fitness_n = np.random.default_rng(6).standard_normal(10)
    decaying, fixed = sgd_es(noise, sigma_decay=0.5, sigma_min=0.03), sgd_es(noise)
    fixed = make_strategy(dataclasses.replace(fixed.settings, sigma=0.03), np.zeros(30, np.float32), noise, seed=0)
    for es in (decaying, fixed):
        es.ask(2)  # 0.1 x 0.5^2 = 0.025 is floored at 0.03
    np.testing.assert_allclose(decaying.member_params(0), 0.03 * noise[decaying.offsets_n[0]:decaying.offsets_n[0] + 30],
                               rtol=1e-6)
    metrics = [es.tell(fitness_n.copy()) for es in (decaying, fixed)]
    assert decaying.center().tobytes() == fixed.center().tobytes()
    assert metrics[0]["sigma"] == 0.03 and metrics[0]["learning_rate"] == 0.5  # the metrics.csv columns
    assert [decaying.settings.sigma_at(t) for t in (0, 1)] == [0.1, 0.05]


def test_alive_bonus_is_subtracted_per_step():
    job = job_from_text('[env]\nid = "Hopper-v5"\n[policy]\nhidden = [8]\n', pathlib.Path("hopper.toml"))
    task = build_task(job)
    env, act = task.env, task.policy.bind(task.initial_params())
    plain = run_episode(env, act, 5, 1000)
    offset = run_episode(env, act, 5, 1000, reward_offset=1.0)
    assert offset.length == plain.length > 1
    assert offset.total_return == pytest.approx(plain.total_return - plain.length, abs=1e-9)


@pytest.mark.mpi
def test_alive_bonus_applies_to_training_episodes_only(write_job, tmp_path):
    job = write_job("""
[env]
id = "Hopper-v5"
alive_bonus = 1000.0
[policy]
hidden = [8]
[strategy]
pairs = 3
[noise]
size = 100_000
[eval]
every = 1
episodes = 2
[stop]
iterations = 1
""")
    result = run_es("train", job, "--run-dir", tmp_path / "run")
    assert result.returncode == 0, result.stderr[-2000:]
    with open(tmp_path / "run" / "metrics.csv") as fh:
        row = next(csv.DictReader(fh))
    assert float(row["return_max"]) < -900.0  # every training step paid the bonus back
    assert math.isfinite(float(row["eval_return"])) and float(row["eval_return"]) > 0.0
