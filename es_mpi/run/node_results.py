"""The iteration's per-member results, one copy per node, and their exchange between nodes.

Each rank writes the members it played straight into its node's arrays, at their member index:
one row per member [return, length, capped, nonfinite, has observation row] and, with observation
normalisation, that member's observation-statistics row. Then only the node leaders cross nodes:
one in-place Allgatherv of the results blocks, one Allgatherv of the sampled observation rows of
each block, in member order (docs/architecture.md, contract 2 and "node-shared state"). The bytes
they send and receive are counted at those calls.
"""

import numpy as np

from es_mpi.run.node_memory import NodeArray

RESULT_COLUMNS = 5  # return, length, capped, nonfinite, has an observation row
HAS_OBS_ROW = 4


class NodeResults:
    """`blocks[i]`: node i's [start, stop) members; `obs_width`: columns of an observation row
    (None without observation normalisation); `window` allocates the arrays' windows (run/node_runtime.py)."""

    def __init__(self, nodes, population, blocks, obs_width, window):
        self.nodes, self.blocks, self.obs_width = nodes, blocks, obs_width
        self.results = NodeArray(nodes, (population, RESULT_COLUMNS), np.float64, window)
        self.obs_rows = NodeArray(nodes, (population, obs_width), np.float64, window) if obs_width else None
        self.crossed_bytes = 0  # by this node's leader since the last `take_crossed_bytes`

    def write(self, member, episode):
        """One played member's row (and observation row), at its index."""
        has_obs = episode.obs_stats is not None
        self.results.array[member] = (episode.total_return, episode.length, episode.capped, episode.nonfinite,
                                      has_obs)
        if has_obs:
            self.obs_rows.array[member] = episode.obs_stats

    def exchange(self):
        """Wait for the node's members, let the leaders swap blocks; -> (results_n5, obs_rows_kf): private
        copies, in member order (obs rows of the members that have one, None without normalisation).

        Every rank copies before it enters the iteration's agreement, which no rank of the node leaves
        before all have entered, so no rank overwrites the arrays while another still reads them.
        """
        node = self.nodes.node
        node.Barrier()
        if self.nodes.count > 1:
            if self.nodes.is_leader:
                self._swap_blocks()
            node.Barrier()
        results_n5 = self.results.array.copy()
        if self.obs_rows is None:
            return results_n5, None
        return results_n5, self.obs_rows.array[results_n5[:, HAS_OBS_ROW] > 0]

    def _swap_blocks(self):
        from mpi4py import MPI

        leaders, index = self.nodes.leaders, self.nodes.index
        rows_n5 = self.results.array
        counts = np.array([(b - a) * RESULT_COLUMNS for a, b in self.blocks], dtype=np.int64)
        displacements = np.array([a * RESULT_COLUMNS for a, _ in self.blocks], dtype=np.int64)
        leaders.Allgatherv(MPI.IN_PLACE, [rows_n5.reshape(-1), counts, displacements, MPI.DOUBLE])
        self.crossed_bytes += 8 * int(counts.sum())  # own block out, the others' in
        if self.obs_rows is None:
            return
        has_obs_n = rows_n5[:, HAS_OBS_ROW] > 0
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
