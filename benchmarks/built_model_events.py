"""The arithmetic of the built code's scaling model: one iteration as discrete events.

Pure Python (no numpy, no MPI), so that tests/test_built_model.py checks it on hand-checkable
cases; benchmarks/built_model.py gathers the inputs (traces, per-call costs) and writes the report.

What one synchronous iteration of `es-mpi train` does (es_mpi/run/trainer.py, node_runtime.py):

1. ask: every rank draws the population's descriptors;
2. play: each node's ranks claim the units (mirrored pairs, or the strategy's group) of the
   node's block (run/placement.py: node_blocks, contiguous, in proportion to its ranks) from one
   counter, in claim order. On an evaluation iteration the centre's evaluation episodes are
   units of one member too, cut into node blocks the same way and first in each node's order
   (Placement.members(evaluating)). A rank plays at most min(lanes, share) members at once,
   share = the node's pairs over its ranks rounded up, times the group (Placement.share,
   rollout.play's most_held); evaluation episodes do not raise it. Its members step in turn, one step each
   per pass (rollout.play), on the one core the rank stands for, so a pass costs the sum of their
   per-step costs (the trace env charges it so: es_mpi/parts/trace_env.py). A slot whose episode
   ends takes the rank's next member: the rest of the unit it holds, else a new claim; once a
   claim comes back past the block, the rank takes nothing more and its slots run out;
3. exchange (on an evaluation iteration, one more Allgatherv of the leaders for the evaluation
   episodes' rows: run/node_results.py), update (tell), ObsStat.add and the agreement: fixed
   per-call costs after the last rank of the last node is done.

efficiency = episode seconds (training, plus evaluation when on) / (ranks x iteration seconds),
as benchmarks/emulated_cluster.py measures it.

`iteration` models the synchronous mode (MODES); `pipelined` below models run.pipeline
(run/pipeline.py), as a run of several iterations, since its iterations overlap.
"""

import dataclasses
import heapq
import math

MODES = ("synchronous",)


@dataclasses.dataclass(frozen=True)
class Episode:
    """One member's episode: steps, and the seconds the whole episode costs its core."""
    steps: int
    seconds: float

    @property
    def step_s(self):
        return self.seconds / self.steps


