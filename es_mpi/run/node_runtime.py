"""The node runtime: every MPI window and communicator of a run, and the one order of an iteration's phases.

It owns the node layer (run/nodes.py), the noise table (run/noise.py), the node arrays of a
cooperative strategy (run/node_memory.py, core/node_share.py), placement (run/placement.py), the
results exchange (run/node_results.py) and the agreement (run/agreement.py). It alone allocates
windows and communicators (`Handles`; tests/test_layers.py holds every other module to that), and as a
context manager it frees them all, also when its own start-up failed partway.

An iteration's phases, in the order the node barriers require (docs/architecture.md, "The node runtime"):

1. play: `members(evaluating)` yields this rank's members, claimed from the node's counter or a static
   slice, and on an evaluation iteration the centre's evaluation episodes among them (run/placement.py);
   `write(member, episode)` puts each result into the node's results arrays at its member index.
   Nobody reads those arrays during play, so ranks write without waiting for each other.
2. exchange: `exchange()` waits at a node barrier until every member of the node is written, lets the
   leaders swap blocks between nodes and waits at a second barrier until they are back; then each
   rank copies the results out. `gather_elite` is the world gather of the elite's transitions.
3. update: `update(returns_n, transitions)` runs the strategy's tell inside the node arrays' update phase, the only
   time a cooperative strategy may write its columns (core/node_share.py: `column_phase` waits at a
   node barrier until no rank reads the last state, and at another until every rank wrote its columns).
   Outside it the node's arrays are read-only, on one rank as on many.
4. agree: `agree(...)` compares checksums, busy times and stop flags, and repairs a changed copy. It is
   a node-wide collective that no rank leaves before every rank of its node entered, that is, before
   every rank copied this iteration's results and finished its update: only then may a rank start
   the next play phase and overwrite the results arrays or claim from the counter.

The pipelined mode (run/pipeline.py) keeps this order per iteration but lets two overlap: iteration
t + 1 plays on the other parity's counter and results arrays while t is still played elsewhere;
`played(t)` is the non-blocking world barrier that says every rank has played t, and t's exchange,
update and agreement then run, blocking, between two of t + 1's steps.
"""

import numpy as np

from es_mpi.core.errors import AgreedError, RunFailure, UserError
from es_mpi.run import agreement, faults
from es_mpi.run.mpi import MPI, allgather_variable  # run/mpi.py sets Open MPI's defaults before MPI starts
from es_mpi.run.node_memory import NodeArrays
from es_mpi.run.node_results import NodeResults
from es_mpi.run.nodes import NodeLayer
from es_mpi.run.noise import SharedNoiseTable
from es_mpi.run.placement import Placement, member_blocks, node_blocks


