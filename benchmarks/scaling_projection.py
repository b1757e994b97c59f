"""The arithmetic of the scaling model: placement replay, update, collectives, iteration time.

Pure Python (no numpy, no MPI), so that tests/test_scaling_model.py checks it in milliseconds.
benchmarks/scaling_model.py measures the inputs and writes the report.

One iteration on R ranks (N nodes of `per_node` ranks) = episodes (the slowest rank) + the
results and observation-row exchange + the update + the small agreement collectives. A design
is four switches, each one change of issue 11: dynamic placement, hierarchical exchange,
node-cooperative update (today's design: none of them).
"""

import dataclasses
import math
import random

CHECKSUM_BYTES, FLAGS_BYTES, COUNT_BYTES = 8, 16, 8  # per rank: checksum, [busy s, stop], row count
RESULT_BYTES = 4 * 8  # per member: return, length, capped, nonfinite as float64


@dataclasses.dataclass(frozen=True)
class Design:
    name: str
    dynamic: bool = False
    hierarchical: bool = False
    cooperative: bool = False


DESIGNS = (
    Design("today"),
    Design("dynamic placement", dynamic=True),
    Design("hierarchical exchange", hierarchical=True),
    Design("cooperative update", cooperative=True),
    Design("all together", dynamic=True, hierarchical=True, cooperative=True),
)


@dataclasses.dataclass(frozen=True)
class Link:
    """Hockney's alpha-beta: a message of m bytes costs latency_s + m / bytes_per_s."""
    latency_s: float
    bytes_per_s: float

    def seconds(self, n_bytes):
        return self.latency_s + n_bytes / self.bytes_per_s


@dataclasses.dataclass(frozen=True)
class Machine:
    node: Link  # between ranks of one node (shared memory), measured
    network: Link  # between nodes, stated constants
    node_memory_bytes_per_s: float  # what all ranks of a node can stream from memory at once, stated
    claim_s: float  # one Fetch_and_op on a node window (a dynamic claim), measured
    barrier_s: float  # one node Barrier of 2 ranks, measured


@dataclasses.dataclass(frozen=True)
class Task:
    """One workload: per-pair episode costs (seconds) and the update's measured costs."""
    name: str
    pair_costs_s: tuple  # measured pairs, resampled to any population
    n_params: int
    row_floats: int  # observation-statistics row: 2 x obs + 1 (0 without obs_norm)
    obs_probability: float
    sum_s_per_pair: dict  # columns summed -> weighted_noise_sum seconds per pair (measured widths)
    step_s_per_column: float  # optimizer step (and descent arithmetic): s per column


def population_pairs(task_pairs, pairs):
    """`pairs` pair costs, drawn with replacement from the measured ones (fixed seed)."""
    draw = random.Random(len(task_pairs) * 1_000_003 + pairs)
    return [task_pairs[draw.randrange(len(task_pairs))] for _ in range(pairs)]


