"""Genetic algorithm (Such et al. 2017 style, with crossover): truncation selection, elitism,
Gaussian mutation from the noise table, uniform crossover between two parents.

The parents (the top `truncation` share of the last generation, best first) are kept as
parameter vectors in the state, identical on every rank. A child is described by
(parent a, parent b or -1, noise offset); its crossover mask is drawn from
(seed, iteration, member, CROSSOVER), so any rank rebuilds any child. The first `elites`
members are the best parents unchanged: they are played again every generation, which
re-evaluates them on a fresh episode (no multi-episode re-evaluation of the elite).
"""

import dataclasses

import numpy as np

from es_mpi.core.array_state import Array
from es_mpi.core.seeding import Purpose, rng
from es_mpi.job.settings import setting
from es_mpi.parts.strategies.base import Strategy, check_noise_size, draw_offsets, ranking


@dataclasses.dataclass(frozen=True)
class GASettings:
    name = "ga"
    population: int = setting(100, "int", lo=2, hi=10_000_000, doc="members per generation")
    truncation: float = setting(0.1, "float", lo=0.0, hi=1.0, doc="share of the generation kept as parents (at least 1)")
    elites: int = setting(1, "int", lo=0, doc="best parents copied unchanged into the next generation")
    sigma: float = setting(0.02, "float", lo=0.0, doc="mutation standard deviation")
    crossover: float = setting(0.5, "float", lo=0.0, hi=1.0,
                               doc="probability that a child mixes two parents (uniform crossover) before mutation")


class GA(Strategy):
    Settings = GASettings

    def __init__(self, settings, initial_params_p, noise, seed, policy=None):
        self.settings, self.noise, self.seed = settings, noise, seed
        self.parents_kp = np.array(initial_params_p, dtype=np.float32).reshape(1, -1)
        self.parent_fitness_k = np.full(1, -np.inf)
        self.n_params = self.parents_kp.shape[1]
        check_noise_size(noise, self.n_params)
        self.population = settings.population
        self.n_parents = max(1, int(round(settings.truncation * settings.population)))
        self.iteration = 0
        self.n_elites = self.first_parents = self.second_parents = self.offsets_n = None

    def ask(self, iteration):
        self.iteration = iteration
        self.n_elites = min(self.settings.elites, len(self.parents_kp), self.population)
        n_children = self.population - self.n_elites
        draw = rng(self.seed, iteration, purpose=Purpose.STRATEGY)
        self.first_parents = draw.integers(0, len(self.parents_kp), size=n_children)
        mates = draw.integers(0, len(self.parents_kp), size=n_children)
        crossed = draw.random(n_children) < self.settings.crossover
        self.second_parents = np.where(crossed, mates, -1)
        self.offsets_n = draw_offsets(self.seed, iteration, n_children, self.noise.size, self.n_params)

    def member_params(self, member):
        if member < self.n_elites:
            return self.parents_kp[member]
        child = member - self.n_elites
        params_p = self.parents_kp[self.first_parents[child]]
        if self.second_parents[child] >= 0:
            mask_p = rng(self.seed, self.iteration, member, purpose=Purpose.CROSSOVER).random(self.n_params) < 0.5
            params_p = np.where(mask_p, self.parents_kp[self.second_parents[child]], params_p)
        mutation_p = np.float32(self.settings.sigma) * self.noise[self.offsets_n[child]:self.offsets_n[child] + self.n_params]
        return params_p + mutation_p

    def _update(self, fitness_n, transitions):
        top = ranking(fitness_n)[:self.n_parents]
        self.parents_kp = np.stack([self.member_params(int(m)) for m in top])
        self.parent_fitness_k = fitness_n[top]
        return {"best_fitness": float(self.parent_fitness_k[0]),
                "parent_fitness_mean": float(np.mean(self.parent_fitness_k))}

    def center(self):
        return self.parents_kp[0]

    def state_layout(self):
        return [Array("parents", "parents_kp", np.float32, ("parents", self.n_params)),
                Array("parent_fitness", "parent_fitness_k", np.float64, ("parents",))]
