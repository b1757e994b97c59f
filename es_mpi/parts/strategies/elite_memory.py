"""Elite (input, action) rows of the last few iterations, kept as plain arrays in the state."""

import numpy as np

from es_mpi.core.array_state import Array, ArrayState


class EliteMemory(ArrayState):
    def __init__(self, iterations, width):
        self.iterations, self.width = iterations, width
        self.rows_tf = np.zeros((0, width))
        self.iteration_t = np.zeros(0, dtype=np.int64)

    def add(self, rows_tf, iteration):
        """Store this iteration's rows and forget those older than `iterations` iterations."""
        if self.iterations == 0:
            return
        keep = self.iteration_t > iteration - self.iterations
        self.rows_tf = np.concatenate([self.rows_tf[keep], rows_tf])
        self.iteration_t = np.concatenate([self.iteration_t[keep], np.full(len(rows_tf), iteration, dtype=np.int64)])

    def rows_with(self, rows_tf):
        """Today's rows followed by the remembered ones of earlier iterations."""
        return np.concatenate([rows_tf, self.rows_tf]) if len(self.rows_tf) else rows_tf

    def state_layout(self):
        return [Array("rows", "rows_tf", np.float64, ("steps", self.width)),
                Array("iteration", "iteration_t", np.int64, ("steps",))]


def stack_transitions(transitions, width):
    """[(member, rows_tf)] -> one (steps, width) float64 array in the given (global member) order."""
    if not transitions:
        return np.zeros((0, width))
    return np.concatenate([rows.reshape(-1, width) for _, rows in transitions])
