"""Cross-entropy method in parameter space: sample a diagonal Gaussian, refit it to the
elite fraction, smooth the refit into the old values, optionally add decaying extra noise
to the std (Szita & Lorincz 2006) so that it does not collapse too early."""

import dataclasses

import numpy as np

from es_mpi.core.array_state import Array
from es_mpi.core.node_share import SOLO
from es_mpi.job.settings import setting
from es_mpi.parts.strategies.base import Strategy, check_noise_size, draw_offsets, noise_row, ranking


@dataclasses.dataclass(frozen=True)
class CEMSettings:
    name = "cem"
    population: int = setting(50, "int", lo=2, hi=10_000_000, doc="samples per iteration")
    elite_fraction: float = setting(0.2, "float", lo=0.0, hi=1.0, doc="share of samples the Gaussian is refit to (at least 2)")
    sigma: float = setting(0.1, "float", lo=1e-12, doc="initial standard deviation of every parameter")
    smoothing: float = setting(0.0, "float", lo=0.0, hi=0.999999,
                               doc="weight of the old mean/std in each update (0: plain refit)")
    extra_std: float = setting(0.0, "float", lo=0.0, doc="extra noise added to the refit std")
    extra_std_decay: float = setting(0.95, "float", lo=0.0, hi=1.0, doc="the extra noise is multiplied by this each iteration")


def elite_moments(rows_ev):
    """Mean and (biased) variance over the elite, row after row in elite order: each column's
    result depends on that column alone, whatever slice of columns `rows_ev` holds."""
    total_v = np.zeros(rows_ev.shape[1])
    for row_v in rows_ev:
        total_v += row_v
    mean_v = total_v / len(rows_ev)
    squares_v = np.zeros(rows_ev.shape[1])
    for row_v in rows_ev:
        deviation_v = row_v - mean_v
        squares_v += deviation_v * deviation_v
    return mean_v, squares_v / len(rows_ev)


class CEM(Strategy):
    Settings = CEMSettings
    cooperative = True

    def __init__(self, settings, initial_params_p, noise, seed, policy=None, share=SOLO):
        self.settings, self.noise, self.seed, self.share = settings, noise, seed, share
        self.n_params = np.size(initial_params_p)
        check_noise_size(noise, self.n_params)
        self.mean_p = share.array(np.ravel(initial_params_p), np.float64)
        self.std_p = share.array(np.full(self.n_params, settings.sigma), np.float64)
        self.columns = share.columns(self.n_params)
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
        start, stop = self.columns
        with self.share.column_phase():
            mean_v, std_v = self.mean_p[start:stop], self.std_p[start:stop]
            elite_ev = np.stack([mean_v + std_v * noise_row(self.noise, self.offsets_n[int(m)] + start, stop - start)
                                 for m in ranking(fitness_n)[:self.n_elite]])
            elite_mean_v, elite_var_v = elite_moments(elite_ev)
            keep = self.settings.smoothing
            mean_v[...] = keep * mean_v + (1 - keep) * elite_mean_v
            std_v[...] = keep * std_v + (1 - keep) * (np.sqrt(elite_var_v) + self.extra_std)
        self.extra_std = np.float64(self.extra_std * self.settings.extra_std_decay)
        return {"std_mean": float(self.std_p.mean()), "param_norm": float(np.linalg.norm(self.mean_p))}

    def center(self):
        return self.mean_p.astype(np.float32)

    def state_layout(self):
        n = self.n_params
        return [Array("mean", "mean_p", np.float64, (n,)), Array("std", "std_p", np.float64, (n,)),
                Array("extra_std", "extra_std", np.float64)]
