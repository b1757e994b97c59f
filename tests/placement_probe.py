"""Run under mpiexec: play two iterations of placement with a slow last rank; rank 0 prints, as one
JSON line, which members each rank played per iteration.

argv: mode (dynamic/static), population, group, seconds the last rank spends per member.
"""

import json
import sys
import time

from es_mpi.run.mpi import world
from es_mpi.run.nodes import NodeLayer
from es_mpi.run.placement import Placement


def main():
    mode, population, group, slow_s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    comm = world()
    nodes = NodeLayer.from_env(comm)
    placement = Placement(mode, nodes, population, group)
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
    placement.free()
    nodes.free()
    if comm.rank == 0:
        print(json.dumps(everyone))


if __name__ == "__main__":
    main()
