"""The strategies a test runs, enumerated from the registry (es_mpi/parts/strategies/__init__.py):
a strategy registered later is tested with its defaults without an edit here. A test only names
the strategies it shrinks or runs in more than one variant."""

import json

from es_mpi.parts.strategies import STRATEGIES


def strategy_cases(variants, keep=lambda cls: True):
    """{case id: (strategy name, settings)}, one case per registered strategy that `keep` accepts, or
    one per entry of `variants[name]` ({id suffix: settings}, suffix "" for the bare name).
    Variants of a strategy that is not registered are an error, so the table cannot go stale."""
    unknown = sorted(set(variants) - set(STRATEGIES.names()))
    assert not unknown, f"variants of unregistered strategies: {unknown}"
    cases = {}
    for cls in STRATEGIES:
        if keep(cls):
            for suffix, settings in variants.get(cls.name, {"": {}}).items():
                cases[f"{cls.name}_{suffix}" if suffix else cls.name] = (cls.name, settings)
    return cases


def strategy_toml(name, settings):
    """The lines of a job's [strategy] table."""
    return "".join(f"{key} = {json.dumps(value)}\n" for key, value in {"name": name, **settings}.items())


def learns_from_fitness_alone(cls):
    """Whether `tell` needs only the fitness array (no elite transitions from an environment)."""
    return not cls.wants_transitions
