"""TOML job file -> frozen, validated `Job`: types, ranges, unknown keys, settings that clash.

Nothing here knows the runtime: no gymnasium, MPI, environments, policies or strategies
(tests/test_layers.py keeps it so). The strategies' schemas come in as `strategies`, a
job.strategy_sections.StrategySchemas; parts/job_file.py passes the registered ones. Whether
the environment exists and fits the policy is the build step's question (parts/build.py).
Every error names the file, the key and the reason.
"""

import dataclasses
import pathlib

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

from es_mpi.core.errors import ConfigError
from es_mpi.core.guarded_read import MAX_NESTING, UnreadableFile, nesting_depth, read_text
from es_mpi.job.sections import SECTIONS
from es_mpi.job.settings import build_section, is_utf8, section_to_dict
from es_mpi.job.strategy_sections import check_clashes
from es_mpi.job.toml_text import dump_toml


MAX_JOB_BYTES = 1 << 20  # a job file is a few hundred bytes; /dev/zero is not one


@dataclasses.dataclass(frozen=True)
class Job:
    path: str
    run: object
    env: object
    atari: object  # AtariSettings as written, or None; the build step fills it in for ALE games
    policy: object
    strategy: object
    noise: object
    obs_norm: object
    eval: object
    checkpoint: object
    stop: object
    objective: object
    log: object

    def task_name(self):
        """What the job trains on: the objective function, or else the environment id."""
        return self.objective.function or self.env.id

    def run_dir(self):
        return pathlib.Path(self.run.dir or f"runs/{self.run.name}")

    def to_dict(self):
        out = {name: section_to_dict(getattr(self, name)) for name in SECTIONS if getattr(self, name) is not None}
        out["strategy"] = {"name": self.strategy.name, **section_to_dict(self.strategy)}
        return out

    def to_toml(self):
        """The job as TOML; an objective job has no [env] section, an environment job no [objective]."""
        sections = self.to_dict()
        sections.pop("env" if self.objective.function is not None else "objective")
        return dump_toml(sections)


def parse_override(text, path):
    """`section.key=value` -> (section, key, value); the value is read as TOML, else as a word."""
    name, sep, raw = text.partition("=")
    parts = name.strip().split(".")
    if not sep or len(parts) != 2 or not all(parts):
        raise ConfigError(path, text, "an override must look like section.key=value")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    except RecursionError:
        raise ConfigError(path, name.strip(), f"nested more than {MAX_NESTING} levels deep (from --set)") from None
    return parts[0], parts[1], value


def load_job(path, overrides=(), run_dir=None, *, strategies):
    """Read, override and validate a job file. Raises ConfigError; does no other work."""
    path = pathlib.Path(path)
    try:
        text = read_text(path, MAX_JOB_BYTES, "job file")
    except UnreadableFile as err:
        raise ConfigError(path, None, err.reason) from None
    return job_from_text(text, path, overrides, run_dir, strategies=strategies)


def from_override(key, overridden):
    """True when the setting (or section) `key` was given by --set rather than by the file."""
    return key is not None and any(k == key or k.startswith(f"{key}.") for k in overridden)


def job_from_text(text, path, overrides=(), run_dir=None, *, strategies):
    """The job in `text` (a job file's, or the one a checkpoint stores); `path` names it in errors."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(path, None, f"not valid TOML ({err})") from None
    except RecursionError:
        raise ConfigError(path, None, f"nested more than {MAX_NESTING} levels deep") from None
    overridden = set()
    for override in overrides:
        section, key, value = parse_override(override, path)
        table = raw.setdefault(section, {})
        if not isinstance(table, dict):
            raise ConfigError(path, section, "is not a table (from --set)")
        table[key] = value
        overridden.add(f"{section}.{key}")
    if nesting_depth(raw) > MAX_NESTING:
        raise ConfigError(path, None, f"nested more than {MAX_NESTING} levels deep")
    try:
        return _build_job(raw, pathlib.Path(path), run_dir, strategies)
    except ConfigError as err:
        if from_override(err.key, overridden):
            raise ConfigError(path, err.key, f"{err.reason} (from --set)") from None
        raise


def _build_job(raw, path, run_dir, strategies):
    for section in raw:
        if section not in SECTIONS and section != "strategy":
            known = ", ".join(sorted([*SECTIONS, "strategy"]))
            raise ConfigError(path, section, f"unknown section (known: {known})")
    built = {name: build_section(cls, raw.get(name, {}), path, name) for name, cls in SECTIONS.items()}
    if not built["run"].name:
        if not is_utf8(path.stem):
            raise ConfigError(path, "run.name", "the job file's name is not UTF-8 text; set run.name")
        built["run"] = dataclasses.replace(built["run"], name=path.stem)
    if built["run"].dir is not None and not built["run"].dir.strip():
        raise ConfigError(path, "run.dir", "must not be empty (leave it out for runs/<run.name>)")
    if run_dir is not None:
        if not str(run_dir).strip():
            raise ConfigError(path, "--run-dir", "must not be empty")
        if not is_utf8(str(run_dir)):
            raise ConfigError(path, "--run-dir", "is not UTF-8 text (a checkpoint stores it)")
        built["run"] = dataclasses.replace(built["run"], dir=str(run_dir))
    if "atari" not in raw:
        built["atari"] = None
    built["strategy"] = strategies.build(raw.get("strategy", {}), path)
    if built["objective"].function is not None and "env" in raw:
        raise ConfigError(path, "objective.function", "a job has either an [env] or an objective, not both")
    check_clashes(built["strategy"], path)
    return Job(path=str(path), **built)
