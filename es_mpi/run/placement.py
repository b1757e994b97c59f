"""Who plays which member (docs/architecture.md, "placement").

The population's units (a mirrored pair, or the strategy's `group`) are cut into one contiguous
block per node, in proportion to the node's ranks. Within its node's block a rank plays either a
fixed slice (`run.placement = "static"`) or, by default, whatever unit is next when it (or one of
its lanes) frees up: the node's ranks draw from one shared counter (`NodeArray.fetch_add`), each
holding no more than its `share` of the block at once. Every result lands at its member index and
every reduction runs in member order, so who played what never changes a bit (contract 1).

On an evaluation iteration the centre's `eval.episodes` episodes are units too, cut into node
blocks the same way and numbered after the population (member `population + e` is evaluation
episode e). A node's evaluation episodes come first in its order: an unperturbed centre usually
plays the longest episodes, and whatever is claimed last makes the iteration's tail. They do not
raise the share: the shares cover the block's units, and the units they add are played by
whichever ranks free up first.

In the pipelined mode two iterations are in flight on a node (run/pipeline.py), so there are two
counters, one per parity of the iteration (`slots = 2`).
"""

import numpy as np

from es_mpi.run.mpi import static_slice
from es_mpi.run.node_memory import NodeArray

PLACEMENTS = ("dynamic", "static")


def node_blocks(n_units, node_sizes):
    """[start, stop) units of each node, in node order: contiguous, in proportion to its ranks."""
    bounds = np.cumsum([0, *node_sizes])
    world = int(bounds[-1])
    return [(n_units * int(a) // world, n_units * int(b) // world) for a, b in zip(bounds[:-1], bounds[1:])]


def member_blocks(population, group, node_sizes):
    """[start, stop) members of each node's block."""
    return [(a * group, b * group) for a, b in node_blocks(population // group, node_sizes)]


class Placement:
    """This rank's members each iteration: `members()` yields them lazily (a dynamic claim is made
    only when the next member is wanted). `block` is this node's [start, stop) members; `window` allocates
    the counter's (run/node_runtime.py). `share` is the most members a rank holds at once (its lanes
    take no more, rollout.play's `most_held`): the block's units over the node's ranks, rounded up so
    the shares cover the block. So a rank that starts its iteration late still finds its share; a
    rank whose share is done helps with what is left, one unit per lane that frees up."""

    def __init__(self, mode, nodes, population, group, window, evaluations=0, slots=1):
        if mode not in PLACEMENTS:
            raise ValueError(f"unknown placement {mode!r}")
        self.mode, self.group, self.population = mode, group, population
        units = node_blocks(population // group, nodes.sizes)
        self.unit_block = units[nodes.index]
        self.block = (self.unit_block[0] * group, self.unit_block[1] * group)
        self.eval_block = node_blocks(evaluations, nodes.sizes)[nodes.index]
        self.node_rank, self.node_size = nodes.node.rank, nodes.node.size
        n_units = self.unit_block[1] - self.unit_block[0]
        self.share = max(1, -(-n_units // self.node_size)) * group
        self.counters = [NodeArray(nodes, (1,), np.int64, window) for _ in range(slots)] if mode == "dynamic" else None
        self.claims_before = [0] * slots  # each counter's value when its iteration's claims began

    def members(self, evaluating=False, iteration=0):
        """Members of this rank for one iteration, in the order they are to be started (on an
        evaluation iteration, evaluation episodes as members `population + e`, first).

        Dynamic: each rank's last claim comes back past the block, so an iteration takes exactly
        `units + node ranks` counts, and the next iteration on that counter starts there. Every rank
        of the node has made its last claim of an iteration before any starts the next on the same
        counter (synchronous: the results exchange waits for the whole node; pipelined: iteration
        t + 2 starts after t's exchange), so no reset is needed.
        """
        first, stop = self.unit_block
        eval_first, eval_stop = self.eval_block if evaluating else (0, 0)
        n_eval = eval_stop - eval_first
        n_units = n_eval + stop - first
        if self.counters is None:
            start, end = static_slice(n_units, self.node_rank, self.node_size)
            units = range(start, end)
        else:
            units = self._claimed_units(n_units, iteration % len(self.counters))
        for unit in units:
            if unit < n_eval:
                yield self.population + eval_first + unit
            else:
                member_unit = first + unit - n_eval
                yield from range(member_unit * self.group, (member_unit + 1) * self.group)

    def _claimed_units(self, n_units, slot):
        """The node's units 0..n_units-1 (its order: evaluation episodes, then its block), as claimed
        from counter `slot`."""
        base = self.claims_before[slot]
        self.claims_before[slot] += n_units + self.node_size
        counter = self.counters[slot]
        while True:
            unit = counter.fetch_add() - base
            if unit >= n_units:
                return
            yield unit
