"""The iteration's per-member results, one copy per node, and their exchange between nodes.

Each rank writes the members it played straight into its node's arrays, at their member index:
one row per member [return, length, capped, nonfinite, has observation row] and, with observation
normalisation, that member's observation-statistics row. Then only the node leaders cross nodes:
one in-place Allgatherv of the results blocks, one Allgatherv of the sampled observation rows of
each block, in member order (docs/architecture.md, contract 2 and "node-shared state"). The bytes
they send and receive are counted at those calls. On an evaluation iteration the centre's
evaluation episodes have rows too, after the population's (run/placement.py), swapped the same way.

In the pipelined mode (run/pipeline.py) iteration t + 1 is written while t is exchanged, so the
arrays come in two copies, one per parity of the iteration (`slots = 2`).
"""

import numpy as np

from es_mpi.run.node_memory import NodeArray

RESULT_COLUMNS = 5  # return, length, capped, nonfinite, has an observation row
HAS_OBS_ROW = 4


class NodeResults:
    """`blocks[i]`: node i's [start, stop) members; `eval_blocks[i]`: its [start, stop) evaluation
    episodes; `obs_width`: columns of an observation row (None without observation normalisation);
    `window` allocates the arrays' windows (run/node_runtime.py)."""

    def __init__(self, nodes, population, blocks, eval_blocks, obs_width, window, slots=1):
        self.nodes, self.blocks, self.obs_width, self.population = nodes, blocks, obs_width, population
        self.eval_blocks = [(population + a, population + b) for a, b in eval_blocks]
        rows = self.eval_blocks[-1][1]  # the population's, then the evaluation episodes'
        self.slots = [NodeArray(nodes, (rows, RESULT_COLUMNS), np.float64, window) for _ in range(slots)]
        self.obs_slots = [NodeArray(nodes, (population, obs_width), np.float64, window) if obs_width else None
                          for _ in range(slots)]
        self.results, self.obs_rows = self.slots[0], self.obs_slots[0]  # the arrays of the iteration at hand
        self.crossed_bytes = 0  # by this node's leader since the last `take_crossed_bytes`

    def use(self, iteration):
        """Work on the arrays of `iteration`'s parity (a no-op with one slot)."""
        self.results, self.obs_rows = self.slots[iteration % len(self.slots)], self.obs_slots[iteration % len(self.slots)]

    def write(self, member, episode, iteration=0):
        """One played member's row (and observation row), at its index."""
        self.use(iteration)
        has_obs = episode.obs_stats is not None
        self.results.array[member] = (episode.total_return, episode.length, episode.capped, episode.nonfinite,
                                      has_obs)
        if has_obs:
            self.obs_rows.array[member] = episode.obs_stats

    def exchange(self, evaluating=False, iteration=0):
        """Wait for the node's members, let the leaders swap blocks; -> (results_n5, obs_rows_kf,
        eval_results_e5): private copies, in member order (obs rows of the members that have one, None
        without normalisation; the evaluation episodes' rows, None when not `evaluating`).

        Every rank copies before it enters the iteration's agreement, which no rank of the node leaves
        before all have entered, so no rank overwrites the arrays while another still reads them.
        """
        self.use(iteration)
        node = self.nodes.node
        node.Barrier()
        if self.nodes.count > 1:
            if self.nodes.is_leader:
                self._swap_blocks(evaluating)
            node.Barrier()
        rows = self.results.array
        results_n5 = rows[:self.population].copy()
        eval_results_e5 = rows[self.population:].copy() if evaluating else None
        if self.obs_rows is None:
            return results_n5, None, eval_results_e5
        return results_n5, self.obs_rows.array[results_n5[:, HAS_OBS_ROW] > 0], eval_results_e5

    def _swap_rows(self, blocks):
        """One in-place Allgatherv of the leaders: node i's rows [start, stop) of `blocks[i]`."""
        from mpi4py import MPI

        counts = np.array([(b - a) * RESULT_COLUMNS for a, b in blocks], dtype=np.int64)
        displacements = np.array([a * RESULT_COLUMNS for a, _ in blocks], dtype=np.int64)
        self.nodes.leaders.Allgatherv(MPI.IN_PLACE, [self.results.array.reshape(-1), counts, displacements,
                                                     MPI.DOUBLE])
        self.crossed_bytes += 8 * int(counts.sum())  # own block out, the others' in

    def _swap_blocks(self, evaluating):
        from mpi4py import MPI

        leaders, index = self.nodes.leaders, self.nodes.index
        self._swap_rows(self.blocks)
        if evaluating:
            self._swap_rows(self.eval_blocks)
        if self.obs_rows is None:
            return
        has_obs_n = self.results.array[:self.population, HAS_OBS_ROW] > 0
        start, stop = self.blocks[index]
        own_kf = np.ascontiguousarray(self.obs_rows.array[start:stop][has_obs_n[start:stop]])
        counts = np.array([np.count_nonzero(has_obs_n[a:b]) * self.obs_width for a, b in self.blocks],
                          dtype=np.int64)
        displacements = np.concatenate([[0], np.cumsum(counts)[:-1]])
        gathered = np.empty(int(counts.sum()), dtype=np.float64)
        leaders.Allgatherv(own_kf.reshape(-1), [gathered, counts, displacements, MPI.DOUBLE])
        self.obs_rows.array[has_obs_n] = gathered.reshape(-1, self.obs_width)
        self.crossed_bytes += 8 * int(counts.sum())

    def take_crossed_bytes(self):
        crossed, self.crossed_bytes = self.crossed_bytes, 0
        return crossed
