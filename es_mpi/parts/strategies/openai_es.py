"""OpenAI-ES (Salimans et al. 2017): mirrored noise from the shared table, centered ranks,
Adam or SGD with momentum, L2 weight decay.

Two options from augmented random search (Mania et al. 2018): `top_pairs` keeps only the b
pairs whose better member scored highest, and `shaping = "return_std"` weighs a pair by
(r+ - r-) / std of the kept returns, so the step size does not depend on the reward scale.
"""

import dataclasses

import numpy as np

from es_mpi.parts.strategies.optim import make_optimizer
from es_mpi.core.seeding import Purpose, rng
from es_mpi.job.settings import setting
from es_mpi.parts.strategies.shaping import shape_fitness
from es_mpi.parts.strategies.base import Strategy


@dataclasses.dataclass(frozen=True)
class OpenAIESSettings:
    name = "openai_es"
    pairs: int = setting(50, "int", lo=1, hi=10_000_000, doc="mirrored pairs per iteration (population = 2 x pairs)")
    sigma: float = setting(0.02, "float", lo=1e-8, doc="perturbation standard deviation")
    learning_rate: float = setting(0.01, "float", lo=0.0, doc="optimizer step size")
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


NOISE_SUM_CHUNK = 1 << 16  # floats per column chunk: partial sum + scratch (512 KB) stay in L2


def weighted_noise_sum(noise, offsets_n, weights_n, n_params, chunk=NOISE_SUM_CHUNK):
    """sum_i weights_n[i] * noise[offsets_n[i] : offsets_n[i] + n_params], in a fixed order.

    Chunk by chunk of columns, each row is scaled and added in member order, elementwise in
    float32: every element gets the same operations in the same order on every rank (no BLAS,
    whose blocking may depend on its thread count), the table is streamed from memory once,
    and the partial sum stays in cache. The chunk size does not change the result.
    """
    total_p = np.zeros(n_params, dtype=np.float32)
    scratch = np.empty(min(chunk, n_params), dtype=np.float32)
    weights_n = np.asarray(weights_n, dtype=np.float32)
    offsets = [int(offset) for offset in offsets_n]
    for start in range(0, n_params, chunk):
        stop = min(start + chunk, n_params)
        total_c, scaled_c = total_p[start:stop], scratch[:stop - start]
        for offset, weight in zip(offsets, weights_n):
            np.multiply(noise[offset + start:offset + stop], weight, out=scaled_c)
            total_c += scaled_c
    return total_p


class OpenAIES(Strategy):
    name = "openai_es"
    group = 2

    def __init__(self, settings, initial_params_p, noise, seed):
        self.settings, self.noise, self.seed = settings, noise, seed
        self.params_p = np.array(initial_params_p, dtype=np.float32)
        self.n_params = self.params_p.size
        if noise.size < self.n_params:
            raise ValueError(f"noise table ({noise.size} floats) is smaller than the policy ({self.n_params} parameters)")
        self.population = 2 * settings.pairs
        self.optimizer = make_optimizer(settings.optimizer, self.n_params, settings.learning_rate,
                                        settings.momentum, settings.beta1, settings.beta2)
        self.offsets_n = None

    def ask(self, iteration):
        draw = rng(self.seed, iteration, purpose=Purpose.NOISE_OFFSETS)
        self.offsets_n = draw.integers(0, self.noise.size - self.n_params + 1, size=self.settings.pairs)

    def member_params(self, member):
        offset = self.offsets_n[member // 2]
        sign = 1.0 if member % 2 == 0 else -1.0
        epsilon_p = self.noise[offset:offset + self.n_params]
        return self.params_p + np.float32(sign * self.settings.sigma) * epsilon_p

    def kept_pairs(self, fitness_n2):
        """Indices (ascending) of the pairs that enter the update: all, or the top b by max(r+, r-)."""
        b = self.settings.top_pairs
        if b == 0 or b >= len(fitness_n2):
            return np.arange(len(fitness_n2))
        best_n = np.nan_to_num(fitness_n2.max(axis=1), nan=-np.inf)
        return np.sort(np.argsort(-best_n, kind="stable")[:b])

    def tell(self, fitness_n):
        fitness_n2 = np.asarray(fitness_n, dtype=np.float64).reshape(-1, 2)
        kept_k = self.kept_pairs(fitness_n2)
        shaped_k2 = shape_fitness(fitness_n2[kept_k], self.settings.shaping)
        weights_k = shaped_k2[:, 0] - shaped_k2[:, 1]
        gradient_p = weighted_noise_sum(self.noise, self.offsets_n[kept_k], weights_k, self.n_params)
        gradient_p /= np.float32(2 * kept_k.size * self.settings.sigma)
        descent_p = -gradient_p + np.float32(self.settings.l2) * self.params_p
        self.params_p = self.params_p + self.optimizer.step(descent_p)
        return {"gradient_norm": float(np.linalg.norm(gradient_p)),
                "param_norm": float(np.linalg.norm(self.params_p))}

    def center(self):
        return self.params_p

    def state_dict(self):
        state = {"params": self.params_p}
        state.update({f"optimizer/{k}": v for k, v in self.optimizer.state_dict().items()})
        return state

    def load_state_dict(self, state):
        self.params_p = np.asarray(state["params"], dtype=np.float32).copy()
        prefix = "optimizer/"
        self.optimizer.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
