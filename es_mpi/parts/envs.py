"""gymnasium environment factories."""

import functools
import importlib

import gymnasium as gym


@functools.lru_cache(maxsize=1)
def known_env_ids():
    """All registered ids, the ALE's included when ale-py is installed."""
    try:
        import ale_py

        gym.register_envs(ale_py)
    except ImportError:
        pass
    return frozenset(gym.envs.registry)


def is_known(env_id):
    """Registered, or `module:Name-vN` whose module registers it on import (custom envs)."""
    if ":" in env_id:
        module, _, name = env_id.partition(":")
        try:
            importlib.import_module(module)
        except ImportError:
            return False
        return name in gym.envs.registry
    return env_id in known_env_ids()


def make_env(env_settings, render_mode=None):
    """A registered env (ALE games: parts/atari.py wraps them)."""
    known_env_ids()
    return gym.make(env_settings.id, render_mode=render_mode, **env_settings.kwargs)


def env_step_limit(env):
    """The environment's own episode limit (its TimeLimit), or None."""
    spec = env.spec
    return spec.max_episode_steps if spec is not None else None
