"""Contract 3: one noise table per node, the same bytes for every rank and for plain Python."""

import hashlib
import json

import numpy as np
import pytest

from conftest import MPIEXEC, PYTHON, REPO, run
from es_mpi.run.noise import CHUNK, local_table

SIZE = 3 * CHUNK + 12345  # 48 MB, several chunks filled by different ranks


def test_table_is_a_pure_function_of_size_and_seed():
    a, b = local_table(CHUNK + 10, 7), local_table(CHUNK + 10, 7)
    assert a.dtype == np.float32 and np.array_equal(a, b)
    assert not np.array_equal(a, local_table(CHUNK + 10, 8))
    assert abs(float(a.mean())) < 0.01 and abs(float(a.std()) - 1) < 0.01


@pytest.mark.mpi
def test_ranks_share_one_table_in_memory():
    command = [MPIEXEC, "-n", "3", "--oversubscribe", "--bind-to", "none", PYTHON,
               str(REPO / "tests" / "noise_probe.py"), str(SIZE), "5"]
    result = run(command, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    reports = json.loads(result.stdout.strip().splitlines()[-1])
    expected = hashlib.sha256(local_table(SIZE, 5).tobytes()).hexdigest()
    assert [r["digest"] for r in reports] == [expected] * 3
    assert len({r["identity"] for r in reports}) == 1, "ranks map different memory"
    table_kb = SIZE * 4 / 1024
    total_pss_kb = sum(r["pss_kb"] for r in reports)
    # Proportional set size splits shared pages between the ranks: one table in all, not three.
    assert 0.9 * table_kb <= total_pss_kb <= 1.1 * table_kb, (total_pss_kb, table_kb)