class Handles:
    """Every window and communicator made here, in the order made; `free` frees them all, last first
    (collective: every rank of each communicator must call it)."""

    def __init__(self):
        self._held = []

    def _keep(self, handle):
        self._held.append(handle)
        return handle

    def node_layer(self, world, node_size=None):
        """The node layer: the ranks sharing a machine (cut into virtual nodes of `node_size`) and their leaders."""
        machine = world.Split_type(MPI.COMM_TYPE_SHARED, key=world.rank)
        try:
            node = self._keep(machine.Dup() if node_size is None
                              else machine.Split(color=world.rank // node_size, key=world.rank))
            is_leader = node.rank == 0
            nodes_on_machine = machine.allreduce(int(is_leader))
        finally:
            machine.Free()
        leaders = world.Split(color=0 if is_leader else MPI.UNDEFINED, key=world.rank)
        return NodeLayer(world, node, self._keep(leaders) if is_leader else None, nodes_on_machine)

    def window(self, comm, nbytes, itemsize):
        """A shared-memory window on `comm`: `nbytes` from this rank (the node's leader holds them all)."""
        return self._keep(MPI.Win.Allocate_shared(nbytes, itemsize, comm=comm))

    def free(self):
        while self._held:
            self._held.pop().Free()

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if error is None:
            self.free()
        return False


class NodeRuntime:
    """The node side of training one strategy: `strategy` is built here on the node's noise table
    and arrays (`make_strategy(noise, share)`); `nodes` is the node layer.

    Start-up refusals that every rank reaches alike from the same settings (a UserError: the noise
    table does not fit the shared memory) free what was made and become an AgreedError.
    """

    def __init__(self, world, noise_size, noise_seed, placement, make_strategy, obs_width=None, node_size=None,
                 handles=None, evaluations=0, pipeline=False):
        self.world, self.rank = world, world.rank
        slots = 2 if pipeline else 1  # iterations in flight at once
        self.played = [0] * slots  # members this rank played in the iteration, for the agreement's members_max/min
        self.handles = Handles() if handles is None else handles
        try:
            self.nodes = self.handles.node_layer(world, node_size)
            self.noise = SharedNoiseTable(noise_size, noise_seed, self.nodes, self.handles.window)
            node_arrays = NodeArrays(self.nodes, self.handles.window)
            self.share = node_arrays.share
            self.strategy = make_strategy(self.noise.array, self.share)
            faults.fail_at(self.rank, "runtime")
            population, group = self.strategy.population, self.strategy.group
            self.placement = Placement(placement, self.nodes, population, group, self.handles.window, evaluations,
                                       slots)
            blocks = member_blocks(population, group, self.nodes.sizes)
            eval_blocks = node_blocks(evaluations, self.nodes.sizes)
            self.results = NodeResults(self.nodes, population, blocks, eval_blocks, obs_width, self.handles.window,
                                       slots)
        except UserError as err:
            self.handles.free()
            raise AgreedError(err) from None

    @classmethod
    def for_task(cls, world, task, node_size=None):
        """The runtime of a built task (parts/build.py): its noise table, placement, strategy, observation
        rows and evaluation episodes."""
        job = task.job
        obs_width = 2 * int(np.prod(task.env.observation_space.shape)) + 1 if job.obs_norm.enabled else None
        evaluations = job.eval.episodes if job.eval.every else 0
        return cls(world, job.noise.size, job.noise.seed, job.run.placement, task.make_strategy, obs_width,
                   node_size, evaluations=evaluations, pipeline=job.run.pipeline)

    # ----------------------------------------------------------------- 1. play
    def members(self, evaluating=False, iteration=0):
        """This rank's members of the iteration, lazily (a dynamic claim is made when the next one is wanted);
        with `evaluating`, the evaluation episodes among them as members `population + e`."""
        return self.placement.members(evaluating, iteration)

    def write(self, member, episode, iteration=0):
        self.results.write(member, episode, iteration)
        self.played[iteration % len(self.played)] += member < self.placement.population  # the population's only

    def played_all(self):
        """The non-blocking world barrier this rank enters once it has played its members of an
        iteration (the pipelined mode); -> its request, complete once every rank has entered."""
        return self.world.Ibarrier()

    # ----------------------------------------------------------------- 2. exchange
    def exchange(self, iteration, evaluating=False):
        """-> (results_n5, obs_rows_kf, eval_results_e5): every member's results and the sampled observation
        rows, in member order, and the evaluation episodes' rows (None unless `evaluating`).
        (An injected failure of one rank after its episodes of iteration 1 comes first: run/faults.py.)"""
        if iteration == 1:
            faults.fail_at(self.rank, "iteration")
        return self.results.exchange(evaluating, iteration)

    def gather_elite(self, elite_members, transitions, width):
        """[(member, rows_tf)] of the elite members from every rank, in global member order.

        The one gather that is not O(population): tabular and action-space CEM learn from the
        elite's (input, action) steps, so those rows must reach every rank. A member's rows come
        from the one rank that played it, so a stable sort by member restores member order.
        """
        elite = set(int(m) for m in elite_members)
        mine = [np.column_stack([np.full(len(rows), member, dtype=np.float64), rows.reshape(-1, width)])
                for member, rows in sorted(transitions.items()) if member in elite and rows.size]
        local = np.concatenate(mine) if mine else np.zeros((0, width + 1))
        rows = allgather_variable(self.world, local, width + 1)
        rows = rows[np.argsort(rows[:, 0], kind="stable")]
        splits = np.flatnonzero(np.diff(rows[:, 0])) + 1
        return [(int(chunk[0, 0]), chunk[:, 1:]) for chunk in np.split(rows, splits) if len(chunk)]

    # ----------------------------------------------------------------- 3. update
    def update(self, returns_n, transitions=None):
        """The strategy's tell, inside the update phase of the node's arrays; -> its metrics."""
        with self.share.update_phase():
            return self.strategy.tell(returns_n, transitions)

    # ----------------------------------------------------------------- 4. agree
    def agree(self, iteration, obstat, busy_s, stop_signal):
        """Checksums, busy times and stop flags of all ranks (run/agreement.py); on a mismatch, repair
        from an intact copy (the state of the most intact nodes, never a node whose copy was altered);
        -> (Agreement, (world rank, node) repaired from, or None). RunFailure when no copy is intact."""
        with self.share.unlocked():
            faults.flip_parameter(self.rank, iteration, self.strategy.center())
        self.share.sync()  # an injected fault is in place on the whole node before anyone looks
        slot = iteration % len(self.played)
        agreed = agreement.exchange(self.nodes, agreement.state_checksum(self.strategy, obstat), busy_s, stop_signal,
                                    self.share.intact(), self.played[slot])
        self.played[slot] = 0
        source = agreed.repair_source()
        if source is not None:
            state = self.world.bcast((self.strategy.state_dict(), obstat.state_dict()), root=source[0])
            self.strategy.load_state_dict(state[0])
            obstat.load_state_dict(state[1])
        return agreed, source

    def take_crossed_bytes(self):
        """Bytes this node's leader sent and received in results exchanges since the last call."""
        return self.results.take_crossed_bytes()

    # ----------------------------------------------------------------- lifetime
    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        """Free everything when the block ends normally or with an error every rank raised alike; any
        other error is one rank's, on its way to the abort hook (run/mpi.py), and a collective free
        would wait for ranks that may never come."""
        if error is None or isinstance(error, (AgreedError, RunFailure)):
            self.handles.free()
        return False
