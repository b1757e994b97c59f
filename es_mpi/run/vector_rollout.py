"""Atari's lanes: the lanes of one ale-py vector env (parts/atari.AtariLanes) as a source for rollout.play."""

import numpy as np


class VectorLanes:
    """`AtariLanes` seen as lanes: a slot's lane is its env lane. Lanes without a slot idle (stepped
    with no-ops, results ignored); a lane in its no-op start gets a forward pass whose action is
    dropped, and its step is not part of the episode. An episode is a function of its parameters
    and seed: its lane only feeds it observations. Nothing is recorded in these lanes: Atari jobs
    refuse obs_norm, and strategies that record transitions play a lane of one (parts/atari.py's
    VectorAtariEnv in an EnvLanes), where the no-op start is part of the reset."""

    may_be_nonfinite = False  # integer frames

    def __init__(self, atari_lanes):
        self.vector, self.n_lanes = atari_lanes, atari_lanes.n_lanes
        self.max_episode_steps = atari_lanes.max_episode_steps
        self.actions_l = np.zeros(self.n_lanes, dtype=np.int64)

    def start(self, starts):
        """Reset the lane of each (lane, seed) in one call, and draw their no-op starts."""
        lanes, seeds = zip(*starts)
        self.vector.start(list(lanes), list(seeds))

    def observe(self, take):
        """The frames of the lanes `take` (a slice, or a list in slot order): (n, C, H, W) uint8."""
        return self.vector.obs_lchw[take]

    def step(self, lanes_l, actions):
        """Step every lane; -> (reward, terminated, truncated) per lane of `lanes_l`, None for a no-op start step."""
        self.actions_l[:] = 0
        self.actions_l[lanes_l] = actions
        _, rewards_l, terminated_l, truncated_l, warming_l = self.vector.step(self.actions_l)
        return [None if warming_l[lane] else (float(rewards_l[lane]), terminated_l[lane], truncated_l[lane])
                for lane in lanes_l]

    def close(self):
        self.vector.close()
