"""Elite (input, action) rows of the last few iterations, kept as plain arrays in the state."""

import numpy as np


class EliteMemory:
    def __init__(self, iterations, width):
        self.iterations, self.width = iterations, width
        self.rows_rc = np.zeros((0, width))
        self.iteration_r = np.zeros(0, dtype=np.int64)

    def add(self, rows_rc, iteration):
        """Store this iteration's rows and forget those older than `iterations` iterations."""
        if self.iterations == 0:
            return
        keep = self.iteration_r > iteration - self.iterations
        self.rows_rc = np.concatenate([self.rows_rc[keep], rows_rc])
        self.iteration_r = np.concatenate([self.iteration_r[keep], np.full(len(rows_rc), iteration, dtype=np.int64)])

    def rows_with(self, rows_rc):
        """Today's rows followed by the remembered ones of earlier iterations."""
        return np.concatenate([rows_rc, self.rows_rc]) if len(self.rows_rc) else rows_rc

    def state_dict(self):
        return {"rows": self.rows_rc, "iteration": self.iteration_r}

    def load_state_dict(self, state):
        self.rows_rc = np.array(state["rows"], dtype=np.float64).reshape(-1, self.width)
        self.iteration_r = np.array(state["iteration"], dtype=np.int64)


def stack_transitions(transitions, width):
    """[(member, rows_tc)] -> one (rows, width) float64 array in the given (global member) order."""
    if not transitions:
        return np.zeros((0, width))
    return np.concatenate([rows.reshape(-1, width) for _, rows in transitions])