def static_loads(pair_costs, n_ranks):
    """Seconds per rank with the trainer's contiguous slices of pairs (run/mpi.static_slice)."""
    n = len(pair_costs)
    return [sum(pair_costs[n * r // n_ranks:n * (r + 1) // n_ranks]) for r in range(n_ranks)]


def dynamic_loads(pair_costs, n_ranks, claim_s=0.0):
    """Seconds per rank when every rank, once free, claims the next pair in global order."""
    loads = [0.0] * n_ranks
    for cost in pair_costs:
        free = loads.index(min(loads))
        loads[free] += cost + claim_s
    return loads


def imbalance(loads):
    """max / mean: 1 when every rank works the same time."""
    mean = sum(loads) / len(loads)
    return max(loads) / mean if mean else 1.0


def episode_seconds(pair_costs, n_ranks, per_node, dynamic, claim_s=0.0):
    """Wall time of the episode phase: the busiest rank.

    Dynamic placement cuts the population into contiguous node blocks (static across nodes,
    as in issue 11), then the node's ranks claim pairs of their block one by one.
    """
    if not dynamic:
        return max(static_loads(pair_costs, n_ranks))
    n_nodes = n_ranks // per_node
    n = len(pair_costs)
    return max(max(dynamic_loads(pair_costs[n * k // n_nodes:n * (k + 1) // n_nodes], per_node, claim_s))
               for k in range(n_nodes))


def allgather_seconds(total_bytes, n_ranks, per_node, machine):
    """A flat allgather over all ranks: each rank ends up with total_bytes.

    Latency: recursive doubling, log2(per_node) steps on the node and log2(N) across nodes.
    Bandwidth: a rank copies what it receives over shared memory; every rank of a node receives
    the other nodes' part over the node's one link, so that link carries per_node times it.
    """
    n_nodes = n_ranks // per_node
    seconds = math.ceil(math.log2(min(per_node, n_ranks))) * machine.node.latency_s \
        + total_bytes / machine.node.bytes_per_s
    if n_nodes > 1:
        remote = total_bytes * (n_nodes - 1) / n_nodes
        seconds += math.ceil(math.log2(n_nodes)) * machine.network.latency_s \
            + per_node * remote / machine.network.bytes_per_s
    return seconds


def node_barrier_seconds(per_node, machine):
    """A dissemination barrier: log2(per_node) rounds, each as long as the measured 2-rank one."""
    return math.ceil(math.log2(per_node)) * machine.barrier_s if per_node > 1 else 0.0


def hierarchical_allgather_seconds(total_bytes, n_ranks, per_node, machine):
    """Ranks write their rows into the node's shared buffer, the node synchronises, leaders
    allgather across nodes (the link carries the rest of the population once), the node
    synchronises again and every rank reads the node copy."""
    n_nodes = n_ranks // per_node
    seconds = 2 * node_barrier_seconds(per_node, machine) + total_bytes / n_nodes / machine.node.bytes_per_s
    if n_nodes > 1:
        seconds += math.ceil(math.log2(n_nodes)) * machine.network.latency_s \
            + total_bytes * (n_nodes - 1) / n_nodes / machine.network.bytes_per_s
    return seconds


def exchange_payloads(task, population, n_ranks, hierarchical, per_node):
    """Bytes each collective of one iteration gathers (what every rank, or node, ends up with)."""
    senders = n_ranks // per_node if hierarchical else n_ranks
    rows = population * task.obs_probability * task.row_floats * 8
    payloads = [population * RESULT_BYTES, CHECKSUM_BYTES * senders, FLAGS_BYTES * senders]
    if task.row_floats:
        payloads += [COUNT_BYTES * senders, rows]
    return payloads


def exchange_seconds(task, population, n_ranks, per_node, machine, hierarchical):
    gather = hierarchical_allgather_seconds if hierarchical else allgather_seconds
    return sum(gather(b, n_ranks, per_node, machine) for b in exchange_payloads(task, population, n_ranks,
                                                                               hierarchical, per_node))


def bytes_into_node(task, population, n_ranks, per_node, hierarchical):
    """Bytes that cross into one node per iteration over the network."""
    n_nodes = n_ranks // per_node
    if n_nodes == 1:
        return 0.0
    total = sum(exchange_payloads(task, population, n_ranks, hierarchical, per_node))
    return total * (n_nodes - 1) / n_nodes * (1 if hierarchical else per_node)


def slice_sum_seconds(task, pairs, columns):
    """weighted_noise_sum over `columns` columns: the measured cost per pair of the nearest measured
    width at or above (a loop over rows: per-row overhead, then per column), else scaled from the
    widest."""
    widths = sorted(w for w in task.sum_s_per_pair if w >= columns)
    if widths:
        return pairs * task.sum_s_per_pair[widths[0]]
    widest = max(task.sum_s_per_pair)
    return pairs * task.sum_s_per_pair[widest] * columns / widest


def update_seconds(task, pairs, per_node, machine, cooperative):
    """The tell on one rank: noise sum + optimizer step.

    Today every rank sums all columns and the node's ranks stream the table per_node times over
    one memory bus; cooperative ranks each take 1/per_node of the columns (the table streamed once
    per node) and meet at a node barrier.
    """
    columns = math.ceil(task.n_params / per_node) if cooperative else task.n_params
    compute_s = slice_sum_seconds(task, pairs, columns) + columns * task.step_s_per_column
    streams = 1 if cooperative else per_node
    memory_s = streams * pairs * task.n_params * 4 / machine.node_memory_bytes_per_s
    barrier_s = node_barrier_seconds(per_node, machine) if cooperative else 0.0
    return max(compute_s, memory_s) + barrier_s


def serial_seconds(task, pair_costs):
    """One rank, no communication: every episode, then the whole update."""
    pairs = len(pair_costs)
    return sum(pair_costs) + slice_sum_seconds(task, pairs, task.n_params) + task.n_params * task.step_s_per_column


@dataclasses.dataclass
class Projection:
    design: str
    ranks: int
    per_node: int
    population: int
    episodes_s: float
    exchange_s: float
    update_s: float
    iteration_s: float
    efficiency: float
    imbalance: float
    node_bytes: float

    def shares(self):
        return {"episodes": self.episodes_s / self.iteration_s, "exchange": self.exchange_s / self.iteration_s,
                "update": self.update_s / self.iteration_s}


def project(task, design, n_ranks, per_node, pairs, machine):
    """Iteration time and parallel efficiency (serial time / (ranks x iteration time))."""
    per_node = min(per_node, n_ranks)
    pair_costs = population_pairs(task.pair_costs_s, pairs)
    population = 2 * pairs
    episodes_s = episode_seconds(pair_costs, n_ranks, per_node, design.dynamic, machine.claim_s)
    exchange_s = exchange_seconds(task, population, n_ranks, per_node, machine, design.hierarchical)
    update_s = update_seconds(task, pairs, per_node, machine, design.cooperative)
    iteration_s = episodes_s + exchange_s + update_s
    return Projection(design.name, n_ranks, per_node, population, episodes_s, exchange_s, update_s, iteration_s,
                      serial_seconds(task, pair_costs) / (n_ranks * iteration_s),
                      episodes_s / (sum(pair_costs) / n_ranks),
                      bytes_into_node(task, population, n_ranks, per_node, design.hierarchical))


def limit(projection):
    """What holds the efficiency down most: waiting on the busiest rank, the exchange or the update."""
    losses = {"imbalance": projection.episodes_s - projection.episodes_s / projection.imbalance,
              "exchange": projection.exchange_s, "update": projection.update_s}
    name = max(losses, key=losses.get)
    return f"{name} ({losses[name] / projection.iteration_s:.0%} of the iteration)"
