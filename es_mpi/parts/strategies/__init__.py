"""Strategy registry: `strategy.name` in a job file -> the class (its settings schema is in job/strategy_sections.py)."""

from es_mpi.parts.strategies.cem import CEM
from es_mpi.parts.strategies.cem_action import ActionCEM
from es_mpi.parts.strategies.cem_tabular import TabularCEM
from es_mpi.parts.strategies.cma_es import CMAES
from es_mpi.parts.strategies.ga import GA
from es_mpi.parts.strategies.nes import NES
from es_mpi.parts.strategies.openai_es import OpenAIES
from es_mpi.parts.strategies.simple_es import SimpleES

STRATEGY_CLASSES = {cls.name: cls for cls in (OpenAIES, NES, SimpleES, GA, CMAES, CEM, TabularCEM, ActionCEM)}


def strategy_class(settings):
    return STRATEGY_CLASSES[settings.name]


def make_strategy(settings, initial_params_p, noise, seed, policy=None, share=None):
    """The strategy; a cooperative one gets `share` (core/node_share.py) when given."""
    cls = strategy_class(settings)
    if cls.cooperative and share is not None:
        return cls(settings, initial_params_p, noise, seed, policy, share=share)
    return cls(settings, initial_params_p, noise, seed, policy)
