"""On-node collective costs for the scaling model, under `mpiexec -n 2`: prints one JSON line.

Allgatherv of float64 buffers from 8 bytes to 8 MB per rank, Barrier, bcast of a small object
and Fetch_and_op on a node-shared window (what a dynamic claim costs). Each call is timed after
a Barrier, the slower rank's time counting; the fastest and the median of the repeats are both
kept: on a shared, oversubscribed machine the median carries the other processes' scheduling.
"""

import json
import sys
import time

import common  # noqa: F401  (this checkout first on sys.path)

import numpy as np  # noqa: E402
from mpi4py import MPI  # noqa: E402

SIZES_BYTES = (8, 64, 512, 4096, 32768, 262144, 2097152, 8388608)


def timed(comm, function, repeats):
    """{"min": fastest, "median": median} over repeats of the slower rank's seconds for one call."""
    function()  # first call: connection set-up and page faults
    times = []
    for _ in range(repeats):
        comm.Barrier()
        start = time.perf_counter()
        function()
        times.append(comm.allreduce(time.perf_counter() - start, op=MPI.MAX))
    return {"min": float(np.min(times)), "median": float(np.median(times))}


def allgatherv(comm, n_bytes):
    send = np.ones(n_bytes // 8, dtype=np.float64)
    out = np.empty(send.size * comm.size, dtype=np.float64)
    counts = [send.size] * comm.size
    displacements = [send.size * r for r in range(comm.size)]
    return lambda: comm.Allgatherv(send, [out, counts, displacements, MPI.DOUBLE])


def claim(window):
    one, previous = np.ones(1, dtype=np.int64), np.zeros(1, dtype=np.int64)

    def fetch_and_add():
        window.Lock(0, MPI.LOCK_SHARED)
        window.Fetch_and_op(one, previous, 0, 0, MPI.SUM)
        window.Unlock(0)
    return fetch_and_add


def main():
    comm = MPI.COMM_WORLD
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    window = MPI.Win.Allocate_shared(8 if node.rank == 0 else 0, 8, comm=node)
    result = {"ranks": comm.size,
              "allgatherv_s": {str(b): timed(comm, allgatherv(comm, b), repeats if b < 1 << 20 else 20)
                               for b in SIZES_BYTES},
              "barrier_s": timed(comm, comm.Barrier, repeats),
              "bcast_s": timed(comm, lambda: comm.bcast({"stop": 0}, root=0), repeats),
              "claim_s": timed(comm, claim(window), repeats)}
    window.Free()
    if comm.rank == 0:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
