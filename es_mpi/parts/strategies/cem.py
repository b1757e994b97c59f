"""Cross-entropy method in parameter space: sample a diagonal Gaussian, refit it to the
elite fraction, smooth the refit into the old values, optionally add decaying extra noise
to the std (Szita & Lorincz 2006) so that it does not collapse too early."""

import numpy as np

from es_mpi.core.array_state import Array
from es_mpi.parts.strategies.base import Strategy, check_noise_size, draw_offsets, noise_row, ranking




class CEM(Strategy):
    name = "cem"

    def __init__(self, settings, initial_params_p, noise, seed, policy=None):
        self.settings, self.noise, self.seed = settings, noise, seed
        self.mean_p = np.array(initial_params_p, dtype=np.float64)
        self.n_params = self.mean_p.size
        check_noise_size(noise, self.n_params)
        self.std_p = np.full(self.n_params, settings.sigma)
        self.extra_std = np.float64(settings.extra_std)
        self.population = settings.population
        self.n_elite = min(self.population, max(2, int(round(settings.elite_fraction * self.population))))
        self.offsets_n = None

    def ask(self, iteration):
        self.offsets_n = draw_offsets(self.seed, iteration, self.population, self.noise.size, self.n_params)

    def _sample(self, member):
        return self.mean_p + self.std_p * noise_row(self.noise, self.offsets_n[member], self.n_params)

    def member_params(self, member):
        return self._sample(member).astype(np.float32)

    def _update(self, fitness_n, transitions):
        elite_ep = np.stack([self._sample(int(m)) for m in ranking(fitness_n)[:self.n_elite]])
        keep = self.settings.smoothing
        self.mean_p = keep * self.mean_p + (1 - keep) * elite_ep.mean(axis=0)
        refit_std_p = np.sqrt(elite_ep.var(axis=0)) + self.extra_std
        self.std_p = keep * self.std_p + (1 - keep) * refit_std_p
        self.extra_std = np.float64(self.extra_std * self.settings.extra_std_decay)
        return {"std_mean": float(self.std_p.mean()), "param_norm": float(np.linalg.norm(self.mean_p))}

    def center(self):
        return self.mean_p.astype(np.float32)

    def state_layout(self):
        n = self.n_params
        return [Array("mean", "mean_p", np.float64, (n,)), Array("std", "std_p", np.float64, (n,)),
                Array("extra_std", "extra_std", np.float64)]
