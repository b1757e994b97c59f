"""The end of every iteration: ranks compare state checksums and share busy times and stop flags."""

import hashlib

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


def exchange(comm, checksum, busy_s, stop_signal):
    """Two small Allgathers: (checksums_r, flags_r2) with flags = [busy seconds, stop signal] per rank."""
    sums_r = np.empty(comm.size, dtype=np.uint64)
    comm.Allgather(np.array([checksum], dtype=np.uint64), sums_r)
    flags_r2 = np.empty((comm.size, 2), dtype=np.float64)
    comm.Allgather(np.array([busy_s, stop_signal], dtype=np.float64), flags_r2)
    return sums_r, flags_r2
