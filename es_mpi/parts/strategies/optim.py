"""First-order optimizers on flat float32 vectors; their state round-trips through HDF5."""

import numpy as np

from es_mpi.core.array_state import Array, ArrayState


class Adam(ArrayState):
    def __init__(self, n_params, learning_rate, beta1=0.9, beta2=0.999, epsilon=1e-8):
        self.learning_rate, self.beta1, self.beta2, self.epsilon = learning_rate, beta1, beta2, epsilon
        self.m_p = np.zeros(n_params, dtype=np.float32)
        self.v_p = np.zeros(n_params, dtype=np.float32)
        self.steps = 0

    def step(self, gradient_p):
        """The update to add to the parameters for a gradient to descend."""
        self.steps = steps = int(self.steps) + 1
        a = self.learning_rate * np.sqrt(1 - self.beta2**steps) / (1 - self.beta1**steps)
        self.m_p = self.beta1 * self.m_p + (1 - self.beta1) * gradient_p
        self.v_p = self.beta2 * self.v_p + (1 - self.beta2) * (gradient_p * gradient_p)
        return (-a * self.m_p / (np.sqrt(self.v_p) + self.epsilon)).astype(np.float32)

    def state_layout(self):
        n = self.m_p.size
        return [Array("m", "m_p", np.float32, (n,)), Array("v", "v_p", np.float32, (n,)),
                Array("steps", "steps", np.int64)]


class SGD(ArrayState):
    """SGD with momentum (the ES paper's alternative to Adam)."""

    def __init__(self, n_params, learning_rate, momentum=0.9):
        self.learning_rate, self.momentum = learning_rate, momentum
        self.velocity_p = np.zeros(n_params, dtype=np.float32)

    def step(self, gradient_p):
        self.velocity_p = self.momentum * self.velocity_p + (1.0 - self.momentum) * gradient_p
        return (-self.learning_rate * self.velocity_p).astype(np.float32)

    def state_layout(self):
        return [Array("velocity", "velocity_p", np.float32, (self.velocity_p.size,))]


def make_optimizer(name, n_params, learning_rate, momentum, beta1, beta2):
    if name == "adam":
        return Adam(n_params, learning_rate, beta1, beta2)
    if name == "sgd":
        return SGD(n_params, learning_rate, momentum)
    raise ValueError(f"unknown optimizer {name!r}")
