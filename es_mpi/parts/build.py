"""The build step: a parsed job -> its environment, policy and strategy class, checked to fit.

Training, `eval` and validation before the run directory is touched all build through
`build_task`, once per process: the env made here is the one that plays. Anything that does
not fit is a one-line ConfigError naming the key.
"""

import dataclasses

from es_mpi.core.errors import ConfigError
from es_mpi.core.seeding import Purpose, rng
from es_mpi.job.sections import AtariSettings
from es_mpi.parts.atari import ATARI_OWNED_KWARGS, is_atari_id, make_atari_env
from es_mpi.parts.envs import env_step_limit, is_known, known_env_ids, make_env
from es_mpi.parts.objective_task import make_objective_task
from es_mpi.parts.objectives import BUILTIN_MODULE, load_objective
from es_mpi.parts.policies import head_kind, make_policy
from es_mpi.parts.strategies import make_strategy, strategy_class

UNCAPPED_STEPS = 10**9


@dataclasses.dataclass
class Task:
    """What a job runs: `job` has the [atari] section filled in for ALE games (what checkpoints store)."""
    job: object
    env: object
    policy: object
    render_mode: str = None

    @property
    def step_limit(self):
        """The hard episode cap: a fixed step_cap, else the env's own limit (else unbounded)."""
        if isinstance(self.job.env.step_cap, int):
            return self.job.env.step_cap
        return env_step_limit(self.env) or UNCAPPED_STEPS

    def initial_params(self):
        return self.policy.init_params(rng(self.job.run.seed, purpose=Purpose.INIT_PARAMS))

    def make_strategy(self, noise, share=None):
        job = self.job
        return make_strategy(job.strategy, self.initial_params(), noise, job.run.seed, self.policy, share)

    def make_env(self):
        """Another env like `env` (one per lane)."""
        return _make_env(self.job, self.render_mode)

    def close(self):
        self.env.close()


def named_modules(job):
    """[(key, module)] of the Python modules the job would import: an `env.id` of the form
    'module:Name-v0' (a custom env that registers itself), an objective outside the built-ins."""
    if job.objective.function is not None:
        module = job.objective.function.partition(":")[0]
        return [] if module == BUILTIN_MODULE else [("objective.function", module)]
    return [("env.id", job.env.id.partition(":")[0])] if ":" in job.env.id else []


def build_task(job, render_mode=None, trust_code=True):
    """Make the env and policy of `job` and check that env, policy, strategy and noise table fit.

    A job from a checkpoint (someone else's file) is built with trust_code=False: a module it
    names is refused, never imported.
    """
    if not trust_code:
        for key, module in named_modules(job):
            raise ConfigError(job.path, key, f"names the Python module {module!r}, and a checkpoint never imports "
                                             "code by itself; pass --trust-code if you trust this file")
    if job.run.pipeline and not strategy_class(job.strategy).pipelines:
        raise ConfigError(job.path, "run.pipeline", f"{job.strategy.name} cannot pipeline its iterations; "
                                                    "only openai_es can (set run.pipeline = false)")
    if job.objective.function is not None:
        return _build_objective_task(job)
    job = _resolve_atari(job)
    if job.policy.vbn and job.obs_norm.enabled:
        raise ConfigError(job.path, "policy.vbn", "needs obs_norm.enabled = false: the reference batch fixes the input "
                                                  "scale, running observation statistics would shift it")
    env = _make_env(job, render_mode)
    try:
        policy = _make_policy(job, env)
        _check_policy_fits(job, policy)
    except ConfigError:
        env.close()
        raise
    return Task(job, env, policy, render_mode)


def _build_objective_task(job):
    path, objective = job.path, job.objective
    if strategy_class(job.strategy).needs_environment:
        raise ConfigError(path, "strategy.name", f"{job.strategy.name} needs an environment, not an objective")
    try:
        function = load_objective(objective.function)
    except ValueError as err:
        raise ConfigError(path, "objective.function", str(err)) from None
    if job.noise.size < objective.dim:
        raise ConfigError(path, "noise.size", f"{job.noise.size} is smaller than the objective's {objective.dim} dimensions")
    env, policy = make_objective_task(function, objective)
    return Task(job, env, policy)


def _resolve_atari(job):
    """The job with [atari] filled in for ALE games; the settings only Atari (or only others) allow."""
    path, env = job.path, job.env
    if not is_known(env.id):
        close = sorted(i for i in known_env_ids() if env.id.split("-")[0].lower() in i.lower())[:5]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(path, "env.id", f"unknown environment {env.id!r}{hint}")
    if not is_atari_id(env.id):
        if job.atari is not None:
            raise ConfigError(path, "atari", f"only applies to Atari (ALE) games; env.id = {env.id!r} is not one")
        if job.policy.kind == "cnn":
            raise ConfigError(path, "policy.kind", f"'cnn' needs an Atari (ALE) game's frames; env.id = {env.id!r} is not one")
        return job
    for key in env.kwargs:
        if key in ATARI_OWNED_KWARGS:
            owner = ATARI_OWNED_KWARGS[key]
            reason = f"set it as {owner}" if owner else "only image observations are supported"
            raise ConfigError(path, f"env.kwargs.{key}", f"not allowed for Atari games: {reason}")
    if job.obs_norm.enabled:
        raise ConfigError(path, "obs_norm.enabled", "must be false for Atari games: pixels are scaled by 1/255 instead")
    if job.policy.kind != "cnn":
        raise ConfigError(path, "policy.kind", f"{job.policy.kind!r} takes flat observations; use 'cnn' for Atari frames")
    return dataclasses.replace(job, atari=job.atari or AtariSettings())


def _make_env(job, render_mode):
    try:
        if job.atari is not None:
            return make_atari_env(job.env, job.atari, render_mode)
        return make_env(job.env, render_mode=render_mode)
    except Exception as err:  # gymnasium raises many kinds for bad kwargs or missing extras
        raise ConfigError(job.path, "env", f"cannot make {job.env.id!r}: {type(err).__name__}: {err}") from None


def _make_policy(job, env):
    try:
        head_kind(job.policy.action, env.action_space)
    except ValueError:
        raise ConfigError(job.path, "policy.action", f"{job.policy.action!r} does not fit {job.env.id}'s "
                                                     f"action space {env.action_space}") from None
    try:
        return make_policy(job.policy, env.observation_space, env.action_space)
    except ValueError as err:
        raise ConfigError(job.path, "policy", str(err)) from None


def _check_policy_fits(job, policy):
    if job.noise.size < policy.n_params:
        raise ConfigError(job.path, "noise.size", f"{job.noise.size} is smaller than the policy's {policy.n_params} parameters")
    if job.policy.kind == "tabular" and job.obs_norm.enabled:
        raise ConfigError(job.path, "obs_norm.enabled", "must be false with policy.kind = 'tabular' (states are indices)")
    try:
        strategy_class(job.strategy).check_policy(policy)
    except ValueError as err:
        raise ConfigError(job.path, "strategy", str(err)) from None