def share_members(n_units, node_ranks, group):
    """Placement.share: the most members a rank holds at once (run/placement.py)."""
    return max(1, -(-n_units // node_ranks)) * group


def node_blocks(n_units, node_sizes):
    """[start, stop) units of each node: run/placement.node_blocks, restated without numpy."""
    bounds = [0]
    for size in node_sizes:
        bounds.append(bounds[-1] + size)
    world = bounds[-1]
    return [(n_units * a // world, n_units * b // world) for a, b in zip(bounds[:-1], bounds[1:])]


class _Rank:
    """A rank in play: its slots [steps left, seconds per step], the unit it is handing out, its clock."""

    __slots__ = ("index", "now", "slots", "unit_left", "done_claiming", "busy_s", "members", "claims")

    def __init__(self, index):
        self.index, self.now = index, 0.0
        self.slots, self.unit_left, self.done_claiming = [], [], False
        self.busy_s, self.members, self.claims = 0.0, 0, 0


@dataclasses.dataclass
class NodePlay:
    """One node's play phase: per rank, when it finished, its episode seconds, members and claims."""
    end_s: list
    busy_s: list
    members: list
    claims: list

    @property
    def makespan_s(self):
        return max(self.end_s)


def play_node(units, node_ranks, lanes, fill_order=None, claim_s=0.0, evaluations=()):
    """The play phase of one node: `units` is its block, each unit a tuple of Episodes (its members,
    in member order), and `evaluations` its evaluation episodes (Episodes), each a unit of one
    claimed before the block's; -> NodePlay (members: evaluation episodes included).

    fill_order: who fills a slot next while the ranks fill their first slots (rollout.play fills
    all of a rank's slots before its first step): rank indices, each rank as often as it has
    slots, or a function (node_ranks, slots per rank) -> them; default each rank fills all its
    slots at once, rank 0 first (`bursts`). Every rank starts at 0 (a rank that starts late
    still finds its share: what matters is who fills first). claim_s: one claim's cost.
    """
    group = len(units[0]) if units else 1
    n_slots = min(lanes, share_members(len(units), node_ranks, group))  # the block's pairs alone
    units = [(episode,) for episode in evaluations] + list(units)  # the node's claim order
    n_units = len(units)
    fill = bursts(node_ranks, n_slots) if fill_order is None else \
        list(fill_order(node_ranks, n_slots) if callable(fill_order) else fill_order)
    ranks = [_Rank(r) for r in range(node_ranks)]
    counter = 0

    def next_member(rank):
        """The rank's next member: the rest of its unit, else a new claim (None once past the block)."""
        nonlocal counter
        if not rank.unit_left:
            if rank.done_claiming:
                return None
            unit, counter = counter, counter + 1
            rank.claims += 1
            rank.now += claim_s
            rank.busy_s += claim_s
            if unit >= n_units:
                rank.done_claiming = True
                return None
            rank.unit_left = list(units[unit])
        rank.members += 1
        return rank.unit_left.pop(0)

    def take(rank):
        episode = next_member(rank)
        if episode is None:
            return False
        rank.slots.append([episode.steps, episode.step_s])
        rank.busy_s += episode.seconds
        return True

    events = []  # (time of the rank's next episode end, tie, rank)
    tie = 0
    for index in fill:
        rank = ranks[index]
        if len(rank.slots) < n_slots and not rank.done_claiming:
            take(rank)
    for rank in ranks:
        tie += 1
        _push(events, rank, tie)
    end_s = [ranks[r].now for r in range(node_ranks)]
    while events:
        _, _, index = heapq.heappop(events)
        rank = ranks[index]
        least = min(steps for steps, _ in rank.slots)
        rank.now += least * sum(step_s for _, step_s in rank.slots)
        finished = 0
        for slot in rank.slots:
            slot[0] -= least
            finished += slot[0] == 0
        rank.slots = [slot for slot in rank.slots if slot[0] > 0]
        for _ in range(finished):  # each finished slot takes the next member, or goes
            if not take(rank):
                break
        if rank.slots:
            tie += 1
            _push(events, rank, tie)
        else:
            end_s[index] = rank.now
    return NodePlay(end_s, [r.busy_s for r in ranks], [r.members for r in ranks], [r.claims for r in ranks])


def _push(events, rank, tie):
    if rank.slots:
        least = min(steps for steps, _ in rank.slots)
        heapq.heappush(events, (rank.now + least * sum(step_s for _, step_s in rank.slots), tie, rank.index))


@dataclasses.dataclass(frozen=True)
class FixedCosts:
    """Per-call seconds of the parts of an iteration that are not episodes (each from a measurement;
    benchmarks/built_model.py says which)."""
    ask_s: float = 0.0
    exchange_s: float = 0.0  # node barriers, the leaders' Allgatherv, the agreement's collectives
    update_s: float = 0.0  # one rank's tell at its node's column slice
    obstat_s: float = 0.0  # ObsStat.add of the iteration's sampled rows
    eval_exchange_s: float = 0.0  # the leaders' Allgatherv of the evaluation episodes' rows, when evaluating

    @property
    def total_s(self):
        return self.ask_s + self.exchange_s + self.update_s + self.obstat_s


@dataclasses.dataclass
class Iteration:
    play_s: float  # from the ranks' start to the last rank's last episode (evaluation episodes included)
    fixed_s: float
    update_s: float
    iteration_s: float
    episode_s: float  # serial work: the seconds of every episode played
    busy_max_s: float
    busy_mean_s: float
    members_min: int  # the fewest and most episodes any rank played (evaluation episodes included)
    members_max: int

    @property
    def imbalance(self):
        return self.busy_max_s / self.busy_mean_s if self.busy_mean_s else 1.0


def iteration(units, node_sizes, lanes, costs, eval_episodes=(), fill_order=None, claim_s=0.0,
              mode="synchronous"):
    """One iteration of the built code on nodes of `node_sizes` ranks; `units` is the whole
    population's units in global order; `eval_episodes` (Episodes of the centre, when it is
    evaluated) are placement units, each node's block of them claimed first; fill_order as
    play_node's, for every node. -> Iteration."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not modelled by iteration() (modelled: {', '.join(MODES)}); "
                         "the pipelined mode is `pipelined`")
    eval_blocks = node_blocks(len(eval_episodes), node_sizes)
    plays = []
    for k, (a, b) in enumerate(node_blocks(len(units), node_sizes)):
        first, stop = eval_blocks[k]
        plays.append(play_node(units[a:b], node_sizes[k], lanes, fill_order, claim_s=claim_s,
                               evaluations=eval_episodes[first:stop]))
    busy = [s for p in plays for s in p.busy_s]
    play_s = max(p.makespan_s for p in plays)
    episode_s = sum(e.seconds for unit in units for e in unit) + sum(e.seconds for e in eval_episodes)
    fixed_s = costs.total_s + (costs.eval_exchange_s if eval_episodes else 0.0)
    iteration_s = play_s + fixed_s
    members = [m for p in plays for m in p.members]
    return Iteration(play_s, fixed_s, costs.update_s, iteration_s, episode_s, max(busy), sum(busy) / len(busy),
                     min(members), max(members))


def efficiency(iterations, n_ranks):
    """Serial work over ranks x wall time, summed over the iterations (emulated_cluster.efficiency)."""
    return sum(i.episode_s for i in iterations) / (n_ranks * sum(i.iteration_s for i in iterations))


def bursts(node_ranks, n_slots):
    """Each rank fills all its first slots at once, rank 0 first."""
    return [r for r in range(node_ranks) for _ in range(n_slots)]


def round_robin(node_ranks, n_slots):
    """The ranks fill their first slots in turn, one slot each."""
    return [r for _ in range(n_slots) for r in range(node_ranks)]


def shuffled(node_ranks, n_slots, draw):
    """The first slots filled in a random interleaving (`draw`: a random.Random)."""
    fill = bursts(node_ranks, n_slots)
    draw.shuffle(fill)
    return fill


# ----------------------------------------------------------------- the pipelined mode (run.pipeline)
@dataclasses.dataclass
class PipelinedRun:
    """What `pipelined` found: when each iteration's last member finished, and its episode seconds."""
    finished_s: list
    episode_s: list

    wall_s: float  # from the start to the last iteration's exchange

    def efficiency(self, n_ranks):
        """Every iteration's episode seconds over ranks x the wall time of them all (the first
        iteration's start and the last one's tail, which nothing overlaps, included)."""
        return sum(self.episode_s) / (n_ranks * self.wall_s)


class _PipeRank:
    __slots__ = ("index", "node", "now", "slots", "current", "unit_left", "waiting", "entered", "version")

    def __init__(self, index, node):
        self.index, self.node, self.now = index, node, 0.0
        self.slots, self.current, self.unit_left = [], 0, []  # slots: [steps left, s per step, iteration]
        self.waiting, self.entered, self.version = False, -1, 0


def pipelined(iterations_units, node_sizes, lanes, costs, claim_s=0.0):
    """The pipelined mode (run/pipeline.py): iteration t+1's members may start once iteration t-1's results are exchanged, that is, once
    t-1's last member is done plus `costs.exchange_s`. A rank whose claim of iteration t comes back
    past its node's block claims from t+1's block, as soon as that gate is open (it notices at the
    end of a pass, or at once when it has nothing in play). Each rank pays its own compute for an
    iteration (ask, its slice of the update, ObsStat.add: costs.ask_s + update_s + obstat_s) when it
    enters it, its members paused meanwhile. Lanes and the share are as in `iteration`: at most
    min(lanes, share) members in play at once, whatever their iterations. -> PipelinedRun.
    """
    n_iterations = len(iterations_units)
    blocks = [[units[a:b] for a, b in node_blocks(len(units), node_sizes)] for units in iterations_units]
    ranks = []
    for node, size in enumerate(node_sizes):
        for _ in range(size):
            ranks.append(_PipeRank(len(ranks), node))
    slots_of = [min(lanes, share_members(len(blocks[0][k]), size, len(blocks[0][k][0]) if blocks[0][k] else 1))
                for k, size in enumerate(node_sizes)]
    counters = [[0] * n_iterations for _ in node_sizes]
    left = [sum(len(u) for u in units) for units in iterations_units]
    finished = [None] * n_iterations
    gate = [0.0, 0.0] + [None] * max(0, n_iterations - 2)
    enter_s = costs.ask_s + costs.update_s + costs.obstat_s
    parked = []  # ranks waiting for a gate that is not known yet
    events = []

    def next_member(rank):
        """(episode, iteration), None when no iteration is left, or "wait" until a gate opens."""
        while not rank.unit_left:
            t = rank.current
            if t >= n_iterations:
                return None
            if gate[t] is None or gate[t] > rank.now:
                return "wait"
            if rank.entered < t:
                rank.entered = t
                rank.now += enter_s
            unit = counters[rank.node][t]
            counters[rank.node][t] += 1
            rank.now += claim_s
            block = blocks[t][rank.node]
            if unit >= len(block):
                rank.current += 1
                continue
            rank.unit_left = [(episode, t) for episode in block[unit]]
        return rank.unit_left.pop(0)

    def fill(rank):
        rank.waiting = False
        while len(rank.slots) < slots_of[rank.node]:
            got = next_member(rank)
            if got is None:
                return
            if got == "wait":
                rank.waiting = True
                return
            episode, t = got
            rank.slots.append([episode.steps, episode.step_s, t])

    def schedule(rank):
        rank.version += 1
        pass_s = sum(step_s for _, step_s, _ in rank.slots)
        t = rank.current
        known = rank.waiting and t < n_iterations and gate[t] is not None
        if rank.slots:
            passes = min(steps for steps, _, _ in rank.slots)
            if known and gate[t] > rank.now:
                passes = min(passes, max(1, math.ceil((gate[t] - rank.now) / pass_s)))
            heapq.heappush(events, (rank.now + passes * pass_s, rank.index, rank.version, passes))
        elif known:
            heapq.heappush(events, (max(rank.now, gate[t]), rank.index, rank.version, 0))
        if rank.waiting and not known:
            parked.append(rank)

    for rank in ranks:
        fill(rank)
        schedule(rank)
    while events:
        when, index, version, passes = heapq.heappop(events)
        rank = ranks[index]
        if version != rank.version:
            continue
        rank.now = when
        done_now = []
        for slot in rank.slots:
            slot[0] -= passes
            if slot[0] == 0:
                done_now.append(slot[2])
        rank.slots = [slot for slot in rank.slots if slot[0] > 0]
        for t in done_now:
            left[t] -= 1
            if left[t] == 0:
                finished[t] = when
                if t + 2 < n_iterations:
                    gate[t + 2] = when + costs.exchange_s
                    waking, parked[:] = parked[:], []
                    for other in waking:
                        schedule(other)
        fill(rank)
        schedule(rank)
    episode_s = [sum(e.seconds for unit in units for e in unit) for units in iterations_units]
    return PipelinedRun(finished, episode_s, finished[-1] + costs.exchange_s + costs.update_s + costs.obstat_s)
