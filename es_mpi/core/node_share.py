"""How the ranks of one node share a strategy's per-parameter state (docs/architecture.md,
"node-shared state"), without knowing MPI.

A cooperative strategy keeps its centre, optimizer moments and gradient scratch in arrays from
`zeros`; each rank of the node computes only its own contiguous column slice `columns(n)` of
the update, writing in place inside `with share.column_phase():`, which opens with `sync` (the
node barrier: no rank still reads the last state) and closes with a seal and `sync` before anything
reads whole vectors. Elementwise arithmetic does not depend on where a slice starts, so any layout
gives the bytes of one rank.

The node's arrays are read-only (`flags.writeable = False`) outside a column phase, and a column
phase runs only inside the node runtime's update phase (`update_phase`, run/node_runtime.py): a
strategy that writes outside it fails at once, on one rank as on many.

`SOLO` (one process, `eval`, unit tests) gives private numpy arrays, all columns, a no-op sync and
no guard: nothing is shared, so nothing can race.

Each rank also keeps a digest of the columns it wrote (`seal`), so that it can tell later whether
its node's copy still holds what it computed (`intact`): the repair then knows which node's copy
was corrupted after the update, even when it is rank 0's (run/node_runtime.py, `agree`).
"""

import contextlib
import hashlib

import numpy as np

ALIGN = 16  # columns per block of a slice: 64-byte float32 cache lines are never split between ranks


def column_slice(n_columns, rank, size, align=ALIGN):
    """[start, stop) of `n_columns` for `rank` of `size`: contiguous, in order, whole blocks of `align`."""
    blocks = -(-n_columns // align)
    return min(n_columns, blocks * rank // size * align), min(n_columns, blocks * (rank + 1) // size * align)


class NodeShare:
    """`rank` / `size`: this rank among the node's ranks; `allocate(shape, dtype)` -> a zero-filled
    array one per node (None: private numpy arrays, nothing shared); `sync()`: the node barrier."""

    def __init__(self, rank=0, size=1, allocate=None, sync=None):
        self.rank, self.size = rank, size
        self._allocate, self._sync = allocate, sync
        self._held = []  # the node-shared arrays handed out, in allocation order
        self._seals = {}
        self._updating = False  # inside the runtime's update phase

    @property
    def writes(self):
        """Whether this rank writes whole shared arrays (initial values, loaded state): the node's rank 0."""
        return self.rank == 0

    def columns(self, n_columns):
        return column_slice(n_columns, self.rank, self.size)

    def sync(self):
        if self._sync is not None:
            self._sync()

    def zeros(self, shape, dtype):
        if self._allocate is None:
            return np.zeros(shape, dtype=dtype)
        array = self._allocate(shape, dtype)
        array.flags.writeable = False
        self._held.append(array)
        return array

    def array(self, values, dtype):
        """A shared (or private) array holding `values`: written once per node, seen by all after the sync."""
        values = np.asarray(values, dtype=dtype)
        array = self.zeros(values.shape, dtype)
        if self._allocate is None or self.writes:
            with self.unlocked():
                array[...] = values
        self.sync()
        self.seal()
        return array

    def holds(self, array):
        """Whether `array` is one of this node's shared arrays (written in place, never replaced)."""
        return any(array is held for held in self._held)

    def load(self, pairs):
        """Write [(shared array, values)] once per node, between two syncs (nobody reads meanwhile)."""
        self.sync()
        if self.writes:
            with self.unlocked():
                for array, values in pairs:
                    array[...] = values
        self.sync()
        self.seal()

    @contextlib.contextmanager
    def update_phase(self):
        """The node runtime's update phase (run/node_runtime.py): the one time column phases may run,
        after every rank of the node copied the results and before the agreement."""
        self._updating = True
        try:
            yield
        finally:
            self._updating = False

    @contextlib.contextmanager
    def column_phase(self):
        """Wait until no rank of the node reads the last state; this rank writes its columns (the
        node's arrays are writable only in here: take the column views inside); remember what it wrote
        and wait for the node's other ranks, so whole vectors may be read after it."""
        if self._held and not self._updating:
            raise RuntimeError("node-shared columns are written only inside the node runtime's update phase")
        self.sync()
        with self.unlocked():
            yield
        self.seal()
        self.sync()

    @contextlib.contextmanager
    def unlocked(self):
        """The node's arrays writable: whole-array writes (initial values, loads) and fault injection."""
        for array in self._held:
            array.flags.writeable = True
        try:
            yield
        finally:
            for array in self._held:
                array.flags.writeable = False

    def _own_columns(self):
        for index, array in enumerate(self._held):
            start, stop = self.columns(array.shape[0])
            yield index, array[start:stop]

    def seal(self):
        self._seals = {index: _digest(part) for index, part in self._own_columns()}

    def intact(self):
        """Whether every shared array still holds, in this rank's columns, what this rank last wrote there."""
        return all(_digest(part) == self._seals.get(index) for index, part in self._own_columns())


def _digest(array):
    return hashlib.blake2b(np.ascontiguousarray(array).view(np.uint8), digest_size=16).digest()


SOLO = NodeShare()
