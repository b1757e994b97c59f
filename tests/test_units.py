"""Pure-numpy pieces, without MPI: shaping, optimizers, policies, OpenAI-ES, obs statistics."""

import gymnasium as gym
import numpy as np
import pytest

from es_mpi.job.sections import PolicySettings
from es_mpi.run.noise import local_table
from es_mpi.run.evaluation import normalizer_for
from es_mpi.run.obstat import ObsStat
from es_mpi.parts.job_file import job_from_text
from es_mpi.parts.strategies.optim import SGD, Adam
from es_mpi.parts.policies import make_policy
from es_mpi.core.seeding import Purpose, episode_seed, rng
from es_mpi.parts.strategies.shaping import centered_ranks
from es_mpi.parts.strategies import make_strategy
from es_mpi.parts.strategies.openai_es import OpenAIESSettings, weighted_noise_sum


def test_centered_ranks_span_minus_half_to_half_and_keep_order():
    values = np.array([[3.0, -1.0], [10.0, -np.inf], [0.5, 3.0]])
    ranks = centered_ranks(values)
    assert ranks.shape == values.shape
    assert ranks.min() == -0.5 and ranks.max() == 0.5
    assert ranks[1, 1] == -0.5  # a non-finite episode ranks last
    assert ranks[0, 0] < ranks[2, 1]  # ties broken by position, deterministically


def test_adam_first_step_moves_each_parameter_by_the_learning_rate():
    adam = Adam(3, learning_rate=0.1)
    step = adam.step(np.array([2.0, -0.5, 1e-3], dtype=np.float32))
    assert step.dtype == np.float32
    np.testing.assert_allclose(step, [-0.1, 0.1, -0.1], rtol=1e-3)


def test_sgd_momentum_accumulates():
    sgd = SGD(1, learning_rate=1.0, momentum=0.5)
    first = sgd.step(np.ones(1, dtype=np.float32))
    second = sgd.step(np.ones(1, dtype=np.float32))
    assert first[0] == pytest.approx(-0.5) and second[0] == pytest.approx(-0.75)


def test_seeds_are_pure_functions_of_their_key():
    assert episode_seed(1, 2, 3) == episode_seed(1, 2, 3)
    assert episode_seed(1, 2, 3) != episode_seed(1, 2, 4)
    assert episode_seed(1, 2, 3) != episode_seed(1, 2, 3, Purpose.EVAL_EPISODE)


def test_mlp_bins_head_maps_to_action_levels():
    env = gym.make("Hopper-v5")
    policy = make_policy(PolicySettings(hidden=[4], action="bins", bins=3), env.observation_space, env.action_space)
    assert policy.n_params == 11 * 4 + 4 + 4 * 9 + 9
    params = policy.init_params(rng(0, purpose=Purpose.INIT_PARAMS))
    action = policy.bind(params)(np.zeros(11, dtype=np.float32))
    assert action.shape == (3,) and set(np.round(action, 6)) <= {-1.0, 0.0, 1.0}


def test_weighted_noise_sum_equals_the_plain_sum():
    noise = local_table(100_000, 1)
    offsets = np.array([5, 999, 50_000, 12, 77_777])
    weights = np.array([0.5, -1.0, 0.25, 2.0, -0.125])
    expected = sum(w * noise[o:o + 300].astype(np.float64) for w, o in zip(weights, offsets))
    np.testing.assert_allclose(weighted_noise_sum(noise, offsets, weights, 300), expected, rtol=1e-5, atol=1e-5)


def test_openai_es_climbs_a_quadratic_and_its_state_round_trips():
    noise = local_table(200_000, 3)
    settings = OpenAIESSettings(pairs=20, sigma=0.1, learning_rate=0.05, l2=0.0)
    target = np.linspace(-1, 1, 10).astype(np.float32)
    es = make_strategy(settings, np.zeros(10, np.float32), noise, seed=0)
    for t in range(1, 150):
        es.ask(t)
        fitness = np.array([-np.sum((es.member_params(i) - target) ** 2) for i in range(es.population)])
        es.tell(fitness)
    assert np.sum((es.center() - target) ** 2) < 0.05
    twin = make_strategy(settings, np.zeros(10, np.float32), noise, seed=0)
    twin.load_state_dict(es.state_dict())
    es.ask(200), twin.ask(200)
    fitness = np.arange(es.population, dtype=np.float64)
    es.tell(fitness), twin.tell(fitness)
    assert es.center().tobytes() == twin.center().tobytes()


