"""First-order optimizers on flat float32 vectors; their state round-trips through HDF5.

The moments come from `zeros(shape, dtype)` (node-shared arrays in a cooperative update,
core/node_share.py) and `step` updates the columns it is given in place: every operation is
elementwise, so a column slice gets the bytes that the whole vector would.
"""

import numpy as np

from es_mpi.core.array_state import Array, ArrayState

ALL_COLUMNS = slice(None)


class Adam(ArrayState):
    def __init__(self, n_params, learning_rate, beta1=0.9, beta2=0.999, epsilon=1e-8, zeros=np.zeros):
        self.learning_rate, self.beta1, self.beta2, self.epsilon = learning_rate, beta1, beta2, epsilon
        self.m_p = zeros(n_params, np.float32)
        self.v_p = zeros(n_params, np.float32)
        self.steps = 0

    def step(self, gradient_p, columns=ALL_COLUMNS):
        """The update to add to `columns` of the parameters for a gradient (of those columns) to descend."""
        self.steps = steps = int(self.steps) + 1
        a = self.learning_rate * np.sqrt(1 - self.beta2**steps) / (1 - self.beta1**steps)
        m_p, v_p = self.m_p[columns], self.v_p[columns]
        m_p[...] = self.beta1 * m_p + (1 - self.beta1) * gradient_p
        v_p[...] = self.beta2 * v_p + (1 - self.beta2) * (gradient_p * gradient_p)
        return (-a * m_p / (np.sqrt(v_p) + self.epsilon)).astype(np.float32)

    def state_layout(self):
        n = self.m_p.size
        return [Array("m", "m_p", np.float32, (n,)), Array("v", "v_p", np.float32, (n,)),
                Array("steps", "steps", np.int64)]


class SGD(ArrayState):
    """SGD with momentum (the ES paper's alternative to Adam)."""

    def __init__(self, n_params, learning_rate, momentum=0.9, zeros=np.zeros):
        self.learning_rate, self.momentum = learning_rate, momentum
        self.velocity_p = zeros(n_params, np.float32)

    def step(self, gradient_p, columns=ALL_COLUMNS):
        velocity_p = self.velocity_p[columns]
        velocity_p[...] = self.momentum * velocity_p + (1.0 - self.momentum) * gradient_p
        return (-self.learning_rate * velocity_p).astype(np.float32)

    def state_layout(self):
        return [Array("velocity", "velocity_p", np.float32, (self.velocity_p.size,))]


def make_optimizer(name, n_params, learning_rate, momentum, beta1, beta2, zeros=np.zeros):
    if name == "adam":
        return Adam(n_params, learning_rate, beta1, beta2, zeros=zeros)
    if name == "sgd":
        return SGD(n_params, learning_rate, momentum, zeros=zeros)
    raise ValueError(f"unknown optimizer {name!r}")
