"""The end of every iteration: ranks compare state checksums and share busy times and stop flags.

The exchange is hierarchical (docs/architecture.md, "node-shared state"): each node reduces its
ranks' numbers in shared memory, the node leaders swap one small row per node, and each leader
hands the outcome back to its node. The bytes crossing nodes do not grow with the ranks per node.
"""

import hashlib
from dataclasses import dataclass

import numpy as np


def state_checksum(strategy, obstat):
    """What must be identical on every rank after an iteration: every array of the strategy state
    (centre, optimizer moments, covariance, step size, parents...) and of the observation
    statistics (count included), with names, dtypes and shapes."""
    digest = hashlib.blake2b(digest_size=8)
    for group, state in (("strategy", strategy.state_dict()), ("obstat", obstat.state_dict())):
        for key in sorted(state):
            array = np.ascontiguousarray(state[key])
            digest.update(f"{group}/{key} {array.dtype.str} {array.shape}".encode())
            digest.update(array.tobytes())
    return np.frombuffer(digest.digest(), dtype=np.uint64)[0]


@dataclass
class Agreement:
    """`sums_d2`: per node, the largest checksum and the bitwise complement of the smallest;
    `stop_signal`: the largest any rank caught; busy seconds over all ranks; bytes this node's
    leader sent and received."""
    sums_d2: np.ndarray
    stop_signal: int
    busy_max_s: float
    busy_mean_s: float
    crossed_bytes: int

    @property
    def checksums_agree(self):
        return bool(np.all(self.sums_d2[:, 0] == self.sums_d2[0, 0]) and
                    np.all(self.sums_d2[:, 0] == ~self.sums_d2[:, 1]))


def exchange(nodes, checksum, busy_s, stop_signal):
    """One Agreement, the same on every rank."""
    from mpi4py import MPI

    node, leaders = nodes.node, nodes.leaders
    sums_2 = np.array([checksum, ~np.uint64(checksum)], dtype=np.uint64)
    node.Allreduce(MPI.IN_PLACE, sums_2, op=MPI.MAX)
    peaks_2 = np.array([busy_s, stop_signal], dtype=np.float64)
    node.Allreduce(MPI.IN_PLACE, peaks_2, op=MPI.MAX)
    totals_1 = np.array([busy_s], dtype=np.float64)
    node.Allreduce(MPI.IN_PLACE, totals_1, op=MPI.SUM)
    sums_d2 = np.empty((nodes.count, 2), dtype=np.uint64)
    crossed = 0
    if nodes.count == 1:
        sums_d2[0] = sums_2
    elif leaders is not None:
        leaders.Allgather(sums_2, sums_d2)
        leaders.Allreduce(MPI.IN_PLACE, peaks_2, op=MPI.MAX)
        leaders.Allreduce(MPI.IN_PLACE, totals_1, op=MPI.SUM)
        crossed = sums_d2.nbytes + 2 * (peaks_2.nbytes + totals_1.nbytes)
    if nodes.count > 1:
        node.Bcast(sums_d2, root=0)
        floats_3 = np.concatenate([peaks_2, totals_1])
        node.Bcast(floats_3, root=0)
        peaks_2, totals_1 = floats_3[:2], floats_3[2:]
    return Agreement(sums_d2, int(peaks_2[1]), float(peaks_2[0]), float(totals_1[0]) / nodes.world.size, crossed)
