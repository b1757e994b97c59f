"""Tabular cross-entropy method for Discrete-observation environments (Taxi, FrozenLake).

The state is a policy matrix pi(a|x) over discrete states x. Each iteration plays `policies` x `simulations`
sessions, keeps the elite sessions (at or above the `percentile` of the scores), and refits pi to the elite (state, action)
counts: Laplace-smoothed with `count_smoothing`, blended into the old pi with weight
`learning_rate`; rows of states no elite session visited are kept.

`sampling` says what is scored:
- "per_step" (classic CEM): every action is drawn from pi(.|s), from (seed, iteration,
  member, ACTION); each session is scored on its own return.
- "per_policy": a deterministic policy is drawn from pi (one action per state, from
  (seed, iteration, policy, POLICY_SAMPLE)) and played `simulations` times; its score is
  the mean return, which averages out a stochastic environment (FrozenLake). A policy
  with an action that loops on a state fails and is never elite, so the greedy policy of
  pi learns to avoid loops. It needs a pi that already reaches the goal now and then
  (a random deterministic policy on Taxi almost always loops): `switch_after` starts
  with per-step sampling and switches to per-policy after that many iterations.
"""

import dataclasses

import numpy as np

from es_mpi.core.array_state import Array, Part
from es_mpi.core.seeding import Purpose, rng
from es_mpi.job.settings import setting
from es_mpi.parts.policies.tabular import TabularPolicy
from es_mpi.parts.strategies.base import Strategy, percentile_elite
from es_mpi.parts.strategies.elite_memory import EliteMemory, stack_transitions


@dataclasses.dataclass(frozen=True)
class TabularCEMSettings:
    name = "cem_tabular"
    policies: int = setting(100, "int", lo=2, hi=1_000_000, doc="policies per iteration (x simulations = sessions)")
    sampling: str = setting("per_step", "str", choices=("per_step", "per_policy"),
                            doc="draw each action from pi, or draw a deterministic policy from pi per member")
    switch_after: int = setting(0, "int", lo=0,
                                doc="with sampling = per_step: switch to per_policy after this many iterations (0: never)")
    simulations: int = setting(1, "int", lo=1, hi=10_000, doc="episodes per policy (per_policy: its score is their mean)")
    percentile: float = setting(70.0, "float", lo=0.0, hi=100.0, doc="keep policies scoring at or above this percentile")
    count_smoothing: float = setting(0.0, "float", lo=0.0, doc="pseudo-count added to every (state, action) of a visited state")
    learning_rate: float = setting(0.5, "float", lo=0.0, hi=1.0, doc="weight of the refit pi (1: replace the old pi)")
    memory: int = setting(0, "int", lo=0, doc="also count the elite sessions of this many previous iterations")


class TabularCEM(Strategy):
    Settings = TabularCEMSettings
    wants_transitions = True
    plays_params = False
    needs_environment = True

    @classmethod
    def check_policy(cls, policy):
        if not isinstance(policy, TabularPolicy):
            raise ValueError("cem_tabular needs policy.kind = 'tabular'")

    def __init__(self, settings, initial_params_p, noise, seed, policy):
        self.check_policy(policy)
        self.settings, self.seed = settings, seed
        self.n_states, self.n_actions = policy.n_states, policy.n_actions
        self.pi_xa = np.array(initial_params_p, dtype=np.float64).reshape(self.n_states, self.n_actions)
        self.population = settings.policies * settings.simulations
        self.memory = EliteMemory(settings.memory, 2)
        self.iteration = 0
        self.cumulative_xa = None

    def ask(self, iteration):
        self.iteration = iteration
        self.cumulative_xa = np.cumsum(self.pi_xa, axis=1)

    def _per_policy(self):
        settings = self.settings
        return settings.sampling == "per_policy" or 0 < settings.switch_after < self.iteration

    def member_actor(self, member, policy):
        if self._per_policy():
            return policy.bind(self.member_params(member))
        draw, cumulative_xa, last = rng(self.seed, self.iteration, member, purpose=Purpose.ACTION), self.cumulative_xa, self.n_actions - 1

        def act(x):
            row = cumulative_xa[int(x[0])]
            return min(int(np.searchsorted(row, draw.random() * row[-1], side="right")), last)

        return act

    def member_params(self, member):
        policy = member // self.settings.simulations
        u_x = rng(self.seed, self.iteration, policy, purpose=Purpose.POLICY_SAMPLE).random(self.n_states)
        cumulative_xa = self.cumulative_xa
        actions_x = np.minimum((cumulative_xa <= (u_x * cumulative_xa[:, -1])[:, None]).sum(axis=1), self.n_actions - 1)
        table_xa = np.zeros((self.n_states, self.n_actions), dtype=np.float32)
        table_xa[np.arange(self.n_states), actions_x] = 1.0
        return table_xa.ravel()

    def _scores(self, fitness_n):
        """Per scored unit: a policy's mean return over its simulations, or each session's return."""
        simulations = self.settings.simulations if self._per_policy() else 1
        return np.asarray(fitness_n, dtype=np.float64).reshape(-1, simulations).mean(axis=1), simulations

    def elite_members(self, fitness_n):
        scores, simulations = self._scores(fitness_n)
        elite = percentile_elite(scores, self.settings.percentile)
        return (elite[:, None] * simulations + np.arange(simulations)[None, :]).ravel()

    def _update(self, fitness_n, transitions):
        rows_t2 = stack_transitions(transitions, 2)
        counted_t2 = self.memory.rows_with(rows_t2)
        self.memory.add(rows_t2, self.iteration)
        cells = counted_t2[:, 0].astype(np.int64) * self.n_actions + counted_t2[:, 1].astype(np.int64)
        counts_xa = np.bincount(cells, minlength=self.pi_xa.size).reshape(self.pi_xa.shape).astype(np.float64)
        visited_x = counts_xa.sum(axis=1) > 0
        smoothed_xa = counts_xa + self.settings.count_smoothing
        refit_xa = smoothed_xa[visited_x] / smoothed_xa[visited_x].sum(axis=1, keepdims=True)
        rate = self.settings.learning_rate
        self.pi_xa[visited_x] = rate * refit_xa + (1 - rate) * self.pi_xa[visited_x]
        scores, _ = self._scores(fitness_n)
        return {"elite_steps": float(len(rows_t2)), "visited_states": float(visited_x.sum()),
                "score_best": float(scores.max())}

    def center(self):
        return self.pi_xa.astype(np.float32).ravel()

    def state_layout(self):
        return [Array("pi", "pi_xa", np.float64, (self.n_states, self.n_actions)), Part("memory", "memory")]
