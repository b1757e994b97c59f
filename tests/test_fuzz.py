"""Property-based fuzzing (hypothesis): mutated job files and --set values, corrupted checkpoints,
and what surrounds them: files that are not regular files, nesting depth, integers beyond int64,
non-UTF-8 bytes in text and in file names, environment variables.

Every case must end as es-mpi ends: a result (exit 0) or a one-line UserError (exit 2). Any
other exception, a traceback or a hang fails. Most cases call the parser and the loader in this
process; a few run the real `es-mpi` command. Each property is bounded by max_examples, so the
file runs in well under two minutes on one core; the cases run are printed at the end (-s).
"""

import collections
import dataclasses
import io
import os
import pathlib
import shutil
import socket

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import no_hang, run_es
from es_mpi.commands.launcher import find_mpiexec
from es_mpi.core.array_state import StateError
from es_mpi.core.environment import check_environment
from es_mpi.core.errors import UserError
from es_mpi.parts.job_file import job_from_text, load_job
from es_mpi.job.sections import SECTIONS
from es_mpi.records import checkpoint as ckpt_io

CASES = collections.Counter()
# derandomize: CI runs the same cases every time, so a failure there can be run again here.
FAST = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
SLOW = settings(max_examples=4, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

JOB = """[env]
id = "CartPole-v1"
step_cap = 30
[policy]
hidden = [4]
[strategy]
pairs = 2
sigma = 0.05
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
KEYS = sorted(f"{section}.{field.name}" for section, cls in SECTIONS.items() for field in dataclasses.fields(cls))
# Values that never name a module: a job file you pass yourself may (it is trusted), a fuzzer must not.
SCALARS = st.one_of(st.integers(-2**70, 2**70), st.floats(allow_nan=True), st.booleans(),
                    st.text(alphabet=st.characters(blacklist_characters=":"), max_size=12),
                    st.lists(st.integers(-5, 70), max_size=4))


@pytest.fixture(scope="module", autouse=True)
def report_cases():
    yield
    print("\nfuzz cases run: " + ", ".join(f"{name} {count}" for name, count in sorted(CASES.items()))
          + f"; total {sum(CASES.values())}")


def toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(value), repr(value))
    if isinstance(value, str):
        import json

        return json.dumps(value).replace("\x7f", "\\u007f")
    return repr(value)


def parse_or_refuse(text, overrides=()):
    """The parser's two allowed endings: a Job that round-trips through its own text, or a UserError."""
    try:
        job = job_from_text(text, "fuzz.toml", list(overrides))
    except UserError:
        return None
    again = job_from_text(job.to_toml(), "fuzz.toml")
    assert again.to_toml() == job.to_toml()  # what a checkpoint stores reads back as itself (the section
    # of the other task kind is not stored: objective.* of an environment job, env.* of an objective job)
    return job


LINE_EDITS = st.lists(st.tuples(st.sampled_from(["drop", "dup", "value", "garble", "key"]),
                                st.integers(0, 40), SCALARS, st.binary(max_size=6), st.sampled_from(KEYS)),
                      min_size=1, max_size=4)


def mutate(text, edits):
    lines = text.splitlines()
    for kind, index, value, junk, key in edits:
        i = index % len(lines)
        if kind == "drop" and len(lines) > 1:
            del lines[i]
        elif kind == "dup":
            lines.insert(i, lines[i])
        elif kind == "value" and "=" in lines[i]:
            lines[i] = lines[i].split("=")[0] + "= " + toml_value(value)
        elif kind == "garble":
            lines[i] = lines[i][: len(lines[i]) // 2] + junk.decode("latin-1")
        elif kind == "key":
            lines.insert(i, f"{key.split('.')[1]} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


@FAST
@given(LINE_EDITS)
def test_mutated_job_files_parse_or_give_a_one_line_error(edits):
    CASES["job file mutations"] += 1
    parse_or_refuse(mutate(JOB, edits))


@FAST
@given(st.lists(st.tuples(st.sampled_from(KEYS), SCALARS), max_size=4), st.lists(st.text(max_size=20), max_size=2))
def test_random_set_values_parse_or_give_a_one_line_error(pairs, raw):
    CASES["--set values"] += 1
    parse_or_refuse(JOB, [f"{key}={toml_value(value)}" for key, value in pairs] + list(raw))


@SLOW
@given(st.lists(st.tuples(st.sampled_from(["strategy.sigma", "stop.iterations", "policy.hidden", "run.name",
                                           "noise.size", "eval.episodes", "env.step_cap"]), SCALARS),
                min_size=1, max_size=2))
def test_es_mpi_train_with_random_set_values_exits_0_or_2_with_one_line(tmp_path_factory, pairs):
    CASES["train --set runs"] += 1
    folder = tmp_path_factory.mktemp("train")
    job = folder / "job.toml"
    job.write_text(JOB.replace("iterations = 2", "iterations = 1"))
    args = [arg for key, value in pairs for arg in ("--set", f"{key}={toml_value(value)}")]
    result = run_es("train", job, "--run-dir", folder / "run", *args, timeout=120)
    assert_cli_ending(result)


def assert_cli_ending(result):
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    if result.returncode == 2:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    else:
        assert result.returncode == 0, (result.returncode, result.stderr[-3000:])


# ----------------------------------------------------------------- checkpoints

@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """A real two-iteration run: its job file and its newest checkpoint."""
    folder = tmp_path_factory.mktemp("real")
    job = folder / "job.toml"
    job.write_text(JOB)
    result = run_es("train", job, "--run-dir", folder / "run", timeout=120)
    assert result.returncode == 0, result.stderr
    return job, folder / "run" / "ckpt-00000002.h5"


def recompute_checksum(path):
    """Give a tampered file the checksum of what it now holds, so that only validation can catch it."""
    try:
        with h5py.File(path, "r") as f:
            ckpt = ckpt_io.read(f)
        checksum = ckpt_io.content_checksum(ckpt)
    except Exception:  # the tampering broke what the checksum covers; the file stays as it is
        return
    with h5py.File(path, "a") as f:
        f.attrs["checksum"] = checksum
    ckpt_io.seal(path)


def dataset_names(path):
    names = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, node: names.append(name) if isinstance(node, h5py.Dataset) else None)
    return sorted(names)


DTYPES = ["f4", "f8", "i4", "i8", "u1", "?", "f2", "S3"]
DATASET_EDITS = st.lists(st.tuples(st.sampled_from(["shape", "dtype", "rename", "delete", "scalar", "attr"]),
                                   st.integers(0, 100), st.sampled_from(DTYPES), st.integers(-3, 3),
                                   st.sampled_from(["iteration", "timesteps", "step_cap", "best_eval_return",
                                                    "config", "versions", "format_version"]), SCALARS),
                         min_size=1, max_size=3)


def edit_datasets(path, edits):
    names = dataset_names(path)
    with h5py.File(path, "a") as f:
        for kind, index, dtype, delta, attr, value in edits:
            name = names[index % len(names)]
            if name not in f:
                continue
            data = f[name][()]
            if kind == "attr":
                try:
                    f.attrs[attr] = value if not isinstance(value, list) else np.asarray(value)
                except (ValueError, TypeError, OverflowError):  # HDF5 cannot store it (a NUL in a string,
                    continue  # an integer past 64 bits): no file can hold it, so nothing to check
                continue
            del f[name]
            if kind == "shape":
                size = max(0, np.size(data) + delta)
                f.create_dataset(name, data=np.resize(np.asarray(data).reshape(-1), size).astype(np.asarray(data).dtype))
            elif kind == "dtype":
                f.create_dataset(name, data=np.asarray(data).astype(dtype))
            elif kind == "rename":
                f.create_dataset(name + "_x", data=data)
            elif kind == "scalar":
                f.create_dataset(name, data=np.asarray(data).reshape(-1)[:1].reshape(()) if np.size(data) else 0.0)


def load_like_every_command(job_path, path):
    """What eval, inspect and --resume do with a checkpoint, in this process: they end in a UserError or work."""
    from es_mpi.commands.evaluate import load_for_play
    from es_mpi.parts.job_file import load_job
    from es_mpi.parts.build import build_task
    from es_mpi.records.run_dir import check_compatible
    from es_mpi.run.noise import local_table
    from es_mpi.run.obstat import ObsStat

    try:
        found, ckpt = ckpt_io.resolve(path)
    except UserError:
        return
    try:
        _, _, task, _ = load_for_play(path)
        task.close()
    except UserError:
        pass
    task = build_task(load_job(job_path))
    try:
        check_compatible(task.job, found, ckpt)
        task.make_strategy(local_table(task.job.noise.size, task.job.noise.seed)).load_state_dict(ckpt.strategy)
        ObsStat(int(np.prod(task.env.observation_space.shape))).load_state_dict(ckpt.obstat)
    except (UserError, StateError):  # the trainer turns a StateError into a one-line CheckpointError
        pass
    finally:
        task.close()


@FAST
@given(st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(1, 255)), min_size=1, max_size=8))
def test_byte_flips_are_caught(real_run, tmp_path_factory, flips):
    CASES["byte flips"] += 1
    job, source = real_run
    data = bytearray(source.read_bytes())
    for offset, xor in flips:
        data[offset % len(data)] ^= xor
    path = tmp_path_factory.mktemp("flip") / "ckpt.h5"
    path.write_bytes(bytes(data))
    load_like_every_command(job, path)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.floats(0.0, 1.0, exclude_max=True))
