"""Hardening (issue 12): each hostile input or fault found by review, reproduced and refused."""

import dataclasses
import json

import pytest

from conftest import PYTHON, run

from es_mpi.job.parse import job_from_text
from es_mpi.job.sections import SECTIONS

CONTROL_TEXT = 'a\nb\t"c"\\d\x00e\x1f\x7f\r\u00e9\u2028'


def string_settings():
    """(section, key) of every str setting of every section."""
    for name, cls in SECTIONS.items():
        for field in dataclasses.fields(cls):
            if field.metadata.get("kind") == "str" and not field.metadata.get("choices"):
                yield name, field.name


@pytest.mark.parametrize("section, key", list(string_settings()))
def test_every_free_string_setting_round_trips_through_the_job_text(section, key):
    """Item 12: control characters in a string setting survive the TOML that checkpoints store."""
    job = job_from_text("", "job.toml", [f"{section}.{key}={_toml_string(CONTROL_TEXT)}"])
    assert getattr(getattr(job, section), key) == CONTROL_TEXT
    again = job_from_text(job.to_toml(), "ckpt.h5")
    assert getattr(getattr(again, section), key) == CONTROL_TEXT
    assert again.to_dict() == job.to_dict()


def _toml_string(text):
    import json

    return json.dumps(text).replace("\x7f", "\\u007f")  # JSON's escapes are TOML basic-string escapes


@pytest.mark.parametrize("variables", [
    {"OPENBLAS_NUM_THREADS": "2"},
    {"OPENBLAS_NUM_THREADS": "3", "OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "2"},
])
def test_blas_runs_one_thread_whatever_the_environment_says(variables):
    """Item 15: the BLAS pool numpy loaded has one thread after `import es_mpi`, with the variables set."""
    probe = ("import numpy, es_mpi, json, threadpoolctl; "
             "print(json.dumps([p['num_threads'] for p in threadpoolctl.threadpool_info()]))")
    result = run([PYTHON, "-c", probe], env_extra=variables)
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout)
    assert counts and all(count == 1 for count in counts), counts


CHECKSUM_STRATEGIES = [("openai_es", dict(pairs=3)), ("cma_es", dict(variant="full")), ("cma_es", dict(variant="separable")),
                       ("nes", {}), ("ga", dict(population=6)), ("cem", {}), ("simple_es", {})]


@pytest.mark.parametrize("name, settings", CHECKSUM_STRATEGIES)
def test_the_agreement_checksum_covers_every_array_of_the_state(name, settings):
    """Item 17: a change to any one entry of the strategy state, or to the observation count, changes the checksum."""
    import numpy as np

    from es_mpi.job.strategy_sections import STRATEGY_SETTINGS
    from es_mpi.parts.strategies import make_strategy
    from es_mpi.run.agreement import state_checksum
    from es_mpi.run.noise import local_table
    from es_mpi.run.obstat import ObsStat

    strategy = make_strategy(STRATEGY_SETTINGS[name](**settings), np.zeros(5, dtype=np.float32),
                             local_table(10_000, 1), 0)
    strategy.ask(1)
    strategy.tell(np.arange(strategy.population, dtype=np.float64))
    obstat = ObsStat(3)
    before = state_checksum(strategy, obstat)
    state = strategy.state_dict()
    for key, value in state.items():
        changed = {k: np.array(v, copy=True) for k, v in state.items()}
        flat = changed[key].reshape(-1)
        flat[-1] = flat[-1] + 1 if flat.dtype.kind in "iu" else flat[-1] * 2 + 1
        strategy.load_state_dict(changed)
        assert state_checksum(strategy, obstat) != before, f"{name}: {key} is not covered"
    strategy.load_state_dict(state)
    assert state_checksum(strategy, obstat) == before
    obstat.count += 1
    assert state_checksum(strategy, obstat) != before, "obstat count is not covered"
