"""The end of every iteration: ranks compare state checksums and share busy times and stop flags.

The exchange is hierarchical (docs/architecture.md, "node-shared state"): each node sums up its
ranks in shared memory, the node leaders swap one small row per node, and each leader hands the
outcome back to its node, so the bytes crossing nodes do not grow with the ranks per node.

With a node-shared strategy state (core/node_share.py) a node holds one copy, so a corrupted copy is
a node's, and rank 0's may be the corrupted one. Each rank therefore also says whether its node's
copy still holds, in its own columns, what it computed there (`intact`); the repair copies the state
held by the most intact nodes (`Agreement.repair_source`), never one that a rank of its node found
altered.
"""

import hashlib
from dataclasses import dataclass

import numpy as np

from es_mpi.core.errors import RunFailure

CHECKSUM, SOURCE, INTACT, UNANIMOUS = range(4)  # the columns of a node's row


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


def node_row(ranks_r3):
    """A node's row [checksum, source world rank, intact, unanimous] from its ranks' [checksum, world
    rank, intact]: the checksum most of its ranks hold (a tie: the lowest rank's), the lowest rank
    holding it, whether every rank found its columns intact, whether all ranks agree."""
    sums_r, ranks_r = ranks_r3[:, 0], ranks_r3[:, 1]
    values, counts = np.unique(sums_r, return_counts=True)
    tied = values[counts == counts.max()]
    holders = np.isin(sums_r, tied)
    source = int(ranks_r[holders].min())
    checksum = sums_r[ranks_r == source][0]
    return np.array([checksum, source, int(ranks_r3[:, 2].all()), int(values.size == 1)], dtype=np.uint64)


@dataclass
class Agreement:
    """`rows_d4`: one row per node (see node_row); `stop_signal`: the largest any rank caught; busy
    seconds over all ranks; the most and fewest members any rank played; bytes this node's leader
    sent and received."""
    rows_d4: np.ndarray
    stop_signal: int
    busy_max_s: float
    busy_mean_s: float
    members_max: int
    members_min: int
    crossed_bytes: int

    def repair_source(self):
        """None when every rank holds the same intact state; else (world rank, node) whose state every rank loads.

        Each checksum gets one vote per intact node holding it; the most votes win, a tie goes to the
        lowest node's, and the source is that node's lowest rank holding it. RunFailure, the same on
        every rank, when no node is intact.
        """
        rows = self.rows_d4
        if rows[:, UNANIMOUS].all() and rows[:, INTACT].all() and np.all(rows[:, CHECKSUM] == rows[0, CHECKSUM]):
            return None
        good = np.flatnonzero(rows[:, INTACT])
        if good.size == 0:
            raise RunFailure("every node's copy of the strategy state changed after its update (a rank's digest of its "
                             "columns no longer matches); no intact copy to repair from")
        votes = {}
        for node in good:
            votes.setdefault(int(rows[node, CHECKSUM]), []).append(int(node))
        winner = max(votes, key=lambda checksum: (len(votes[checksum]), -votes[checksum][0]))
        node = votes[winner][0]
        return int(rows[node, SOURCE]), node


def exchange(nodes, checksum, busy_s, stop_signal, intact=True, members=0):
    """One Agreement, the same on every rank; `members`: how many members this rank played."""
    from mpi4py import MPI

    node, leaders = nodes.node, nodes.leaders
    ranks_r3 = np.empty((node.size, 3), dtype=np.uint64)
    node.Allgather(np.array([checksum, nodes.world.rank, int(intact)], dtype=np.uint64), ranks_r3)
    peaks_4 = np.array([busy_s, stop_signal, members, -members], dtype=np.float64)  # the fewest as the largest -n
    node.Allreduce(MPI.IN_PLACE, peaks_4, op=MPI.MAX)
    totals_1 = np.array([busy_s], dtype=np.float64)
    node.Allreduce(MPI.IN_PLACE, totals_1, op=MPI.SUM)
    rows_d4 = np.empty((nodes.count, 4), dtype=np.uint64)
    crossed = 0
    if nodes.count == 1:
        rows_d4[0] = node_row(ranks_r3)
    elif leaders is not None:
        leaders.Allgather(node_row(ranks_r3), rows_d4)
        leaders.Allreduce(MPI.IN_PLACE, peaks_4, op=MPI.MAX)
        leaders.Allreduce(MPI.IN_PLACE, totals_1, op=MPI.SUM)
        crossed = rows_d4.nbytes + 2 * (peaks_4.nbytes + totals_1.nbytes)  # own row out, the others in
    if nodes.count > 1:
        node.Bcast(rows_d4, root=0)
        floats_5 = np.concatenate([peaks_4, totals_1])
        node.Bcast(floats_5, root=0)
        peaks_4, totals_1 = floats_5[:4], floats_5[4:]
    return Agreement(rows_d4, int(peaks_4[1]), float(peaks_4[0]), float(totals_1[0]) / nodes.world.size,
                     int(peaks_4[2]), -int(peaks_4[3]), crossed)
