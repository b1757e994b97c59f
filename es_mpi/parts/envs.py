"""gymnasium environment factories."""

import functools
import importlib

import gymnasium as gym

from es_mpi.parts import trace_env
from es_mpi.parts.mujoco_messages import filter_mujoco_warnings

# MuJoCo agents that travel. Their models carry a `track` camera that follows the centre of
# mass; gymnasium renders from a free camera that stays put unless told to use it.
TRAVELLING_MUJOCO_AGENTS = ("Hopper", "HalfCheetah", "Walker2d", "Ant", "Humanoid", "Swimmer")


@functools.lru_cache(maxsize=1)
def known_env_ids():
    """All registered ids, the ALE's and es-mpi's trace env (parts/trace_env.py) included."""
    trace_env.register()
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


def registered_spec(env_id):
    """gym.spec, also for `module:Name-vN` ids (gym.make imports the module; gym.spec does not)."""
    known_env_ids()
    module, _, name = env_id.rpartition(":")
    if module:
        importlib.import_module(module)
    return gym.spec(name)


def uses_mujoco(env_id):
    entry_point = registered_spec(env_id).entry_point
    return "mujoco" in (entry_point if isinstance(entry_point, str) else entry_point.__module__)


def make_env(env_settings, render_mode=None):
    """A registered env (ALE games: parts/atari.py wraps them)."""
    known_env_ids()
    if uses_mujoco(env_settings.id):
        filter_mujoco_warnings()
    return gym.make(env_settings.id, render_mode=render_mode,
                    **camera_options(env_settings.id, render_mode, env_settings.kwargs), **env_settings.kwargs)


def camera_options(env_id, render_mode, kwargs):
    """gym.make options that keep a travelling MuJoCo agent in view, unless the job picks a camera."""
    if render_mode is None or {"camera_id", "camera_name"} & set(kwargs):
        return {}
    return {"camera_name": "track"} if registered_spec(env_id).name in TRAVELLING_MUJOCO_AGENTS else {}


def env_step_limit(env):
    """The environment's own episode limit (its TimeLimit), or None."""
    spec = env.spec
    return spec.max_episode_steps if spec is not None else None
