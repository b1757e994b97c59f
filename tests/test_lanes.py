"""Lanes: several members played at once with one batched forward pass per step.

The contract: an episode played in a lane is exactly (bit for bit) the episode `run_episode`
plays alone, whatever its lane, its neighbours or the number of lanes. That is what keeps
training results independent of `run.lanes` and of the rank count.
"""

import pathlib

import gymnasium as gym
import numpy as np
import pytest

from es_mpi.parts.job_file import job_from_text
from es_mpi.job.sections import PolicySettings
from es_mpi.parts.build import build_task
from es_mpi.run.obstat import ObsStat
from es_mpi.parts.policies import make_policy
from es_mpi.run.rollout import EnvLanes, Start, play, run_episode


class Glitchy(gym.Env):
    """Episodes whose length and ending depend on the seed: some end on a NaN observation,
    some on an infinite reward, the rest terminate or run into the step cap."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float64)
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.seed_value, self.t = seed, 0
        return self.np_random.standard_normal(3), {}

    def step(self, action):
        self.t += 1
        obs = self.np_random.standard_normal(3) + float(np.sum(action))
        reward = float(obs[0])
        if self.seed_value % 4 == 1 and self.t == 3:
            obs[1] = np.nan
        if self.seed_value % 4 == 2 and self.t == 2:
            reward = np.inf
        return obs, reward, self.t >= 2 + self.seed_value % 7, False, {}


def make(env_id, hidden, action="auto"):
    """(policy, its initial parameters, a function that makes one more env)."""
    job = job_from_text(f'[env]\nid = "{env_id}"\n[policy]\nhidden = {hidden}\naction = "{action}"\n',
                        pathlib.Path("lanes.toml"))
    task = build_task(job)
    return task.policy, task.initial_params(), task.make_env


def member_params(params_p, count):
    draw = np.random.default_rng(7)
    return [params_p + np.float32(0.3) * draw.standard_normal(params_p.size).astype(np.float32) for _ in range(count)]


def assert_same_episodes(played, alone):
    for lane_episode, episode in zip(played, alone, strict=True):
        assert (lane_episode.total_return, lane_episode.length, lane_episode.capped, lane_episode.nonfinite) == \
            (episode.total_return, episode.length, episode.capped, episode.nonfinite)
        if episode.obs_stats is None:
            assert lane_episode.obs_stats is None
        else:
            assert lane_episode.obs_stats.tobytes() == episode.obs_stats.tobytes()


@pytest.mark.parametrize("env_id, hidden, action, n_lanes", [
    ("Hopper-v5", "[64, 64]", "auto", 4),  # episodes end early at different times
    ("Hopper-v5", "[8]", "bins", 16),  # more lanes than episodes
    ("Swimmer-v5", "[]", "auto", 3),  # a linear policy; every episode reaches the cap
    ("CartPole-v1", "[17]", "auto", 5),  # a discrete head; a hidden size that is not a SIMD multiple
])
def test_lanes_play_exactly_what_one_episode_at_a_time_plays(env_id, hidden, action, n_lanes):
    policy, params_p, new_env = make(env_id, hidden, action)
    params = member_params(params_p, 11)
    normalizer = ObsStat(policy.sizes[0]).normalizer(5.0)
    seeds = [100 + k for k in range(11)]
    records = [k % 3 == 0 for k in range(11)]
    envs = [new_env() for _ in range(n_lanes)]
    forward = policy.lanes(n_lanes)
    played = play(EnvLanes(envs), forward, range(11), lambda k: Start(params[k], seeds[k], records[k], 0.5, 120), normalizer)
    env = new_env()
    alone = [run_episode(env, policy.bind(params[k]), seeds[k], 120, normalizer, records[k], False, 0.5)
             for k in range(11)]
    assert sorted(played) == list(range(11))
    assert_same_episodes([played[k] for k in range(11)], alone)
    assert len({episode.length for episode in alone}) > 1 or env_id == "Swimmer-v5"


def test_lanes_end_nonfinite_episodes_like_run_episode():
    glitchy = Glitchy()
    policy = make_policy(PolicySettings(hidden=[8]), glitchy.observation_space, glitchy.action_space)
    params = member_params(np.zeros(policy.n_params, dtype=np.float32), 12)
    played = play(EnvLanes([Glitchy() for _ in range(3)]), policy.lanes(3), range(12),
                  lambda k: Start(params[k], k, True, step_cap=5))
    alone = [run_episode(glitchy, policy.bind(params[k]), k, 5, None, True) for k in range(12)]
    assert_same_episodes([played[k] for k in range(12)], alone)
    assert {e.nonfinite for e in alone} == {True, False} and any(e.capped for e in alone)


def test_a_lane_holds_the_loaded_members_layers_and_moves_them():
    policy, params_p, _ = make("Hopper-v5", "[16, 16]")
    forward = policy.lanes(3)
    forward.load(1, params_p)
    forward.move(1, 2)
    for (weights, bias), (weights_liu, bias_l1u) in zip(policy.unflatten(params_p), forward.layers):
        assert weights_liu.flags.c_contiguous  # one BLAS call per lane, no copies
        for lane in (1, 2):
            assert np.array_equal(weights_liu[lane], weights) and np.array_equal(bias_l1u[lane, 0], bias)
        assert not weights_liu[0].any()


def test_lanes_are_used_only_where_their_weights_stay_in_cache():
    small, _, _ = make("HalfCheetah-v5", "[64, 64]")
    large, _, _ = make("HalfCheetah-v5", "[256, 256]")
    assert small.useful_lanes(16) == 16 and small.useful_lanes(3) == 3
    assert large.useful_lanes(16) == 1


def played_by_hand(env, act, seed, cap, normalizer, reward_offset=0.0):
    """The reference: one episode stepped through every wrapper of `env`, observation sums added a step at a time."""
    obs, _ = env.reset(seed=seed)
    total, length, sums_2o = 0.0, 0, None
    while True:
        x = np.asarray(obs, dtype=np.float32).ravel()
        if sums_2o is None:
            sums_2o = np.zeros((2, x.size))
        sums_2o[0] += x
        sums_2o[1] += np.square(x, dtype=np.float64)
        mean_o, inv_std_o, clip = normalizer
        obs, reward, terminated, truncated, _ = env.step(act(np.clip((x - mean_o) * inv_std_o, -clip, clip)))
        total += float(reward) - reward_offset
        length += 1
        if terminated or truncated or length >= cap:
            return total, length, not terminated, np.concatenate([sums_2o.ravel(), [length]])


class HalvedReward(gym.Wrapper):
    """A wrapper of the job's own kind: it changes every step, so lanes must keep calling it."""
    calls = 0

    def step(self, action):
        HalvedReward.calls += 1
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, 0.5 * reward, terminated, truncated, info


