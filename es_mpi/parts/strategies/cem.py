"""Cross-entropy method in parameter space: sample a diagonal Gaussian, refit it to the
elite fraction, smooth the refit into the old values, optionally add decaying extra noise
to the std (Szita & Lorincz 2006) so that it does not collapse too early."""

import dataclasses

import numpy as np

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


class CEM(Strategy):
    name = "cem"

    def __init__(self, settings, initial_params_p, noise, seed):
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

    def tell(self, fitness_n):
        elite_ep = np.stack([self._sample(int(m)) for m in ranking(fitness_n)[:self.n_elite]])
        keep = self.settings.smoothing
        self.mean_p = keep * self.mean_p + (1 - keep) * elite_ep.mean(axis=0)
        refit_std_p = np.sqrt(elite_ep.var(axis=0)) + self.extra_std
        self.std_p = keep * self.std_p + (1 - keep) * refit_std_p
        self.extra_std = np.float64(self.extra_std * self.settings.extra_std_decay)
        return {"std_mean": float(self.std_p.mean()), "param_norm": float(np.linalg.norm(self.mean_p))}

    def center(self):
        return self.mean_p.astype(np.float32)

    def state_dict(self):
        return {"mean": self.mean_p, "std": self.std_p, "extra_std": self.extra_std}

    def load_state_dict(self, state):
        self.mean_p = np.array(state["mean"], dtype=np.float64)
        self.std_p = np.array(state["std"], dtype=np.float64)
        self.extra_std = np.float64(state["extra_std"])
