"""Contract 1: the same bytes whatever the rank count, and a resumed run equals an unbroken one."""

import hashlib

import h5py
import pytest

from conftest import run_mpi

CARTPOLE = """
[env]
id = "CartPole-v1"
step_cap = 200
[policy]
hidden = [8]
[strategy]
pairs = 6
sigma = 0.1
learning_rate = 0.05
[noise]
size = 200_000
[obs_norm]
probability = 0.5
[eval]
every = 2
episodes = 3
[checkpoint]
every = 1
[stop]
iterations = 4
"""

# Hopper ends episodes early at different times; the adaptive cap and obs normalisation are on.
HOPPER = """
[env]
id = "Hopper-v5"
step_cap = "adaptive"
[policy]
hidden = [8]
action = "bins"
bins = 5
[strategy]
pairs = 5
sigma = 0.05
optimizer = "sgd"
[noise]
size = 200_000
[obs_norm]
probability = 0.6
[eval]
every = 2
episodes = 2
[checkpoint]
every = 1
[stop]
iterations = 4
"""

# Every post-paper option on: ARS top-b directions with return-std steps, plain SGD, the alive
# bonus, a linear policy with action bins.
HOPPER_ARS = HOPPER.replace('step_cap = "adaptive"', 'step_cap = "adaptive"\nalive_bonus = 1.0') \
    .replace("hidden = [8]", "hidden = []") \
    .replace('optimizer = "sgd"', 'optimizer = "sgd"\nmomentum = 0.0\ntop_pairs = 3\nshaping = "return_std"')


def state_digest(path):
    """Hash of everything that must be identical: params, strategy and optimizer state, obs stats."""
    digest = hashlib.sha256()
    with h5py.File(path, "r") as f:
        def visit(name, node):
            if isinstance(node, h5py.Dataset):
                digest.update(name.encode() + node[()].tobytes())
        digest.update(f["params"][()].tobytes())
        f["strategy"].visititems(visit)
        f["obstat"].visititems(visit)
        digest.update(str((int(f.attrs["iteration"]), int(f.attrs["timesteps"]), int(f.attrs["step_cap"]))).encode())
    return digest.hexdigest()


def train(n_ranks, job, run_dir, *extra):
    result = run_mpi(n_ranks, "train", job, "--run-dir", run_dir, *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.mpi
@pytest.mark.parametrize("job_text", [CARTPOLE, HOPPER, HOPPER_ARS], ids=["cartpole", "hopper", "hopper-ars"])
def test_one_two_three_ranks_give_identical_bytes(write_job, tmp_path, job_text):
    """Also with different run.lanes per run: lanes never change results."""
    job = write_job(job_text)
    digests = []
    for n_ranks, lanes in ((1, 1), (2, 16), (3, 2)):
        train(n_ranks, job, tmp_path / f"run{n_ranks}", "--set", f"run.lanes={lanes}")
        digests.append(state_digest(tmp_path / f"run{n_ranks}" / "ckpt-00000004.h5"))
    assert digests[0] == digests[1] == digests[2]


@pytest.mark.mpi
@pytest.mark.parametrize("job_text", [HOPPER, HOPPER_ARS], ids=["hopper", "hopper-ars"])
def test_resume_is_byte_identical_to_an_unbroken_run(write_job, tmp_path, job_text):
    job = write_job(job_text)
    train(2, job, tmp_path / "straight", "--set", "stop.iterations=6")
    train(2, job, tmp_path / "broken", "--set", "stop.iterations=3")
    resumed = train(2, job, tmp_path / "broken", "--resume", "--set", "stop.iterations=6")
    assert "resumed from iteration 3" in resumed.stdout
    assert state_digest(tmp_path / "straight" / "ckpt-00000006.h5") == \
        state_digest(tmp_path / "broken" / "ckpt-00000006.h5")
    with h5py.File(tmp_path / "broken" / "ckpt-00000006.h5", "r") as f:
        assert list(f["metrics/iteration"][()]) == [1, 2, 3, 4, 5, 6]
    csv_rows = (tmp_path / "broken" / "metrics.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in csv_rows[1:]] == ["1", "2", "3", "4", "5", "6"]


@pytest.mark.mpi
def test_a_diverged_rank_is_repaired_from_rank_0_and_counted(write_job, tmp_path):
    """Two nodes of one rank: rank 1's copy differs (more layouts in test_cooperative_update.py)."""
    job = write_job(CARTPOLE)
    train(1, job, tmp_path / "clean")
    result = run_mpi(2, "train", job, "--run-dir", tmp_path / "faulty", timeout=300,
                     env_extra={"ES_MPI_FAULT_INJECT": "1:2", "ES_MPI_NODE_SIZE": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "repaired from rank 0" in result.stdout
    with h5py.File(tmp_path / "faulty" / "ckpt-00000004.h5", "r") as f:
        assert list(f["metrics/repairs"][()]) == [0, 1, 1, 1]
    assert state_digest(tmp_path / "clean" / "ckpt-00000004.h5") == \
        state_digest(tmp_path / "faulty" / "ckpt-00000004.h5")
