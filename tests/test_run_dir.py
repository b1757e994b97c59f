"""--force starts over but deletes only what es-mpi wrote; other files in the directory stay."""

from conftest import run_es

JOB = """
[env]
id = "CartPole-v1"
[policy]
hidden = [4]
[strategy]
pairs = 2
[noise]
size = 10_000
[stop]
iterations = 2
"""


def test_force_deletes_only_run_files(write_job, tmp_path):
    job, run_dir = write_job(JOB), tmp_path / "run"
    assert run_es("train", job, "--run-dir", run_dir).returncode == 0
    (run_dir / "notes.txt").write_text("mine")
    (run_dir / "ckpt-00000099.h5").write_bytes(b"stale")
    again = run_es("train", job, "--run-dir", run_dir, "--force")
    assert again.returncode == 0, again.stderr
    assert (run_dir / "notes.txt").read_text() == "mine"
    assert not (run_dir / "ckpt-00000099.h5").exists()
    assert (run_dir / "ckpt-00000002.h5").exists()


def test_a_directory_without_run_files_is_not_refused(write_job, tmp_path):
    job, run_dir = write_job(JOB), tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "slurm-123.out").write_text("log")
    result = run_es("train", job, "--run-dir", run_dir)
    assert result.returncode == 0, result.stderr
