"""Tabular policy for Discrete observations and actions: a flat states x actions table.

The table holds action preferences (probabilities for tabular CEM); acting is greedy, the
first best action on ties.
"""

import numpy as np

from es_mpi.parts.policies.base import Policy


class TabularPolicy(Policy):
    def __init__(self, n_states, n_actions):
        self.n_states, self.n_actions = n_states, n_actions
        self.n_params = n_states * n_actions

    def init_params(self, draw):
        """The uniform policy (deterministic: `draw` is unused but kept for the common signature)."""
        return np.full(self.n_params, 1.0 / self.n_actions, dtype=np.float32)

    def bind(self, params_p):
        greedy_x = np.argmax(np.asarray(params_p).reshape(self.n_states, self.n_actions), axis=1)
        return lambda x: int(greedy_x[int(x[0])])
