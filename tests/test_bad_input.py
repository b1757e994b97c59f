"""Bad job files, overrides, arguments and run directories: one line naming file, key and reason,
exit code 2, no traceback, nothing in an existing run directory touched; in one process and
under a real mpiexec (one line, not one per rank).

Every bad job fails in the checks `train` makes before MPI starts, so each case runs through
es-mpi's main() in this process; one case per check (PROCESS_CASES) also runs as a real process,
alone and under mpiexec, where the claim is about the process: its stderr, its exit code."""

import concurrent.futures
import os
import re

import pytest

from conftest import run_cli, run_es, run_mpi

TINY = """
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
[stop]
iterations = 2
"""

# (name, job file text or None for "no file", extra arguments, expected key, expected reason)
BAD_JOBS = [
    ("unknown section", "[polcy]\nhidden = [8]\n", [], "polcy", "unknown section"),
    ("unknown key", "[policy]\nhiden = [8]\n", [], "policy.hiden", "unknown key"),
    ("wrong type", '[stop]\niterations = "ten"\n', [], "stop.iterations", "expected an integer"),
    ("bool for int", "[stop]\niterations = true\n", [], "stop.iterations", "expected an integer"),
    ("section not a table", "run = 3\n", [], "run", "expected a table"),
    ("out of range", "[strategy]\npairs = 0\n", [], "strategy.pairs", "must be >= 1"),
    ("out of range list item", "[policy]\nhidden = [8, 0]\n", [], "policy.hidden", "must be >= 1"),
    ("bad choice word", '[policy]\nactivation = "sigmoid"\n', [], "policy.activation", "must be one of"),
    ("unknown strategy", '[strategy]\nname = "ppo"\n', [], "strategy.name", "unknown strategy"),
    ("unknown env id", '[env]\nid = "CartPol-v1"\n', [], "env.id", "unknown environment"),
    ("bad env kwargs", "[env]\nkwargs = {wheels = 4}\n", [], "env", "cannot make"),
    ("invalid TOML", "[policy\nhidden = [8]\n", [], None, "not valid TOML"),
    ("duplicate key", "[stop]\niterations = 3\niterations = 4\n", [], None, "not valid TOML"),
    ("not UTF-8", b"[run]\nname = \"\xff\xfe\"\n", [], None, "not UTF-8"),
    ("missing file", None, [], None, "cannot read job file"),
    ("bad --set syntax", "", ["--set", "policy.hidden"], "policy.hidden", "section.key=value"),
    ("bad --set path", "", ["--set", "hidden=[8]"], "hidden=[8]", "section.key=value"),
    ("--set unknown key", "", ["--set", "policy.width=3"], "policy.width", "unknown key (known"),
    ("--set wrong type", "", ["--set", "stop.iterations=many"], "stop.iterations", "(from --set)"),
    ("bins for a Discrete env", '[policy]\naction = "bins"\n', [], "policy.action", "does not fit"),
    ("continuous for a Discrete env", '[policy]\naction = "continuous"\n', [], "policy.action",
     "does not fit"),
    ("noise table smaller than policy", "[policy]\nhidden = [64, 64]\n[noise]\nsize = 1000\n", [],
     "noise.size", "smaller than the policy's 4610 parameters"),
    ("nan float", "[strategy]\nsigma = nan\n", [], "strategy.sigma", "must be finite"),
    ("inf float", "[stop]\ntarget_return = inf\n", [], "stop.target_return", "must be finite"),
]
BY_NAME = {case[0]: case for case in BAD_JOBS}

# One case for each check a job goes through before MPI starts (reading the file, decoding it, the
# sections' keys, --set, making the env, fitting the policy to the env and the noise table): these
# also run as real processes, alone and under a real mpiexec.
PROCESS_CASES = ["missing file", "not UTF-8", "unknown key", "--set wrong type", "unknown env id", "bad env kwargs",
                 "noise table smaller than policy"]


