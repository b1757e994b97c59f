"""The node layer: virtual nodes (ES_MPI_NODE_SIZE) hold one noise table each (that they give the
bytes of 1 rank, and resume across a change of layout: test_determinism.py's matrix)."""

import hashlib
import json

import pytest

from conftest import MPIEXEC, PYTHON, REPO, run, run_es, run_mpi
from es_mpi.core.errors import UserError
from es_mpi.run.noise import CHUNK, local_table
from es_mpi.core.environment import node_size_from_env
from test_bad_input import mpiexec_notice_removed
from test_determinism import CARTPOLE

TABLE_SIZE = 3 * CHUNK + 12345  # 48 MB, several chunks


def test_node_size_is_read_from_the_environment():
    assert node_size_from_env({}) is None
    assert node_size_from_env({"ES_MPI_NODE_SIZE": ""}) is None
    assert node_size_from_env({"ES_MPI_NODE_SIZE": " 3 "}) == 3
    for bad in ("0", "-2", "2.5", "two", "1e3", "\u00b2"):
        with pytest.raises(UserError, match="ES_MPI_NODE_SIZE"):
            node_size_from_env({"ES_MPI_NODE_SIZE": bad})


def probe(n_ranks, node_size):
    command = [MPIEXEC, "-n", str(n_ranks), "--oversubscribe", "--bind-to", "none", PYTHON,
               str(REPO / "tests" / "noise_probe.py"), str(TABLE_SIZE), "5"]
    result = run(command, timeout=180, env_extra={"ES_MPI_NODE_SIZE": str(node_size) if node_size else ""})
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.mpi
@pytest.mark.parametrize("node_size, n_tables", [(2, 3), (None, 1)], ids=["three-virtual-nodes", "one-node"])
def test_each_node_holds_one_table(node_size, n_tables):
    """6 ranks: as 3 virtual nodes of 2, three tables in memory (each shared by its node's two ranks);
    as one node, one table."""
    reports = probe(6, node_size)
    expected = hashlib.sha256(local_table(TABLE_SIZE, 5).tobytes()).hexdigest()
    assert [r["digest"] for r in reports] == [expected] * 6
    assert [r["node"] for r in reports] == ([0, 0, 1, 1, 2, 2] if n_tables == 3 else [0] * 6)
    assert [r["leader"] for r in reports] == ([True, False] * 3 if n_tables == 3 else [True] + [False] * 5)
    identities = [r["identity"] for r in reports]
    assert len(set(identities)) == n_tables, identities
    for node in range(n_tables):
        assert len({r["identity"] for r in reports if r["node"] == node}) == 1, "a node's ranks map different memory"
    table_kb = TABLE_SIZE * 4 / 1024
    total_pss_kb = sum(r["pss_kb"] for r in reports)
    assert 0.9 * n_tables * table_kb <= total_pss_kb <= 1.1 * n_tables * table_kb, (total_pss_kb, table_kb)


@pytest.mark.parametrize("ranks, value", [(1, "0"), pytest.param(2, "two", marks=pytest.mark.mpi)])
def test_a_bad_node_size_is_one_line_and_exit_2(write_job, tmp_path, ranks, value):
    job = write_job(CARTPOLE)
    args = ("train", job, "--run-dir", tmp_path / "run")
    env = {"ES_MPI_NODE_SIZE": value}
    result = run_es(*args, timeout=60, env_extra=env) if ranks == 1 else run_mpi(ranks, *args, timeout=60, env_extra=env)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = mpiexec_notice_removed(result.stderr)
    assert lines == [f"es-mpi: error: ES_MPI_NODE_SIZE={value!r}: not an integer from 1 to 2147483647 "
                     f"(the ranks per virtual node; unset it for one node per machine)"], lines
    assert result.stdout == ""
    assert not (tmp_path / "run").exists()
