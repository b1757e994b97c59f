"""The strategies, one line each (docs/architecture.md, "Adding a strategy").

A strategy is one file in this folder: its settings schema, its class (`Settings` names the
schema) and its capabilities (base.py). Registering it is the one line below: from here the
parser learns its keys (`STRATEGIES.schemas`, passed on by parts/job_file.py, since job/ imports
no strategy code), `es-mpi keys` lists them, the build step makes it, and the tests enumerate it.
The order is the order `es-mpi keys` and the error messages list them in.
"""

from es_mpi.parts.strategies.registry import StrategyRegistry
from es_mpi.parts.strategies.cem import CEM
from es_mpi.parts.strategies.cem_action import ActionCEM
from es_mpi.parts.strategies.cem_tabular import TabularCEM
from es_mpi.parts.strategies.cma_es import CMAES
from es_mpi.parts.strategies.ga import GA
from es_mpi.parts.strategies.nes import NES
from es_mpi.parts.strategies.openai_es import OpenAIES
from es_mpi.parts.strategies.simple_es import SimpleES

STRATEGIES = StrategyRegistry(OpenAIES, NES, SimpleES, GA, CMAES, CEM, TabularCEM, ActionCEM, default="openai_es")
strategy_class = STRATEGIES.strategy_class
make_strategy = STRATEGIES.make
