"""The pipelined mode (run.pipeline, run/pipeline.py): iterations overlap when one rank is slow, a
signal or a killed rank mid-overlap loses nothing, and strategies that cannot pipeline refuse it.
(Its bytes on 1, 2, 3 and 5 ranks, 2+2+1 nodes and across a resume: tests/test_determinism.py.)"""

import collections
import os
import signal

import h5py
import pytest

from conftest import es_mpi_command, mpiexec_command, run_es, run_mpi, wait_for
from test_faults import rank_pids, reached, start

# Static slices: the slowed rank always plays its own half, whoever is faster.
JOB = """
[run]
pipeline = true
placement = "static"
[env]
id = "CartPole-v1"
step_cap = 60
[policy]
hidden = [8]
[strategy]
pairs = 6
sigma = 0.1
[noise]
size = 100_000
[obs_norm]
probability = 0.5
[eval]
every = 3
episodes = 2
[checkpoint]
every = 1
keep = 20
[stop]
iterations = 5
"""


def claim_log(log_dir):
    """({iteration: [(time, rank)] of its episodes' starts}, {iteration: [(time, rank)] of the ranks
    that finished their episodes of it}), from ES_MPI_CLAIM_LOG's files."""
    starts, played = collections.defaultdict(list), collections.defaultdict(list)
    for path in log_dir.glob("claims-*.log"):
        rank = int(path.stem.split("-")[1])
        for line in path.read_text().splitlines():
            kind, iteration, *_, when = line.split()
            (starts if kind == "start" else played)[int(iteration)].append((float(when), rank))
    return starts, played


def overlapped(starts, played):
    """Iterations t that some rank was still playing when another had started an episode of t + 1."""
    return [t for t in sorted(played) if t + 1 in starts and min(starts[t + 1])[0] < max(played[t])[0]]


@pytest.mark.mpi
@pytest.mark.parametrize("pipeline", [True, False], ids=["pipelined", "synchronous"])
def test_with_one_rank_slowed_the_others_start_the_next_iteration_before_it_ends(write_job, tmp_path, pipeline):
    """Rank 1 sleeps 2 ms before each step; the claim log holds every episode's start and when each rank
    was done with an iteration. Pipelined, rank 0 starts iteration t + 1 while rank 1 still plays t;
    synchronous, never: so the check can fail."""
    job = write_job(JOB.replace("pipeline = true", f"pipeline = {str(pipeline).lower()}"))
    log_dir = tmp_path / "claims"
    log_dir.mkdir()
    result = run_mpi(2, "train", job, "--run-dir", tmp_path / "run",
                     env_extra={"ES_MPI_SLOW_RANK": "1:0.002", "ES_MPI_CLAIM_LOG": str(log_dir)})
    assert result.returncode == 0, result.stderr[-2000:]
    starts, played = claim_log(log_dir)
    assert sorted(starts) == sorted(played) == [1, 2, 3, 4, 5]
    assert all(sorted(rank for _, rank in played[t]) == [0, 1] for t in played)
    if pipeline:
        assert overlapped(starts, played) == [1, 2, 3, 4], (dict(starts), dict(played))
    else:
        assert overlapped(starts, played) == []


@pytest.mark.mpi
def test_the_iteration_in_flight_plays_the_centre_one_tell_old(write_job, tmp_path):
    """The step is one iteration stale, not two: checkpoint t's iteration in flight plays the state
    after t - 1, which is checkpoint t - 1's centre bit for bit and not checkpoint t's."""
    result = run_mpi(2, "train", write_job(JOB), "--run-dir", tmp_path / "run")
    assert result.returncode == 0, result.stderr[-2000:]
    for t in range(2, 6):
        with h5py.File(tmp_path / "run" / f"ckpt-{t:08d}.h5", "r") as f, \
                h5py.File(tmp_path / "run" / f"ckpt-{t - 1:08d}.h5", "r") as before:
            assert int(f["extra/pipeline/iteration"][()]) == t - 1
            in_flight_p = f["extra/pipeline/params"][()]
            assert in_flight_p.tobytes() == before["params"][()].tobytes()
            assert in_flight_p.tobytes() != f["params"][()].tobytes()


def digest(path):
    with h5py.File(path, "r") as f:
        return f["params"][()].tobytes(), {key: f["obstat"][key][()].tobytes() for key in f["obstat"]}


