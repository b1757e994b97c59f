"""Separable natural evolution strategies (SNES, Schaul et al. 2011): a Gaussian with a
per-parameter sigma; mean and log-sigma follow their natural gradients under rank-based
utilities. Optional mirrored sampling (z and -z)."""

import math

import numpy as np

from es_mpi.core.array_state import Array
from es_mpi.parts.strategies.base import Strategy, check_noise_size, draw_offsets, noise_row, ranking, weighted_noise_moments




def nes_utilities(population):
    """Utilities by rank (best first): log-shaped, positive for the top half, summing to zero."""
    raw = np.maximum(0.0, math.log(population / 2 + 1) - np.log(np.arange(1, population + 1)))
    return raw / raw.sum() - 1.0 / population


class NES(Strategy):
    name = "nes"

    def __init__(self, settings, initial_params_p, noise, seed, policy=None):
        self.settings, self.noise, self.seed = settings, noise, seed
        self.mean_p = np.array(initial_params_p, dtype=np.float64)
        self.n_params = self.mean_p.size
        check_noise_size(noise, self.n_params)
        self.sigma_p = np.full(self.n_params, settings.sigma)
        self.group = 2 if settings.mirrored else 1
        population = settings.population or 4 + int(3 * math.log(self.n_params))
        self.population = max(2, population + population % self.group)
        self.learning_rate_sigma = settings.learning_rate_sigma or \
            (3 + math.log(self.n_params)) / (5 * math.sqrt(self.n_params))
        self.offsets_n = None

    def _sample(self, member):
        """(noise offset, sign) of member i."""
        if self.settings.mirrored:
            return self.offsets_n[member // 2], 1.0 - 2.0 * (member % 2)
        return self.offsets_n[member], 1.0

    def ask(self, iteration):
        self.offsets_n = draw_offsets(self.seed, iteration, self.population // self.group,
                                      self.noise.size, self.n_params)

    def member_params(self, member):
        offset, sign = self._sample(member)
        return (self.mean_p + sign * self.sigma_p * noise_row(self.noise, offset, self.n_params)).astype(np.float32)

    def _update(self, fitness_n, transitions):
        utilities_n = np.empty(self.population)
        utilities_n[ranking(fitness_n)] = nes_utilities(self.population)
        if self.settings.mirrored:
            pairs_n2 = utilities_n.reshape(-1, 2)
            mean_weights, square_weights = pairs_n2[:, 0] - pairs_n2[:, 1], pairs_n2.sum(axis=1)
            grad_mean_p, _ = weighted_noise_moments(self.noise, self.offsets_n, mean_weights, self.n_params)
            _, weighted_squares_p = weighted_noise_moments(self.noise, self.offsets_n, square_weights, self.n_params)
        else:
            grad_mean_p, weighted_squares_p = weighted_noise_moments(self.noise, self.offsets_n, utilities_n,
                                                                     self.n_params)
        grad_log_sigma_p = weighted_squares_p - utilities_n.sum()
        self.mean_p = self.mean_p + self.settings.learning_rate_mean * self.sigma_p * grad_mean_p
        self.sigma_p = self.sigma_p * np.exp(0.5 * self.learning_rate_sigma * grad_log_sigma_p)
        return {"sigma_mean": float(self.sigma_p.mean()), "param_norm": float(np.linalg.norm(self.mean_p))}

    def center(self):
        return self.mean_p.astype(np.float32)

    def state_layout(self):
        n = self.n_params
        return [Array("mean", "mean_p", np.float64, (n,)), Array("sigma", "sigma_p", np.float64, (n,))]
