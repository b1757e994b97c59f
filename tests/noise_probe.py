"""Run under mpiexec: report how this rank sees the node-shared noise table, as one JSON line."""

import hashlib
import json
import sys

import numpy as np

from es_mpi.run.mpi import world
from es_mpi.run.nodes import NodeLayer
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
    nodes = NodeLayer.from_env(comm)
    table = SharedNoiseTable(size, seed, nodes)
    digest = hashlib.sha256(table.array.tobytes()).hexdigest()  # touches every page
    comm.Barrier()
    identity, path, pss_kb = mapping_of(table.array.ctypes.data)
    reports = comm.gather(dict(rank=comm.rank, node=nodes.index, nodes=nodes.count, leader=nodes.is_leader,
                               digest=digest, identity=identity, path=path, pss_kb=pss_kb))
    if comm.rank == 0:
        print(json.dumps(reports))
    comm.Barrier()
    table.free()
    nodes.free()


if __name__ == "__main__":
    main()
