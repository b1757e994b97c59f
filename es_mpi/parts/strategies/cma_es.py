"""CMA-ES (Hansen 2016 tutorial): weighted recombination, cumulative step-size adaptation,
rank-one + rank-mu covariance updates. Two variants:

- full: an n x n covariance, eigendecomposed lazily (numpy.linalg.eigh on the same bytes,
  so every rank gets the same basis); O(n^2) memory and per-sample cost.
- separable (Ros & Hansen 2008): a diagonal covariance with learning rates scaled by
  (n + 2) / 3; O(n) memory and cost, for policies with many parameters.

`variant = "auto"` uses full up to `full_max_params` parameters (default 1000), separable above.
A sample is y = B diag(d) z with z a noise-table row, x = mean + sigma y.

The separable variant is node-cooperative (core/node_share.py): its vectors are one copy per node
and each rank updates its own columns, in two phases around the norm of the step-size path. The
full variant keeps private arrays: at <= 1000 parameters its update is small beside the episodes,
and the eigendecomposition needs the whole matrix.
"""

import dataclasses
import math

import numpy as np

from es_mpi.core.array_state import Array
from es_mpi.core.node_share import SOLO
from es_mpi.job.settings import setting
from es_mpi.parts.strategies.base import Strategy, check_noise_size, draw_offsets, noise_row, ranking


@dataclasses.dataclass(frozen=True)
class CMAESSettings:
    name = "cma_es"
    population: int = setting(0, "int", lo=0, hi=10_000_000, doc="samples per iteration; 0: 4 + 3 ln(n)")
    sigma: float = setting(0.5, "float", lo=1e-12, doc="initial step size")
    variant: str = setting("auto", "str", choices=("auto", "full", "separable"),
                           doc="full covariance, diagonal (separable), or auto by parameter count")
    full_max_params: int = setting(1000, "int", lo=1, doc="auto uses the full covariance up to this many parameters")


def weighted_rows(weights_m, rows_mv):
    """sum_m w_m row_m, row after row in order: each column's result depends on that column alone."""
    total_v = np.zeros(rows_mv.shape[1])
    for weight, row_v in zip(weights_m, rows_mv):
        total_v += weight * row_v
    return total_v


