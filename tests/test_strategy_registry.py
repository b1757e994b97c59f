"""The strategy registry (es_mpi/parts/strategies/__init__.py): one line per strategy, and from it
the parser's schemas, `es-mpi keys`, the build step and the tests' cases; a strategy file that
is not registered, or a registration that does not hold together, is caught. A new strategy is one
file plus its registration, and then trains: the last test adds one to a copy of the package."""

import dataclasses
import importlib
import inspect
import pathlib
import shutil

import numpy as np
import pytest

from conftest import REPO, es_mpi_command, run
from es_mpi.core.errors import ConfigError
from es_mpi.job.parse import job_from_text
from es_mpi.job.reference import job_reference
from es_mpi.job.settings import setting
from es_mpi.parts import job_file, strategies
from es_mpi.parts.strategies import STRATEGIES, make_strategy, strategy_class
from es_mpi.parts.strategies.base import Strategy
from es_mpi.parts.strategies.registry import StrategyRegistry
from es_mpi.records import checkpoint as ckpt_io
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
    """A schema with a clash and a cooperative class, registered below in a registry of its own."""
    Settings = ProbeSettings
    cooperative = True

    def __init__(self, settings, initial_params_p, noise, seed, policy=None, share=None):
        self.settings, self.population, self.given_share = settings, settings.population, share


def test_a_registry_hands_its_schemas_clashes_and_share_on():
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


RANDOM_SEARCH = '''"""Random search: members around the centre, the best of them is the next centre."""

import dataclasses

import numpy as np

from es_mpi.core.array_state import Array
from es_mpi.job.settings import setting
from es_mpi.parts.strategies.base import Strategy, check_noise_size, draw_offsets, noise_row, ranking


@dataclasses.dataclass(frozen=True)
class RandomSearchSettings:
    name = "random_search"
    population: int = setting(6, "int", lo=1, hi=1000, doc="members per iteration")
    step: float = setting(0.1, "float", lo=0.0, doc="noise standard deviation")


class RandomSearch(Strategy):
    Settings = RandomSearchSettings

    def __init__(self, settings, initial_params_p, noise, seed, policy=None):
        self.settings, self.noise, self.seed = settings, noise, seed
        self.params_p = np.array(initial_params_p, dtype=np.float32)
        check_noise_size(noise, self.params_p.size)
        self.population = settings.population

    def ask(self, iteration):
        self.offsets_n = draw_offsets(self.seed, iteration, self.population, self.noise.size, self.params_p.size)

    def member_params(self, member):
        row_p = noise_row(self.noise, self.offsets_n[member], self.params_p.size)
        return (self.params_p + self.settings.step * row_p).astype(np.float32)

    def _update(self, fitness_n, transitions):
        best = int(ranking(fitness_n)[0])
        self.params_p = self.member_params(best)
        return {"best_fitness": float(fitness_n[best])}

    def center(self):
        return self.params_p

    def state_layout(self):
        return [Array("params", "params_p", np.float32, (self.params_p.size,))]
'''

RANDOM_SEARCH_JOB = """
[objective]
function = "es_mpi.objectives:sphere"
dim = 5
[noise]
size = 10000
[checkpoint]
every = 2
[stop]
iterations = 3
[strategy]
name = "random_search"
population = 4
"""


def test_a_new_strategy_is_one_file_and_its_registration(tmp_path):
    """In a copy of the package, a new file in parts/strategies/ and its line in the registry (with
    the import) are all it takes: `es-mpi keys` lists its keys, and a job naming it trains and
    checkpoints its state. The package itself does not know it."""
    package = shutil.copytree(REPO / "es_mpi", tmp_path / "copy" / "es_mpi",
                              ignore=shutil.ignore_patterns("__pycache__"))
    (package / "parts/strategies/random_search.py").write_text(RANDOM_SEARCH)
    registry = package / "parts/strategies/__init__.py"
    lines = registry.read_text().splitlines(keepends=True)
    listing = [i for i, line in enumerate(lines) if line.startswith("STRATEGIES = StrategyRegistry(")]
    assert len(listing) == 1, "the registry is no longer one StrategyRegistry(...) line"
    lines[listing[0]] = lines[listing[0]].replace(", default=", ", RandomSearch, default=")
    lines.insert(listing[0], "from es_mpi.parts.strategies.random_search import RandomSearch\n")
    registry.write_text("".join(lines))

    def in_copy(*args):  # from tmp_path: `python -m` puts the working directory first on sys.path
        return run(es_mpi_command(*args), timeout=120, env_extra={"PYTHONPATH": str(package.parent)}, cwd=tmp_path)

    job = tmp_path / "job.toml"
    job.write_text(RANDOM_SEARCH_JOB)

    with pytest.raises(ConfigError, match="unknown strategy 'random_search'"):
        job_file.load_job(job)  # the package itself
    keys = in_copy("keys")
    assert keys.returncode == 0, keys.stderr
    assert '### [strategy] with name = "random_search"' in keys.stdout
    assert "| `strategy.step` | float | `0.1` | >= 0.0; finite | noise standard deviation |" in keys.stdout
    trained = in_copy("train", job, "--run-dir", tmp_path / "run")
    assert trained.returncode == 0, trained.stderr[-2000:]
    ckpt = ckpt_io.load(ckpt_io.checkpoint_path(tmp_path / "run", 3))
    assert set(ckpt.strategy) == {"params"} and ckpt.strategy["params"].shape == (5,)
    assert 'name = "random_search"' in ckpt.config_toml and np.array_equal(ckpt.params, ckpt.strategy["params"])
