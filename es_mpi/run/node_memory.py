"""Arrays that one node of the node layer (run/nodes.py) holds once, in an MPI-3 shared-memory window.

The node's leader allocates the bytes and every rank of the node maps them, so a write by any rank
is seen by all of them after a node barrier (docs/architecture.md, "node-shared state"). The window
also serves one-sided atomics on its first element (`fetch_add`), which dynamic placement uses as
the node's work counter. The windows come from the node runtime's `window(comm, nbytes, itemsize)`
(run/node_runtime.py), which also frees them.
"""

import numpy as np


class NodeArray:
    """A zero-filled array of `shape` and `dtype`, one copy per node; `.array` is this rank's view."""

    def __init__(self, nodes, shape, dtype, window):
        self.dtype = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        nbytes = max(count, 1) * self.dtype.itemsize if nodes.node.rank == 0 else 0
        self.window = window(nodes.node, nbytes, self.dtype.itemsize)
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


class NodeArrays:
    """The node-shared arrays of a cooperative strategy (core/node_share.py): `share` allocates them
    here as NodeArrays, with the node barrier as its sync."""

    def __init__(self, nodes, window):
        from es_mpi.core.node_share import NodeShare

        self.nodes, self.window, self.windows = nodes, window, []
        self.share = NodeShare(nodes.node.rank, nodes.node.size, self._allocate, nodes.node.Barrier)

    def _allocate(self, shape, dtype):
        array = NodeArray(self.nodes, shape, dtype, self.window)
        self.windows.append(array)
        return array.array
