"""Atari (ALE) games with the ES paper's preprocessing.

Two backends. "vector" (the default) runs frame skip, max-pooling, grayscale, resize and frame
stacking in ale-py's C++ vector env (`AtariVectorEnv`); a rank's lanes are one vector env.
"gymnasium" builds the same pipeline from gymnasium's wrappers; it is kept for rendering
(the vector env has no screen) and for `env.kwargs` the vector env does not take (mode, difficulty).

The vector backend keeps the seeding contract: an episode is a function of its seed only, not of
the lane that plays it. With sticky actions off (the ES paper), an unseeded ALE reset is the same
state whatever the lane played before, so a new episode resets without reseeding (5 ms, against
about 100 ms for a seeded reset, which reloads the ROM) and plays its no-ops, drawn from the
episode seed, as whole agent steps. With sticky actions the ALE's own RNG shapes the episode, so
each episode resets seeded (the ROM reload is the price). Differences from the gymnasium backend:
no-ops are agent steps (1 to ceil(noop_max / frame_skip)) instead of single frames, and the frame
stack starts with zero frames instead of copies of the first one.
"""

import dataclasses
import math

import gymnasium as gym
import numpy as np

from es_mpi.parts.envs import known_env_ids

# gymnasium.make keywords that the [atari] section owns for ALE games.
ATARI_OWNED_KWARGS = {
    "frameskip": "atari.frame_skip", "repeat_action_probability": "atari.repeat_action_probability",
    "full_action_space": "atari.full_action_space", "obs_type": None, "max_episode_steps": "atari.max_episode_steps",
}
NOOP_ACTION = 0
ALE_FRAME_LIMIT = 108_000  # the ALE's own episode limit in frames (v5 ids), unless the id's spec says otherwise


def is_atari_id(env_id):
    """True for ids served by ale-py (ALE/Pong-v5, PongNoFrameskip-v4, ...)."""
    if env_id not in known_env_ids():
        return False
    entry_point = gym.spec(env_id).entry_point
    return isinstance(entry_point, str) and entry_point.startswith("ale_py")


def uses_vector_env(env_settings, atari):
    """The C++ vector env serves this job (no rendering needed, no gymnasium-only keywords)."""
    return atari.backend == "vector" and not env_settings.kwargs


def make_atari_env(env_settings, atari, render_mode=None):
    """One preprocessed env: the vector backend's single lane, or gymnasium's wrappers when rendering."""
    if render_mode is None and uses_vector_env(env_settings, atari):
        return VectorAtariEnv(env_settings, atari)
    return make_gymnasium_atari_env(env_settings, atari, render_mode)


def make_gymnasium_atari_env(env_settings, atari, render_mode=None):
    """frameskip=1 base env -> no-op starts, frame skip + max-pool, grayscale, resize -> frame stack -> step limit."""
    known_env_ids()
    base = gym.make(env_settings.id, render_mode=render_mode, frameskip=1,
                    repeat_action_probability=atari.repeat_action_probability,
                    full_action_space=atari.full_action_space, **env_settings.kwargs)
    env = gym.wrappers.AtariPreprocessing(base, noop_max=atari.noop_max, frame_skip=atari.frame_skip,
                                          screen_size=atari.screen_size, terminal_on_life_loss=False,
                                          grayscale_obs=True, scale_obs=False)
    env = gym.wrappers.FrameStackObservation(env, atari.frame_stack)
    return gym.wrappers.TimeLimit(env, max_episode_steps=atari.max_episode_steps)


