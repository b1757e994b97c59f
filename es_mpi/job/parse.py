"""TOML job file -> frozen, validated `Job`. Every error names file, key and reason."""

import dataclasses
import pathlib

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

from es_mpi.parts.atari import ATARI_OWNED_KWARGS, is_atari_id
from es_mpi.core.errors import ConfigError
from es_mpi.job.settings import build_section, describe, section_to_dict, setting
from es_mpi.parts.strategies import STRATEGY_SETTINGS


@dataclasses.dataclass(frozen=True)
class RunSettings:
    name: str = setting("", "str", doc="run name; the run directory defaults to runs/<name> (default: job file stem)")
    dir: str = setting(None, "str", optional=True, doc="run directory (overrides runs/<name>)")
    seed: int = setting(0, "int", lo=0, hi=2**63 - 1, doc="job seed: every random draw derives from it")
    lanes: int = setting(16, "int", lo=1, hi=1024,
                         doc="most episodes a rank plays at once with one batched forward pass per step (MLP policies whose lanes' weights fit in 512 KB); saves per-step overhead, never changes results")


@dataclasses.dataclass(frozen=True)
class EnvSettings:
    id: str = setting("CartPole-v1", "str", doc="gymnasium environment id")
    kwargs: dict = setting({}, "table", doc="keyword arguments for gymnasium.make")
    step_cap: object = setting("env", "int_or_str", lo=1, choices=("env", "adaptive"),
                               doc="episode step cap: 'env' (its own limit), 'adaptive' (2x the mean length of the last iteration), or a number")
    alive_bonus: float = setting(0.0, "float", lo=0.0,
                                 doc="subtracted from every reward of training episodes (ARS: 1 for Hopper and Walker2d, 5 for Humanoid) so that standing still is not rewarded; evaluation returns stay the env's own")


@dataclasses.dataclass(frozen=True)
class PolicySettings:
    kind: str = setting("mlp", "str", choices=("mlp", "cnn", "tabular"),
                        doc="network family: mlp (flat observations), cnn (Atari frames), or tabular (a state x action table; Discrete observations and actions)")
    network: str = setting("paper", "str", choices=("paper", "nature"),
                           doc="cnn layout: paper (ES paper: 16 8x8/4, 32 4x4/2, fc 256) or nature (Nature DQN: 32 8x8/4, 64 4x4/2, 64 3x3/1, fc 512)")
    hidden: list = setting([64, 64], "int_list", lo=1, hi=65536, doc="hidden layer sizes")
    activation: str = setting("tanh", "str", choices=("tanh", "relu", "elu"), doc="hidden nonlinearity")
    action: str = setting("auto", "str", choices=("auto", "continuous", "discrete", "bins"),
                          doc="action head: auto picks discrete for Discrete spaces, continuous for Box")
    bins: int = setting(10, "int", lo=2, hi=1000, doc="bins per action dimension when action = 'bins' (ES paper, Hopper/Swimmer)")
    init_scale: float = setting(0.01, "float", lo=0.0, doc="column norm of the output layer at initialisation")
    vbn: bool = setting(False, "bool", doc="virtual batch normalisation of the hidden layers from a fixed reference batch")
    vbn_batch: int = setting(128, "int", lo=2, hi=100_000, doc="observations in the VBN reference batch")
    vbn_probability: float = setting(0.01, "float", lo=1e-6, hi=1.0,
                                     doc="chance that a random-action step's observation joins the reference batch")


