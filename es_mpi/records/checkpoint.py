"""HDF5 checkpoints (docs/architecture.md, contract 6): atomic, versioned, pickle-free, loadable without MPI.

`Checkpoint` declares every field once, with where the file keeps it (an attribute of the root, a
dataset, a group of datasets); writing, reading, the content checksum and the layout check all
walk that one declaration. Besides the fields the root holds three attributes of its own:
format, format_version and checksum (of every field: HDF5 itself does not checksum data, so a
flipped byte would pass).
"""

import dataclasses
import hashlib
import json
import math
import os
import pathlib
import re

import h5py
import numpy as np

from es_mpi.core.errors import CheckpointError, CheckpointWriteError
from es_mpi.records.safe_files import replacing

FORMAT = "es-mpi checkpoint"
FORMAT_VERSION = 3  # 2: content checksum attribute; 3: sealed (a digest of the file in the HDF5 user block)
UNSEALED_VERSION = 2  # still read: runs started by an older es-mpi resume (their checksum is still checked)
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
USER_BLOCK = 512  # bytes HDF5 leaves free before its superblock
SEAL_MAGIC = b"es-mpi sealed checkpoint\n"
DIGEST_HEX = 32
NAME_RE = re.compile(r"^ckpt-(\d{8})\.h5$")
BEST_NAME = "best.h5"
OBSTAT_KEYS = ("count", "sum", "sumsq")


class NewerCheckpoint(CheckpointError):
    """A checkpoint this es-mpi cannot read because a newer one wrote it: never skipped, replaced or deleted."""


# ----------------------------------------------------------------- how a field is stored

def at_least(low):
    return (lambda value: value >= low), f"must be >= {low}"


FINITE_OR_MINUS_INF = (lambda value: math.isfinite(value) or value == -math.inf), "must be finite or -inf"
ATTRIBUTE_KINDS = {int: ("iu", "an integer"), float: ("iuf", "a number"),  # (numpy dtype kinds, words)
                   str: (None, "text"), dict: (None, "a JSON object")}  # None: a str attribute


@dataclasses.dataclass(frozen=True)
class Attribute:
    """A field kept as an attribute of the root: an integer, a number, text, or a JSON object as text."""
    name: str
    kind: type  # a key of ATTRIBUTE_KINDS
    rule: tuple = ()  # (test, words): a loaded value must pass test, else "name = value: words"

    def write(self, f, value):
        f.attrs[self.name] = json.dumps(value) if self.kind is dict else value

    def read(self, f):
        stored = f.attrs[self.name]
        return json.loads(stored) if self.kind is dict else self.kind(stored)

    def canonical(self, value):
        """What the checksum hashes: the value as `read` returns it."""
        return value if self.kind is dict else self.kind(value)

    def check_layout(self, path, f):
        dtype_kinds, words = ATTRIBUTE_KINDS[self.kind]
        if self.name not in f.attrs:
            raise CheckpointError(path, f"{self.name}: missing")
        stored = f.attrs[self.name]
        if dtype_kinds is None:
            fits = isinstance(stored, str) and (self.kind is str or _is_json_object(stored))
        else:
            fits = not isinstance(stored, str) and np.ndim(stored) == 0 and np.asarray(stored).dtype.kind in dtype_kinds
        if not fits:
            raise CheckpointError(path, f"{self.name}: expected {words} attribute")

    def check_value(self, path, value):
        if self.rule and not self.rule[0](value):
            raise CheckpointError(path, f"{self.name} = {value}: {self.rule[1]}")