def test_truncations_are_caught(real_run, tmp_path_factory, fraction):
    CASES["truncations"] += 1
    job, source = real_run
    data = source.read_bytes()
    path = tmp_path_factory.mktemp("cut") / "ckpt.h5"
    path.write_bytes(data[: int(len(data) * fraction)])
    load_like_every_command(job, path)


@FAST
@given(DATASET_EDITS, st.booleans())
def test_changed_datasets_and_attributes_are_caught_with_or_without_a_recomputed_checksum(real_run, tmp_path_factory,
                                                                                          edits, fresh_checksum):
    CASES["dataset/attribute edits"] += 1
    job, source = real_run
    path = tmp_path_factory.mktemp("edit") / "ckpt.h5"
    shutil.copy(source, path)
    edit_datasets(path, edits)
    if fresh_checksum:
        recompute_checksum(path)
    elif edits[0][0] == "attr":
        ckpt_io.seal(path)  # sealed but with the old content checksum: the inner check must catch it
    load_like_every_command(job, path)


@SLOW
@given(DATASET_EDITS, st.sampled_from(["eval", "inspect", "resume"]))
def test_es_mpi_on_a_tampered_checkpoint_exits_0_or_2_with_one_line(real_run, tmp_path_factory, edits, command):
    CASES["real eval/inspect/resume runs"] += 1
    job, source = real_run
    run_dir = tmp_path_factory.mktemp("tampered") / "run"
    run_dir.mkdir()
    path = run_dir / source.name
    shutil.copy(source, path)
    edit_datasets(path, edits)
    recompute_checksum(path)
    if command == "resume":
        result = run_es("train", job, "--run-dir", run_dir, "--resume", "--set", "stop.iterations=3", timeout=120)
    else:
        result = run_es(command, path, *(["--episodes", "1"] if command == "eval" else []), timeout=120)
    assert_cli_ending(result)


