"""Tabular cross-entropy method for Discrete-observation environments (Taxi, FrozenLake).

The state is a policy matrix pi(a|s). Each iteration plays `policies` x `simulations`
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

from es_mpi.core.seeding import Purpose, rng
from es_mpi.job.settings import setting
from es_mpi.parts.strategies.base import Strategy, percentile_elite
from es_mpi.parts.strategies.elite_memory import EliteMemory, stack_transitions


@dataclasses.dataclass(frozen=True)
class TabularCEMSettings:
    name = "cem_tabular"
    needs_environment = True
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
    name = "cem_tabular"
    wants_transitions = True
    plays_params = False
    needs_policy = True

    @staticmethod
    def check_policy(policy):
        if not hasattr(policy, "n_states"):
            raise ValueError("cem_tabular needs policy.kind = 'tabular'")

    def __init__(self, settings, initial_params_p, noise, seed, policy):
        self.check_policy(policy)
        self.settings, self.seed = settings, seed
        self.n_states, self.n_actions = policy.n_states, policy.n_actions
        self.pi_sa = np.array(initial_params_p, dtype=np.float64).reshape(self.n_states, self.n_actions)
        self.population = settings.policies * settings.simulations
        self.memory = EliteMemory(settings.memory, 2)
        self.iteration = 0
        self.cumulative_sa = None

    def ask(self, iteration):
        self.iteration = iteration
        self.cumulative_sa = np.cumsum(self.pi_sa, axis=1)

    def _per_policy(self):
        settings = self.settings
        return settings.sampling == "per_policy" or 0 < settings.switch_after < self.iteration

    def member_actor(self, member, policy):
        if self._per_policy():
            return policy.bind(self.member_params(member))
        draw, cumulative_sa, last = rng(self.seed, self.iteration, member, purpose=Purpose.ACTION), self.cumulative_sa, self.n_actions - 1

        def act(x):
            row = cumulative_sa[int(x[0])]
            return min(int(np.searchsorted(row, draw.random() * row[-1], side="right")), last)

        return act

    def member_params(self, member):
        policy = member // self.settings.simulations
        u_s = rng(self.seed, self.iteration, policy, purpose=Purpose.POLICY_SAMPLE).random(self.n_states)
        cumulative_sa = self.cumulative_sa
        actions_s = np.minimum((cumulative_sa <= (u_s * cumulative_sa[:, -1])[:, None]).sum(axis=1), self.n_actions - 1)
        table_sa = np.zeros((self.n_states, self.n_actions), dtype=np.float32)
        table_sa[np.arange(self.n_states), actions_s] = 1.0
        return table_sa.ravel()

    def _scores(self, fitness_n):
        """Per scored unit: a policy's mean return over its simulations, or each session's return."""
        simulations = self.settings.simulations if self._per_policy() else 1
        return np.asarray(fitness_n, dtype=np.float64).reshape(-1, simulations).mean(axis=1), simulations

    def elite_members(self, fitness_n):
        scores, simulations = self._scores(fitness_n)
        elite = percentile_elite(scores, self.settings.percentile)
        return (elite[:, None] * simulations + np.arange(simulations)[None, :]).ravel()

    def tell(self, fitness_n, transitions):
        rows_r2 = stack_transitions(transitions, 2)
        counted_r2 = self.memory.rows_with(rows_r2)
        self.memory.add(rows_r2, self.iteration)
        cells = counted_r2[:, 0].astype(np.int64) * self.n_actions + counted_r2[:, 1].astype(np.int64)
        counts_sa = np.bincount(cells, minlength=self.pi_sa.size).reshape(self.pi_sa.shape).astype(np.float64)
        visited_s = counts_sa.sum(axis=1) > 0
        smoothed_sa = counts_sa + self.settings.count_smoothing
        refit_vs = smoothed_sa[visited_s] / smoothed_sa[visited_s].sum(axis=1, keepdims=True)
        rate = self.settings.learning_rate
        self.pi_sa[visited_s] = rate * refit_vs + (1 - rate) * self.pi_sa[visited_s]
        scores, _ = self._scores(fitness_n)
        return {"elite_steps": float(len(rows_r2)), "visited_states": float(visited_s.sum()),
                "score_best": float(scores.max())}

    def center(self):
        return self.pi_sa.astype(np.float32).ravel()

    def state_dict(self):
        state = {"pi": self.pi_sa}
        state.update({f"memory/{k}": v for k, v in self.memory.state_dict().items()})
        return state

    def load_state_dict(self, state):
        self.pi_sa = np.array(state["pi"], dtype=np.float64).reshape(self.n_states, self.n_actions)
        self.memory.load_state_dict({k[len("memory/"):]: v for k, v in state.items() if k.startswith("memory/")})
