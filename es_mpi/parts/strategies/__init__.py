"""Strategy registry: `strategy.name` in a job file -> (settings dataclass, class)."""

from es_mpi.parts.strategies.cem import CEM, CEMSettings
from es_mpi.parts.strategies.cem_action import ActionCEM, ActionCEMSettings
from es_mpi.parts.strategies.cem_tabular import TabularCEM, TabularCEMSettings
from es_mpi.parts.strategies.cma_es import CMAES, CMAESSettings
from es_mpi.parts.strategies.ga import GA, GASettings
from es_mpi.parts.strategies.nes import NES, NESSettings
from es_mpi.parts.strategies.openai_es import OpenAIES, OpenAIESSettings
from es_mpi.parts.strategies.simple_es import SimpleES, SimpleESSettings

_STRATEGIES = (
    (OpenAIESSettings, OpenAIES), (NESSettings, NES), (SimpleESSettings, SimpleES), (GASettings, GA),
    (CMAESSettings, CMAES), (CEMSettings, CEM), (TabularCEMSettings, TabularCEM),
    (ActionCEMSettings, ActionCEM),
)
STRATEGY_SETTINGS = {settings.name: settings for settings, _ in _STRATEGIES}
STRATEGY_CLASSES = {settings.name: cls for settings, cls in _STRATEGIES}


def make_strategy(settings, initial_params_p, noise, seed, policy=None):
    """Build the strategy; those that fit a policy to data (`needs_policy`) also get the policy."""
    cls = STRATEGY_CLASSES[settings.name]
    if getattr(cls, "needs_policy", False):
        return cls(settings, initial_params_p, noise, seed, policy)
    return cls(settings, initial_params_p, noise, seed)


def check_strategy_fits(settings, policy):
    """ValueError if the strategy cannot work with this policy (e.g. tabular CEM on an MLP)."""
    cls = STRATEGY_CLASSES[settings.name]
    if getattr(cls, "needs_policy", False):
        cls.check_policy(policy)
