"""HDF5 checkpoints: exact round trip, atomic writes, damaged files refused, every declared field
written, checksummed and layout-checked, --resume skipping
a damaged newest checkpoint."""

import dataclasses
import json
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest

from conftest import REPO, child_env, run_es
from es_mpi.records import checkpoint as ckpt_io
from es_mpi.core.errors import CheckpointError


def sample_checkpoint(params_p=None, iteration=7):
    draw = np.random.default_rng(iteration)
    params_p = draw.standard_normal(300).astype(np.float32) if params_p is None else params_p
    return ckpt_io.Checkpoint(
        config_toml='[env]\nid = "CartPole-v1"\n', iteration=iteration, timesteps=12345, step_cap=500,
        best_eval_return=-np.inf, eval_return=np.nan, params=params_p,
        strategy={"params": params_p.copy(), "optimizer/m": draw.standard_normal(300).astype(np.float32),
                  "optimizer/t": np.int64(iteration)},
        obstat={"sum": draw.standard_normal(4), "sumsq": draw.random(4), "count": np.float64(10.5)},
        metrics={"iteration": np.arange(1, iteration + 1), "eval_return": np.full(iteration, np.nan),
                 "return_mean": draw.standard_normal(iteration)},
        versions={"numpy": np.__version__, "python": "3.x"},
        extra={"vbn_reference_bo": draw.standard_normal((8, 4)).astype(np.float32), "flag": np.bool_(True)})


def assert_same_arrays(saved, loaded):
    assert sorted(saved) == sorted(loaded)
    for key, value in saved.items():
        value, got = np.asarray(value), np.asarray(loaded[key])
        assert got.dtype == value.dtype, key
        assert got.shape == value.shape, key
        assert got.tobytes() == value.tobytes(), key


def test_round_trip_is_exact(tmp_path):
    saved = sample_checkpoint()
    ckpt_io.save(tmp_path / "c.h5", saved)
    loaded = ckpt_io.load(tmp_path / "c.h5")
    for name in ("config_toml", "iteration", "timesteps", "step_cap", "versions"):
        assert getattr(loaded, name) == getattr(saved, name), name
    assert loaded.best_eval_return == -np.inf and np.isnan(loaded.eval_return)
    assert_same_arrays({"params": saved.params}, {"params": loaded.params})
    for group in ("strategy", "obstat", "metrics", "extra"):
        assert_same_arrays(getattr(saved, group), getattr(loaded, group))
    assert ckpt_io.content_checksum(loaded) == ckpt_io.content_checksum(saved)


def test_save_leaves_no_temporary_files_and_replaces_the_old_file(tmp_path):
    path = tmp_path / "ckpt-00000001.h5"
    ckpt_io.save(path, sample_checkpoint(iteration=1))
    ckpt_io.save(path, sample_checkpoint(iteration=2))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    assert ckpt_io.load(path).iteration == 2


def test_a_failed_save_leaves_the_previous_file_intact(tmp_path):
    path = tmp_path / "ckpt-00000001.h5"
    ckpt_io.save(path, sample_checkpoint(iteration=1))
    before = path.read_bytes()
    broken = sample_checkpoint(iteration=2)
    broken.extra["words"] = np.array(["h5py", "cannot", "store", "numpy", "unicode"])  # fails mid-write
    with pytest.raises(TypeError):
        ckpt_io.save(path, broken)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    assert ckpt_io.load(path).iteration == 1


SAVER = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, sys.argv[2])
    from test_checkpoint import sample_checkpoint
    from es_mpi.records import checkpoint as ckpt_io

    for i in range(1, 10**6):
        ckpt_io.save(sys.argv[1], sample_checkpoint(np.full(2_000_000, i, dtype=np.float32), iteration=i))
        print(i, flush=True)
