"""OpenAI-ES (Salimans et al. 2017): mirrored noise from the shared table, centered ranks,
Adam or SGD with momentum, L2 weight decay.

Two options from augmented random search (Mania et al. 2018): `top_pairs` keeps only the b
pairs whose better member scored highest, and `shaping = "return_std"` weighs a pair by
(r+ - r-) / std of the kept returns, so the step size does not depend on the reward scale.
The step size and sigma can decay per iteration (off by default): functions of the iteration
alone, so they need no state in the checkpoint.
"""

import dataclasses
import functools

import numpy as np

from es_mpi.core.array_state import Array, Part
from es_mpi.core.node_share import SOLO
from es_mpi.job.settings import setting
from es_mpi.parts.strategies.base import Strategy, check_noise_size, draw_offsets
from es_mpi.parts.strategies.optim import make_optimizer
from es_mpi.parts.strategies.shaping import shape_fitness


@dataclasses.dataclass(frozen=True)
class OpenAIESSettings:
    name = "openai_es"
    pairs: int = setting(50, "int", lo=1, hi=10_000_000, doc="mirrored pairs per iteration (population = 2 x pairs)")
    sigma: float = setting(0.02, "float", lo=1e-8, doc="perturbation standard deviation at iteration 0")
    sigma_decay: float = setting(1.0, "float", lo=0.0, hi=1.0,
                                 doc="sigma of iteration t is sigma x decay^t, floored at sigma_min; 1 keeps it constant")
    sigma_min: float = setting(1e-8, "float", lo=1e-8, doc="floor of the decaying sigma")
    learning_rate: float = setting(0.01, "float", lo=0.0, doc="optimizer step size at iteration 0")
    learning_rate_decay: float = setting(1.0, "float", lo=0.0, hi=1.0,
                                         doc="the step size of iteration t is learning_rate x decay^t, "
                                             "floored at learning_rate_min; 1 keeps it constant")
    learning_rate_min: float = setting(0.0, "float", lo=0.0, doc="floor of the decaying step size")
    optimizer: str = setting("adam", "str", choices=("adam", "sgd"), doc="adam, or sgd with momentum")
    momentum: float = setting(0.9, "float", lo=0.0, hi=0.999999, doc="sgd momentum")
    beta1: float = setting(0.9, "float", lo=0.0, hi=0.999999, doc="adam beta1")
    beta2: float = setting(0.999, "float", lo=0.0, hi=0.999999, doc="adam beta2")
    l2: float = setting(0.005, "float", lo=0.0, doc="L2 weight decay coefficient")
    shaping: str = setting("centered_rank", "str", choices=("centered_rank", "return_std", "none"),
                           doc="fitness shaping: centered ranks; return_std (ARS: raw returns over the std of the kept "
                               "pairs' returns; with sgd, momentum 0, ARS's step alpha and noise nu are "
                               "learning_rate = 2 nu alpha, sigma = nu); none (raw returns)")
    top_pairs: int = setting(0, "int", lo=0, hi=10_000_000,
                             doc="ARS top-b: update from the b pairs with the highest max(r+, r-); 0 keeps all pairs")

    def clashes(self):
        """(key, reason) of the settings that are valid alone but not together."""
        if self.top_pairs > self.pairs:
            yield "top_pairs", f"{self.top_pairs} is more than strategy.pairs = {self.pairs}"
        if self.learning_rate_min > self.learning_rate:
            yield "learning_rate_min", f"{self.learning_rate_min} is more than strategy.learning_rate = {self.learning_rate}"
        if self.sigma_min > self.sigma:
            yield "sigma_min", f"{self.sigma_min} is more than strategy.sigma = {self.sigma}"

    def learning_rate_at(self, iteration):
        return decayed(self.learning_rate, self.learning_rate_decay, self.learning_rate_min, iteration)

    def sigma_at(self, iteration):
        return decayed(self.sigma, self.sigma_decay, self.sigma_min, iteration)


def decayed(start, decay, floor, iteration):
    """start x decay^iteration, floored: a function of the iteration alone, so a resumed run and every
    rank take the same value without saving it (decay 1 gives `start` exactly)."""
    return max(floor, start * decay ** iteration)


NOISE_SUM_CHUNK = 1 << 16  # floats per column chunk: partial sum + scratch (512 KB) stay in L2


