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
