"""The strategy registry (es_mpi/parts/strategies/__init__.py): one line per strategy, and from it
the parser's schemas, `es-mpi keys`, the build step and the tests' cases; a strategy file that
is not registered, or a registration that does not hold together, is caught."""

import dataclasses
import importlib
import inspect
import pathlib

import numpy as np
import pytest

from es_mpi.core.errors import ConfigError
from es_mpi.job.parse import job_from_text
from es_mpi.job.reference import job_reference
from es_mpi.job.settings import setting
from es_mpi.parts import job_file, strategies
from es_mpi.parts.strategies import STRATEGIES, make_strategy, strategy_class
from es_mpi.parts.strategies.base import Strategy
from es_mpi.parts.strategies.registry import StrategyRegistry
from es_mpi.run.noise import local_table


def strategy_classes_in_the_folder():
    """Every Strategy subclass defined by a module of es_mpi/parts/strategies/."""
    found = []
    for path in sorted(pathlib.Path(strategies.__file__).parent.glob("*.py")):
        module = importlib.import_module(f"es_mpi.parts.strategies.{path.stem}")
        found += [obj for _, obj in inspect.getmembers(module, inspect.isclass)
                  if issubclass(obj, Strategy) and obj is not Strategy and obj.__module__ == module.__name__]
    return found


def test_every_strategy_in_the_folder_is_registered_once():
    assert sorted(cls.__name__ for cls in strategy_classes_in_the_folder()) == \
        sorted(cls.__name__ for cls in STRATEGIES)


@pytest.mark.parametrize("cls", list(STRATEGIES), ids=lambda cls: cls.name)
def test_a_job_naming_a_strategy_gets_its_schema_and_its_class(cls):
    job = job_file.job_from_text(f'[strategy]\nname = "{cls.name}"\n', "job.toml")
    assert type(job.strategy) is cls.Settings and job.strategy.name == cls.name == cls.Settings.name
    assert strategy_class(job.strategy) is cls
    assert f'### [strategy] with name = "{cls.name}"' in job_file.job_reference()


def test_the_parser_knows_the_registered_schemas_and_default():
    assert STRATEGIES.schemas.by_name == {cls.name: cls.Settings for cls in STRATEGIES}
    assert job_file.job_from_text("", "job.toml").strategy.name == STRATEGIES.schemas.default == "openai_es"


@dataclasses.dataclass(frozen=True)
class ProbeSettings:
    name = "probe"
    population: int = setting(4, "int", lo=2, doc="members per iteration")
    keep: int = setting(1, "int", lo=0, doc="members kept")

    def clashes(self):
        if self.keep > self.population:
            yield "keep", f"{self.keep} is more than strategy.population = {self.population}"


class Probe(Strategy):
    """A strategy in one file's worth of code, registered below in a registry of its own."""
    Settings = ProbeSettings
    cooperative = True

    def __init__(self, settings, initial_params_p, noise, seed, policy=None, share=None):
        self.settings, self.population, self.given_share = settings, settings.population, share


def test_a_new_strategy_is_one_class_and_one_registration():
    registry = StrategyRegistry(Probe, *STRATEGIES, default="probe")
    job = job_from_text("[strategy]\npopulation = 6\n", "job.toml", strategies=registry.schemas)
    assert job.strategy == ProbeSettings(population=6) and registry.strategy_class(job.strategy) is Probe
    assert "| `strategy.keep` | integer | `1` | >= 0 | members kept |" in job_reference(registry.schemas)
    with pytest.raises(ConfigError) as err:
        job_from_text("[strategy]\nkeep = 5\n", "job.toml", strategies=registry.schemas)
    assert (err.value.key, err.value.reason) == ("strategy.keep", "5 is more than strategy.population = 4")
    built = registry.make(job.strategy, np.zeros(3, np.float32), local_table(100, 0), 0, share="node share")
    assert isinstance(built, Probe) and built.given_share == "node share"  # a cooperative strategy gets the share


def test_a_registration_that_does_not_hold_together_fails_at_once():
    class Nameless(Strategy):
        pass

    class Twin(Probe):
        pass

    with pytest.raises(TypeError, match="Nameless: Settings must name a frozen dataclass"):
        StrategyRegistry(Nameless, default="base")
    with pytest.raises(TypeError, match="the name 'probe' is taken by Probe"):
        StrategyRegistry(Probe, Twin, default="probe")
    with pytest.raises(TypeError, match="the default strategy 'nes' is not registered"):
        StrategyRegistry(Probe, default="nes")


def test_a_strategy_that_does_not_cooperate_is_built_without_the_share():
    settings = STRATEGIES.settings("ga", population=4)
    built = make_strategy(settings, np.zeros(3, np.float32), local_table(100, 0), 0, share=object())
    assert built.name == "ga" and built.population == 4
