"""The strategy contract (docs/architecture.md, contract 4): pure numpy, no MPI, exact state round-trip.

A strategy is one file in this folder, registered by one line in `__init__.py`. The file
declares its settings schema (the [strategy] keys, job/strategy_sections.py says what a schema
is), its class with `Settings` naming that schema (the class's `name` is the schema's), and its
capabilities (the class attributes below, where their defaults are).

Every rank builds the same strategy and calls the same methods with the same arguments, so
every rank holds the same bytes. A strategy is built as `cls(settings, initial_params_p, noise,
seed, policy)` and offers:

- `population`: members per iteration; `group`: consecutive members that one rank must
  evaluate together (2 for a mirrored pair), `population % group == 0`.
- `ask(t)`: prepare iteration t's compact member descriptors (noise offsets, signs...).
- `member_params(i)`: expand member i of the current ask into float32 parameters.
- `member_actor(i, policy)`: the function obs -> action member i plays (default: the
  policy bound to `member_params(i)`; action-space CEM samples actions instead).
- `tell(fitness_n, transitions=None)`: the full fitness array in global member order;
  updates the state with the same float operations on every rank; returns scalar metrics.
- `center()`: the parameters to evaluate and checkpoint.
- `frozen_members(center_p)` (with `pipelines`): member -> parameters of the current ask around
  `center_p` (a copy of some centre), which later asks and tells do not change: the pipelined
  mode plays one iteration while it tells the one before.
- `state_layout()`: the arrays and nested parts of the state (see core/array_state.py), from
  which `state_dict()` / `load_state_dict()` follow.

A `cooperative` strategy is built with a further `share` (core/node_share.py): its per-parameter
state is then one copy per node, and each rank of the node computes its own column slice of the
update into it (docs/architecture.md, "node-shared state"); `load_state_dict` writes that state
once per node. Without a share everything is private to the process, as in `eval`.

Capabilities are class attributes with defaults here, so the trainer reads them directly.
Strategies that learn from what the elite did (tabular and action-space CEM) set
`wants_transitions`: the trainer then records every member's (policy input, action) rows,
asks `elite_members(fitness_n)`, gathers those members' rows in global member order and
passes them to `tell` as a list of (member, rows_tf).
"""

import numpy as np

from es_mpi.core.array_state import ArrayState
from es_mpi.core.node_share import SOLO
from es_mpi.core.seeding import Purpose, rng


class Strategy(ArrayState):
    Settings = None  # the settings schema; its `name` is the strategy's
    name = "base"
    population = 0
    group = 1
    wants_transitions = False  # tell needs the elite members' (input, action) rows
    plays_params = True  # members play the policy bound to member_params (False: a custom member_actor)
    needs_environment = False  # an objective job (no environment) cannot use it
    cooperative = False  # built with a `share`: the node's ranks split the update by columns
    pipelines = False  # offers frozen_members(), and so run.pipeline (run/pipeline.py)
    share = SOLO

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.Settings is not None:
            cls.name = cls.Settings.name

    @classmethod
    def check_policy(cls, policy):
        """ValueError when this strategy cannot drive `policy` (tabular CEM on an MLP, say)."""

    def ask(self, iteration):
        raise NotImplementedError

    def member_params(self, member):
        raise NotImplementedError

    def member_actor(self, member, policy):
        return policy.bind(self.member_params(member))

    def elite_members(self, fitness_n):
        raise NotImplementedError

    def tell(self, fitness_n, transitions=None):
        """Check the fitness array (one float64 per member, a private copy) and update; -> metrics."""
        fitness_n = np.array(fitness_n, dtype=np.float64)
        if fitness_n.shape != (self.population,):
            raise ValueError(f"{self.name}: tell needs {self.population} fitness values, got shape {fitness_n.shape}")
        if self.wants_transitions and transitions is None:
            raise ValueError(f"{self.name}: tell needs the elite members' transitions")
        return {key: float(value) for key, value in self._update(fitness_n, transitions).items()}

    def _update(self, fitness_n, transitions):
        """The strategy's own update from a checked fitness array; -> {metric: value}."""
        raise NotImplementedError

    def center(self):
        raise NotImplementedError

    def load_state_dict(self, state):
        super().load_state_dict(state, self.share)


def check_noise_size(noise, n_params):
    if noise.size < n_params:
        raise ValueError(f"noise table ({noise.size} floats) is smaller than the policy ({n_params} parameters)")


def draw_offsets(seed, iteration, count, noise_size, n_params):
    """`count` noise-table offsets for iteration t: the same on every rank."""
    draw = rng(seed, iteration, purpose=Purpose.NOISE_OFFSETS)
    return draw.integers(0, noise_size - n_params + 1, size=count)


def noise_row(noise, offset, n_params):
    """One standard-normal sample as float64 (a view of the table, converted)."""
    return noise[offset:offset + n_params].astype(np.float64)


def weighted_noise_moments(noise, offsets_n, weights_n, n_params, columns=None, chunk=1 << 15):
    """(sum_i w_i z_i, sum_i w_i z_i^2) in float64 over the columns [start, stop) of `columns`
    (default all), z_i the table rows.

    Elementwise, member after member, chunk by chunk of columns (no BLAS, whose blocking could
    depend on where a slice starts): neither the chunk size nor the column slice changes an
    element's result.
    """
    start, stop = columns or (0, n_params)
    first_v, second_v = np.zeros(stop - start), np.zeros(stop - start)
    row_b, scaled_b = np.empty(max(0, min(chunk, stop - start))), np.empty(max(0, min(chunk, stop - start)))
    weights_n = np.asarray(weights_n, dtype=np.float64)
    offsets = [int(offset) for offset in offsets_n]
    for low in range(start, stop, chunk):
        high = min(low + chunk, stop)
        first, second, row, scaled = first_v[low - start:high - start], second_v[low - start:high - start], \
            row_b[:high - low], scaled_b[:high - low]
        for offset, weight in zip(offsets, weights_n):
            row[...] = noise[offset + low:offset + high]
            np.multiply(row, weight, out=scaled)
            first += scaled
            scaled *= row
            second += scaled
    return first_v, second_v


def ranking(fitness_n):
    """Member indices, best (highest fitness) first; NaN counts as worst; ties by index."""
    fitness_n = np.where(np.isnan(fitness_n), -np.inf, np.asarray(fitness_n, dtype=np.float64))
    return np.argsort(-fitness_n, kind="stable")


def percentile_elite(scores_n, percentile):
    """Indices (ascending) whose score is >= the given percentile of the finite scores."""
    scores_n = np.asarray(scores_n, dtype=np.float64)
    finite = scores_n[np.isfinite(scores_n)]
    if finite.size == 0:
        return np.arange(0)
    threshold = np.percentile(finite, percentile)
    return np.flatnonzero(scores_n >= threshold)
