"""Policies: a flat float32 parameter vector and a numpy forward pass."""

import gymnasium as gym
import numpy as np

from es_mpi.parts.policies.conv import ConvPolicy
from es_mpi.parts.policies.mlp import ActionHead, MLPPolicy
from es_mpi.parts.policies.tabular import TabularPolicy


def observation_size(space):
    if isinstance(space, gym.spaces.Box):
        return int(np.prod(space.shape))
    raise ValueError(f"observation space {space} is not supported by an MLP policy")


def frame_shape(space):
    """(channels, height, width) of stacked frames, as FrameStackObservation gives them."""
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 3:
        return space.shape
    raise ValueError(f"policy.kind = 'cnn' needs (stack, height, width) frames, not {space}")


def head_kind(requested, action_space):
    if isinstance(action_space, gym.spaces.Discrete):
        if requested not in ("auto", "discrete"):
            raise ValueError(f"policy.action = {requested!r} does not fit a Discrete action space")
        return "discrete"
    if isinstance(action_space, gym.spaces.Box):
        if requested == "discrete":
            raise ValueError("policy.action = 'discrete' does not fit a Box action space")
        return "continuous" if requested == "auto" else requested
    raise ValueError(f"action space {action_space} is not supported")


def make_policy(settings, observation_space, action_space):
    if settings.kind == "tabular":
        if not (isinstance(observation_space, gym.spaces.Discrete) and isinstance(action_space, gym.spaces.Discrete)):
            raise ValueError("kind = 'tabular' needs Discrete observation and action spaces")
        return TabularPolicy(int(observation_space.n), int(action_space.n))
    head = ActionHead(head_kind(settings.action, action_space), action_space, settings.bins)
    if settings.kind == "cnn":
        return ConvPolicy(settings, frame_shape(observation_space), head)
    return MLPPolicy(settings, observation_size(observation_space), head)
