"""The [strategy] section: `name` picks the strategy, the other keys are that strategy's schema."""

import dataclasses

from es_mpi.job.settings import setting

DEFAULT_STRATEGY = "openai_es"


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


@dataclasses.dataclass(frozen=True)
class SimpleESSettings:
    name = "simple_es"
    population: int = setting(50, "int", lo=2, hi=10_000_000, doc="members per iteration")
    sigma: float = setting(0.05, "float", lo=1e-12, doc="fixed noise standard deviation")
    keep_center: bool = setting(True, "bool", doc="re-evaluate the current solution as member 0 (elitist)")


@dataclasses.dataclass(frozen=True)
class GASettings:
    name = "ga"
    population: int = setting(100, "int", lo=2, hi=10_000_000, doc="members per generation")
    truncation: float = setting(0.1, "float", lo=0.0, hi=1.0, doc="share of the generation kept as parents (at least 1)")
    elites: int = setting(1, "int", lo=0, doc="best parents copied unchanged into the next generation")
    sigma: float = setting(0.02, "float", lo=0.0, doc="mutation standard deviation")
    crossover: float = setting(0.5, "float", lo=0.0, hi=1.0,
                               doc="probability that a child mixes two parents (uniform crossover) before mutation")


@dataclasses.dataclass(frozen=True)
class CMAESSettings:
    name = "cma_es"
    population: int = setting(0, "int", lo=0, hi=10_000_000, doc="samples per iteration; 0: 4 + 3 ln(n)")
    sigma: float = setting(0.5, "float", lo=1e-12, doc="initial step size")
    variant: str = setting("auto", "str", choices=("auto", "full", "separable"),
                           doc="full covariance, diagonal (separable), or auto by parameter count")
    full_max_params: int = setting(1000, "int", lo=1, doc="auto uses the full covariance up to this many parameters")


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


@dataclasses.dataclass(frozen=True)
class TabularCEMSettings:
    name = "cem_tabular"
    policies: int = setting(100, "int", lo=2, hi=1_000_000, doc="policies per iteration (x simulations = sessions)")
    sampling: str = setting("per_step", "str", choices=("per_step", "per_policy"),
                            doc="draw each action from pi, or draw a deterministic policy from pi per member")
    switch_after: int = setting(0, "int", lo=0,
                                doc="with sampling = per_step: switch to per_policy after this many iterations (0: never)")
    simulations: int = setting(1, "int", lo=1, hi=10_000, doc="episodes per policy (per_policy: its score is their mean)")
    percentile: float = setting(70.0, "float", lo=0.0, hi=100.0, doc="keep policies scoring at or above this percentile")
    count_smoothing: float = setting(0.0, "float", lo=0.0, doc="pseudo-count added to every (state, action) of a visited state")
    learning_rate: float = setting(0.5, "float", lo=0.0, hi=1.0, doc="weight of the refit pi (1: replace the old pi)")
    memory: int = setting(0, "int", lo=0, doc="also count the elite sessions of this many previous iterations")


@dataclasses.dataclass(frozen=True)
class ActionCEMSettings:
    name = "cem_action"
    population: int = setting(50, "int", lo=2, hi=1_000_000, doc="sessions played per iteration")
    percentile: float = setting(70.0, "float", lo=0.0, hi=100.0, doc="keep sessions returning at or above this percentile")
    epochs: int = setting(5, "int", lo=1, doc="passes over the elite pairs per iteration")
    batch_size: int = setting(128, "int", lo=1, doc="pairs per gradient step")
    learning_rate: float = setting(0.01, "float", lo=0.0, doc="Adam step size")
    entropy: float = setting(0.0, "float", lo=0.0, doc="entropy bonus coefficient (discrete heads): keeps exploring")
    action_std: float = setting(0.5, "float", lo=0.0, doc="initial std of sampled continuous actions")
    action_std_decay: float = setting(0.98, "float", lo=0.0, hi=1.0, doc="action_std is multiplied by this each iteration")
    action_std_min: float = setting(0.05, "float", lo=0.0, doc="lower bound of action_std")
    memory: int = setting(0, "int", lo=0, doc="also train on the elite pairs of this many previous iterations")


STRATEGY_SETTINGS = {settings.name: settings for settings in (
    OpenAIESSettings, NESSettings, SimpleESSettings, GASettings, CMAESSettings, CEMSettings, TabularCEMSettings,
    ActionCEMSettings)}