def _is_json_object(text):
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A field kept as one array at the root; `check(path, name, dtype, shape)` refuses a wrong one."""
    name: str
    check: object
    required = True

    def write(self, f, value):
        f.create_dataset(self.name, data=value)

    def read(self, f):
        return f[self.name][()]

    def arrays(self, value):
        return {self.name: value}

    def datasets(self, path, f):
        if not isinstance(f[self.name], h5py.Dataset):
            raise CheckpointError(path, f"{self.name}: expected a dataset")
        return {self.name: f[self.name]}

    def check_shapes(self, path, layout):
        self.check(path, self.name, *layout[self.name])


@dataclasses.dataclass(frozen=True)
class Group:
    """A field kept as a group: one dataset per key (keys with '/' nest), their order in the group's
    'order' attribute, since HDF5 lists names alphabetically. `check(path, {key: (dtype, shape)})`
    refuses wrong contents; an optional group may be absent (it reads as {})."""
    name: str
    check: object = None
    required: bool = True

    def write(self, f, values):
        group = f.create_group(self.name)
        for key, value in values.items():
            group.create_dataset(key, data=np.asarray(value))
        group.attrs["order"] = json.dumps(list(values))

    def read(self, f):
        if self.name not in f:
            return {}
        out = {key: node[()] for key, node in _datasets_in(f[self.name]).items()}
        order = json.loads(f[self.name].attrs.get("order", "[]"))
        return {key: out[key] for key in [*order, *sorted(set(out) - set(order))] if key in out}

    def arrays(self, values):
        return {f"{self.name}/{key}": value for key, value in values.items()}

    def datasets(self, path, f):
        if self.name not in f:
            return {}
        if not isinstance(f[self.name], h5py.Group):
            raise CheckpointError(path, f"{self.name}: expected a group")
        return {f"{self.name}/{key}": node for key, node in _datasets_in(f[self.name]).items()}

    def check_shapes(self, path, layout):
        if self.check:
            prefix = f"{self.name}/"
            self.check(path, {name[len(prefix):]: value for name, value in layout.items() if name.startswith(prefix)})


def _datasets_in(group):
    """{path inside the group: dataset}, nested groups included."""
    found = {}
    group.visititems(lambda key, node: found.__setitem__(key, node) if isinstance(node, h5py.Dataset) else None)
    return found


def _check_params(path, name, dtype, shape):
    if dtype != np.float32 or len(shape) != 1 or shape[0] < 1:
        raise CheckpointError(path, f"{name}: dtype {dtype}, shape {shape}; expected a non-empty 1-D float32 array")


def _check_obstat(path, obstat):
    if sorted(obstat) != list(OBSTAT_KEYS):
        raise CheckpointError(path, f"obstat: holds {sorted(obstat)}, expected {list(OBSTAT_KEYS)}")
    if any(dtype != np.float64 for dtype, _ in obstat.values()):
        raise CheckpointError(path, "obstat: expected float64 arrays")
    if obstat["count"][1] != () or len(obstat["sum"][1]) != 1 or obstat["sumsq"][1] != obstat["sum"][1]:
        raise CheckpointError(path, f"obstat: sum {obstat['sum'][1]}, sumsq {obstat['sumsq'][1]}, "
                                    f"count {obstat['count'][1]}; expected two equal 1-D shapes and a scalar")


def _check_metrics(path, columns):
    first = next(iter(columns.values()), (None, None))[1]
    for key, (_, shape) in columns.items():
        if len(shape) != 1 or shape != first:
            raise CheckpointError(path, f"metrics/{key}: shape {shape}, the first column has {first}; expected one "
                                        "1-D column per metric, all of the same length (ragged metrics)")


def _stored(store, **field_options):
    return dataclasses.field(metadata={"stored": store}, **field_options)


@dataclasses.dataclass
class Checkpoint:
    """Every field a checkpoint holds and where the file keeps it, in the order it is written."""
    iteration: int = _stored(Attribute("iteration", int, at_least(0)))
    timesteps: int = _stored(Attribute("timesteps", int, at_least(0)))
    step_cap: int = _stored(Attribute("step_cap", int, at_least(1)))
    best_eval_return: float = _stored(Attribute("best_eval_return", float, FINITE_OR_MINUS_INF))
    eval_return: float = _stored(Attribute("eval_return", float))  # of `params`; NaN: not evaluated
    config_toml: str = _stored(Attribute("config", str))  # the resolved job file
    versions: dict = _stored(Attribute("versions", dict))  # package_versions() of the writer
    params: np.ndarray = _stored(Dataset("params", _check_params))  # float32 centre parameters
    strategy: dict = _stored(Group("strategy"))  # the strategy's state dict, optimizer included
    obstat: dict = _stored(Group("obstat", _check_obstat))  # sum, sumsq, count
    metrics: dict = _stored(Group("metrics", _check_metrics))  # one column per metric, one row per iteration
    extra: dict = _stored(Group("extra", required=False), default_factory=dict)  # e.g. a VBN reference batch


FIELDS = {field.name: field.metadata["stored"] for field in dataclasses.fields(Checkpoint)}
ATTRIBUTES = {name: store for name, store in FIELDS.items() if isinstance(store, Attribute)}
ARRAYS = {name: store for name, store in FIELDS.items() if not isinstance(store, Attribute)}


def package_versions():
    import importlib.metadata as md
    import platform

    versions = {"python": platform.python_version()}
    for name in ("es-mpi", "numpy", "gymnasium", "mujoco", "ale-py", "mpi4py", "h5py"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return versions


def version_changes(saved, current):
    """['numpy 2.4.6 -> 2.5.0', ...]: packages whose version differs between two `package_versions()`."""
    return [f"{name} {saved.get(name, 'absent')} -> {current.get(name, 'absent')}"
            for name in sorted(set(saved) | set(current)) if saved.get(name) != current.get(name)]


def content_checksum(ckpt):
    """blake2b of everything the checkpoint holds, in a fixed order (names, dtypes, shapes, bytes)."""
    digest = hashlib.blake2b(digest_size=16)
    scalars = {store.name: store.canonical(getattr(ckpt, field)) for field, store in ATTRIBUTES.items()}
    digest.update(json.dumps(scalars, sort_keys=True).encode())
    arrays = {}
    for field, store in ARRAYS.items():
        arrays.update(store.arrays(getattr(ckpt, field)))
    for name in sorted(arrays):
        array = np.asarray(arrays[name])
        digest.update(f"{name} {array.dtype.str} {array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def save(path, ckpt):
    """Write to a temporary file beside `path`, fsync, then rename: a crash or a full disk leaves
    the old file and no temporary one. A failed write is a CheckpointWriteError naming the file."""
    path = pathlib.Path(path)
    try:
        with replacing(path, durable=True) as tmp:
            _write_hdf5(tmp, ckpt)
            seal(tmp)
    except (OSError, RuntimeError) as err:  # HDF5 reports a failed write(2) as RuntimeError too
        raise CheckpointWriteError(f"{path}: cannot write checkpoint ({_os_reason(err)})") from None


def _write_hdf5(tmp, ckpt):
    with h5py.File(tmp, "w", userblock_size=USER_BLOCK) as f:
        f.attrs.update(format=FORMAT, format_version=FORMAT_VERSION)
        for field, store in ATTRIBUTES.items():
            store.write(f, getattr(ckpt, field))
        f.attrs["checksum"] = content_checksum(ckpt)
        for field, store in ARRAYS.items():
            store.write(f, getattr(ckpt, field))


def read(f):
    """The Checkpoint an open file holds, unchecked: `load` checks the layout first and the values after."""
    return Checkpoint(**{field: store.read(f) for field, store in FIELDS.items()})


def _digest_after_user_block(fh):
    digest = hashlib.blake2b(digest_size=DIGEST_HEX // 2)
    fh.seek(USER_BLOCK)
    for block in iter(lambda: fh.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest().encode()


def seal(path):
    """Write a digest of the HDF5 bytes into the user block, so that load can check the whole
    file before the HDF5 library parses any of it (a damaged file can crash the library)."""
    with open(path, "r+b") as fh:
        digest = _digest_after_user_block(fh)
        fh.seek(0)
        fh.write(SEAL_MAGIC + digest + b"\n")
        fh.flush()


def check_seal(path):
    """The format version the file must hold: FORMAT_VERSION for a sealed file whose bytes match the
    seal (read in blocks), UNSEALED_VERSION for a plain HDF5 file from an older es-mpi; else a
    CheckpointError. A damaged sealed file never reaches the HDF5 library."""
    with open(path, "rb") as fh:
        head = fh.read(USER_BLOCK)
        if head.startswith(HDF5_SIGNATURE):
            return UNSEALED_VERSION
        if not head.startswith(SEAL_MAGIC):
            raise CheckpointError(path, f"not a sealed es-mpi checkpoint (format {FORMAT_VERSION}): damaged, "
                                        "foreign or written by an older es-mpi")
        stored = head[len(SEAL_MAGIC):len(SEAL_MAGIC) + DIGEST_HEX]
        if _digest_after_user_block(fh) != stored:
            raise CheckpointError(path, "file digest mismatch: the file is truncated or corrupt")
    return FORMAT_VERSION


def _os_reason(err):
    """The OS error in words; HDF5's errors carry it inside the message, not in errno."""
    if getattr(err, "errno", None):
        return os.strerror(err.errno)
    found = re.search(r"error message = '([^']*)'", str(err))
    return found.group(1) if found else " ".join(str(err).split())


