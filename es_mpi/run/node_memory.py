"""Arrays that one node of the node layer (run/nodes.py) holds once, in an MPI-3 shared-memory window.

The node's leader allocates the bytes and every rank of the node maps them, so a write by any rank
is seen by all of them after a node barrier (docs/architecture.md, "node-shared state"). The window
also serves one-sided atomics on its first element (`fetch_add`), which dynamic placement uses as
the node's work counter.
"""

import numpy as np


class NodeArray:
    """A zero-filled array of `shape` and `dtype`, one copy per node; `.array` is this rank's view."""

    def __init__(self, nodes, shape, dtype):
        from mpi4py import MPI

        self.dtype = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        nbytes = max(count, 1) * self.dtype.itemsize if nodes.node.rank == 0 else 0
        self.window = MPI.Win.Allocate_shared(nbytes, self.dtype.itemsize, comm=nodes.node)
        buffer, _ = self.window.Shared_query(0)
        self.array = np.ndarray(buffer=buffer, dtype=self.dtype, shape=shape)
        if nodes.node.rank == 0:
            self.array[...] = 0
        nodes.node.Barrier()

    def fetch_add(self, value=1):
        """Atomically add `value` to the first element (an int64 array) and return what it held."""
        from mpi4py import MPI

        add = np.array([value], dtype=np.int64)
        held = np.empty(1, dtype=np.int64)
        self.window.Lock(0, MPI.LOCK_SHARED)
        self.window.Fetch_and_op(add, held, 0, 0, MPI.SUM)
        self.window.Unlock(0)
        return int(held[0])

    def store(self, value):
        """Atomically set the first element (an int64 array), seen by the node's next fetch_add."""
        from mpi4py import MPI

        put = np.array([value], dtype=np.int64)
        self.window.Lock(0, MPI.LOCK_EXCLUSIVE)
        self.window.Accumulate(put, 0, 0, MPI.REPLACE)
        self.window.Unlock(0)

    def free(self):
        self.window.Free()


class NodeArrays:
    """The node-shared arrays of a cooperative strategy (core/node_share.py): `share` allocates them
    here as NodeArrays, with the node barrier as its sync; `free` releases them all (collective on the node)."""

    def __init__(self, nodes):
        from es_mpi.core.node_share import NodeShare

        self.nodes, self.windows = nodes, []
        self.share = NodeShare(nodes.node.rank, nodes.node.size, self._allocate, nodes.node.Barrier)

    def _allocate(self, shape, dtype):
        window = NodeArray(self.nodes, shape, dtype)
        self.windows.append(window)
        return window.array

    def free(self):
        for window in reversed(self.windows):
            window.free()
        self.windows = []