class CMAES(Strategy):
    Settings = CMAESSettings
    cooperative = True

    def __init__(self, settings, initial_params_p, noise, seed, policy=None, share=SOLO):
        self.settings, self.noise, self.seed = settings, noise, seed
        n = self.n_params = np.size(initial_params_p)
        check_noise_size(noise, n)
        self.full = settings.variant == "full" or (settings.variant == "auto" and n <= settings.full_max_params)
        self.share = share = SOLO if self.full else share
        self.population = max(2, settings.population or 4 + int(3 * math.log(n)))
        self._set_constants(n)
        self.sigma = np.float64(settings.sigma)
        self.mean_p = share.array(np.ravel(initial_params_p), np.float64)
        self.path_sigma_p = share.array(np.zeros(n), np.float64)
        self.path_c_p = share.array(np.zeros(n), np.float64)
        self.scales_p = share.array(np.ones(n), np.float64)  # sqrt of the eigenvalues (full) or of the diagonal
        if self.full:
            self.cov_pp = np.eye(n)
            self.basis_pp = np.eye(n)
        else:
            self.cov_p = share.array(np.ones(n), np.float64)
        self.columns = share.columns(n)
        self.generation = np.int64(0)
        self.evaluations = np.int64(0)
        self.eigen_evaluations = np.int64(0)
        self.offsets_n = None

    def _set_constants(self, n):
        lam = self.population
        self.mu = lam // 2
        raw = math.log((lam + 1) / 2) - np.log(np.arange(1, self.mu + 1))
        self.weights_m = raw / raw.sum()
        mueff = self.mueff = 1.0 / np.sum(np.square(self.weights_m))
        self.c_c = (4 + mueff / n) / (n + 4 + 2 * mueff / n)
        self.c_sigma = (mueff + 2) / (n + mueff + 5)
        c_1 = 2 / ((n + 1.3) ** 2 + mueff)
        c_mu = min(1 - c_1, 2 * (mueff - 2 + 1 / mueff) / ((n + 2) ** 2 + mueff))
        if not self.full:
            scale = (n + 2) / 3
            c_1, c_mu = c_1 * scale, min(1 - c_1 * scale, c_mu * scale)
        self.c_1, self.c_mu = c_1, c_mu
        self.damping = 1 + 2 * max(0.0, math.sqrt((mueff - 1) / (n + 1)) - 1) + self.c_sigma
        self.chi_n = math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n))

    def ask(self, iteration):
        self.offsets_n = draw_offsets(self.seed, iteration, self.population, self.noise.size, self.n_params)

    def _step(self, member):
        """(z, y) of member i: z from the table, y = B diag(d) z."""
        z_p = noise_row(self.noise, self.offsets_n[member], self.n_params)
        scaled_p = self.scales_p * z_p
        return z_p, (self.basis_pp @ scaled_p if self.full else scaled_p)

    def member_params(self, member):
        return (self.mean_p + self.sigma * self._step(member)[1]).astype(np.float32)

    def _update(self, fitness_n, transitions):
        selected = ranking(fitness_n)[:self.mu]
        self.generation += 1
        self.evaluations += self.population
        norm_ps = self._update_full(selected) if self.full else self._update_separable(selected)
        self.sigma = np.float64(self.sigma * math.exp(self.c_sigma / self.damping * (norm_ps / self.chi_n - 1)))
        return {"sigma": float(self.sigma), "axis_ratio": float(self.scales_p.max() / self.scales_p.min())}

    def _h_sigma(self, norm_ps):
        """1 while the step-size path is not too long (stalls the rank-one update otherwise); and the decay of C."""
        h_sigma = float(norm_ps / math.sqrt(1 - (1 - self.c_sigma) ** (2 * int(self.generation))) / self.chi_n
                        < 1.4 + 2 / (self.n_params + 1))
        decay = 1 - self.c_1 - self.c_mu + (1 - h_sigma) * self.c_1 * self.c_c * (2 - self.c_c)
        return h_sigma, decay

    def _update_full(self, selected):
        """Mean, paths and the n x n covariance on every rank; -> the norm of the step-size path."""
        steps = [self._step(int(m)) for m in selected]
        z_mp = np.stack([z for z, _ in steps])
        y_mp = np.stack([y for _, y in steps])
        y_mean_p = self.weights_m @ y_mp
        z_mean_p = self.weights_m @ z_mp
        self.mean_p = self.mean_p + self.sigma * y_mean_p
        self.path_sigma_p = (1 - self.c_sigma) * self.path_sigma_p + \
            math.sqrt(self.c_sigma * (2 - self.c_sigma) * self.mueff) * (self.basis_pp @ z_mean_p)
        norm_ps = float(np.linalg.norm(self.path_sigma_p))
        h_sigma, decay = self._h_sigma(norm_ps)
        self.path_c_p = (1 - self.c_c) * self.path_c_p + \
            h_sigma * math.sqrt(self.c_c * (2 - self.c_c) * self.mueff) * y_mean_p
        rank_mu_pp = (y_mp * self.weights_m[:, None]).T @ y_mp
        self.cov_pp = decay * self.cov_pp + self.c_1 * np.outer(self.path_c_p, self.path_c_p) + self.c_mu * rank_mu_pp
        self._maybe_decompose()
        return norm_ps

    def _update_separable(self, selected):
        """This rank's columns of the mean, the paths and the diagonal, in two phases around the
        norm of the whole step-size path; -> that norm."""
        start, stop = self.columns
        with self.share.column_phase():
            mean_v, path_sigma_v = self.mean_p[start:stop], self.path_sigma_p[start:stop]
            z_mv = np.stack([noise_row(self.noise, self.offsets_n[int(m)] + start, stop - start) for m in selected])
            y_mv = self.scales_p[start:stop] * z_mv
            y_mean_v = weighted_rows(self.weights_m, y_mv)
            z_mean_v = weighted_rows(self.weights_m, z_mv)  # = C^(-1/2) y_mean
            rank_mu_v = weighted_rows(self.weights_m, np.square(y_mv))
            mean_v += self.sigma * y_mean_v
            path_sigma_v[...] = (1 - self.c_sigma) * path_sigma_v + \
                math.sqrt(self.c_sigma * (2 - self.c_sigma) * self.mueff) * z_mean_v
        norm_ps = float(np.linalg.norm(self.path_sigma_p))
        h_sigma, decay = self._h_sigma(norm_ps)
        with self.share.column_phase():
            path_c_v, cov_v, scales_v = self.path_c_p[start:stop], self.cov_p[start:stop], self.scales_p[start:stop]
            path_c_v[...] = (1 - self.c_c) * path_c_v + \
                h_sigma * math.sqrt(self.c_c * (2 - self.c_c) * self.mueff) * y_mean_v
            cov_v[...] = decay * cov_v + self.c_1 * np.square(path_c_v) + self.c_mu * rank_mu_v
            scales_v[...] = np.sqrt(cov_v)
        return norm_ps

    def _maybe_decompose(self):
        """Eigendecompose C when enough evaluations passed (O(n^3) amortised to O(n^2) per sample)."""
        gap = self.population / (self.c_1 + self.c_mu) / self.n_params / 10
        if self.evaluations - self.eigen_evaluations < gap:
            return
        self.eigen_evaluations = np.int64(self.evaluations)
        self.cov_pp = np.triu(self.cov_pp) + np.triu(self.cov_pp, 1).T
        eigenvalues_p, self.basis_pp = np.linalg.eigh(self.cov_pp)
        self.scales_p = np.sqrt(np.maximum(eigenvalues_p, 1e-300))

    def center(self):
        return self.mean_p.astype(np.float32)

    def state_layout(self):
        n, f64 = self.n_params, np.float64
        layout = [Array("mean", "mean_p", f64, (n,)), Array("sigma", "sigma", f64),
                  Array("path_sigma", "path_sigma_p", f64, (n,)), Array("path_c", "path_c_p", f64, (n,)),
                  Array("scales", "scales_p", f64, (n,)), Array("generation", "generation", np.int64),
                  Array("evaluations", "evaluations", np.int64),
                  Array("eigen_evaluations", "eigen_evaluations", np.int64)]
        if self.full:
            return layout + [Array("cov", "cov_pp", f64, (n, n)), Array("basis", "basis_pp", f64, (n, n))]
        return layout + [Array("cov", "cov_p", f64, (n,))]
