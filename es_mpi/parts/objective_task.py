"""A black-box objective seen as a one-step episode, so the trainer, checkpoints and `eval`
work unchanged: the "policy" is the parameter vector itself, the reward is -f(x)."""

import gymnasium as gym
import numpy as np

from es_mpi.parts.policies.base import Policy


class ObjectiveEnv(gym.Env):
    """Reset gives a constant observation; one step with action x ends with reward -f(x)."""

    spec = None

    def __init__(self, function, dim):
        self.function = function
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-np.inf, np.inf, (dim,), dtype=np.float64)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, dtype=np.float32), {}

    def step(self, action):
        value = self.function(np.asarray(action, dtype=np.float64))
        return np.zeros(1, dtype=np.float32), -float(value), True, False, {}


class ParameterVectorPolicy(Policy):
    """The parameters are the solution: `bind` returns them whatever the observation."""

    def __init__(self, dim, initial, initial_std):
        self.n_params, self.initial, self.initial_std = dim, initial, initial_std

    def init_params(self, draw):
        offset_p = self.initial_std * draw.standard_normal(self.n_params)
        return (self.initial + offset_p).astype(np.float32)

    def bind(self, params_p):
        solution_p = np.asarray(params_p, dtype=np.float64)
        return lambda x: solution_p


def make_objective_task(function, objective_settings):
    env = ObjectiveEnv(function, objective_settings.dim)
    policy = ParameterVectorPolicy(objective_settings.dim, objective_settings.initial, objective_settings.initial_std)
    return env, policy