def snapshot(directory):
    """{relative path: (bytes, mtime_ns)} of every file below `directory`."""
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, directory)] = (fh.read(), os.stat(path).st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def existing_run(tmp_path_factory):
    """A real run directory (checkpoints, metrics) that bad input must leave alone."""
    base = tmp_path_factory.mktemp("existing")
    job = base / "tiny.toml"
    job.write_text(TINY)
    result = run_es("train", job, "--run-dir", base / "run", timeout=120)
    assert result.returncode == 0, result.stderr
    assert (base / "run" / "ckpt-00000002.h5").exists()
    return base / "run"


def mpiexec_notice_removed(stderr):
    """stderr without Open MPI's own framed notice that a rank exited with a non-zero status
    (mpiexec prints it whatever the program does; it cannot be silenced but by exit code 0)."""
    blocks, current = [], []
    for line in stderr.splitlines():
        if set(line) == {"-"}:
            blocks.append(current)
            current = []
        else:
            current.append(line)
    blocks.append(current)
    return [line for block in blocks if not any("exited with non-zero status" in x for x in block)
            for line in block if line.strip()]


def bad_job_command(directory, text, extra, run_dir):
    path = directory / "bad.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    return path, ["train", path, *extra, "--run-dir", run_dir, "--force"]


def assert_one_line(lines, path, key, reason):
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("es-mpi: error: ")
    assert str(path) in line
    if key is not None:
        assert f": {key}: " in line
    assert reason in line
    assert "Traceback" not in line


def run_bad_jobs(base, run_dir, runner, cases, workers=4):
    """The `cases` through `runner`, a few at a time when they are processes (each mostly waits on
    start-up); main() in this process runs them one by one (workers=1).

    Returns the run directory's snapshot before and after, and {case name: (job path, result)}.
    """
    commands = {}
    for name, text, extra, _, _ in cases:
        directory = base / name.replace(" ", "_").replace("-", "")
        directory.mkdir()
        commands[name] = bad_job_command(directory, text, extra, run_dir)
    before = snapshot(run_dir)
    if workers == 1:
        results = {name: (path, runner(*args)) for name, (path, args) in commands.items()}
    else:
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {name: pool.submit(runner, *args) for name, (_, args) in commands.items()}
            results = {name: (commands[name][0], future.result()) for name, future in futures.items()}
    return before, snapshot(run_dir), results


@pytest.fixture(scope="module")
def in_process_results(tmp_path_factory, existing_run):
    return run_bad_jobs(tmp_path_factory.mktemp("main"), existing_run, run_cli, BAD_JOBS, workers=1)


@pytest.fixture(scope="module")
def one_process_results(tmp_path_factory, existing_run):
    return run_bad_jobs(tmp_path_factory.mktemp("one"), existing_run, lambda *a: run_es(*a, timeout=60),
                        [BY_NAME[name] for name in PROCESS_CASES])


@pytest.fixture(scope="module")
def mpiexec_results(tmp_path_factory, existing_run):
    return run_bad_jobs(tmp_path_factory.mktemp("mpi"), existing_run, lambda *a: run_mpi(2, *a, timeout=60),
                        [BY_NAME[name] for name in PROCESS_CASES])


def assert_refused(outcome, name, key, reason):
    """Case `name` of a run_bad_jobs outcome: exit 2, one line naming file, key and reason, nothing changed."""
    before, after, results = outcome
    path, result = results[name]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert_one_line(result.stderr.splitlines(), path, key, reason)
    assert result.stdout == ""
    assert after == before


@pytest.mark.parametrize("name, text, extra, key, reason", BAD_JOBS, ids=[case[0] for case in BAD_JOBS])
def test_bad_job_in_main(in_process_results, name, text, extra, key, reason):
    assert_refused(in_process_results, name, key, reason)


@pytest.mark.parametrize("name, text, extra, key, reason", [BY_NAME[name] for name in PROCESS_CASES],
                         ids=PROCESS_CASES)
def test_bad_job_one_process(one_process_results, name, text, extra, key, reason):
    assert_refused(one_process_results, name, key, reason)


@pytest.mark.mpi
@pytest.mark.parametrize("name, text, extra, key, reason", [BY_NAME[name] for name in PROCESS_CASES],
                         ids=PROCESS_CASES)
def test_bad_job_under_mpiexec(mpiexec_results, name, text, extra, key, reason):
    before, after, results = mpiexec_results
    path, result = results[name]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert_one_line(mpiexec_notice_removed(result.stderr), path, key, reason)
    assert result.stdout == ""
    assert after == before


def test_bad_job_with_launcher_flag_is_refused_before_mpiexec_starts(tmp_path, existing_run):
    before = snapshot(existing_run)
    path, args = bad_job_command(tmp_path, "[strategy]\npairs = -1\n", ["-n", "2"], existing_run)
    result = run_es(*args, timeout=60)
    assert result.returncode == 2
    assert_one_line(result.stderr.splitlines(), path, "strategy.pairs", "must be >= 1")
    assert snapshot(existing_run) == before


def runtime_noise_removed(stderr):
    """Also drop Open MPI's PMIx teardown complaints: ranks that started MPI and then exit
    non-zero (the run-directory checks need MPI: rank 0 decides) sometimes make prterun print
    `[host:pid] PMIX ERROR: PMIX_ERR_UNREACH ...`."""
    return [line for line in mpiexec_notice_removed(stderr) if not re.match(r"^\[[^\]]+\] PMIX ERROR: ", line)]


def test_filters_keep_everything_but_open_mpi_output():
    notice = "\n".join(["-" * 74, "prterun detected that one or more processes exited with non-zero status,",
                        "   Exit code:    2", "-" * 74])
    pmix = "[vm:123] PMIX ERROR: PMIX_ERR_UNREACH in file pmix_server.c at line 3146"
    assert mpiexec_notice_removed(f"es-mpi: error: x\n{notice}\n") == ["es-mpi: error: x"]
    assert mpiexec_notice_removed(f"a\nb\n{pmix}\n") == ["a", "b", pmix]
    assert runtime_noise_removed(f"a\n{pmix}\n{notice}\n") == ["a"]


# ----------------------------------------------------------------- run directories


@pytest.fixture
def tiny_job(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def train(job, run_dir, *extra, ranks=1):
    args = ("train", job, "--run-dir", run_dir, *extra)
    result = run_es(*args, timeout=120) if ranks == 1 else run_mpi(ranks, *args, timeout=120)
    return result


@pytest.mark.parametrize("ranks", [1, pytest.param(2, marks=pytest.mark.mpi)])
def test_existing_run_dir_is_refused_without_resume_or_force(tmp_path, tiny_job, existing_run, ranks):
    before = snapshot(existing_run)
    result = train(tiny_job, existing_run, ranks=ranks)
    assert result.returncode == 2
    lines = runtime_noise_removed(result.stderr)
    assert_one_line(lines, tiny_job, "run.dir", "already exists")
    assert "--resume" in lines[0] and "--force" in lines[0]
    assert snapshot(existing_run) == before


def test_force_starts_over(tmp_path, tiny_job):
    run_dir = tmp_path / "run"
    assert train(tiny_job, run_dir).returncode == 0
    (run_dir / "ckpt-00000099.h5").write_bytes(b"stale")
    result = train(tiny_job, run_dir, "--force")
    assert result.returncode == 0, result.stderr
    assert "resumed" not in result.stdout
    assert "it     1 |" in result.stdout
    names = {p.name for p in run_dir.iterdir()}
    assert "ckpt-00000099.h5" not in names
    assert {"ckpt-00000001.h5", "ckpt-00000002.h5", "metrics.csv"} <= names


def test_resume_in_an_empty_or_missing_dir_starts_fresh(tmp_path, tiny_job):
    (tmp_path / "empty").mkdir()
    for run_dir in (tmp_path / "empty", tmp_path / "missing"):
        result = train(tiny_job, run_dir, "--resume")
        assert result.returncode == 0, result.stderr
        assert "resumed" not in result.stdout
        assert (run_dir / "ckpt-00000002.h5").exists()


@pytest.mark.parametrize("override, key", [
    ("strategy.sigma=0.5", "strategy.sigma"),
    ("env.id=Acrobot-v1", "env.id"),
    ("policy.hidden=[5]", "policy.hidden"),
    ("run.seed=7", "run.seed"),
])
def test_resume_with_a_different_job_is_refused(tmp_path, tiny_job, existing_run, override, key):
    before = snapshot(existing_run)
    result = train(tiny_job, existing_run, "--resume", "--set", override, "--set", "stop.iterations=3")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert "ckpt-00000002.h5" in lines[0] and key in lines[0] and "cannot resume" in lines[0]
    assert snapshot(existing_run) == before


def test_run_dir_that_is_a_file_is_refused(tmp_path, tiny_job):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("keep me")
    result = train(tiny_job, not_a_dir)
    assert result.returncode == 2
    assert_one_line(result.stderr.splitlines(), tiny_job, "run.dir", "cannot use")
    assert not_a_dir.read_text() == "keep me"


# ----------------------------------------------------------------- arguments and help


@pytest.mark.parametrize("args", [[], ["train"], ["eval"], ["inspect"]])
def test_help_explains_and_exits_0(args):
    result = run_es(*args, "--help", timeout=60)
    assert result.returncode == 0
    assert result.stderr == ""
    assert "usage: es-mpi" in result.stdout
    assert "exit codes" in result.stdout or not args


def test_train_help_names_its_options():
    text = run_es("train", "--help", timeout=60).stdout
    for option in ("--set", "--resume", "--force", "--run-dir", "-n", "es-mpi keys"):
        assert option in text


@pytest.mark.parametrize("args, words", [
    ([], "required"),
    (["fly"], "invalid choice"),
    (["train"], "required: job"),
    (["eval"], "required: checkpoint"),
    (["train", "job.toml", "--resume", "--force"], "not allowed with"),
    (["train", "job.toml", "--frobnicate"], "unrecognized arguments"),
    (["eval", "x.h5", "--episodes", "many"], "invalid int value"),
    (["train", "job.toml", "-n", "two"], "must be an integer from 1 to 65536"),
])
def test_bad_argument_gives_one_line_and_exit_2(args, words):
    result = run_es(*args, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert words in lines[0] and "(see --help)" in lines[0]
