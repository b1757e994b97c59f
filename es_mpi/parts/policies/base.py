"""What every policy offers the trainer, with the defaults a policy may keep."""

import numpy as np


class Policy:
    n_params = 0

    def init_params(self, draw):
        """Initial float32 parameters from the seeded generator `draw`."""
        raise NotImplementedError

    def bind(self, params_p):
        """A function observation -> action for fixed parameters."""
        raise NotImplementedError

    def useful_lanes(self, requested):
        """How many members pay off playing at once with one batched forward pass (1: one at a time)."""
        return 1

    def lanes(self, n_lanes):
        """The batched forward pass of `n_lanes` members, when `useful_lanes` allows more than one."""
        raise NotImplementedError

    def set_reference(self, observations):
        """The VBN reference batch, for policies built with policy.vbn."""
        raise ValueError(f"{type(self).__name__} has no virtual batch normalisation")


def normalized_columns(draw, fan_in, units, scale):
    """Gaussian (fan_in, units) weights, each column scaled to norm `scale`, flattened (the ES paper's init)."""
    weights = draw.standard_normal((fan_in, units))
    weights *= scale / np.sqrt(np.square(weights).sum(axis=0, keepdims=True))
    return weights.ravel()