def weighted_noise_sum(noise, offsets_n, weights_n, n_params, chunk=NOISE_SUM_CHUNK, columns=None, out=None):
    """sum_i weights_n[i] * noise[offsets_n[i] : offsets_n[i] + n_params], in a fixed order; only the
    columns [start, stop) of `columns` (default all), written into `out` when given.

    Chunk by chunk of columns, each row is scaled and added in member order, elementwise in
    float32: every element gets the same operations in the same order on every rank (no BLAS,
    whose blocking may depend on its thread count), the table is streamed from memory once,
    and the partial sum stays in cache. Neither the chunk size nor the column slice changes
    an element's result, so the ranks of a node can each sum their own columns.
    """
    start, stop = columns or (0, n_params)
    total_v = np.empty(stop - start, dtype=np.float32) if out is None else out
    total_v[...] = 0
    scratch = np.empty(max(0, min(chunk, stop - start)), dtype=np.float32)
    weights_n = np.asarray(weights_n, dtype=np.float32)
    offsets = [int(offset) for offset in offsets_n]
    for first in range(start, stop, chunk):
        last = min(first + chunk, stop)
        total_slice, scaled_slice = total_v[first - start:last - start], scratch[:last - first]
        for offset, weight in zip(offsets, weights_n):
            np.multiply(noise[offset + first:offset + last], weight, out=scaled_slice)
            total_slice += scaled_slice
    return total_v


def perturbed(noise, center_p, offsets_n, sigma, member):
    """Member `member`'s parameters: the centre plus (even member) or minus (odd) sigma times its pair's table row."""
    offset = offsets_n[member // 2]
    sign = 1.0 if member % 2 == 0 else -1.0
    return center_p + np.float32(sign * sigma) * noise[offset:offset + center_p.size]


class OpenAIES(Strategy):
    Settings = OpenAIESSettings
    group = 2
    cooperative = True
    pipelines = True

    def __init__(self, settings, initial_params_p, noise, seed, policy=None, share=SOLO):
        self.settings, self.noise, self.seed, self.share = settings, noise, seed, share
        self.n_params = np.size(initial_params_p)
        check_noise_size(noise, self.n_params)
        self.population = 2 * settings.pairs
        self.params_p = share.array(np.ravel(initial_params_p), np.float32)
        self.gradient_p = share.zeros(self.n_params, np.float32)
        self.optimizer = make_optimizer(settings.optimizer, self.n_params, settings.learning_rate,
                                        settings.momentum, settings.beta1, settings.beta2, zeros=share.zeros)
        self.columns = share.columns(self.n_params)
        self.offsets_n = None
        self.sigma = settings.sigma

    def ask(self, iteration):
        self.optimizer.learning_rate = self.settings.learning_rate_at(iteration)
        self.sigma = self.settings.sigma_at(iteration)
        self.offsets_n = draw_offsets(self.seed, iteration, self.settings.pairs, self.noise.size, self.n_params)

    def member_params(self, member):
        return perturbed(self.noise, self.params_p, self.offsets_n, self.sigma, member)

    def frozen_members(self, center_p):
        """member_params of the current ask around `center_p`, a copy the caller keeps unchanged: a
        pipelined iteration plays these while the update of the iteration before writes the centre."""
        return functools.partial(perturbed, self.noise, center_p, self.offsets_n.copy(), self.sigma)

    def kept_pairs(self, fitness_n2):
        """Indices (ascending) of the pairs that enter the update: all, or the top b by max(r+, r-)."""
        b = self.settings.top_pairs
        if b == 0 or b >= len(fitness_n2):
            return np.arange(len(fitness_n2))
        best_n = np.nan_to_num(fitness_n2.max(axis=1), nan=-np.inf)
        return np.sort(np.argsort(-best_n, kind="stable")[:b])

    def _update(self, fitness_n, transitions):
        fitness_n2 = fitness_n.reshape(-1, 2)
        kept_k = self.kept_pairs(fitness_n2)
        shaped_k2 = shape_fitness(fitness_n2[kept_k], self.settings.shaping)
        weights_k = shaped_k2[:, 0] - shaped_k2[:, 1]
        start, stop = self.columns
        with self.share.column_phase():
            params_v, gradient_v = self.params_p[start:stop], self.gradient_p[start:stop]
            weighted_noise_sum(self.noise, self.offsets_n[kept_k], weights_k, self.n_params, columns=self.columns,
                               out=gradient_v)
            gradient_v /= np.float32(2 * kept_k.size * self.sigma)
            descent_v = -gradient_v + np.float32(self.settings.l2) * params_v
            params_v += self.optimizer.step(descent_v, slice(start, stop))
        return {"gradient_norm": float(np.linalg.norm(self.gradient_p)),
                "param_norm": float(np.linalg.norm(self.params_p)),
                "sigma": self.sigma, "learning_rate": self.optimizer.learning_rate}

    def center(self):
        return self.params_p

    def state_layout(self):
        return [Array("params", "params_p", np.float32, (self.n_params,)), Part("optimizer", "optimizer")]
