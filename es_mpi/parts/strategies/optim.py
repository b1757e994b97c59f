"""First-order optimizers on flat float32 vectors; their state round-trips through HDF5."""

import numpy as np


class Adam:
    def __init__(self, n_params, learning_rate, beta1=0.9, beta2=0.999, epsilon=1e-8):
        self.learning_rate, self.beta1, self.beta2, self.epsilon = learning_rate, beta1, beta2, epsilon
        self.m_p = np.zeros(n_params, dtype=np.float32)
        self.v_p = np.zeros(n_params, dtype=np.float32)
        self.steps = 0

    def step(self, gradient_p):
        """The update to add to the parameters for a gradient to descend."""
        self.steps += 1
        a = self.learning_rate * np.sqrt(1 - self.beta2**self.steps) / (1 - self.beta1**self.steps)
        self.m_p = self.beta1 * self.m_p + (1 - self.beta1) * gradient_p
        self.v_p = self.beta2 * self.v_p + (1 - self.beta2) * (gradient_p * gradient_p)
        return (-a * self.m_p / (np.sqrt(self.v_p) + self.epsilon)).astype(np.float32)

    def state_dict(self):
        return {"m": self.m_p, "v": self.v_p, "steps": np.int64(self.steps)}

    def load_state_dict(self, state):
        self.m_p = np.asarray(state["m"], dtype=np.float32).copy()
        self.v_p = np.asarray(state["v"], dtype=np.float32).copy()
        self.steps = int(state["steps"])


class SGD:
    """SGD with momentum (the ES paper's alternative to Adam)."""

    def __init__(self, n_params, learning_rate, momentum=0.9):
        self.learning_rate, self.momentum = learning_rate, momentum
        self.velocity_p = np.zeros(n_params, dtype=np.float32)

    def step(self, gradient_p):
        self.velocity_p = self.momentum * self.velocity_p + (1.0 - self.momentum) * gradient_p
        return (-self.learning_rate * self.velocity_p).astype(np.float32)

    def state_dict(self):
        return {"velocity": self.velocity_p}

    def load_state_dict(self, state):
        self.velocity_p = np.asarray(state["velocity"], dtype=np.float32).copy()


def make_optimizer(name, n_params, learning_rate, momentum, beta1, beta2):
    if name == "adam":
        return Adam(n_params, learning_rate, beta1, beta2)
    if name == "sgd":
        return SGD(n_params, learning_rate, momentum)
    raise ValueError(f"unknown optimizer {name!r}")