def load(path):
    """Read and validate a checkpoint; any problem is a CheckpointError naming the file."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise CheckpointError(path, "not a regular file" if path.exists() else "no such checkpoint file")
    try:
        expected_version = check_seal(path)
    except OSError as err:
        raise CheckpointError(path, f"cannot read ({err.strerror})") from None
    if not h5py.is_hdf5(path):
        raise CheckpointError(path, "not an HDF5 file (truncated, corrupt or foreign)")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise CheckpointError(path, "not an es-mpi checkpoint (missing 'format' attribute)")
            version = int(f.attrs.get("format_version", -1))
            if version > FORMAT_VERSION:
                raise NewerCheckpoint(path, f"written by a newer es-mpi (checkpoint format {version}; this one reads "
                                            f"up to {FORMAT_VERSION}): resume it with that es-mpi, or move it out of "
                                            "the run directory")
            if version != expected_version:
                raise CheckpointError(path, f"checkpoint format version {version} is not supported here (expected "
                                            f"{expected_version} in a{' ' if expected_version == FORMAT_VERSION else 'n un'}"
                                            "sealed file)")
            check_layout(path, f)
            ckpt = read(f)
            stored_checksum = str(f.attrs["checksum"])
        check_values(path, ckpt)
    except CheckpointError:
        raise
    except KeyError as err:
        raise CheckpointError(path, f"missing {err.args[0] if err.args else 'data'}") from None
    except Exception as err:  # h5py raises many kinds (OSError, RuntimeError, ValueError...) on damaged files
        raise CheckpointError(path, f"unreadable checkpoint ({type(err).__name__}: {err})") from None
    if content_checksum(ckpt) != stored_checksum:
        raise CheckpointError(path, "checksum mismatch: the file is corrupt")
    return ckpt


def check_layout(path, f):
    """Names, dtypes, shapes and storage of every dataset, from HDF5 metadata only, before any
    data is read: a small file that declares a huge, sparse or compressed dataset is refused
    without allocating it (what es-mpi writes is contiguous, unfiltered and as large as it says).
    Then every declared attribute: present and of its kind."""
    names = {store.name for store in ARRAYS.values()}
    for name in f:
        if name not in names:
            raise CheckpointError(path, f"{name}: not part of an es-mpi checkpoint")
    for store in ARRAYS.values():
        if store.required and store.name not in f:
            raise CheckpointError(path, f"{store.name}: missing")
    datasets = {}
    for store in ARRAYS.values():
        datasets.update(store.datasets(path, f))
    total = sum(_checked_nbytes(path, name, dataset) for name, dataset in datasets.items())
    if total > path.stat().st_size:
        raise CheckpointError(path, f"declares {total} bytes of data in a {path.stat().st_size}-byte file")
    layout = {name: (dataset.dtype, dataset.shape) for name, dataset in datasets.items()}
    for store in ARRAYS.values():
        store.check_shapes(path, layout)
    for store in ATTRIBUTES.values():
        store.check_layout(path, f)


def _checked_nbytes(path, name, dataset):
    """The bytes `dataset` holds once read; CheckpointError unless it is plain numbers stored in full."""
    if dataset.shape is None or dataset.dtype.kind not in "fiub" or dataset.dtype.fields is not None:
        raise CheckpointError(path, f"{name}: dtype {dataset.dtype} is not a plain number type")
    plist = dataset.id.get_create_plist()
    if plist.get_layout() not in (h5py.h5d.COMPACT, h5py.h5d.CONTIGUOUS) or plist.get_external_count() \
            or plist.get_nfilters():
        raise CheckpointError(path, f"{name}: stored chunked, filtered, external or virtual (es-mpi writes none)")
    nbytes = int(np.prod(dataset.shape, dtype=np.int64)) * dataset.dtype.itemsize
    if dataset.id.get_storage_size() < nbytes:
        raise CheckpointError(path, f"{name}: declares {nbytes} bytes but stores {dataset.id.get_storage_size()}")
    return nbytes


def check_values(path, ckpt):
    """Each attribute's rule (the counters' ranges), then the metrics history against the iteration."""
    for field, store in ATTRIBUTES.items():
        store.check_value(path, getattr(ckpt, field))
    rows = len(next(iter(ckpt.metrics.values()))) if ckpt.metrics else 0
    if rows != ckpt.iteration:
        raise CheckpointError(path, f"metrics: {rows} rows for iteration {ckpt.iteration} (one row per iteration)")


def periodic_checkpoints(run_dir):
    """[(iteration, path)] of ckpt-*.h5 in `run_dir`, newest first."""
    run_dir = pathlib.Path(run_dir)
    found = []
    if run_dir.is_dir():
        for entry in run_dir.iterdir():
            match = NAME_RE.match(entry.name)
            if match and entry.is_file():  # a directory of that name is none of es-mpi's (run_dir says so once)
                found.append((int(match.group(1)), entry))
    return sorted(found, reverse=True)


def newest_valid(run_dir, skipped=None):
    """(path, Checkpoint) of the newest checkpoint that loads, or None. Broken ones are skipped
    (their errors appended to `skipped` when given): a crash mid-run must not block a resume.
    One from a newer es-mpi raises NewerCheckpoint: skipping it would mean writing over it later."""
    for _, path in periodic_checkpoints(run_dir):
        try:
            return path, load(path)
        except NewerCheckpoint:
            raise
        except CheckpointError as err:
            if skipped is not None:
                skipped.append(err)
    return None


def checkpoint_path(run_dir, iteration):
    return pathlib.Path(run_dir) / f"ckpt-{iteration:08d}.h5"


def prune(run_dir, keep):
    """Delete periodic checkpoints older than the newest `keep` that load: a corrupt file never
    counts as kept, so the newest valid checkpoint is never deleted."""
    valid = 0
    for _, path in periodic_checkpoints(run_dir):
        if valid >= keep:
            if not written_by_newer(path):
                path.unlink(missing_ok=True)
            continue
        try:
            load(path)
        except CheckpointError:
            continue
        valid += 1


def written_by_newer(path):
    """Whether a newer es-mpi wrote `path` (then nothing here may delete it)."""
    try:
        load(path)
    except NewerCheckpoint:
        return True
    except CheckpointError:
        return False
    return False


def resolve(path):
    """A checkpoint file, or a run directory's newest valid checkpoint."""
    path = pathlib.Path(path)
    if path.is_dir():
        skipped = []
        found = newest_valid(path, skipped)
        if found is None:
            why = f" (newest: {skipped[0]})" if skipped else " (no ckpt-*.h5 files)"
            raise CheckpointError(path, "no valid checkpoint in this run directory" + why)
        return found
    return path, load(path)
