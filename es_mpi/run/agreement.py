"""The end of every iteration: ranks compare state checksums and share busy times and stop flags.

With a node-shared strategy state (core/node_share.py) a node holds one copy, so a corrupted copy is
a node's, and rank 0's may be the corrupted one. Each rank therefore also says whether its node's
copy still holds, in its own columns, what it computed there (`intact`); the repair copies the state
held by the most intact nodes (`repair_source`), never one that a rank of its node found altered.
"""

import hashlib

import numpy as np

from es_mpi.core.errors import RunFailure


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


def exchange(comm, checksum, busy_s, stop_signal, intact=True):
    """Two small Allgathers: (checksums_r, flags_r3) with flags = [busy seconds, stop signal, intact] per rank."""
    sums_r = np.empty(comm.size, dtype=np.uint64)
    comm.Allgather(np.array([checksum], dtype=np.uint64), sums_r)
    flags_r3 = np.empty((comm.size, 3), dtype=np.float64)
    comm.Allgather(np.array([busy_s, stop_signal, float(intact)], dtype=np.float64), flags_r3)
    return sums_r, flags_r3


def repair_source(sums_r, intact_r, node_r):
    """None when every rank holds the same intact state; else the world rank whose state every rank loads.

    A node is intact when all its ranks are. Each checksum gets one vote per intact node holding it;
    the most votes win, a tie goes to the checksum of the lowest rank, and the source is the lowest
    intact rank holding the winner. RunFailure, the same on every rank, when no node is intact.
    """
    intact_r = np.asarray(intact_r, dtype=bool)
    if np.all(sums_r == sums_r[0]) and intact_r.all():
        return None
    broken_nodes = set(node_r[~intact_r].tolist())
    good_r = np.array([node not in broken_nodes for node in node_r.tolist()])
    if not good_r.any():
        raise RunFailure("every node's copy of the strategy state changed after its update (a rank's digest of its "
                         "columns no longer matches); no intact copy to repair from")
    votes = {}
    for rank in np.flatnonzero(good_r):
        votes.setdefault(int(sums_r[rank]), set()).add(int(node_r[rank]))
    first_rank = {int(sums_r[rank]): rank for rank in reversed(np.flatnonzero(good_r).tolist())}
    winner = max(votes, key=lambda checksum: (len(votes[checksum]), -first_rank[checksum]))
    return first_rank[winner]
