"""HDF5 checkpoints (docs/architecture.md, contract 6): atomic, versioned, pickle-free, loadable without MPI.

Layout:
  attrs     format, format_version, iteration, timesteps, step_cap, best_eval_return,
            eval_return, config (job TOML), versions (JSON), checksum (of all the above and
            every dataset: HDF5 itself does not checksum data, so a flipped byte would pass)
  params    float32 centre parameters
  strategy/ the strategy's state dict (optimizer included)
  obstat/   sum, sumsq, count
  metrics/  one dataset per metric column, one row per iteration
  extra/    optional arrays (e.g. a VBN reference batch)
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


class NewerCheckpoint(CheckpointError):
    """A checkpoint this es-mpi cannot read because a newer one wrote it: never skipped, replaced or deleted."""


@dataclasses.dataclass
class Checkpoint:
    config_toml: str
    iteration: int
    timesteps: int
    step_cap: int
    best_eval_return: float
    eval_return: float
    params: np.ndarray
    strategy: dict
    obstat: dict
    metrics: dict
    versions: dict
    extra: dict = dataclasses.field(default_factory=dict)


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
    scalars = dict(config=str(ckpt.config_toml), iteration=int(ckpt.iteration), timesteps=int(ckpt.timesteps),
                   step_cap=int(ckpt.step_cap), best_eval_return=float(ckpt.best_eval_return),
                   eval_return=float(ckpt.eval_return), versions=ckpt.versions)
    digest.update(json.dumps(scalars, sort_keys=True).encode())
    arrays = {"params": ckpt.params}
    for group in ("strategy", "obstat", "metrics", "extra"):
        arrays.update({f"{group}/{key}": value for key, value in getattr(ckpt, group).items()})
    for name in sorted(arrays):
        array = np.asarray(arrays[name])
        digest.update(f"{name} {array.dtype.str} {array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _write_dict(group, values):
    for key, value in values.items():
        group.create_dataset(key, data=np.asarray(value))
    group.attrs["order"] = json.dumps(list(values))  # HDF5 lists names alphabetically


def _read_dict(group):
    out = {}

    def visit(name, node):
        if isinstance(node, h5py.Dataset):
            out[name] = node[()]

    group.visititems(visit)
    order = json.loads(group.attrs.get("order", "[]"))
    return {key: out[key] for key in [*order, *sorted(set(out) - set(order))] if key in out}


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
        f.attrs.update(format=FORMAT, format_version=FORMAT_VERSION, iteration=ckpt.iteration,
                       timesteps=ckpt.timesteps, step_cap=ckpt.step_cap,
                       best_eval_return=ckpt.best_eval_return, eval_return=ckpt.eval_return,
                       config=ckpt.config_toml, versions=json.dumps(ckpt.versions),
                       checksum=content_checksum(ckpt))
        f.create_dataset("params", data=ckpt.params)
        for name in ("strategy", "obstat", "metrics", "extra"):
            _write_dict(f.create_group(name), getattr(ckpt, name))


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
                                            f"{expected_version} in a{'' if expected_version == FORMAT_VERSION else 'n un'}"
                                            "sealed file)")
            check_layout(path, f)
            params = f["params"][()]
            attrs = f.attrs
            ckpt = Checkpoint(
                config_toml=str(attrs["config"]), iteration=int(attrs["iteration"]),
                timesteps=int(attrs["timesteps"]), step_cap=int(attrs["step_cap"]),
                best_eval_return=float(attrs["best_eval_return"]), eval_return=float(attrs["eval_return"]),
                params=params, strategy=_read_dict(f["strategy"]), obstat=_read_dict(f["obstat"]),
                metrics=_read_dict(f["metrics"]), versions=json.loads(attrs["versions"]),
                extra=_read_dict(f["extra"]) if "extra" in f else {})
            stored_checksum = str(attrs["checksum"])
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


GROUPS = ("strategy", "obstat", "metrics", "extra")
OBSTAT_KEYS = ("count", "sum", "sumsq")


def check_layout(path, f):
    """Names, dtypes, shapes and storage of every dataset, from HDF5 metadata only, before any
    data is read: a small file that declares a huge, sparse or compressed dataset is refused
    without allocating it (what es-mpi writes is contiguous, unfiltered and as large as it says)."""
    for name in f:
        if name not in ("params", *GROUPS):
            raise CheckpointError(path, f"{name}: not part of an es-mpi checkpoint")
    for name in ("params", "strategy", "obstat", "metrics"):
        if name not in f:
            raise CheckpointError(path, f"{name}: missing")
    datasets = {}
    for group in GROUPS:
        if group in f:
            if not isinstance(f[group], h5py.Group):
                raise CheckpointError(path, f"{group}: expected a group")
            f[group].visititems(lambda name, node, g=group: datasets.__setitem__(f"{g}/{name}", node)
                                if isinstance(node, h5py.Dataset) else None)
    if not isinstance(f["params"], h5py.Dataset):
        raise CheckpointError(path, "params: expected a dataset")
    datasets["params"] = f["params"]
    total = sum(_checked_nbytes(path, name, dataset) for name, dataset in datasets.items())
    if total > path.stat().st_size:
        raise CheckpointError(path, f"declares {total} bytes of data in a {path.stat().st_size}-byte file")
    _check_shapes(path, {name: (dataset.dtype, dataset.shape) for name, dataset in datasets.items()})


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


def _check_shapes(path, layout):
    """{name: (dtype, shape)} -> CheckpointError unless params, obstat and metrics have their shapes."""
    dtype, shape = layout["params"]
    if dtype != np.float32 or len(shape) != 1 or shape[0] < 1:
        raise CheckpointError(path, f"params: dtype {dtype}, shape {shape}; expected a non-empty 1-D float32 array")
    obstat = {name.split("/", 1)[1]: value for name, value in layout.items() if name.startswith("obstat/")}
    if sorted(obstat) != list(OBSTAT_KEYS):
        raise CheckpointError(path, f"obstat: holds {sorted(obstat)}, expected {list(OBSTAT_KEYS)}")
    if any(dtype != np.float64 for dtype, _ in obstat.values()):
        raise CheckpointError(path, "obstat: expected float64 arrays")
    if obstat["count"][1] != () or len(obstat["sum"][1]) != 1 or obstat["sumsq"][1] != obstat["sum"][1]:
        raise CheckpointError(path, f"obstat: sum {obstat['sum'][1]}, sumsq {obstat['sumsq'][1]}, "
                                    f"count {obstat['count'][1]}; expected two equal 1-D shapes and a scalar")
    columns = {name: shape for name, (_, shape) in layout.items() if name.startswith("metrics/")}
    first = next(iter(columns.values()), None)
    for name, shape in columns.items():
        if len(shape) != 1 or shape != first:
            raise CheckpointError(path, f"{name}: shape {shape}, the first column has {first}; expected one "
                                        "1-D column per metric, all of the same length (ragged metrics)")


def check_values(path, ckpt):
    """The counters' ranges and their agreement with the metrics history."""
    for name, low in (("iteration", 0), ("timesteps", 0), ("step_cap", 1)):
        if getattr(ckpt, name) < low:
            raise CheckpointError(path, f"{name} = {getattr(ckpt, name)}: must be >= {low}")
    rows = len(next(iter(ckpt.metrics.values()))) if ckpt.metrics else 0
    if rows != ckpt.iteration:
        raise CheckpointError(path, f"metrics: {rows} rows for iteration {ckpt.iteration} (one row per iteration)")
    if not isinstance(ckpt.versions, dict):
        raise CheckpointError(path, "versions: expected a JSON object")
    if not (math.isfinite(ckpt.best_eval_return) or ckpt.best_eval_return == -math.inf):
        raise CheckpointError(path, f"best_eval_return = {ckpt.best_eval_return}: must be finite or -inf")


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