""")


@pytest.mark.parametrize("delay_s", [0.0, 0.05, 0.13])
def test_a_checkpoint_killed_mid_save_is_the_previous_complete_one(tmp_path, delay_s):
    """SIGKILL a process that saves 8 MB checkpoints in a loop: the file at the final path
    always loads (checksum included) and holds one whole save."""
    path = tmp_path / "ckpt-00000001.h5"
    saver = subprocess.Popen([sys.executable, "-c", SAVER, str(path), str(REPO / "tests")],
                             stdout=subprocess.PIPE, text=True, env=child_env())
    try:
        assert saver.stdout.readline().strip() == "1"
        time.sleep(delay_s)
    finally:
        saver.send_signal(signal.SIGKILL)
        saver.wait(timeout=30)
    loaded = ckpt_io.load(path)
    assert np.all(loaded.params == loaded.iteration)


# ----------------------------------------------------------------- damaged files

def damaged_files(directory, good):
    """{kind: path} of files that must each be refused with a one-line CheckpointError."""
    data = good.read_bytes()
    files = {}

    def write(kind, content):
        files[kind] = directory / f"{kind}.h5"
        files[kind].write_bytes(content)

    write("truncated", data[: len(data) // 2])
    write("empty", b"")
    noisy = bytearray(data)
    quarter = len(data) // 4
    noisy[quarter:3 * quarter] = np.random.default_rng(0).integers(0, 256, 2 * quarter, dtype=np.uint8).tobytes()
    write("random bytes in the middle", bytes(noisy))
    with h5py.File(good, "r") as f:
        offset = f["params"].id.get_offset()
    flipped = bytearray(data)
    flipped[offset:offset + 16] = bytes(255 - b for b in flipped[offset:offset + 16])
    write("flipped parameter bytes", bytes(flipped))
    write("flipped parameter bytes, resealed", bytes(flipped))
    ckpt_io.seal(files["flipped parameter bytes, resealed"])  # only the content checksum can catch it now
    write("not HDF5", b"# a TOML file, say\n[env]\nid = 'CartPole-v1'\n" * 20)
    files["foreign HDF5"] = directory / "foreign.h5"
    with h5py.File(files["foreign HDF5"], "w") as f:
        f.create_dataset("params", data=np.zeros(10, dtype=np.float32))
        f.attrs["author"] = "someone else"
    files["foreign HDF5, sealed"] = directory / "foreign-sealed.h5"
    with h5py.File(files["foreign HDF5, sealed"], "w", userblock_size=ckpt_io.USER_BLOCK) as f:
        f.attrs["author"] = "someone else"
    ckpt_io.seal(files["foreign HDF5, sealed"])
    for kind, version in (("newer format version", 99), ("older format version", 1)):
        files[kind] = directory / f"version-{version}.h5"
        files[kind].write_bytes(data)
        with h5py.File(files[kind], "r+") as f:
            f.attrs["format_version"] = version
        ckpt_io.seal(files[kind])
    files["missing"] = directory / "missing.h5"
    return files


DAMAGE_REASONS = {
    "truncated": "digest mismatch", "empty": "not a sealed es-mpi checkpoint",
    "random bytes in the middle": "digest mismatch", "flipped parameter bytes": "digest mismatch",
    "flipped parameter bytes, resealed": "checksum mismatch",
    "not HDF5": "not a sealed es-mpi checkpoint", "foreign HDF5": "not an es-mpi checkpoint",
    "foreign HDF5, sealed": "not an es-mpi checkpoint",
    "newer format version": "written by a newer es-mpi (checkpoint format 99",
    "older format version": "format version 1 is not supported here (expected 3 in a sealed file)",
    "missing": "no such checkpoint file",
}


@pytest.mark.parametrize("kind", sorted(DAMAGE_REASONS))
def test_damaged_files_are_refused_with_a_clear_reason(tmp_path, kind):
    good = tmp_path / "good.h5"
    ckpt_io.save(good, sample_checkpoint())
    path = damaged_files(tmp_path, good)[kind]
    with pytest.raises(CheckpointError) as caught:
        ckpt_io.load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert DAMAGE_REASONS[kind] in message
    assert "\n" not in message


def test_a_run_dir_with_only_damaged_checkpoints_says_why(tmp_path):
    (tmp_path / "ckpt-00000003.h5").write_bytes(b"junk")
    with pytest.raises(CheckpointError) as caught:
        ckpt_io.resolve(tmp_path)
    assert "no valid checkpoint" in str(caught.value) and "not a sealed es-mpi checkpoint" in str(caught.value)


# ----------------------------------------------------------------- resume

RESUME_JOB = """
[env]
id = "CartPole-v1"
step_cap = 40
[policy]
hidden = [4]
[strategy]
pairs = 3
[noise]
size = 10_000
[eval]
every = 2
episodes = 2
[checkpoint]
every = 2
keep = 5
[stop]
iterations = 4
"""


def test_resume_skips_a_damaged_newest_checkpoint(tmp_path):
    job = tmp_path / "job.toml"
    job.write_text(RESUME_JOB)
    run_dir = tmp_path / "run"
    first = run_es("train", job, "--run-dir", run_dir, timeout=120)
    assert first.returncode == 0, first.stderr
    newest = run_dir / "ckpt-00000004.h5"
    newest.write_bytes(newest.read_bytes()[:3000])
    resumed = run_es("train", job, "--run-dir", run_dir, "--resume", "--set", "stop.iterations=5", timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from iteration 2 " in resumed.stdout
    assert "it     3 |" in resumed.stdout
    assert ckpt_io.load(newest).iteration == 4  # written again, whole
    final = ckpt_io.load(run_dir / "ckpt-00000005.h5")
    assert list(final.metrics["iteration"]) == [1, 2, 3, 4, 5]


def test_resume_refuses_a_run_dir_whose_checkpoints_are_all_damaged(tmp_path):
    job = tmp_path / "job.toml"
    job.write_text(RESUME_JOB)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "ckpt-00000002.h5").write_bytes(b"junk")
    result = run_es("train", job, "--run-dir", run_dir, "--resume", timeout=120)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and str(run_dir) in lines[0] and "corrupt" in lines[0], lines
    assert (run_dir / "ckpt-00000002.h5").read_bytes() == b"junk"


def test_checkpoint_attributes_are_plain_data(tmp_path):
    """Pickle-free and readable by any HDF5 tool: strings and numbers only."""
    ckpt_io.save(tmp_path / "c.h5", sample_checkpoint())
    with h5py.File(tmp_path / "c.h5", "r") as f:
        assert f.attrs["format"] == ckpt_io.FORMAT
        assert json.loads(f.attrs["versions"])["python"] == "3.x"
        kinds = set()
        f.visititems(lambda name, node: kinds.add(node.dtype.kind) if isinstance(node, h5py.Dataset) else None)
        assert kinds <= {"f", "i", "u", "b"}


# ----------------------------------------------------------------- one declaration of the fields

ENVELOPE = {"format", "format_version", "checksum"}  # the root's own attributes, not fields


def test_the_file_holds_every_declared_field_and_nothing_else(tmp_path):
    ckpt_io.save(tmp_path / "c.h5", sample_checkpoint())
    with h5py.File(tmp_path / "c.h5", "r") as f:
        assert set(f.attrs) - ENVELOPE == {store.name for store in ckpt_io.ATTRIBUTES.values()}
        assert set(f) == {store.name for store in ckpt_io.ARRAYS.values()}
    assert set(ckpt_io.ATTRIBUTES) | set(ckpt_io.ARRAYS) == set(ckpt_io.FIELDS)


def changed(field, value):
    """`value` of `field` with one thing different: a number, a character, a key or one byte."""
    store = ckpt_io.FIELDS[field]
    if isinstance(store, ckpt_io.Attribute):
        return {int: lambda: value + 1, float: lambda: 0.5 if not np.isfinite(value) else value + 1.0,
                str: lambda: value + "#", dict: lambda: {**value, "mpi4py": "0.0"}}[store.kind]()
    if isinstance(store, ckpt_io.Group):
        key = next(iter(value))
        return {**value, key: changed("params", np.atleast_1d(value[key])).reshape(np.shape(value[key]))}
    flipped = np.array(value)
    flipped.view(np.uint8).reshape(-1)[0] ^= 1
    return flipped


@pytest.mark.parametrize("field", sorted(ckpt_io.FIELDS))
def test_every_declared_field_is_checksummed(field):
    ckpt = sample_checkpoint()
    other = dataclasses.replace(ckpt, **{field: changed(field, getattr(ckpt, field))})
    assert ckpt_io.content_checksum(other) != ckpt_io.content_checksum(ckpt)


WRONG_KIND = {int: "7", float: "seven", str: np.int64(7), dict: "[1, 2]"}  # an attribute of another kind


def refusal(path):
    with pytest.raises(CheckpointError) as caught:
        ckpt_io.load(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("field", sorted(ckpt_io.FIELDS))
def test_every_declared_field_missing_or_of_another_kind_is_refused_naming_it(tmp_path, field):
    """Each file is resealed, so only the layout check can refuse it, with one line naming the field."""
    store = ckpt_io.FIELDS[field]
    saved = sample_checkpoint()
    saved.extra = {}  # an empty optional group, so that the file without it still matches its checksum
    for damage in ("missing", "another kind"):
        path = tmp_path / f"{damage}.h5"
        ckpt_io.save(path, saved)
        with h5py.File(path, "r+") as f:
            if isinstance(store, ckpt_io.Attribute):
                del f.attrs[store.name]
                if damage == "another kind":
                    f.attrs[store.name] = WRONG_KIND[store.kind]
            else:
                del f[store.name]
                if damage == "another kind":
                    if isinstance(store, ckpt_io.Group):
                        f.create_dataset(store.name, data=np.zeros(3))
                    else:
                        f.create_group(store.name)
        ckpt_io.seal(path)
        if damage == "missing" and not getattr(store, "required", True):
            assert getattr(ckpt_io.load(path), field) == {}  # files from before the optional field load
            continue
        assert refusal(path).startswith(f"{path}: {store.name}: "), damage