@pytest.mark.parametrize("wrap", [False, True])
def test_lanes_step_past_gymnasiums_own_wrappers_with_the_same_episodes(monkeypatch, wrap):
    """gymnasium.make's TimeLimit/OrderEnforcing/PassiveEnvChecker cost a call per step and change
    nothing after reset: lanes step past them (the TimeLimit becomes the cap: same length, same
    `capped`), while any other wrapper is still called on every step. Obs sums and returns are
    those of stepping through every wrapper by hand."""
    limit, n_members = 30, 7
    make_env = (lambda: HalvedReward(gym.make("Hopper-v5", max_episode_steps=limit))) if wrap else \
        (lambda: gym.make("Hopper-v5", max_episode_steps=limit))
    policy, params_p, _ = make("Hopper-v5", "[]", "continuous")
    params = member_params(params_p, n_members)
    params = [p * np.float32(0.05) for p in params]  # small actions: Hopper stays up past the limit
    normalizer = ObsStat(policy.sizes[0]).normalizer(5.0)
    wrapper_steps = []
    original = gym.wrappers.TimeLimit.step
    monkeypatch.setattr(gym.wrappers.TimeLimit, "step", lambda self, a: wrapper_steps.append(1) or original(self, a))
    envs = [make_env() for _ in range(3)]
    HalvedReward.calls = 0
    played = play(EnvLanes(envs), policy.lanes(3), range(n_members), lambda k: Start(params[k], 50 + k, True, 0.5),
                  normalizer)
    lane_steps, lane_wrapper_calls = len(wrapper_steps), HalvedReward.calls
    alone = [played_by_hand(make_env(), policy.bind(params[k]), 50 + k, 10**6, normalizer, 0.5)
             for k in range(n_members)]
    for k, (total, length, capped, stats) in enumerate(alone):
        episode = played[k]
        assert (episode.total_return, episode.length, episode.capped) == (total, length, capped)
        assert episode.obs_stats.tobytes() == stats.tobytes()
    assert any(length == limit and capped for _, length, capped, _ in alone)  # the TimeLimit ended some
    assert lane_steps == (sum(length for _, length, _, _ in alone) if wrap else 0)
    assert lane_wrapper_calls == (sum(length for _, length, _, _ in alone) if wrap else 0)
    assert all(env.env.env.checked_step for env in (envs if not wrap else [e.env for e in envs]))
