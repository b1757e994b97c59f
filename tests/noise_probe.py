"""Run under mpiexec: report how this rank sees the node-shared noise table, as one JSON line."""

import hashlib
import json
import sys

import numpy as np

from es_mpi.core.environment import node_size_from_env
from es_mpi.run.mpi import world
from es_mpi.run.node_runtime import Handles
from es_mpi.run.noise import SharedNoiseTable


def mapping_of(address):
    """(device:inode, path, Pss kB) of the memory mapping holding `address`."""
    current = None
    with open("/proc/self/smaps") as fh:
        for line in fh:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5:
                start, end = (int(x, 16) for x in fields[0].split("-"))
                current = (f"{fields[3]}:{fields[4]}", fields[5] if len(fields) > 5 else "") \
                    if start <= address < end else None
            elif current and fields[0] == "Pss:":
                return (*current, int(fields[1]))
    raise RuntimeError("address not mapped")


def main():
    size, seed = int(sys.argv[1]), int(sys.argv[2])
    comm = world()
    handles = Handles()
    nodes = handles.node_layer(comm, node_size_from_env())
    table = SharedNoiseTable(size, seed, nodes, handles.window)
    digest = hashlib.sha256(table.array.tobytes()).hexdigest()  # touches every page
    comm.Barrier()
    identity, path, pss_kb = mapping_of(table.array.ctypes.data)
    reports = comm.gather(dict(rank=comm.rank, node=nodes.index, nodes=nodes.count, leader=nodes.is_leader,
                               digest=digest, identity=identity, path=path, pss_kb=pss_kb))
    if comm.rank == 0:
        print(json.dumps(reports))
    comm.Barrier()
    handles.free()


if __name__ == "__main__":
    main()
