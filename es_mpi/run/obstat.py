"""Running observation statistics, combined in global member order (rank-count invariant)."""

import numpy as np

from es_mpi.core.array_state import Array, ArrayState

MIN_STD = 0.1  # the ES paper's floor (a variance of 1e-2); obs_norm.min_std changes it per job


class ObsStat(ArrayState):
    """Sum, sum of squares and count in float64; starts as mean 0, std 1."""

    def __init__(self, size, epsilon=1e-2):
        self.sum_o = np.zeros(size, dtype=np.float64)
        self.sumsq_o = np.full(size, epsilon, dtype=np.float64)
        self.count = np.float64(epsilon)

    def mean(self):
        return self.sum_o / self.count

    def std(self, min_std=MIN_STD):
        """The running std, floored at `min_std`: a dimension that barely moves is not blown up."""
        variance_o = np.maximum(self.sumsq_o / self.count - np.square(self.mean()), 0.0)
        return np.maximum(np.sqrt(variance_o), min_std)

    def add(self, rows_k2o1):
        """Add episode contributions, each row = [sum_o, sumsq_o, count], in the given order.

        One reduction down axis 0 of [current; rows]: numpy adds the rows one after another into each
        column (pairwise summation applies only along a contiguous reduced axis), so the bits are those
        of adding the rows one at a time, without a Python loop over 10^4 rows."""
        if len(rows_k2o1) == 0:
            return
        size = self.sum_o.size
        current_2o1 = np.concatenate([self.sum_o, self.sumsq_o, [self.count]])
        total_2o1 = np.add.reduce(np.vstack([current_2o1, np.asarray(rows_k2o1, dtype=np.float64)]), axis=0)
        self.sum_o[:] = total_2o1[:size]
        self.sumsq_o[:] = total_2o1[size:2 * size]
        self.count = np.float64(total_2o1[2 * size])

    def normalizer(self, clip, min_std=MIN_STD):
        """(mean, 1/std, clip) in float32 for the per-step path."""
        return (self.mean().astype(np.float32), (1.0 / self.std(min_std)).astype(np.float32), np.float32(clip))

    def state_layout(self):
        size = self.sum_o.size
        return [Array("sum", "sum_o", np.float64, (size,)), Array("sumsq", "sumsq_o", np.float64, (size,)),
                Array("count", "count", np.float64)]


def normalize(x, normalizer):
    """The policy's input: x (float32, any batch shape) standardised by `ObsStat.normalizer` and clipped
    to [-clip, clip]; x itself without a normalizer. Training, evaluation and `es_mpi.load_policy` all
    normalise here, so they agree bit for bit. Direct ufuncs: min(max(v, -clip), clip) gives
    np.clip's bits without its Python wrapper's cost, which matters once per step."""
    if normalizer is None:
        return x
    mean_o, inv_std_o, clip = normalizer
    z = np.multiply(np.subtract(x, mean_o), inv_std_o)
    return np.minimum(np.maximum(z, -clip, out=z), clip, out=z)