# ----------------------------------------------------------------- what surrounds the job's text

INTEGER_KEYS = sorted(f"{section}.{field.name}" for section, cls in SECTIONS.items()
                      for field in dataclasses.fields(cls) if field.metadata["kind"] in ("int", "int_or_str", "int_list"))


def assert_storable(job):
    """Every number a parsed job holds is one HDF5 stores as a checkpoint does (int64, float64)."""
    with h5py.File(io.BytesIO(), "w") as f:
        for section, values in job.to_dict().items():
            for key, value in values.items():
                items = value if isinstance(value, list) else [value]
                if items and all(isinstance(item, (int, float)) and not isinstance(item, bool) for item in items):
                    f.attrs[f"{section}.{key}"] = np.asarray(items, dtype=np.int64 if all(
                        isinstance(item, int) for item in items) else np.float64)


@FAST
@given(st.lists(st.tuples(st.sampled_from(INTEGER_KEYS),
                          st.one_of(st.integers(-2**70, 2**70), st.lists(st.integers(-2**70, 2**70), max_size=3))),
                min_size=1, max_size=3))
def test_integers_beyond_int64_are_refused_when_parsed_not_when_checkpointed(pairs):
    CASES["integers beyond int64"] += 1
    job = parse_or_refuse(JOB, [f"{key}={toml_value(value)}" for key, value in pairs])
    if job is not None:
        assert_storable(job)