def test_obstat_matches_direct_moments():
    data = rng(0, purpose=Purpose.ACTION).normal(3.0, 2.0, size=(1000, 4))
    stat = ObsStat(4, epsilon=0.0)
    rows = [np.concatenate([c.sum(0), np.square(c).sum(0), [len(c)]]) for c in np.array_split(data, 7)]
    stat.add(rows)
    np.testing.assert_allclose(stat.mean(), data.mean(0))
    np.testing.assert_allclose(stat.std(), data.std(0))


def test_obs_norm_min_std_floors_the_std_and_its_default_keeps_the_es_papers_bits():
    """A dimension that barely moves (a torso's angle, std 0.06) is scaled by its own std under a small
    obs_norm.min_std, as ARS does, and by 1/0.1 under the default, whose bits are the ES paper's
    variance floor of 1e-2 that every earlier run used."""
    data_k2 = rng(1, purpose=Purpose.ACTION).normal(0.0, [0.06, 3.0], size=(5000, 2))
    stat = ObsStat(2, epsilon=0.0)
    stat.add([np.concatenate([data_k2.sum(0), np.square(data_k2).sum(0), [len(data_k2)]])])
    variance_o = stat.sumsq_o / stat.count - np.square(stat.mean())
    assert stat.std().tobytes() == np.sqrt(np.maximum(variance_o, 1e-2)).tobytes()
    assert stat.std()[0] == 0.1 and stat.std(min_std=1e-3)[0] == pytest.approx(0.06, rel=0.05)
    assert stat.std(min_std=1e-3)[1] == stat.std()[1]
    floored = normalizer_for(job_from_text("[obs_norm]\n", "a.toml"), stat)
    own = normalizer_for(job_from_text("[obs_norm]\nmin_std = 0.001\n", "b.toml"), stat)
    assert floored[1][0] == np.float32(10.0) and own[1][0] == pytest.approx(1 / 0.06, rel=0.05)


@pytest.mark.parametrize("size, n_rows", [(4, 1), (11, 10_240), (348, 2_048), (1, 50)])
def test_obstat_add_gives_the_bits_of_adding_rows_one_at_a_time(size, n_rows):
    """The vectorised add must equal the sequential sum bit for bit (exact resume and rank invariance
    rest on it); magnitudes spread over 16 decades make any other summation order show."""
    generator = np.random.default_rng(size * n_rows)
    rows_k2o1 = generator.standard_normal((n_rows, 2 * size + 1)) * 10.0 ** generator.integers(-8, 8, (n_rows, 1))
    stat = ObsStat(size)
    stat.sum_o += generator.standard_normal(size)
    expected_sum_o, expected_sumsq_o, expected_count = stat.sum_o.copy(), stat.sumsq_o.copy(), stat.count
    for row in rows_k2o1:
        expected_sum_o += row[:size]
        expected_sumsq_o += row[size:2 * size]
        expected_count += row[2 * size]
    stat.add(rows_k2o1)
    assert stat.sum_o.tobytes() == expected_sum_o.tobytes()
    assert stat.sumsq_o.tobytes() == expected_sumsq_o.tobytes()
    assert np.float64(stat.count).tobytes() == np.float64(expected_count).tobytes()
    if n_rows > 1000:  # the data tells summation orders apart: pairwise sums of the columns differ
        sequential_o = np.zeros(size)
        for row in rows_k2o1:
            sequential_o += row[:size]
        pairwise_o = np.ascontiguousarray(rows_k2o1[:, :size].T).sum(axis=1)
        assert pairwise_o.tobytes() != sequential_o.tobytes()
