"""Simple ES: keep the single best solution, sample around it with fixed Gaussian noise.

With `keep_center` the current solution is member 0 and is played again each iteration,
so it is only replaced by a member that beats its fresh evaluation (elitist (1+lambda)).
"""

import dataclasses

import numpy as np

from es_mpi.core.array_state import Array
from es_mpi.job.settings import setting
from es_mpi.parts.strategies.base import Strategy, check_noise_size, draw_offsets, noise_row, ranking


@dataclasses.dataclass(frozen=True)
class SimpleESSettings:
    name = "simple_es"
    population: int = setting(50, "int", lo=2, hi=10_000_000, doc="members per iteration")
    sigma: float = setting(0.05, "float", lo=1e-12, doc="fixed noise standard deviation")
    keep_center: bool = setting(True, "bool", doc="re-evaluate the current solution as member 0 (elitist)")


class SimpleES(Strategy):
    Settings = SimpleESSettings

    def __init__(self, settings, initial_params_p, noise, seed, policy=None):
        self.settings, self.noise, self.seed = settings, noise, seed
        self.params_p = np.array(initial_params_p, dtype=np.float32)
        self.n_params = self.params_p.size
        check_noise_size(noise, self.n_params)
        self.population = settings.population
        self.n_kept = 1 if settings.keep_center else 0
        self.best_fitness = np.float64(-np.inf)
        self.offsets_n = None

    def ask(self, iteration):
        self.offsets_n = draw_offsets(self.seed, iteration, self.population - self.n_kept,
                                      self.noise.size, self.n_params)

    def member_params(self, member):
        if member < self.n_kept:
            return self.params_p
        epsilon_p = noise_row(self.noise, self.offsets_n[member - self.n_kept], self.n_params)
        return (self.params_p + self.settings.sigma * epsilon_p).astype(np.float32)

    def _update(self, fitness_n, transitions):
        best = int(ranking(fitness_n)[0])
        self.params_p = self.member_params(best).copy()
        self.best_fitness = np.float64(fitness_n[best])
        return {"best_fitness": float(self.best_fitness), "replaced": float(best >= self.n_kept)}

    def center(self):
        return self.params_p

    def state_layout(self):
        return [Array("params", "params_p", np.float32, (self.n_params,)),
                Array("best_fitness", "best_fitness", np.float64)]
