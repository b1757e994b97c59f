"""The node layer: which ranks share a node's memory, and which rank speaks for each node.

A node is the ranks of one machine (`COMM_TYPE_SHARED`). `ES_MPI_NODE_SIZE=K`, a testing and
debugging knob, cuts the world further into virtual nodes of K consecutive ranks (the last one may be
smaller), each with its own shared windows: the multi-node layout then runs on one machine. Nothing
random depends on the layout (docs/architecture.md, contract 1); it only decides where the node-shared
memory lives.

The knob is parsed in core/environment.py, which imports no MPI, so the command checks it before MPI starts.
"""

from es_mpi.core.environment import node_size_from_env


class NodeLayer:
    """`node`: this rank's node communicator; `leaders`: the node rank-0s together (None elsewhere);
    `index` / `count`: this node's number and the number of nodes, in world-rank order; `sizes`: the
    ranks of each node, in that order; `nodes_on_machine`: how many nodes (so shared tables) this
    machine's memory holds."""

    def __init__(self, world, node_size=None):
        from mpi4py import MPI

        self.world = world
        machine = world.Split_type(MPI.COMM_TYPE_SHARED, key=world.rank)
        if node_size is None:
            self.node = machine.Dup()
        else:
            self.node = machine.Split(color=world.rank // node_size, key=world.rank)
        is_leader = self.node.rank == 0
        self.nodes_on_machine = machine.allreduce(int(is_leader))
        machine.Free()
        leaders = world.Split(color=0 if is_leader else MPI.UNDEFINED, key=world.rank)
        self.leaders = leaders if is_leader else None
        place = (leaders.rank, tuple(leaders.allgather(self.node.size))) if is_leader else None
        self.index, self.sizes = self.node.bcast(place, root=0)
        self.count = len(self.sizes)

    @classmethod
    def from_env(cls, world):
        return cls(world, node_size_from_env())

    @property
    def is_leader(self):
        return self.leaders is not None

    def describe(self):
        """For the start line: '' on one node, else the ranks per node."""
        return "" if self.count == 1 else f" (nodes of {'+'.join(map(str, self.sizes))})"

    def free(self):
        if self.leaders is not None:
            self.leaders.Free()
        self.node.Free()
