"""Run under mpiexec: play two iterations of placement with a slow last rank; rank 0 prints, as one
JSON line, which members each rank played per iteration.

argv: mode (dynamic/static), population, group, seconds the last rank spends per member.
"""

import json
import sys
import time

from es_mpi.core.environment import node_size_from_env
from es_mpi.run.mpi import world
from es_mpi.run.node_runtime import Handles
from es_mpi.run.placement import Placement


def main():
    mode, population, group, slow_s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    comm = world()
    handles = Handles()
    nodes = handles.node_layer(comm, node_size_from_env())
    placement = Placement(mode, nodes, population, group, handles.window)
    played = []
    for _ in range(2):
        mine = []
        for member in placement.members():
            if comm.rank == comm.size - 1:
                time.sleep(slow_s)
            mine.append(member)
        nodes.node.Barrier()  # as the results exchange does
        played.append(mine)
    everyone = comm.gather(dict(block=placement.block, played=played), root=0)
    handles.free()
    if comm.rank == 0:
        print(json.dumps(everyone))


if __name__ == "__main__":
    main()
