"""The strategy registry: each registered class carries its name, settings schema and
capabilities (parts/strategies/base.py), so this is the one list of strategies that the parser
(through `schemas`), the build step and the tests read.

It checks itself when built: every class names a schema, no two share a name, and the default is
registered. A broken registration fails at import, before any job is read.
"""

import dataclasses

from es_mpi.job.strategy_sections import StrategySchemas


class StrategyRegistry:
    def __init__(self, *classes, default):
        self.classes = {}
        for cls in classes:
            schema = cls.Settings
            if schema is None or not dataclasses.is_dataclass(schema) or not schema.__dataclass_params__.frozen:
                raise TypeError(f"{cls.__name__}: Settings must name a frozen dataclass (its settings schema)")
            if cls.name in self.classes:
                raise TypeError(f"{cls.__name__}: the name {cls.name!r} is taken by {self.classes[cls.name].__name__}")
            self.classes[cls.name] = cls
        if default not in self.classes:
            raise TypeError(f"the default strategy {default!r} is not registered")
        self.schemas = StrategySchemas({name: cls.Settings for name, cls in self.classes.items()}, default)

    def __iter__(self):
        """The classes, in listing order."""
        return iter(self.classes.values())

    def names(self):
        return list(self.classes)

    def strategy_class(self, settings):
        """The class of a parsed [strategy] section."""
        return self.classes[settings.name]

    def settings(self, name, **values):
        """The settings of strategy `name`: its defaults, overridden by `values`."""
        return self.classes[name].Settings(**values)

    def make(self, settings, initial_params_p, noise, seed, policy=None, share=None):
        """The strategy; a cooperative one gets `share` (core/node_share.py) when given."""
        cls = self.strategy_class(settings)
        if cls.cooperative and share is not None:
            return cls(settings, initial_params_p, noise, seed, policy, share=share)
        return cls(settings, initial_params_p, noise, seed, policy)