@pytest.mark.mpi
def test_a_signal_while_two_iterations_are_in_flight_checkpoints_and_the_resume_is_exact(write_job, tmp_path):
    """SIGTERM lands while iterations overlap (rank 1 slowed); the run checkpoints and exits 3, and
    --resume ends on the bytes of a run that was never stopped."""
    slow = {"ES_MPI_SLOW_RANK": "1:0.001"}
    job = write_job(JOB.replace("iterations = 5", "iterations = 12"))
    straight = run_mpi(2, "train", job, "--run-dir", tmp_path / "straight", env_extra=slow)
    assert straight.returncode == 0, straight.stderr[-2000:]
    run_dir = tmp_path / "stopped"
    process = start(es_mpi_command("train", job, "--run-dir", run_dir, "-n", "2"), tmp_path, **slow)
    try:
        assert wait_for(lambda: reached(run_dir, 3)), "training did not start"
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
    finally:
        process.kill()
    out = (tmp_path / "out.log").read_text()
    assert process.returncode == 3, (tmp_path / "err.log").read_text()[-2000:]
    stopped_at = int(out.split("after iteration")[1].split(";")[0])
    assert stopped_at < 12, out[-1500:]
    resumed = run_mpi(3, "train", job, "--run-dir", run_dir, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resumed from iteration {stopped_at}" in resumed.stdout
    assert digest(run_dir / "ckpt-00000012.h5") == digest(tmp_path / "straight" / "ckpt-00000012.h5")


@pytest.mark.mpi
def test_sigkill_while_two_iterations_are_in_flight_ends_the_job_and_resume_continues(write_job, tmp_path):
    """Rank 1 (slowed) is killed once rank 0 has started an iteration whose predecessor rank 1 still
    plays: the job ends, and --resume continues from the last checkpoint."""
    job = write_job(JOB.replace("iterations = 5", "iterations = 100000"))
    run_dir, log_dir = tmp_path / "run", tmp_path / "claims"
    log_dir.mkdir()
    process = start(mpiexec_command(2, "train", job, "--run-dir", run_dir), tmp_path,
                    ES_MPI_SLOW_RANK="1:0.005", ES_MPI_CLAIM_LOG=str(log_dir))

    def two_in_flight():
        """Rank 0 has started iteration t + 1 and rank 1 has not finished t (t >= 2)."""
        starts, played = claim_log(log_dir)
        ahead = max((t for t in starts if any(rank == 0 for _, rank in starts[t])), default=0)
        return ahead >= 3 and not any(rank == 1 for _, rank in played[ahead - 1])

    try:
        assert wait_for(two_in_flight, timeout=120), "iterations never overlapped"
        os.kill(rank_pids(run_dir)[1], signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        process.kill()
    assert process.returncode != 0
    assert wait_for(lambda: not rank_pids(run_dir), timeout=60), "surviving ranks were not taken down"
    from es_mpi.records.checkpoint import newest_valid

    killed_at = newest_valid(run_dir)[1].iteration
    resumed = run_mpi(2, "train", job, "--run-dir", run_dir, "--resume", "--set", f"stop.iterations={killed_at + 3}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resumed from iteration {killed_at}" in resumed.stdout
    assert (run_dir / f"ckpt-{killed_at + 3:08d}.h5").exists()


def test_a_strategy_that_cannot_pipeline_refuses_in_one_line(write_job, tmp_path):
    job = write_job(JOB.replace("pairs = 6", "population = 8").replace("[strategy]", '[strategy]\nname = "nes"'))
    result = run_es("train", job, "--run-dir", tmp_path / "run", "-n", "1")
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == (
        f"es-mpi: error: {job}: run.pipeline: nes cannot pipeline its iterations; only openai_es can "
        "(set run.pipeline = false)"), result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.mpi
@pytest.mark.parametrize("key, value, reason", [
    ("pipeline/params", "short", "float32[225], expected float32[226]"),
    ("pipeline/iteration", 7, "7 is not an integer in [2, 3]"),
    ("pipeline/strategy/optimizer/m", "short", "float32[225], expected float32[226]"),
], ids=["params", "iteration", "strategy"])
def test_a_checkpoint_whose_iteration_in_flight_does_not_fit_is_refused_in_one_line(write_job, tmp_path, key,
                                                                                     value, reason):
    """A sealed checkpoint whose extra/pipeline/ group does not fit the job: exit 2, one line naming
    the file and the key, nothing written."""
    from es_mpi.records import checkpoint as ckpt_io

    job, run_dir = write_job(JOB.replace("iterations = 5", "iterations = 3").replace("hidden = [8]", "hidden = [32]")), \
        tmp_path / "run"
    assert run_mpi(1, "train", job, "--run-dir", run_dir).returncode == 0
    path = run_dir / "ckpt-00000003.h5"
    ckpt = ckpt_io.load(path)
    ckpt.extra[key] = ckpt.extra[key][:-1] if value == "short" else value
    ckpt_io.save(path, ckpt)
    before = sorted(p.name for p in run_dir.iterdir())
    resumed = run_es("train", job, "--run-dir", run_dir, "--resume", "-n", "1", "--set", "stop.iterations=5")
    assert resumed.returncode == 2, resumed.stderr[-2000:]
    assert resumed.stderr.splitlines()[0] == f"es-mpi: error: {path}: extra/{key}: {reason}", resumed.stderr
    assert sorted(p.name for p in run_dir.iterdir()) == before
