"""The vector-env path: an episode is a function of its seed, whatever lane plays it and whatever
that lane played before; with no-ops off it is frame for frame gymnasium's preprocessing."""

import pathlib

import numpy as np
import pytest

from es_mpi.parts.job_file import job_from_text
from es_mpi.parts.atari import AtariLanes, VectorAtariEnv, make_gymnasium_atari_env
from es_mpi.parts.build import build_task
from es_mpi.run.rollout import Start, play, run_episode
from es_mpi.run.vector_rollout import VectorLanes

STEPS = 120


def atari_job(**atari):
    lines = "\n".join(f"{key} = {value!r}" for key, value in atari.items())
    text = f'[env]\nid = "ALE/Pong-v5"\n[atari]\n{lines}\n[policy]\nkind = "cnn"\n[obs_norm]\nenabled = false\n'
    return job_from_text(text, pathlib.Path("pong.toml"))


def play_lane(lanes, lane, seed, actions_t, others_seed):
    """Frames and rewards of `lane`'s episode from `seed`; every other lane plays its own episode."""
    others = [other for other in range(lanes.n_lanes) if other != lane]
    draw = np.random.default_rng(others_seed)
    lanes.start([lane], [seed])
    if others:
        lanes.start(others, [int(s) for s in draw.integers(0, 2**31 - 1, len(others))])
    frames, rewards, actions_l = [lanes.obs_lchw[lane].copy()], [], np.zeros(lanes.n_lanes, dtype=np.int64)
    t = 0
    while t < len(actions_t):
        actions_l[:] = draw.integers(lanes.single_action_space.n, size=lanes.n_lanes)
        actions_l[lane] = actions_t[t]
        obs_lchw, rewards_l, terminated_l, _, warming_l = lanes.step(actions_l)
        if warming_l[lane]:
            frames[0] = obs_lchw[lane].copy()  # the no-op start: the policy first sees its last frame
            continue
        frames.append(obs_lchw[lane].copy())
        rewards.append(float(rewards_l[lane]))
        t += 1
        assert not terminated_l[lane]
    return np.array(frames), rewards




@pytest.mark.parametrize("sticky", [0.0, 0.25])
def test_an_episode_is_the_same_in_lane_0_and_lane_5_after_other_play(sticky):
    job = atari_job(repeat_action_probability=sticky)
    actions_t = np.random.default_rng(1).integers(6, size=STEPS)
    single = AtariLanes(job.env, job.atari, 1)
    frames_0, rewards_0 = play_lane(single, 0, 1234, actions_t, 0)
    six = AtariLanes(job.env, job.atari, 6)
    play_lane(six, 5, 999, actions_t[::-1], 7)  # lane 5 has history before the episode under test
    frames_5, rewards_5 = play_lane(six, 5, 1234, actions_t, 8)
    assert frames_0.shape == (STEPS + 1, 4, 84, 84)
    assert np.array_equal(frames_0, frames_5) and rewards_0 == rewards_5
    other = next(seed for seed in range(100) if single.noop_count(seed) != single.noop_count(1234))
    other_frames, _ = play_lane(single, 0, other, actions_t, 0)
    assert not np.array_equal(other_frames, frames_0)  # the seed matters: it draws the no-op count


def test_the_single_env_adapter_plays_the_lanes_episode():
    job = atari_job()
    env = build_task(job).env
    assert isinstance(env, VectorAtariEnv) and env.spec.max_episode_steps == job.atari.max_episode_steps
    actions_t = np.random.default_rng(2).integers(6, size=STEPS)
    obs, _ = env.reset(seed=55)
    frames, rewards = [obs.copy()], []
    for action in actions_t:
        obs, reward, *_ = env.step(int(action))
        frames.append(obs.copy())
        rewards.append(reward)
    lanes_frames, lanes_rewards = play_lane(AtariLanes(job.env, job.atari, 3), 2, 55, actions_t, 3)
    assert np.array_equal(np.array(frames), lanes_frames) and rewards == lanes_rewards


def test_without_noops_the_vector_env_is_gymnasiums_preprocessing_frame_for_frame():
    job = atari_job(noop_max=0, frame_stack=1)
    gym_env = make_gymnasium_atari_env(job.env, job.atari)
    vector_env = VectorAtariEnv(job.env, job.atari)
    obs_gym, _ = gym_env.reset(seed=3)
    obs_vector, _ = vector_env.reset(seed=3)
    assert np.array_equal(obs_gym, obs_vector)
    for action in np.random.default_rng(4).integers(6, size=STEPS):
        obs_gym, reward_gym, terminated_gym, _, _ = gym_env.step(int(action))
        obs_vector, reward_vector, terminated_vector, _, _ = vector_env.step(int(action))
        assert np.array_equal(obs_gym, obs_vector)
        assert (reward_gym, terminated_gym) == (reward_vector, terminated_vector)


def test_rendering_and_gymnasium_keywords_keep_the_gymnasium_path():
    job = atari_job(backend="gymnasium")
    env = build_task(job).env
    assert not isinstance(env, VectorAtariEnv)
    env = build_task(atari_job(), render_mode="rgb_array").env
    assert not isinstance(env, VectorAtariEnv) and env.render_mode == "rgb_array"


@pytest.mark.parametrize("n_lanes", [3, 8])
def test_vector_lanes_play_each_member_as_run_episode_plays_it_alone(n_lanes):
    """Members with their own parameters and seeds: lanes (refilled, then shrinking) change nothing."""
    text = ('[env]\nid = "ALE/SpaceInvaders-v5"\n[atari]\nmax_episode_steps = 150\n[policy]\nkind = "cnn"\n'
            'vbn = true\nvbn_batch = 4\n[obs_norm]\nenabled = false\n')
    task = build_task(job_from_text(text, pathlib.Path("invaders.toml")))
    task.policy.set_reference(np.random.default_rng(0).integers(0, 256, (4, 4, 84, 84), dtype=np.uint8))
    draw = np.random.default_rng(1)
    members = [(task.initial_params() + 0.5 * draw.standard_normal(task.policy.n_params)).astype(np.float32)
               for _ in range(4)]
    seeds = [int(seed) for seed in draw.integers(0, 2**31 - 1, len(members))]
    alone = [run_episode(task.env, task.policy.bind(params_p), seed, 150) for params_p, seed in zip(members, seeds)]
    lanes = AtariLanes(task.job.env, task.job.atari, n_lanes)
    together = play(VectorLanes(lanes), task.policy.lanes(n_lanes), range(len(members)),
                    lambda k: Start(members[k], seeds[k], step_cap=150))
    summary = [(e.total_return, e.length, e.capped) for e in alone]
    assert [(together[k].total_return, together[k].length, together[k].capped) for k in range(len(members))] == summary
    assert len({e.total_return for e in alone}) > 1  # the members play differently
