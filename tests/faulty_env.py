"""A CartPole that raises on one MPI rank only: an exception there must abort the whole job."""

import os

import gymnasium as gym
from gymnasium.envs.classic_control import CartPoleEnv


class FaultyCartPole(CartPoleEnv):
    def step(self, action):
        if os.environ.get("OMPI_COMM_WORLD_RANK") == os.environ.get("FAULTY_RANK", "1"):
            raise RuntimeError("injected failure on this rank")
        return super().step(action)


gym.register("FaultyCartPole-v0", entry_point=FaultyCartPole, max_episode_steps=200)
