"""Contract 5: no hangs. A dead or failing rank ends the job; signals checkpoint and exit 3."""

import os
import pathlib
import signal
import subprocess

import pytest

from conftest import child_env, es_mpi_command, mpiexec_command, run_es, run_mpi, wait_for

JOB = """
[env]
id = "CartPole-v1"
[policy]
hidden = [8]
[strategy]
pairs = 8
sigma = 0.1
[noise]
size = 100_000
[eval]
every = 0
[checkpoint]
every = 1
keep = 2
[stop]
iterations = 100000
"""


def rank_pids(run_dir):
    """{world rank: PID} of the Python ranks training into run_dir (not mpiexec itself)."""
    pids = {}
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"es_mpi" in argv and str(run_dir).encode() in argv and b"python" in pathlib.Path(argv[0].decode()).name.encode():
            environ = dict(item.split(b"=", 1) for item in (entry / "environ").read_bytes().split(b"\0") if b"=" in item)
            pids[int(environ[b"OMPI_COMM_WORLD_RANK"])] = int(entry.name)
    return pids


def start(command, log_dir, **env_extra):
    """Start in the background; output goes to files (a full pipe would block rank 0)."""
    return subprocess.Popen(command, env=child_env(**env_extra), stdout=open(log_dir / "out.log", "w"),
                            stderr=open(log_dir / "err.log", "w"), text=True)


def reached(run_dir, iteration):
    from es_mpi.records.checkpoint import periodic_checkpoints

    found = periodic_checkpoints(run_dir)
    return bool(found) and found[0][0] >= iteration


# (ranks, ES_MPI_NODE_SIZE, the rank that dies): with nodes of 2, rank 2 leads the second node
# and rank 3 is its other rank.
VICTIMS = {"one-node": (2, None, 1), "node-leader": (4, 2, 2), "non-leader": (4, 2, 3)}


@pytest.mark.mpi
@pytest.mark.parametrize("victim", sorted(VICTIMS))
def test_sigkill_of_one_rank_ends_the_job_and_resume_continues(write_job, tmp_path, victim):
    n_ranks, node_size, rank = VICTIMS[victim]
    job, run_dir = write_job(JOB), tmp_path / "run"
    process = start(mpiexec_command(n_ranks, "train", job, "--run-dir", run_dir), tmp_path,
                    ES_MPI_NODE_SIZE=str(node_size or ""))
    try:
        assert wait_for(lambda: reached(run_dir, 3)), "training did not start"
        pids = rank_pids(run_dir)
        assert sorted(pids) == list(range(n_ranks)), pids
        os.kill(pids[rank], signal.SIGKILL)
        process.wait(timeout=60)  # no hang: the survivors are taken down
    finally:
        process.kill()
    assert process.returncode != 0
    assert wait_for(lambda: not rank_pids(run_dir), timeout=60), "surviving ranks were not taken down"
    inspected = run_es("inspect", run_dir)
    assert inspected.returncode == 0, inspected.stderr
    from es_mpi.records.checkpoint import newest_valid

    killed_at = newest_valid(run_dir)[1].iteration
    resumed = run_mpi(2, "train", job, "--run-dir", run_dir, "--resume", "--set", f"stop.iterations={killed_at + 3}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resumed from iteration {killed_at}" in resumed.stdout
    assert (run_dir / f"ckpt-{killed_at + 3:08d}.h5").exists()


@pytest.mark.mpi
def test_exception_on_one_rank_aborts_everything(write_job, tmp_path):
    job = write_job(JOB.replace('id = "CartPole-v1"', 'id = "tests.faulty_env:FaultyCartPole-v0"'))
    result = run_mpi(2, "train", job, "--run-dir", tmp_path / "run", timeout=120)
    assert result.returncode != 0
    assert "[rank 1]" in result.stderr and "injected failure on this rank" in result.stderr


@pytest.mark.mpi
@pytest.mark.parametrize("rank", [2, 3], ids=["node-leader", "non-leader"])
def test_exception_on_a_leader_or_not_aborts_every_node(write_job, tmp_path, rank):
    """Nodes of 2 ranks: the failing rank's node mates wait at a node barrier, the other node's
    leader in the leaders' exchange; all are taken down."""
    job = write_job(JOB.replace("iterations = 100000", "iterations = 3"))
    result = run_mpi(4, "train", job, "--run-dir", tmp_path / "run", timeout=120,
                     env_extra={"ES_MPI_NODE_SIZE": "2", "ES_MPI_FAIL_AT": f"{rank}:iteration"})
    assert result.returncode != 0
    assert f"[rank {rank}]" in result.stderr and "injected failure at iteration" in result.stderr
    assert not (tmp_path / "run" / "ckpt-00000001.h5").exists()


@pytest.mark.mpi
@pytest.mark.parametrize("how", ["sigterm-to-launcher", "sigusr1-to-mpiexec", "sigint-to-launcher"])
def test_signal_checkpoints_and_exits_3(write_job, tmp_path, how):
    job, run_dir = write_job(JOB), tmp_path / "run"
    if how.endswith("launcher"):
        command = es_mpi_command("train", job, "--run-dir", run_dir, "-n", "2")
        sig = signal.SIGTERM if how.startswith("sigterm") else signal.SIGINT
    else:
        command, sig = mpiexec_command(2, "train", job, "--run-dir", run_dir), signal.SIGUSR1
    process = start(command, tmp_path)
    try:
        assert wait_for(lambda: reached(run_dir, 2)), "training did not start"
        process.send_signal(sig)
        process.wait(timeout=120)
    finally:
        process.kill()
    out, err = (tmp_path / "out.log").read_text(), (tmp_path / "err.log").read_text()
    assert process.returncode == 3, err[-2000:]
    assert "stopped by signal" in out
    stopped_at = int(out.split("stopped by signal")[1].split("after iteration")[1].split(";")[0])
    assert (run_dir / f"ckpt-{stopped_at:08d}.h5").exists()
