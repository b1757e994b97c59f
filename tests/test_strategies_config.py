"""Job-file validation for objectives and the new strategies: one line, file, key, reason."""

import pathlib

import gymnasium as gym
import numpy as np
import pytest
from conftest import run_es

from es_mpi.parts.job_file import job_from_text
from es_mpi.job.sections import PolicySettings
from es_mpi.parts.build import build_task
from es_mpi.core.errors import ConfigError
from es_mpi.parts.policies.mlp import ActionHead, MLPPolicy
from es_mpi.parts.strategies.mlp_fit import loss_and_gradient

OBJECTIVE = '[objective]\nfunction = "{}"\n[strategy]\nname = "cma_es"\n'


@pytest.mark.parametrize("function,reason", [
    ("es_mpi.objectives:nope", "has no function 'nope'"),
    ("no_such_module_xyz:f", "cannot import module 'no_such_module_xyz'"),
    ("sphere", "expected 'module:function'"),
])
def test_unknown_objective_is_a_config_error(function, reason):
    with pytest.raises(ConfigError) as err:
        build_task(job_from_text(OBJECTIVE.format(function), pathlib.Path("job.toml")))
    assert err.value.key == "objective.function" and reason in err.value.reason


def test_objective_and_env_together_is_a_config_error():
    with pytest.raises(ConfigError, match="either an \\[env\\] or an objective"):
        job_from_text(OBJECTIVE.format("es_mpi.objectives:sphere") + '[env]\nid = "CartPole-v1"\n', pathlib.Path("job.toml"))


def test_environment_strategies_refuse_an_objective():
    text = '[objective]\nfunction = "es_mpi.objectives:sphere"\n[strategy]\nname = "cem_tabular"\n'
    with pytest.raises(ConfigError, match="needs an environment"):
        build_task(job_from_text(text, pathlib.Path("job.toml")))


def test_objective_job_round_trips_through_its_toml():
    job = job_from_text(OBJECTIVE.format("es_mpi.objectives:ackley") + "variant = 'separable'\n", pathlib.Path("job.toml"))
    assert job_from_text(job.to_toml(), pathlib.Path("again.toml")).to_dict() == job.to_dict()


@pytest.mark.parametrize("text,key", [
    ('[env]\nid = "Taxi-v4"\n[policy]\nkind = "tabular"\n[strategy]\nname = "cem_tabular"\n', "obs_norm.enabled"),
    ('[env]\nid = "CartPole-v1"\n[obs_norm]\nenabled = false\n[strategy]\nname = "cem_tabular"\n', "strategy"),
    ('[env]\nid = "CartPole-v1"\n[strategy]\nname = "cma_es"\nvariant = "diagonal"\n', "strategy.variant"),
])
def test_bad_strategy_jobs_fail_with_one_line(write_job, tmp_path, text, key):
    result = run_es("train", write_job(text), "--run-dir", tmp_path / "run", timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "job.toml" in lines[0] and key in lines[0], lines


@pytest.mark.parametrize("kind,activation", [("discrete", "tanh"), ("continuous", "elu"), ("discrete", "relu")])
def test_mlp_fit_gradient_matches_finite_differences(kind, activation):
    space = gym.spaces.Discrete(3) if kind == "discrete" else gym.spaces.Box(-1.0, 1.0, (2,))
    policy = MLPPolicy(PolicySettings(hidden=[5], activation=activation, init_scale=1.0), 4, ActionHead(kind, space, 2))
    draw = np.random.default_rng(0)
    params_p = policy.init_params(draw).astype(np.float64).astype(np.float32)
    inputs_bi = draw.standard_normal((6, 4)).astype(np.float32)
    targets = draw.integers(0, 3, 6) if kind == "discrete" else draw.uniform(-1, 1, (6, 2))
    _, gradient_p = loss_and_gradient(policy, params_p, inputs_bi, targets, entropy=0.1)
    for index in draw.choice(params_p.size, 8, replace=False):
        step_p = np.zeros_like(params_p)
        step_p[index] = 1e-2
        up, _ = loss_and_gradient(policy, params_p + step_p, inputs_bi, targets, entropy=0.1)
        down, _ = loss_and_gradient(policy, params_p - step_p, inputs_bi, targets, entropy=0.1)
        assert gradient_p[index] == pytest.approx((up - down) / 2e-2, abs=2e-3, rel=2e-2)
