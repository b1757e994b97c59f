"""Hardening (issue 12): each hostile input or fault found by review, reproduced and refused."""

import dataclasses
import json

import numpy as np
import pytest

from conftest import PYTHON, run, run_es
from strategy_cases import learns_from_fitness_alone, strategy_cases

from es_mpi.parts.job_file import job_from_text
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


# every registered strategy whose tell needs no environment; these shrunk, CMA-ES in both variants
CHECKSUM_STRATEGIES = strategy_cases({"openai_es": {"": dict(pairs=3)}, "ga": {"": dict(population=6)},
                                      "cma_es": {"full": dict(variant="full"), "separable": dict(variant="separable")}},
                                     keep=learns_from_fitness_alone)


@pytest.mark.parametrize("name, settings", list(CHECKSUM_STRATEGIES.values()), ids=list(CHECKSUM_STRATEGIES))
def test_the_agreement_checksum_covers_every_array_of_the_state(name, settings):
    """Item 17: a change to any one entry of the strategy state, or to the observation count, changes the checksum."""
    import numpy as np

    from es_mpi.parts.strategies import STRATEGIES, make_strategy
    from es_mpi.run.agreement import state_checksum
    from es_mpi.run.noise import local_table
    from es_mpi.run.obstat import ObsStat

    strategy = make_strategy(STRATEGIES.settings(name, **settings), np.zeros(5, dtype=np.float32),
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


TINY_JOB = """
[env]
id = "CartPole-v1"
step_cap = 30
[policy]
hidden = [4]
[strategy]
pairs = 2
[noise]
size = 10_000
[eval]
every = 1
episodes = 2
[checkpoint]
every = 1
keep = 1
[stop]
iterations = 2
"""


@pytest.fixture
def trained(tmp_path):
    """A job file and its run directory after 2 iterations, checkpoint every iteration, keep 1."""
    job = tmp_path / "job.toml"
    job.write_text(TINY_JOB)
    run_dir = tmp_path / "run"
    result = run_es("train", job, "--run-dir", run_dir, timeout=120)
    assert result.returncode == 0, result.stderr
    return job, run_dir


def test_pruning_counts_only_valid_checkpoints(trained):
    """Item 10: a truncated ckpt-9 beside a good ckpt-2 with keep = 1 must not make every new checkpoint vanish."""
    job, run_dir = trained
    from es_mpi.records import checkpoint as ckpt_io

    good = run_dir / "ckpt-00000002.h5"
    (run_dir / "ckpt-00000009.h5").write_bytes(good.read_bytes()[:2000])
    resumed = run_es("train", job, "--run-dir", run_dir, "--resume", "--set", "stop.iterations=4", timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert ckpt_io.load(run_dir / "ckpt-00000004.h5").iteration == 4
    assert not good.exists() and not (run_dir / "ckpt-00000003.h5").exists()
    again = run_es("train", job, "--run-dir", run_dir, "--resume", "--set", "stop.iterations=5", timeout=120)
    assert again.returncode == 0, again.stderr
    assert "resumed from iteration 4 " in again.stdout


@pytest.mark.parametrize("victim_name", ["metrics.csv", "status.json", "ckpt-00000003.h5", "best.h5"])
def test_files_es_mpi_writes_never_follow_a_planted_link(trained, tmp_path, victim_name):
    """Item 3: a symlink planted where es-mpi writes is replaced, and its target left alone."""
    job, run_dir = trained
    target = tmp_path / "precious.txt"
    target.write_text("precious")
    link = run_dir / victim_name
    link.unlink(missing_ok=True)
    link.symlink_to(target)
    resumed = run_es("train", job, "--run-dir", run_dir, "--resume", "--set", "stop.iterations=3",
                     "--set", "checkpoint.keep=3", timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert target.read_text() == "precious"
    assert not link.is_symlink() and link.is_file()


def test_non_finite_parameters_stop_the_run_with_one_line(tmp_path):
    """Item 18: strategy.sigma = 1e308 makes NaN parameters: exit 1 at the first one, one line, no bad best.h5."""
    job = tmp_path / "job.toml"
    job.write_text(TINY_JOB.replace("pairs = 2", 'name = "simple_es"\npopulation = 4'))
    run_dir = tmp_path / "run"
    result = run_es("train", job, "--run-dir", run_dir, "--set", "strategy.sigma=1e308", "--set", "stop.iterations=5",
                    timeout=120)
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr  # numpy's overflow warnings may come before the one error line
    lines = [line for line in result.stderr.splitlines() if line.startswith("es-mpi:")]
    assert len(lines) == 1 and "not finite" in lines[0], lines
    from es_mpi.records import checkpoint as ckpt_io

    written = sorted(run_dir.glob("*.h5"))
    bad_iteration = int(lines[0].split("iteration ")[1].split(":")[0])
    assert all(ckpt_io.load(path).iteration < bad_iteration for path in written)
    assert all(np.isfinite(ckpt_io.load(path).params).all() for path in written)
    last_good = ckpt_io.periodic_checkpoints(run_dir)[0][1] if written else None
    assert f"last good checkpoint {last_good or 'none'}" in lines[0]
    assert json.loads((run_dir / "status.json").read_text())["state"] == "failed"


def test_a_diverged_evaluation_episode_never_makes_an_evaluation_look_better():
    """Item 16: one survivor of ten does not make a good evaluation; the diverged ones count as -inf."""
    import math

    import numpy as np

    from es_mpi.run.evaluation import evaluation_return

    returns = np.array([500.0] + [-math.inf] * 9)
    assert evaluation_return(returns) == -math.inf
    assert evaluation_return(np.array([1.0, math.nan])) == -math.inf
    assert evaluation_return(np.array([1.0, 3.0])) == 2.0


@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB tmpfs (needs root and mount; skipped elsewhere)."""
    import subprocess

    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount_point)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


def test_a_full_disk_while_writing_a_checkpoint_is_one_line_and_keeps_the_previous_one(small_disk, tmp_path):
    """Item 14: ENOSPC mid-checkpoint: one line naming the file and the OS error, exit 1, ckpt-2 intact, no temp file."""
    import os

    from es_mpi.records import checkpoint as ckpt_io

    job = tmp_path / "job.toml"
    job.write_text(TINY_JOB.replace("keep = 1", "keep = 3"))
    run_dir = small_disk / "run"
    first = run_es("train", job, "--run-dir", run_dir, timeout=120)
    assert first.returncode == 0, first.stderr
    previous = (run_dir / "ckpt-00000002.h5").read_bytes()
    stat = os.statvfs(small_disk)
    (small_disk / "filler").write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize - 12 * 1024))
    result = run_es("train", job, "--run-dir", run_dir, "--resume", "--set", "stop.iterations=3", timeout=120)
    assert result.returncode == 1, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "ckpt-00000003.h5" in lines[0] and "No space left on device" in lines[0], lines
    assert (run_dir / "ckpt-00000002.h5").read_bytes() == previous
    assert ckpt_io.load(run_dir / "ckpt-00000002.h5").iteration == 2
    assert sorted(p.name for p in run_dir.iterdir() if p.name.startswith(".")) == []
    assert not (run_dir / "ckpt-00000003.h5").exists()


def test_a_noise_table_larger_than_the_free_shared_memory_is_refused_before_allocating(tmp_path):
    """Item 14: one line with the bytes needed and free, and advice; exit 2."""
    from es_mpi.run.noise import shared_memory_free

    free = shared_memory_free()
    if free is None:
        pytest.skip("no /dev/shm here")
    entries = free // 4 + (1 << 24)
    job = tmp_path / "job.toml"
    job.write_text(TINY_JOB.replace("size = 10_000", f"size = {entries}"))
    result = run_es("train", job, "--run-dir", tmp_path / "run", timeout=120)
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("es-mpi:")]
    assert len(lines) == 1 and "noise.size" in lines[0] and f"needs {entries * 4} bytes" in lines[0], lines
    assert "bytes free" in lines[0] and "--shm-size" in lines[0]


def test_ranks_started_with_n_do_not_import_from_the_working_directory(tmp_path):
    """Item 2: a csv.py in the working directory must not run inside the ranks (the launcher runs with -P,
    as the `es-mpi` script does not put the working directory on sys.path either)."""
    import subprocess
    import sys

    if sys.version_info < (3, 11):
        pytest.skip("python -P needs Python 3.11")

    from conftest import child_env, es_mpi_command

    job = tmp_path / "job.toml"
    job.write_text(TINY_JOB.replace("iterations = 2", "iterations = 1"))
    marker = tmp_path / "planted-ran"
    (tmp_path / "csv.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\nraise SystemExit('planted csv.py ran')\n")
    launcher = [PYTHON, "-P", *es_mpi_command("train", job, "--run-dir", tmp_path / "run", "-n", "2")[1:]]
    result = subprocess.run(launcher, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300, env=child_env())
    assert not marker.exists(), result.stderr[-3000:]
    assert result.returncode == 0, result.stderr[-3000:]


def _processes_naming(text):
    """PIDs whose command line contains `text` (to check, and to clean up what this test started)."""
    import os

    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    if text.encode() in fh.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


def test_killing_the_n_launcher_ends_mpiexec_and_the_ranks(tmp_path):
    """Item 7: SIGKILL of `es-mpi train -n 2` must not leave mpiexec and the ranks training, re-parented."""
    import os
    import signal
    import subprocess
    import time

    from conftest import child_env, es_mpi_command

    job = tmp_path / "job.toml"
    job.write_text(TINY_JOB.replace("iterations = 2", "iterations = 100000"))
    launcher = subprocess.Popen(es_mpi_command("train", job, "--run-dir", tmp_path / "run", "-n", "2"),
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=child_env())
    try:
        for line in launcher.stdout:
            if line.startswith("it "):
                break
        launcher.kill()
        launcher.wait()
        deadline = time.monotonic() + 60  # a guard against a hang, not a timing claim
        while _processes_naming(str(job)) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = _processes_naming(str(job))
        assert not left, f"still running after the launcher died: {left}"
    finally:
        for pid in _processes_naming(str(job)):
            os.kill(pid, signal.SIGKILL)


def test_an_abort_prints_open_mpis_message_not_missing_help_file_noise():
    """Item 20: an MPI abort, in a singleton and under the -n launcher's mpiexec, finds Open MPI's help files."""
    import subprocess

    from conftest import child_env
    from es_mpi.commands.launcher import find_mpiexec, mpi_environment

    abort = "import es_mpi.run.mpi as m; m.world().Abort(1)"
    environment = {k: v for k, v in child_env().items() if k != "OPAL_PREFIX"}
    singleton = subprocess.run([PYTHON, "-c", abort], capture_output=True, text=True, timeout=120, env=environment)
    launched = subprocess.run([find_mpiexec(None), "-n", "1", PYTHON, "-c", abort], capture_output=True, text=True,
                              timeout=120, env={**mpi_environment(), "PYTHONPATH": environment["PYTHONPATH"]})
    for result in (singleton, launched):
        assert result.returncode != 0
        assert "You were supposed to get help" not in result.stderr, result.stderr
        assert "MPI_ABORT was invoked" in result.stderr, result.stderr


def test_objective_jobs_name_their_objective_not_cartpole(tmp_path):
    """Item 20: eval and status.json of an objective job name the function, never the default env id."""
    job = tmp_path / "job.toml"
    job.write_text('[objective]\nfunction = "es_mpi.objectives:sphere"\ndim = 5\n[strategy]\nname = "simple_es"\n'
                   "population = 4\n[noise]\nsize = 10_000\n[eval]\nevery = 1\nepisodes = 1\n[stop]\niterations = 1\n")
    run_dir = tmp_path / "run"
    trained = run_es("train", job, "--run-dir", run_dir, timeout=120)
    assert trained.returncode == 0, trained.stderr
    status = json.loads((run_dir / "status.json").read_text())
    assert status["objective"] == "es_mpi.objectives:sphere" and status["env"] is None
    evaluated = run_es("eval", run_dir, timeout=120)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "CartPole" not in evaluated.stdout and "es_mpi.objectives:sphere" in evaluated.stdout.splitlines()[0]


def _rewritten(source, target, change):
    """Load a real checkpoint, change it, save it with a fresh checksum: wrong contents that pass the checksum."""
    from es_mpi.records import checkpoint as ckpt_io

    ckpt = ckpt_io.load(source)
    change(ckpt)
    ckpt_io.save(target, ckpt)
    return target


WRONG_CONTENTS = [  # (command, change, field named in the error)
    ("eval", lambda c: c.obstat.__setitem__("sum", np.zeros(7)), "obstat"),
    ("resume", lambda c: c.strategy.__setitem__("params", np.zeros(3, dtype=np.float32)), "strategy/params"),
    ("resume", lambda c: c.strategy.pop("optimizer/m"), "strategy/optimizer/m"),
    ("eval", lambda c: setattr(c, "iteration", -5), "iteration"),
    ("resume", lambda c: setattr(c, "iteration", -5), "iteration"),
    ("eval", lambda c: c.metrics.__setitem__("return_mean", c.metrics["return_mean"][:1]), "metrics/return_mean"),
    ("resume", lambda c: setattr(c, "step_cap", 0), "step_cap"),
    ("eval", lambda c: setattr(c, "params", np.zeros((2, 2), dtype=np.float32)), "params"),
    ("eval", lambda c: c.obstat.__setitem__("count", np.float32(3)), "obstat"),
    ("eval", lambda c: c.strategy.__setitem__("params", np.array(["x"] * 3, dtype="S1")), "strategy/params"),
]


@pytest.mark.parametrize("command, change, field", WRONG_CONTENTS)
def test_wrong_contents_with_a_good_checksum_are_one_line_naming_file_and_field(trained, command, change, field):
    """Items 11 and 4: each field validated against the job: exit 2, one line with the file and the field."""
    job, run_dir = trained
    newest = run_dir / "ckpt-00000002.h5"
    if command == "eval":
        path = _rewritten(newest, run_dir.parent / "wrong.h5", change)
        result = run_es("eval", path, "--episodes", "1", timeout=120)
    else:
        path = _rewritten(newest, newest, change)
        result = run_es("train", job, "--run-dir", run_dir, "--resume", "--set", "stop.iterations=3", timeout=120)
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and field in lines[0], lines
    assert not (run_dir / "ckpt-00000003.h5").exists()


def test_a_small_file_declaring_a_huge_dataset_is_refused_before_it_is_read(trained, tmp_path):
    """Item 4: a few-KB checkpoint declaring a 200 MB dataset is refused without the memory to hold it."""
    import shutil

    import h5py

    from es_mpi.records import checkpoint as ckpt_io

    _, run_dir = trained
    path = tmp_path / "huge.h5"
    shutil.copy(run_dir / "ckpt-00000002.h5", path)
    with h5py.File(path, "a") as f:
        f["strategy"].create_dataset("huge", shape=(50_000_000,), dtype="f4", chunks=(1 << 20,))
    ckpt_io.seal(path)  # a well-sealed file: only the layout check can refuse it
    assert path.stat().st_size < 100_000
    # VmHWM is this program's own peak: ru_maxrss would also count the parent's memory, which a
    # vfork'ed child inherits until exec (pytest's, hundreds of MB late in a full run).
    probe = ("import sys; from es_mpi.records import checkpoint as c\n"
             "try:\n    c.load(sys.argv[1])\nexcept c.CheckpointError as e:\n    print(e)\n"
             "print([line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')][0])")
    result = run([PYTHON, "-c", probe, str(path)])
    assert result.returncode == 0, result.stderr
    message, peak_kib = result.stdout.strip().splitlines()
    assert "strategy/huge" in message and str(path) in message, message
    assert int(peak_kib) < 200_000, f"peak memory {peak_kib} KiB: the dataset was read"


def test_a_damaged_checkpoint_is_refused_before_hdf5_parses_it(trained, tmp_path):
    """Fuzzing found byte flips that crash libhdf5 (a segfault) when it reads the attributes: the
    seal (a digest of the file in the HDF5 user block) is checked first, for every flip and cut."""
    from es_mpi.core.errors import CheckpointError
    from es_mpi.records import checkpoint as ckpt_io

    _, run_dir = trained
    data = (run_dir / "ckpt-00000002.h5").read_bytes()
    path = tmp_path / "damaged.h5"
    for offset in range(ckpt_io.USER_BLOCK, len(data), 97):
        path.write_bytes(data[:offset] + bytes([data[offset] ^ 0x40]) + data[offset + 1:])
        with pytest.raises(CheckpointError, match="digest mismatch"):
            ckpt_io.check_seal(path)
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="digest mismatch"):
        ckpt_io.load(path)


def test_launched_ranks_are_not_pinned_so_two_workstation_runs_use_different_cores(monkeypatch):
    """Open MPI pins a 1-rank job to core 0; two runs side by side would share that core. The
    launcher's mpiexec leaves the rank free to run on every core this process may use; under
    Slurm (SLURM_JOB_ID set) Open MPI's binding is kept, the job's cpuset keeps jobs apart."""
    import os
    import subprocess

    from conftest import child_env
    from es_mpi.commands.launcher import find_mpiexec, mpi_environment

    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    allowed = sorted(os.sched_getaffinity(0))
    show = "import os; print(sorted(os.sched_getaffinity(0)))"
    launched = subprocess.run([find_mpiexec(None), "-n", "1", PYTHON, "-c", show], capture_output=True, text=True,
                              timeout=120, env={**mpi_environment(), "PYTHONPATH": child_env()["PYTHONPATH"]})
    assert launched.returncode == 0, launched.stderr
    assert launched.stdout.strip() == str(allowed)
    monkeypatch.setenv("SLURM_JOB_ID", "1")
    monkeypatch.delenv("PRTE_MCA_hwloc_default_binding_policy", raising=False)
    assert "PRTE_MCA_hwloc_default_binding_policy" not in mpi_environment()
