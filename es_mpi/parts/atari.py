"""Atari (ALE) games with the ES paper's preprocessing, built from gymnasium's own wrappers."""

import gymnasium as gym

from es_mpi.parts.envs import known_env_ids

# gymnasium.make keywords that the [atari] section owns for ALE games.
ATARI_OWNED_KWARGS = {
    "frameskip": "atari.frame_skip", "repeat_action_probability": "atari.repeat_action_probability",
    "full_action_space": "atari.full_action_space", "obs_type": None, "max_episode_steps": "atari.max_episode_steps",
}


def is_atari_id(env_id):
    """True for ids served by ale-py (ALE/Pong-v5, PongNoFrameskip-v4, ...)."""
    if env_id not in known_env_ids():
        return False
    entry_point = gym.spec(env_id).entry_point
    return isinstance(entry_point, str) and entry_point.startswith("ale_py")


def make_atari_env(env_settings, atari, render_mode=None):
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
