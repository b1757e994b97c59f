"""Hardening, round three: nothing silently lost, nothing unstoppable, no traceback for bad input.

One test per case the hostile probe found. Where the process boundary is not the claim, the
command runs in this process (`cli.main`, or the record functions it calls); real runs train for
real under `es-mpi train`.
"""

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys

import h5py
import pytest

from conftest import child_env, es_mpi_command, no_hang, run_cli, run_es, wait_for
from es_mpi.core.errors import CheckpointError, ConfigError, UserError
from es_mpi.parts.job_file import load_job
from es_mpi.records import checkpoint as ckpt_io
from es_mpi.records import run_lock
from es_mpi.records.run_dir import decide_start

JOB = """[env]
id = "CartPole-v1"
step_cap = 50
[policy]
hidden = [4]
[strategy]
pairs = 4
[noise]
size = 100_000
[eval]
every = 0
[checkpoint]
every = 1
keep = 2
[stop]
iterations = 3
"""


def one_line(stderr):
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def cli_exit(*argv):
    """es-mpi in this process (conftest.run_cli) -> (exit code, the one stderr line)."""
    result = run_cli(*argv)
    return result.returncode, one_line(result.stderr)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A job and its run directory after 3 iterations (checkpoints 2 and 3 kept); copy before changing."""
    folder = tmp_path_factory.mktemp("trained")
    job = folder / "job.toml"
    job.write_text(JOB)
    result = run_es("train", job, "--run-dir", folder / "run", timeout=120)
    assert result.returncode == 0, result.stderr
    return job, folder / "run"


@pytest.fixture
def run_copy(trained, tmp_path):
    job, run_dir = trained
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    return job, copy


def make_newer(path, version=ckpt_io.FORMAT_VERSION + 1):
    """What a newer es-mpi would write: a higher format version, sealed as ours are."""
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = version
    ckpt_io.seal(path)


# ----------------------------------------------------------------- 1. newer checkpoints

def test_a_checkpoint_from_a_newer_es_mpi_is_refused_on_resume_and_left_as_it_was(run_copy):
    job, run_dir = run_copy
    newest = run_dir / "ckpt-00000003.h5"
    make_newer(newest)
    before = newest.read_bytes()
    result = run_es("train", job, "--run-dir", run_dir, "--resume", "--set", "stop.iterations=5", timeout=120)
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert str(newest) in line and "newer es-mpi" in line
    assert newest.read_bytes() == before
    assert sorted(p.name for p in run_dir.glob("ckpt-*.h5")) == ["ckpt-00000002.h5", "ckpt-00000003.h5"]
    assert not (run_dir / "es-mpi.lock").exists()


def test_pruning_never_deletes_a_checkpoint_from_a_newer_es_mpi(run_copy):
    _, run_dir = run_copy
    older = run_dir / "ckpt-00000001.h5"
    shutil.copy(run_dir / "ckpt-00000002.h5", older)
    make_newer(older)
    ckpt_io.prune(run_dir, keep=1)
    assert sorted(p.name for p in run_dir.glob("ckpt-*.h5")) == ["ckpt-00000001.h5", "ckpt-00000003.h5"]


# ----------------------------------------------------------------- 2. values HDF5 cannot hold

def test_an_integer_a_checkpoint_cannot_store_is_refused_when_the_job_is_read(tmp_path):
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    code, line = cli_exit("train", job, "--run-dir", tmp_path / "run", "--set",
                          "env.step_cap=18446744073709551616")
    assert code == 2 and "env.step_cap" in line and "64-bit" in line
    assert not (tmp_path / "run").exists()
    assert load_job(job, ["env.step_cap=9223372036854775807"]).env.step_cap == 2**63 - 1
    with pytest.raises(ConfigError, match="policy.hidden"):
        load_job(job, ["policy.hidden=[4, 9223372036854775808]"])


# ----------------------------------------------------------------- 3. a closed console

def test_a_closed_stdout_does_not_stop_training(tmp_path):
    job = tmp_path / "job.toml"
    job.write_text(JOB.replace("iterations = 3", "iterations = 40").replace("every = 1", "every = 10", 1))
    run_dir = tmp_path / "run"
    process = subprocess.Popen(es_mpi_command("train", job, "--run-dir", run_dir), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=child_env(), text=True)
    process.stdout.readline()  # the first line, then the reader goes away
    process.stdout.close()
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert json.loads((run_dir / "status.json").read_text())["state"] == "done (iterations)"
    assert (run_dir / "ckpt-00000040.h5").is_file()
    assert not (run_dir / "es-mpi.lock").exists()


# ----------------------------------------------------------------- 4, 7, 12. the run directory's contents

def test_a_directory_named_like_a_checkpoint_is_skipped_and_said_once(run_copy):
    job, run_dir = run_copy
    stray = run_dir / "ckpt-00000000.h5"
    stray.mkdir()
    for stop in (5, 6):  # the prune of every iteration, then a second resume
        result = run_es("train", job, "--run-dir", run_dir, "--resume", "--set", f"stop.iterations={stop}",
                        timeout=120)
        assert result.returncode == 0, result.stderr
        assert result.stdout.count(f"ignoring {stray}: a directory, not a checkpoint") == 1
    assert stray.is_dir()
    assert sorted(p.name for p in run_dir.glob("ckpt-*.h5") if p.is_file()) == ["ckpt-00000005.h5",
                                                                                 "ckpt-00000006.h5"]


@pytest.mark.parametrize("name", ["metrics.csv", "status.json", "best.h5"])
def test_a_run_file_replaced_by_a_directory_is_one_line_and_the_lock_is_let_go(run_copy, name):
    job, run_dir = run_copy
    target = run_dir / name
    if target.exists():
        target.unlink()
    target.mkdir()
    with pytest.raises(ConfigError, match=f"{target} is a directory") as refused:
        decide_start(load_job(job, run_dir=run_dir), resume=True, force=False, log=print)
    assert "\n" not in str(refused.value)
    assert not (run_dir / run_lock.LOCK_NAME).exists()


def test_temporary_files_of_a_killed_write_are_removed_and_never_loaded(run_copy):
    job, run_dir = run_copy
    leftovers = [run_dir / ".ckpt-00000004.h5.tmp-k1ll3d", run_dir / ".metrics.csv.tmp-x7"]
    shutil.copy(run_dir / "ckpt-00000003.h5", leftovers[0])  # a whole file even: still never a checkpoint
    leftovers[1].write_text("half a row")
    theirs = run_dir / ".notes.tmp-1"
    theirs.write_text("not es-mpi's")
    said = []
    start = decide_start(load_job(job, run_dir=run_dir), resume=True, force=False, log=said.append)
    run_lock.release(start.lock)
    assert start.path.name == "ckpt-00000003.h5"
    assert not any(path.exists() for path in leftovers) and theirs.exists()
    assert said == [f"es-mpi: removed 2 temporary file(s) of an interrupted write in {run_dir}"]


# ----------------------------------------------------------------- 5, 9. the lock

def write_lock(run_dir, **holder):
    run_dir.mkdir(exist_ok=True)
    (run_dir / run_lock.LOCK_NAME).write_text(json.dumps(holder))


def test_the_same_slurm_job_never_takes_over_a_lock_whose_holder_lives(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    run_dir = tmp_path / "run"
    write_lock(run_dir, host=socket.gethostname(), pid=os.getpid(), slurm_job_id="77")  # another step, alive
    with pytest.raises(ConfigError, match="in use by es-mpi"):
        run_lock.acquire(run_dir, "job.toml", print)
    write_lock(run_dir, host="another-node", pid=12345, slurm_job_id="77", slurm_restart_count=0)
    with pytest.raises(ConfigError, match="in use by es-mpi"):  # same allocation, other node: may be alive
        run_lock.acquire(run_dir, "job.toml", print)
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")  # this is the requeued job: the old holder is gone
    said = []
    path = run_lock.acquire(run_dir, "job.toml", said.append)
    assert said == [f"es-mpi: taking over the lock of {run_dir}: Slurm job 77 was requeued (restart 1)"]
    run_lock.release(path)


def test_a_lock_that_is_no_regular_file_is_refused_without_blocking(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / run_lock.LOCK_NAME).mkdir(parents=True)
    with pytest.raises(ConfigError, match="lock must be a regular file, not a directory"):
        run_lock.acquire(run_dir, "job.toml", print)
    (run_dir / run_lock.LOCK_NAME).rmdir()
    os.mkfifo(run_dir / run_lock.LOCK_NAME)
    with no_hang(), pytest.raises(ConfigError, match="lock must be a regular file, not a FIFO"):
        run_lock.acquire(run_dir, "job.toml", print)


@pytest.mark.parametrize("pid", [10**23, 0, -1, True, "12"])
def test_a_lock_naming_no_possible_process_is_taken_over(tmp_path, pid):
    run_dir = tmp_path / "run"
    write_lock(run_dir, host=socket.gethostname(), pid=pid)
    said = []
    run_lock.release(run_lock.acquire(run_dir, "job.toml", said.append))
    assert said == [f"es-mpi: taking over the lock of {run_dir}: it names no process (PID {pid!r})"]


def test_a_lock_whose_holder_is_a_zombie_is_taken_over(tmp_path):
    """A holder that exited but was never reaped (a container init that does not reap) still
    answers kill(pid, 0); it writes nothing more, so its lock is free."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    assert wait_for(lambda: pathlib.Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z",
                    timeout=30)
    try:
        run_dir = tmp_path / "run"
        write_lock(run_dir, host=socket.gethostname(), pid=child.pid)
        said = []
        run_lock.release(run_lock.acquire(run_dir, "job.toml", said.append))
        assert said == [f"es-mpi: taking over the lock of {run_dir}: PID {child.pid} on {socket.gethostname()} is gone"]
    finally:
        child.wait()