@dataclasses.dataclass(frozen=True)
class AtariSettings:
    """The ES paper's preprocessing (ale-py's vector env or gymnasium's wrappers, parts/atari.py); ALE ids only."""
    noop_max: int = setting(30, "int", lo=0, hi=10_000, doc="up to this many no-op actions at reset")
    frame_skip: int = setting(4, "int", lo=1, hi=100, doc="frames per action (max-pooled over the last two)")
    screen_size: int = setting(84, "int", lo=16, hi=1024, doc="grayscale frames are resized to screen_size x screen_size")
    frame_stack: int = setting(4, "int", lo=1, hi=64, doc="frames stacked into one observation")
    repeat_action_probability: float = setting(0.0, "float", lo=0.0, hi=1.0,
                                               doc="sticky actions: chance the ALE repeats the previous action (0: the ES paper)")
    full_action_space: bool = setting(False, "bool", doc="all 18 actions instead of the game's minimal set")
    max_episode_steps: int = setting(5000, "int", lo=1, doc="episode limit in agent steps (after frame skip)")
    backend: str = setting("vector", "str", choices=("vector", "gymnasium"),
                           doc="vector: ale-py's C++ vector env (no-ops as whole agent steps); gymnasium: its wrappers (renders; takes env.kwargs)")


@dataclasses.dataclass(frozen=True)
class NoiseSettings:
    size: int = setting(50_000_000, "int", lo=1000, hi=2**40, doc="float32 entries in the node-shared noise table (4 bytes each)")
    seed: int = setting(123, "int", lo=0, hi=2**63 - 1, doc="seed of the noise table contents")


@dataclasses.dataclass(frozen=True)
class ObsNormSettings:
    enabled: bool = setting(True, "bool", doc="normalise observations by running mean and std")
    probability: float = setting(0.01, "float", lo=0.0, hi=1.0, doc="share of population episodes whose observations update the statistics")
    clip: float = setting(5.0, "float", lo=0.0, doc="normalised observations are clipped to [-clip, clip]")


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    every: int = setting(10, "int", lo=0, doc="evaluate the centre policy every N iterations (0: never)")
    episodes: int = setting(10, "int", lo=1, hi=100000, doc="evaluation episodes")


@dataclasses.dataclass(frozen=True)
class CheckpointSettings:
    every: int = setting(10, "int", lo=1, doc="write a checkpoint every N iterations (and at the end, and on a signal)")
    keep: int = setting(3, "int", lo=1, doc="periodic checkpoints to keep (best.h5 is kept besides)")


@dataclasses.dataclass(frozen=True)
class StopSettings:
    iterations: int = setting(1000, "int", lo=1, doc="stop after this many iterations")
    timesteps: int = setting(None, "int", lo=1, optional=True, doc="stop once this many training timesteps are spent")
    target_return: float = setting(None, "float", optional=True, doc="stop once the evaluation return reaches this")


@dataclasses.dataclass(frozen=True)
class ObjectiveSettings:
    function: str = setting(None, "str", optional=True,
                            doc="black-box objective 'module:function' (float64 vector -> float, minimised; "
                                "fitness = -f(x)); set it instead of [env]")
    dim: int = setting(10, "int", lo=1, hi=2**31, doc="dimension of the objective's input")
    initial: float = setting(0.0, "float", doc="initial point: every coordinate starts here")
    initial_std: float = setting(0.0, "float", lo=0.0, doc="std of a seeded Gaussian offset added to the initial point")


DEFAULT_STRATEGY = "openai_es"

SECTIONS = {
    "run": RunSettings, "env": EnvSettings, "atari": AtariSettings, "policy": PolicySettings, "noise": NoiseSettings,
    "obs_norm": ObsNormSettings, "eval": EvalSettings, "checkpoint": CheckpointSettings,
    "stop": StopSettings, "objective": ObjectiveSettings,
}


@dataclasses.dataclass(frozen=True)
class Job:
    path: str
    run: RunSettings
    env: EnvSettings
    atari: AtariSettings  # None unless env.id is an Atari (ALE) game
    policy: PolicySettings
    strategy: object
    noise: NoiseSettings
    obs_norm: ObsNormSettings
    eval: EvalSettings
    checkpoint: CheckpointSettings
    stop: StopSettings
    objective: ObjectiveSettings

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
    return parts[0], parts[1], value


