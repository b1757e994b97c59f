"""The [strategy] section: `name` picks the strategy, the other keys are that strategy's schema.

The schemas are not declared here. Each strategy declares its own in its file under
parts/strategies/, beside its class, and the registry there (parts/strategies/__init__.py) hands
them to the parser as a `StrategySchemas` (through parts/job_file.py): job/ imports no strategy
code (tests/test_layers.py), yet adding a strategy needs no edit here.

A schema is a frozen dataclass of `setting(...)` fields (job/settings.py) with a class attribute
`name`, the `strategy.name` that picks it, and optionally a method `clashes()` that yields
(key, reason) for settings that are valid alone but not together.
"""

import dataclasses

from es_mpi.core.errors import ConfigError
from es_mpi.job.settings import build_section


@dataclasses.dataclass(frozen=True)
class StrategySchemas:
    """What the parser knows of the strategies: their schemas by name, in the order `es-mpi keys`
    lists them, and the strategy of a job whose [strategy] names none."""
    by_name: dict
    default: str

    def build(self, table, path):
        """The [strategy] table -> its schema's frozen settings; ConfigError naming the key."""
        if not isinstance(table, dict):
            raise ConfigError(path, "strategy", f"expected a table, got {table!r}")
        table = dict(table)
        name = table.pop("name", self.default)
        if name not in self.by_name:
            raise ConfigError(path, "strategy.name", f"unknown strategy {name!r} (known: {', '.join(self.by_name)})")
        return build_section(self.by_name[name], table, path, "strategy")


def check_clashes(settings, path):
    """ConfigError for the first clash the strategy's schema reports (none when it has no `clashes`)."""
    clashes = getattr(settings, "clashes", None)
    for key, reason in clashes() if clashes else ():
        raise ConfigError(path, f"strategy.{key}", reason)