@pytest.mark.mpi
def test_a_fifo_lock_under_two_ranks_ends_at_once_with_one_line(tmp_path):
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    os.mkfifo(run_dir / run_lock.LOCK_NAME)
    result = run_es("train", job, "-n", "2", "--run-dir", run_dir, "--resume", timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("lock must be a regular file, not a FIFO") == 1, result.stderr


# ----------------------------------------------------------------- 6, 8. what es-mpi reads

@pytest.mark.parametrize("kind", ["fifo", "directory", "/dev/zero"])
def test_a_job_file_that_is_no_regular_file_is_one_line_without_blocking(tmp_path, kind):
    job = tmp_path / "job.toml"
    if kind == "fifo":
        os.mkfifo(job)
    elif kind == "directory":
        job.mkdir()
    else:
        job = kind
    with no_hang():
        code, line = cli_exit("train", job, "--run-dir", tmp_path / "run")
    assert code == 2 and f"{job}: job file must be a regular file" in line


def test_a_job_file_larger_than_any_job_is_refused_before_it_is_read(tmp_path):
    job = tmp_path / "job.toml"
    with open(job, "wb") as fh:
        fh.truncate(64 << 20)  # sparse: costs no disk
    with pytest.raises(ConfigError, match="job file is 67,108,864 bytes, more than"):
        load_job(job)


def deep(depth, kind):
    return "[" * depth + "]" * depth if kind == "array" else "{a = " * depth + "1" + "}" * depth


@pytest.mark.parametrize("kind", ["array", "table"])
@pytest.mark.parametrize("depth", [40, 1000])
def test_deeply_nested_values_are_one_line_in_a_job_file_and_in_set(tmp_path, kind, depth):
    job = tmp_path / "job.toml"
    job.write_text(JOB + f"[log]\nx = {deep(depth, kind)}\n")
    with pytest.raises(ConfigError, match="nested more than 16 levels deep"):
        load_job(job)
    job.write_text(JOB)
    with pytest.raises(ConfigError, match="nested more than 16 levels deep"):
        load_job(job, [f"policy.hidden={deep(depth, kind)}"])


def test_a_resealed_checkpoint_with_deeply_nested_job_text_is_one_line_everywhere(run_copy):
    job, run_dir = run_copy
    path = run_dir / "ckpt-00000003.h5"
    ckpt = ckpt_io.load(path)
    ckpt.config_toml += f"\n[extra]\nx = {deep(1000, 'array')}\n"
    with h5py.File(path, "r+") as f:
        f.attrs["config"] = ckpt.config_toml
        f.attrs["checksum"] = ckpt_io.content_checksum(ckpt)
    ckpt_io.seal(path)
    for argv in (["eval", path, "--episodes", "1"], ["plot", run_dir, "--x", "frames", "-o", run_dir / "p.png"]):
        code, line = cli_exit(*argv)
        assert code == 2 and line.endswith(f"{path}: nested more than 16 levels deep")
    with pytest.raises(UserError, match="nested more than 16 levels deep"):
        decide_start(load_job(job, run_dir=run_dir), resume=True, force=False, log=print)


# ----------------------------------------------------------------- 10, 11. the launcher's inputs

@pytest.mark.parametrize("where", ["missing", "directory"])
def test_a_bad_es_mpi_mpiexec_is_one_line_naming_the_variable(tmp_path, monkeypatch, where):
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    program = tmp_path / "no-such-mpiexec" if where == "missing" else tmp_path
    monkeypatch.setenv("ES_MPI_MPIEXEC", str(program))
    code, line = cli_exit("train", job, "-n", "2", "--run-dir", tmp_path / "run")
    assert code == 2 and line.startswith(f"es-mpi: error: ES_MPI_MPIEXEC: {program}: ")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("count", ["99999999999999999999", "0", "-3", "65537"])
def test_a_rank_count_out_of_range_is_refused_before_mpiexec(tmp_path, count):
    code, line = cli_exit("train", tmp_path / "job.toml", "-n", count)
    assert code == 2 and "-n/--np: must be an integer from 1 to 65536" in line


def test_a_slurm_restart_count_that_is_no_number_is_one_line(tmp_path, monkeypatch):
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    monkeypatch.setenv("SLURM_RESTART_COUNT", "twice")
    code, line = cli_exit("train", job, "--run-dir", tmp_path / "run")
    assert code == 2 and "SLURM_RESTART_COUNT='twice'" in line


def test_a_checkpoint_path_that_is_no_regular_file_is_named_so(tmp_path):
    fifo = tmp_path / "ckpt.h5"
    os.mkfifo(fifo)
    with no_hang(), pytest.raises(CheckpointError, match="not a regular file"):
        ckpt_io.load(fifo)
