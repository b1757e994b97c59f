"""The node layer: which ranks share a node's memory, and which rank speaks for each node.

A node is the ranks of one machine (`COMM_TYPE_SHARED`). `ES_MPI_NODE_SIZE=K`, a testing and
debugging knob, cuts the world further into virtual nodes of K consecutive ranks (the last one may be
smaller), each with its own shared windows: the multi-node layout then runs on one machine. Nothing
random depends on the layout (docs/architecture.md, contract 1); it only decides where the node-shared
memory lives.

The knob is parsed in core/environment.py, which imports no MPI, so the command checks it before MPI starts.
The communicators themselves are split, and freed, by the node runtime (run/node_runtime.py: `Handles`).
"""


class NodeLayer:
    """`node`: this rank's node communicator; `leaders`: the node rank-0s together (None elsewhere);
    `index` / `count`: this node's number and the number of nodes, in world-rank order; `sizes`: the
    ranks of each node, in that order; `nodes_on_machine`: how many nodes (so shared tables) this
    machine's memory holds."""

    def __init__(self, world, node, leaders, nodes_on_machine):
        self.world, self.node, self.leaders, self.nodes_on_machine = world, node, leaders, nodes_on_machine
        place = (leaders.rank, tuple(leaders.allgather(node.size))) if leaders is not None else None
        self.index, self.sizes = node.bcast(place, root=0)
        self.count = len(self.sizes)

    @property
    def is_leader(self):
        return self.leaders is not None

    def describe(self):
        """For the start line: '' on one node, else the ranks per node."""
        return "" if self.count == 1 else f" (nodes of {'+'.join(map(str, self.sizes))})"