def load_job(path, overrides=(), run_dir=None):
    """Read, override and validate a job file. Raises ConfigError; does no other work."""
    path = pathlib.Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError(path, None, f"cannot read job file ({err.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(path, None, f"not valid TOML (not UTF-8 text: byte {err.start})") from None
    return job_from_text(text, path, overrides, run_dir)


def _from_override(key, overridden):
    """True when the setting (or section) `key` was given by --set rather than by the file."""
    return key is not None and any(k == key or k.startswith(f"{key}.") for k in overridden)


def job_from_text(text, path, overrides=(), run_dir=None):
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(path, None, f"not valid TOML ({err})") from None
    overridden = set()
    for override in overrides:
        section, key, value = parse_override(override, path)
        table = raw.setdefault(section, {})
        if not isinstance(table, dict):
            raise ConfigError(path, section, "is not a table (from --set)")
        table[key] = value
        overridden.add(f"{section}.{key}")
    try:
        return _build_job(raw, path, run_dir)
    except ConfigError as err:
        if _from_override(err.key, overridden):
            raise ConfigError(path, err.key, f"{err.reason} (from --set)") from None
        raise


def _build_job(raw, path, run_dir):
    for section in raw:
        if section not in SECTIONS and section != "strategy":
            known = ", ".join(sorted([*SECTIONS, "strategy"]))
            raise ConfigError(path, section, f"unknown section (known: {known})")
    built = {name: build_section(cls, raw.get(name, {}), path, name) for name, cls in SECTIONS.items()}
    if not built["run"].name:
        built["run"] = dataclasses.replace(built["run"], name=path.stem)
    if run_dir is not None:
        built["run"] = dataclasses.replace(built["run"], dir=str(run_dir))
    built["strategy"] = _build_strategy(raw.get("strategy", {}), path)
    if built["objective"].function is None:
        _check_env(built["env"], path)
    else:
        _check_objective(built["objective"], built["strategy"], raw, path)
    if not is_atari_id(built["env"].id):
        if "atari" in raw:
            raise ConfigError(path, "atari", f"only applies to Atari (ALE) games; env.id = {built['env'].id!r} is not one")
        built["atari"] = None
    _check_combinations(built, path)
    return Job(path=str(path), **built)


def _build_strategy(table, path):
    if not isinstance(table, dict):
        raise ConfigError(path, "strategy", f"expected a table, got {table!r}")
    table = dict(table)
    name = table.pop("name", DEFAULT_STRATEGY)
    if name not in STRATEGY_SETTINGS:
        raise ConfigError(path, "strategy.name", f"unknown strategy {name!r} (known: {', '.join(STRATEGY_SETTINGS)})")
    return build_section(STRATEGY_SETTINGS[name], table, path, "strategy")


def _check_env(env, path):
    from es_mpi.parts.envs import is_known, known_env_ids

    if not is_known(env.id):
        ids = known_env_ids()
        close = sorted(i for i in ids if env.id.split("-")[0].lower() in i.lower())[:5]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(path, "env.id", f"unknown environment {env.id!r}{hint}")


def _check_objective(objective, strategy, raw, path):
    from es_mpi.parts.objectives import load_objective

    if "env" in raw:
        raise ConfigError(path, "objective.function", "a job has either an [env] or an objective, not both")
    if getattr(strategy, "needs_environment", False):
        raise ConfigError(path, "strategy.name", f"{strategy.name} needs an environment, not an objective")
    try:
        load_objective(objective.function)
    except ValueError as err:
        raise ConfigError(path, "objective.function", str(err)) from None


def check_runnable(job):
    """The checks that need the environment: it can be made, the policy fits it, the noise
    table holds one perturbation. Run before anything touches the run directory."""
    from es_mpi.parts.envs import make_env
    from es_mpi.parts.policies import head_kind, make_policy
    from es_mpi.parts.strategies import check_strategy_fits

    if job.objective.function is not None:
        if job.noise.size < job.objective.dim:
            raise ConfigError(job.path, "noise.size", f"{job.noise.size} is smaller than the objective's "
                                                      f"{job.objective.dim} dimensions")
        return

    try:
        env = make_env(job.env, atari=job.atari)
    except Exception as err:  # gymnasium raises many kinds for bad kwargs or missing extras
        raise ConfigError(job.path, "env", f"cannot make {job.env.id!r}: {type(err).__name__}: {err}") from None
    try:
        try:
            head_kind(job.policy.action, env.action_space)
        except ValueError:
            raise ConfigError(job.path, "policy.action", f"{job.policy.action!r} does not fit {job.env.id}'s "
                                                         f"action space {env.action_space}") from None
        try:
            policy = make_policy(job.policy, env.observation_space, env.action_space)
        except ValueError as err:
            raise ConfigError(job.path, "policy", str(err)) from None
        if job.noise.size < policy.n_params:
            raise ConfigError(job.path, "noise.size", f"{job.noise.size} is smaller than the policy's "
                                                      f"{policy.n_params} parameters")
        if job.policy.kind == "tabular" and job.obs_norm.enabled:
            raise ConfigError(job.path, "obs_norm.enabled", "must be false with policy.kind = 'tabular' "
                                                            "(states are indices)")
        try:
            check_strategy_fits(job.strategy, policy)
        except ValueError as err:
            raise ConfigError(job.path, "strategy", str(err)) from None
    finally:
        env.close()


def job_reference():
    """Markdown reference of every job-file section and key, generated from the dataclasses."""
    header = ["| key | type | default | allowed | meaning |", "|---|---|---|---|---|"]
    lines = []
    for name, cls in SECTIONS.items():
        lines += [f"### [{name}]", "", *header, *describe(cls, name), ""]
    for name, cls in STRATEGY_SETTINGS.items():
        lines += [f'### [strategy] with name = "{name}"', "", *header,
                  f"| `strategy.name` | string | `\"{DEFAULT_STRATEGY}\"` | one of {', '.join(STRATEGY_SETTINGS)} "
                  "| the algorithm |", *describe(cls, "strategy"), ""]
    return "\n".join(lines)


def _check_combinations(built, path):
    """Settings that are valid alone but not together."""
    env, atari, policy, obs_norm = built["env"], built["atari"], built["policy"], built["obs_norm"]
    strategy = built["strategy"]
    if getattr(strategy, "top_pairs", 0) > getattr(strategy, "pairs", 0):
        raise ConfigError(path, "strategy.top_pairs", f"{strategy.top_pairs} is more than strategy.pairs = {strategy.pairs}")
    if atari is not None:
        for key in env.kwargs:
            if key in ATARI_OWNED_KWARGS:
                owner = ATARI_OWNED_KWARGS[key]
                reason = f"set it as {owner}" if owner else "only image observations are supported"
                raise ConfigError(path, f"env.kwargs.{key}", f"not allowed for Atari games: {reason}")
        if obs_norm.enabled:
            raise ConfigError(path, "obs_norm.enabled", "must be false for Atari games: pixels are scaled by 1/255 instead")
        if policy.kind != "cnn":
            raise ConfigError(path, "policy.kind", f"{policy.kind!r} takes flat observations; use 'cnn' for Atari frames")
    elif policy.kind == "cnn":
        raise ConfigError(path, "policy.kind", f"'cnn' needs an Atari (ALE) game's frames; env.id = {env.id!r} is not one")
    if policy.vbn and obs_norm.enabled:
        raise ConfigError(path, "policy.vbn", "needs obs_norm.enabled = false: the reference batch fixes the input "
                                              "scale, running observation statistics would shift it")


def _toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")


def dump_toml(sections):
    """Write {section: {key: value}} as TOML (tomllib reads only)."""
    lines = []
    for name, table in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in table.items()]
        lines.append("")
    return "\n".join(lines)
