"""Job files -> validated Job: defaults, overrides, round trip through TOML, the generated
reference, and that every shipped job file passes every check."""

import dataclasses
import pathlib

import pytest

from conftest import REPO, run_es
from es_mpi.job.parse import parse_override
from es_mpi.parts.job_file import job_from_text, job_reference, load_job
from es_mpi.job.sections import SECTIONS
from es_mpi.parts.strategies import STRATEGIES
from es_mpi.parts.build import build_task
from es_mpi.core.errors import ConfigError


def test_an_empty_job_file_gives_the_defaults(tmp_path):
    path = tmp_path / "walker.toml"
    path.write_text("")
    job = load_job(path)
    assert job.run.name == "walker" and job.run_dir() == pathlib.Path("runs/walker")
    assert job.env.id == "CartPole-v1" and job.policy.hidden == [64, 64]
    assert job.strategy.name == "openai_es" and job.strategy.pairs == 50
    assert job.stop.timesteps is None


@pytest.mark.parametrize("text, expected", [
    ("strategy.sigma=0.05", ("strategy", "sigma", 0.05)),
    ("policy.hidden=[16, 16]", ("policy", "hidden", [16, 16])),
    ("obs_norm.enabled=false", ("obs_norm", "enabled", False)),
    ("env.id=Pendulum-v1", ("env", "id", "Pendulum-v1")),
    ('env.id="Pendulum-v1"', ("env", "id", "Pendulum-v1")),
    (" stop.iterations = 3 ", ("stop", "iterations", 3)),
])
def test_override_values_are_read_as_toml_else_as_a_word(text, expected):
    assert parse_override(text, "job.toml") == expected


@pytest.mark.parametrize("text", ["policy.hidden", "hidden=3", "a.b.c=1", ".x=1", "x.=1", "=1"])
def test_malformed_overrides_name_themselves(text):
    with pytest.raises(ConfigError) as caught:
        parse_override(text, "job.toml")
    assert caught.value.key == text and "section.key=value" in caught.value.reason


def test_overrides_win_over_the_file_and_errors_say_from_set(tmp_path):
    job = job_from_text("[stop]\niterations = 5\n", tmp_path / "j.toml", ["stop.iterations=9", "run.dir=/x"])
    assert job.stop.iterations == 9 and job.run_dir() == pathlib.Path("/x")
    with pytest.raises(ConfigError) as caught:
        job_from_text("[stop]\niterations = 5\n", tmp_path / "j.toml", ["stop.iterations=0"])
    assert caught.value.key == "stop.iterations" and caught.value.reason.endswith("(from --set)")
    with pytest.raises(ConfigError) as caught:
        job_from_text("[stop]\niterations = 0\n", tmp_path / "j.toml", ["stop.timesteps=100"])
    assert not caught.value.reason.endswith("(from --set)")  # the file's own mistake


def test_run_dir_argument_wins_over_the_job(tmp_path):
    job = job_from_text('[run]\ndir = "/a"\n', tmp_path / "j.toml", run_dir=tmp_path / "b")
    assert job.run_dir() == tmp_path / "b"


def test_the_job_round_trips_through_its_toml(tmp_path):
    text = ('[run]\nseed = 4\n[env]\nid = "Pendulum-v1"\nkwargs = {g = 9.0}\nstep_cap = "adaptive"\n'
            '[policy]\nhidden = [3]\n[stop]\ntarget_return = -150.5\n[strategy]\noptimizer = "sgd"\n')
    job = job_from_text(text, tmp_path / "p.toml")
    assert job_from_text(job.to_toml(), tmp_path / "p.toml") == job


def test_config_errors_survive_pickling():
    """Rank 0 broadcasts its run-directory verdict, errors included."""
    import pickle

    error = ConfigError("job.toml", "run.dir", "already exists")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.key, copy.reason, str(copy)) == (error.path, error.key, error.reason, str(error))


def all_settings():
    for name, cls in SECTIONS.items():
        yield name, cls
    for cls in STRATEGIES.schemas.by_name.values():
        yield "strategy", cls


def test_the_reference_lists_every_key_with_type_default_and_meaning():
    reference = job_reference()
    for prefix, cls in all_settings():
        for field in dataclasses.fields(cls):
            rows = [line for line in reference.splitlines() if line.startswith(f"| `{prefix}.{field.name}` |")]
            assert rows, f"{prefix}.{field.name} missing"
            table = [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows]
            assert all(len(cells) == 5 and all(cells) for cells in table), rows
            # several strategies share a key name (sigma, population): one row per strategy
            assert field.metadata["doc"] in [cells[4] for cells in table]


def test_every_setting_has_help_text():
    for prefix, cls in all_settings():
        for field in dataclasses.fields(cls):
            assert field.metadata["doc"], f"{prefix}.{field.name} has no doc"


def test_es_mpi_keys_prints_the_reference():
    result = run_es("keys", timeout=60)
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.strip() == job_reference().strip()


@pytest.mark.parametrize("job_file", sorted((REPO / "jobs").glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_job_file_passes_every_check(job_file):
    build_task(load_job(job_file)).close()
