"""A quiet console: no third-party warning wall, no Open MPI notice after a planned exit."""

import signal
import subprocess
import time

import pytest

from conftest import REPO, child_env, es_mpi_command
from es_mpi.commands.launcher import filter_notices

HALFCHEETAH_JOB = """
[env]
id = "HalfCheetah-v5"
step_cap = 50
[policy]
hidden = []
[strategy]
pairs = 4
[noise]
size = 100_000
[eval]
every = 1
episodes = 2
[run]
lanes = 4
[checkpoint]
every = 1
[stop]
iterations = 100000
"""

CRASHING_JOB = """
[run]
placement = "static"  # rank 1 surely plays (dynamic claims could leave it nothing on a loaded machine)
[env]
id = "tests.faulty_env:FaultyCartPole-v0"
[policy]
hidden = [4]
[strategy]
pairs = 2
[noise]
size = 10_000
[stop]
iterations = 3
"""


def notice(code):
    return ["-" * 74 + "\n", "prterun detected that one or more processes exited with non-zero status,\n",
            "thus causing the job to be terminated. The first process to do so was:\n", "\n",
            "   Process name: [prterun-vm-1@1,0]\n", f"   Exit code:    {code}\n", "-" * 74 + "\n"]


def filtered(lines):
    kept = []
    held = filter_notices(iter(lines), kept.append)
    return kept + [f"held: {line}" for line in held]


@pytest.mark.parametrize("code", [2, 3])
def test_the_notice_of_a_planned_exit_is_dropped(code):
    assert filtered(["es-mpi: error: x\n", *notice(code), "after\n"]) == ["es-mpi: error: x\n", "after\n"]


def test_a_rank_killed_by_a_forwarded_stop_is_dropped_only_after_a_stop():
    killed = ["-" * 74 + "\n", "prterun noticed that process rank 0 with PID 21353 on node vm exited on\n",
              "signal 10 (User defined signal 1).\n", "-" * 74 + "\n"]
    segfault = [line.replace("signal 10 (User defined signal 1)", "signal 11 (Segmentation fault)") for line in killed]
    kept = []
    filter_notices(iter(killed + segfault), kept.append, stop_forwarded=lambda: True)
    assert kept == segfault
    kept = []
    filter_notices(iter(killed), kept.append)
    assert kept == killed


def test_pmix_teardown_lines_are_held_for_the_exit_code():
    pmix = "[vm:123] PMIX ERROR: PMIX_ERR_UNREACH in file pmix_server.c at line 3146\n"
    assert filtered(["a\n", pmix, "b\n"]) == ["a\n", "b\n", f"held: {pmix}"]


def test_a_crash_keeps_the_notice_and_other_framed_blocks():
    other = ["-" * 74 + "\n", "MPI_ABORT was invoked on rank 1\n", "-" * 74 + "\n"]
    assert filtered([*other, *notice(1)]) == [*other, *notice(1)]
    assert filtered(["Traceback\n", *notice(1)[:3]]) == ["Traceback\n", *notice(1)[:3]]  # never closed


def launched(job, run_dir, tmp_path, cwd=None):
    out, err = open(tmp_path / "out.log", "w"), open(tmp_path / "err.log", "w")
    command = es_mpi_command("train", job, "--run-dir", run_dir, "-n", "2")
    return subprocess.Popen(command, env=child_env(), stdout=out, stderr=err, cwd=cwd or tmp_path)


@pytest.mark.mpi
def test_ctrl_c_under_the_launcher_prints_only_progress_and_one_outcome_line(write_job, tmp_path):
    run_dir = tmp_path / "run"
    process = launched(write_job(HALFCHEETAH_JOB), run_dir, tmp_path)
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "ckpt-00000002.h5").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 3
    finally:
        process.kill()
    out, err = (tmp_path / "out.log").read_text(), (tmp_path / "err.log").read_text()
    assert err == "es-mpi train: 2 ranks ended with exit code 3 (stopped after writing a checkpoint; " \
                  "continue with --resume)\n"
    lines = out.splitlines()
    assert lines[0].startswith("es-mpi: HalfCheetah-v5, openai_es")
    assert len(lines) >= 4 and all(line.startswith("it ") for line in lines[1:-1])
    assert lines[-1].startswith("stopped by signal SIGUSR1")
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()


@pytest.mark.mpi
def test_a_crash_under_the_launcher_keeps_the_traceback(write_job, tmp_path):
    process = launched(write_job(CRASHING_JOB), tmp_path / "run", tmp_path, cwd=REPO)
    assert process.wait(timeout=120) not in (0, 2, 3)
    err = (tmp_path / "err.log").read_text()
    assert "Traceback" in err and "injected failure on this rank" in err
    assert "ended with exit code" not in err
