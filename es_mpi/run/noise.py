"""The noise table: float32 standard normals, filled deterministically from the noise seed.

Under MPI one copy lives per node of the node layer (run/nodes.py) in an MPI-3 shared-memory window
(docs/architecture.md, contract 3); every rank of the node reads it in place. Without MPI (eval,
unit tests) it is a plain array with the same bytes.
"""

import os

import numpy as np

from es_mpi.core.errors import UserError
from es_mpi.core.seeding import Purpose, rng

SHARED_MEMORY_DIR = "/dev/shm"  # where Open MPI backs shared-memory windows

CHUNK = 1 << 22  # entries per independently seeded chunk: the fill can be split across ranks


def fill_chunks(table, seed, chunks):
    """Fill the given chunk numbers of `table`; chunk k depends only on (seed, k)."""
    for k in chunks:
        start = k * CHUNK
        stop = min(start + CHUNK, table.size)
        rng(seed, k, purpose=Purpose.NOISE_TABLE).standard_normal(
            stop - start, dtype=np.float32, out=table[start:stop])


def n_chunks(size):
    return -(-size // CHUNK)


def local_table(size, seed):
    """A private table (no MPI): the same contents as the shared one."""
    table = np.empty(size, dtype=np.float32)
    fill_chunks(table, seed, range(n_chunks(size)))
    return table


class SharedNoiseTable:
    """One table per (virtual) node of `nodes` (run/nodes.py) in an MPI shared-memory window that
    `window(comm, nbytes, itemsize)` allocates (the node runtime's, which also frees it); `.array`
    is this rank's view."""

    def __init__(self, size, seed, nodes, window):
        node = nodes.node
        check_shared_memory(size * 4, nodes.nodes_on_machine, nodes.world, node)
        nbytes = size * 4 if node.rank == 0 else 0
        self.window = window(node, nbytes, 4)
        buffer, _ = self.window.Shared_query(0)
        self.array = np.ndarray(buffer=buffer, dtype=np.float32, shape=(size,))
        fill_chunks(self.array, seed, range(node.rank, n_chunks(size), node.size))
        node.Barrier()
        self.array.flags.writeable = False


def shared_memory_free(directory=SHARED_MEMORY_DIR):
    """Bytes free in the shared-memory file system, or None where there is none to ask."""
    try:
        stat = os.statvfs(directory)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize


def check_shared_memory(table_bytes, tables_on_machine, world, node):
    """Refuse, on every rank alike, tables larger than some machine's free shared memory (virtual
    nodes put several tables on one machine): Open MPI would otherwise die with a bus error or a
    traceback part-way through the fill."""
    free = shared_memory_free() if node.rank == 0 else None
    worst = min((f for f in world.allgather(free) if f is not None), default=None)
    nbytes = table_bytes * tables_on_machine
    if worst is not None and nbytes > worst:
        need = "the noise table needs" if tables_on_machine == 1 else \
            f"{tables_on_machine} noise tables (one per ES_MPI_NODE_SIZE node) need"
        raise UserError(f"noise.size: {need} {nbytes} bytes of shared memory, but "
                        f"{SHARED_MEMORY_DIR} has {worst} bytes free; lower noise.size, or give the node more "
                        f"shared memory (docker run --shm-size, a larger /dev/shm mount)")
