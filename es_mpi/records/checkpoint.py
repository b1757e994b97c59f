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
import os
import pathlib
import re

import h5py
import numpy as np

from es_mpi.core.errors import CheckpointError

FORMAT = "es-mpi checkpoint"
FORMAT_VERSION = 2  # 2: content checksum attribute
NAME_RE = re.compile(r"^ckpt-(\d{8})\.h5$")
BEST_NAME = "best.h5"


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


def _fsync_dir(directory):
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(path, ckpt):
    """Write to a temporary file beside `path`, fsync, then rename: a crash leaves the old file."""
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs.update(format=FORMAT, format_version=FORMAT_VERSION, iteration=ckpt.iteration,
                           timesteps=ckpt.timesteps, step_cap=ckpt.step_cap,
                           best_eval_return=ckpt.best_eval_return, eval_return=ckpt.eval_return,
                           config=ckpt.config_toml, versions=json.dumps(ckpt.versions),
                           checksum=content_checksum(ckpt))
            f.create_dataset("params", data=ckpt.params)
            for name in ("strategy", "obstat", "metrics", "extra"):
                _write_dict(f.create_group(name), getattr(ckpt, name))
            f.flush()
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def load(path):
    """Read and validate a checkpoint; any problem is a CheckpointError naming the file."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such checkpoint file")
    if not h5py.is_hdf5(path):
        raise CheckpointError(path, "not an HDF5 file (truncated, corrupt or foreign)")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise CheckpointError(path, "not an es-mpi checkpoint (missing 'format' attribute)")
            version = int(f.attrs.get("format_version", -1))
            if version != FORMAT_VERSION:
                raise CheckpointError(path, f"checkpoint format version {version} is not supported (expected {FORMAT_VERSION})")
            params = f["params"][()]
            if params.dtype != np.float32 or params.ndim != 1:
                raise CheckpointError(path, "params: expected a 1-D float32 array")
            attrs = f.attrs
            ckpt = Checkpoint(
                config_toml=str(attrs["config"]), iteration=int(attrs["iteration"]),
                timesteps=int(attrs["timesteps"]), step_cap=int(attrs["step_cap"]),
                best_eval_return=float(attrs["best_eval_return"]), eval_return=float(attrs["eval_return"]),
                params=params, strategy=_read_dict(f["strategy"]), obstat=_read_dict(f["obstat"]),
                metrics=_read_dict(f["metrics"]), versions=json.loads(attrs["versions"]),
                extra=_read_dict(f["extra"]) if "extra" in f else {})
            stored_checksum = str(attrs["checksum"])
    except CheckpointError:
        raise
    except KeyError as err:
        raise CheckpointError(path, f"missing {err.args[0] if err.args else 'data'}") from None
    except Exception as err:  # h5py raises many kinds (OSError, RuntimeError, ValueError...) on damaged files
        raise CheckpointError(path, f"unreadable checkpoint ({type(err).__name__}: {err})") from None
    if content_checksum(ckpt) != stored_checksum:
        raise CheckpointError(path, "checksum mismatch: the file is corrupt")
    return ckpt


def periodic_checkpoints(run_dir):
    """[(iteration, path)] of ckpt-*.h5 in `run_dir`, newest first."""
    run_dir = pathlib.Path(run_dir)
    found = []
    if run_dir.is_dir():
        for entry in run_dir.iterdir():
            match = NAME_RE.match(entry.name)
            if match:
                found.append((int(match.group(1)), entry))
    return sorted(found, reverse=True)


def newest_valid(run_dir, skipped=None):
    """(path, Checkpoint) of the newest checkpoint that loads, or None. Broken ones are skipped
    (their errors appended to `skipped` when given): a crash mid-run must not block a resume."""
    for _, path in periodic_checkpoints(run_dir):
        try:
            return path, load(path)
        except CheckpointError as err:
            if skipped is not None:
                skipped.append(err)
    return None


def checkpoint_path(run_dir, iteration):
    return pathlib.Path(run_dir) / f"ckpt-{iteration:08d}.h5"


def prune(run_dir, keep):
    for _, path in periodic_checkpoints(run_dir)[keep:]:
        path.unlink(missing_ok=True)


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