class AtariLanes:
    """`n_lanes` preprocessed games in one ale-py vector env (one thread), each lane started from a seed.

    `start(lanes, seeds)` resets those lanes and draws their no-op counts; `step(actions_l)` steps
    every lane (idle ones with a no-op) and returns (obs_lchw, rewards_l, terminated_l, truncated_l)
    as the C++ side gives them, plus `warming_l`: lanes still in their no-op start, whose action was
    replaced by a no-op and whose step is not part of the episode.
    """

    def __init__(self, env_settings, atari, n_lanes):
        from ale_py.vector_env import AtariVectorEnv

        known_env_ids()
        spec = gym.spec(env_settings.id)
        self.n_lanes, self.reseed = n_lanes, atari.repeat_action_probability > 0
        self.max_episode_steps = atari.max_episode_steps
        self.noop_steps_max = math.ceil(atari.noop_max / atari.frame_skip)
        self.vector = AtariVectorEnv(
            spec.kwargs["game"], n_lanes, num_threads=1, frameskip=atari.frame_skip, stack_num=atari.frame_stack,
            img_height=atari.screen_size, img_width=atari.screen_size, grayscale=True, maxpool=True, noop_max=0,
            repeat_action_probability=atari.repeat_action_probability, full_action_space=atari.full_action_space,
            max_num_frames_per_episode=spec.kwargs.get("max_num_frames_per_episode", ALE_FRAME_LIMIT),
            reward_clipping=False, use_fire_reset=False, episodic_life=False, autoreset_mode="SameStep")
        self.single_observation_space = self.vector.single_observation_space
        self.single_action_space = self.vector.single_action_space
        self.obs_lchw, _ = self.vector.reset()
        self.noops_left_l = np.zeros(n_lanes, dtype=np.int64)

    def start(self, lanes, seeds):
        """Begin an episode in each of `lanes`: a reset (seeded only with sticky actions), then its no-ops."""
        mask_l = np.zeros(self.n_lanes, dtype=bool)
        mask_l[lanes] = True
        ale_seeds = np.array(seeds if self.reseed else [-1] * len(lanes), dtype=np.int64)
        obs_lchw, _ = self.vector.reset(seed=ale_seeds[np.argsort(lanes)], options={"reset_mask": mask_l})
        self.obs_lchw = obs_lchw
        for lane, seed in zip(lanes, seeds):
            self.noops_left_l[lane] = self.noop_count(seed)

    def noop_count(self, seed):
        if self.noop_steps_max == 0:
            return 0
        return int(np.random.default_rng(seed).integers(1, self.noop_steps_max + 1))

    def step(self, actions_l):
        warming_l = self.noops_left_l > 0
        actions_l = np.where(warming_l, NOOP_ACTION, actions_l)
        self.noops_left_l[warming_l] -= 1
        self.obs_lchw, rewards_l, terminated_l, truncated_l, _ = self.vector.step(actions_l)
        return self.obs_lchw, rewards_l, terminated_l, truncated_l, warming_l

    def close(self):
        self.vector.close()


class VectorAtariEnv(gym.Env):
    """One lane of `AtariLanes` as a gymnasium env: what `run_episode`, evaluation and the VBN
    reference batch play, so that their episodes are those the training lanes play."""

    def __init__(self, env_settings, atari):
        self.lanes = AtariLanes(env_settings, atari, 1)
        self.observation_space = self.lanes.single_observation_space
        self.action_space = self.lanes.single_action_space
        self.spec = dataclasses.replace(gym.spec(env_settings.id), max_episode_steps=atari.max_episode_steps)
        self.max_episode_steps, self.length = atari.max_episode_steps, 0
        self.actions_l = np.zeros(1, dtype=np.int64)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is None:
            seed = int(self.np_random.integers(0, 2**31 - 1))
        self.lanes.start([0], [seed])
        while self.lanes.noops_left_l[0] > 0:
            self.lanes.step(self.actions_l)
        self.length = 0
        return self.lanes.obs_lchw[0], {}

    def step(self, action):
        self.actions_l[0] = action
        obs_lchw, rewards_l, terminated_l, truncated_l, _ = self.lanes.step(self.actions_l)
        self.length += 1
        truncated = bool(truncated_l[0]) or self.length >= self.max_episode_steps
        return obs_lchw[0], float(rewards_l[0]), bool(terminated_l[0]), truncated, {}

    def close(self):
        self.lanes.close()