def nested(depth, kind):
    return "[" * depth + "]" * depth if kind == "array" else "{a = " * depth + "1" + "}" * depth


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.integers(1, 3000), st.sampled_from(["array", "table"]), st.sampled_from(["file", "--set"]))
def test_any_nesting_depth_parses_or_is_one_line(depth, kind, where):
    CASES["nesting depths"] += 1
    if where == "file":
        job = parse_or_refuse(JOB + f"[log]\nx = {nested(depth, kind)}\n")
    else:
        job = parse_or_refuse(JOB, [f"policy.hidden={nested(depth, kind)}"])
    assert job is None  # no key takes a nested value; what matters is how it ended (no RecursionError)


def special_file(folder, kind):
    """A path where a job file should be that is anything but a regular file."""
    path = folder / "job.toml"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        server.close()
    elif kind == "link to a fifo":
        os.mkfifo(folder / "pipe")
        path.symlink_to(folder / "pipe")
    elif kind == "dangling link":
        path.symlink_to(folder / "nothing")
    else:
        return pathlib.Path(kind)
    return path


@settings(max_examples=14, deadline=None, derandomize=True)
@given(st.sampled_from(["fifo", "directory", "socket", "link to a fifo", "dangling link", "/dev/zero", "/dev/null",
                        "/dev/urandom"]))
def test_a_job_path_that_is_no_regular_file_is_one_line_and_never_blocks(tmp_path_factory, kind):
    CASES["non-regular job files"] += 1
    path = special_file(tmp_path_factory.mktemp("special"), kind)
    with no_hang(), pytest.raises(UserError) as refused:
        load_job(path)
    assert "\n" not in str(refused.value) and str(path) in str(refused.value)


@FAST
@given(st.binary(min_size=1, max_size=8), st.integers(0, len(JOB)))
def test_non_utf8_bytes_in_a_job_file_parse_or_are_one_line(tmp_path_factory, junk, at):
    CASES["non-UTF-8 job bytes"] += 1
    path = tmp_path_factory.mktemp("bytes") / "job.toml"
    data = JOB.encode()
    path.write_bytes(data[:at] + junk + data[at:])
    try:
        job = load_job(path)
    except UserError:
        return
    assert_storable(job)
    job.to_toml().encode("utf-8")  # what a checkpoint stores is text


@FAST
@given(st.binary(min_size=1, max_size=12).filter(lambda name: b"/" not in name and b"\0" not in name
                                                 and name not in (b".", b"..")))
def test_any_file_name_reads_or_is_one_line_and_a_checkpoint_can_store_the_job(tmp_path_factory, name):
    CASES["non-UTF-8 file names"] += 1
    folder = os.fsencode(tmp_path_factory.mktemp("names"))
    path = os.path.join(folder, name + b".toml")
    with open(path, "wb") as fh:
        fh.write(JOB.encode())
    try:
        job = load_job(os.fsdecode(path))
    except UserError as err:  # the CLI prints it on one line whatever the name holds
        assert str(err).startswith(os.fsdecode(path))
        return
    job.to_toml().encode("utf-8")


ENVIRONMENT = st.dictionaries(st.sampled_from(["ES_MPI_NODE_SIZE", "SLURM_RESTART_COUNT", "ES_MPI_MPIEXEC"]),
                              st.one_of(st.text(max_size=12), st.integers(-5, 2**40).map(str),
                                        st.sampled_from(["/", "/dev/null", "/bin/true", "true", "", " 2 "])),
                              min_size=1)


@FAST
@given(ENVIRONMENT)
def test_environment_variables_are_read_or_refused_in_one_line(environ):
    CASES["environment variables"] += 1
    try:
        check_environment(environ)
        if environ.get("ES_MPI_MPIEXEC"):
            find_mpiexec(environ["ES_MPI_MPIEXEC"], "ES_MPI_MPIEXEC")
    except UserError as err:
        assert "\n" not in str(err)
