"""Separable natural evolution strategies (SNES, Schaul et al. 2011): a Gaussian with a
per-parameter sigma; mean and log-sigma follow their natural gradients under rank-based
utilities. Optional mirrored sampling (z and -z)."""

import dataclasses
import math

import numpy as np

from es_mpi.core.array_state import Array
from es_mpi.core.node_share import SOLO
from es_mpi.job.settings import setting
from es_mpi.parts.strategies.base import Strategy, check_noise_size, draw_offsets, noise_row, ranking, weighted_noise_moments


@dataclasses.dataclass(frozen=True)
class NESSettings:
    name = "nes"
    population: int = setting(0, "int", lo=0, hi=10_000_000,
                              doc="samples per iteration; 0: 4 + 3 ln(n) (made even when mirrored)")
    sigma: float = setting(0.1, "float", lo=1e-12, doc="initial standard deviation of every parameter")
    learning_rate_mean: float = setting(1.0, "float", lo=0.0, doc="step size of the mean (1 is the NES default)")
    learning_rate_sigma: float = setting(0.0, "float", lo=0.0,
                                         doc="step size of log-sigma; 0: (3 + ln n) / (5 sqrt n)")
    mirrored: bool = setting(True, "bool", doc="evaluate each sample z together with -z")


def nes_utilities(population):
    """Utilities by rank (best first): log-shaped, positive for the top half, summing to zero."""
    raw = np.maximum(0.0, math.log(population / 2 + 1) - np.log(np.arange(1, population + 1)))
    return raw / raw.sum() - 1.0 / population


class NES(Strategy):
    Settings = NESSettings
    cooperative = True

    def __init__(self, settings, initial_params_p, noise, seed, policy=None, share=SOLO):
        self.settings, self.noise, self.seed, self.share = settings, noise, seed, share
        self.n_params = np.size(initial_params_p)
        check_noise_size(noise, self.n_params)
        self.mean_p = share.array(np.ravel(initial_params_p), np.float64)
        self.sigma_p = share.array(np.full(self.n_params, settings.sigma), np.float64)
        self.columns = share.columns(self.n_params)
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
        start, stop = self.columns
        with self.share.column_phase():
            if self.settings.mirrored:
                pairs_n2 = utilities_n.reshape(-1, 2)
                mean_weights, square_weights = pairs_n2[:, 0] - pairs_n2[:, 1], pairs_n2.sum(axis=1)
                grad_mean_v, _ = weighted_noise_moments(self.noise, self.offsets_n, mean_weights, self.n_params,
                                                        self.columns)
                _, weighted_squares_v = weighted_noise_moments(self.noise, self.offsets_n, square_weights,
                                                               self.n_params, self.columns)
            else:
                grad_mean_v, weighted_squares_v = weighted_noise_moments(self.noise, self.offsets_n, utilities_n,
                                                                         self.n_params, self.columns)
            grad_log_sigma_v = weighted_squares_v - utilities_n.sum()
            mean_v, sigma_v = self.mean_p[start:stop], self.sigma_p[start:stop]
            mean_v += self.settings.learning_rate_mean * sigma_v * grad_mean_v
            sigma_v *= np.exp(0.5 * self.learning_rate_sigma * grad_log_sigma_v)
        return {"sigma_mean": float(self.sigma_p.mean()), "param_norm": float(np.linalg.norm(self.mean_p))}

    def center(self):
        return self.mean_p.astype(np.float32)

    def state_layout(self):
        n = self.n_params
        return [Array("mean", "mean_p", np.float64, (n,)), Array("sigma", "sigma_p", np.float64, (n,))]
