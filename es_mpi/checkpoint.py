"""HDF5 checkpoints (DESIGN.md contract 6): atomic, versioned, pickle-free, loadable without MPI.

Layout:
  attrs     format, format_version, iteration, timesteps, step_cap, best_eval_return,
            eval_return, config (job TOML), versions (JSON)
  params    float32 centre parameters
  strategy/ the strategy's state dict (optimizer included)
  obstat/   sum, sumsq, count
  metrics/  one dataset per metric column, one row per iteration
  extra/    optional arrays (e.g. a VBN reference batch)
"""

import dataclasses
import json
import os
import pathlib
import re

import h5py
import numpy as np

from .errors import CheckpointError

FORMAT = "es-mpi checkpoint"
FORMAT_VERSION = 1
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
                           config=ckpt.config_toml, versions=json.dumps(ckpt.versions))
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
            return Checkpoint(
                config_toml=str(attrs["config"]), iteration=int(attrs["iteration"]),
                timesteps=int(attrs["timesteps"]), step_cap=int(attrs["step_cap"]),
                best_eval_return=float(attrs["best_eval_return"]), eval_return=float(attrs["eval_return"]),
                params=params, strategy=_read_dict(f["strategy"]), obstat=_read_dict(f["obstat"]),
                metrics=_read_dict(f["metrics"]), versions=json.loads(attrs["versions"]),
                extra=_read_dict(f["extra"]) if "extra" in f else {})
    except CheckpointError:
        raise
    except KeyError as err:
        raise CheckpointError(path, f"missing {err.args[0] if err.args else 'data'}") from None
    except (OSError, ValueError, TypeError, json.JSONDecodeError) as err:
        raise CheckpointError(path, f"unreadable checkpoint ({err})") from None


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


def newest_valid(run_dir):
    """(path, Checkpoint) of the newest checkpoint that loads, skipping broken ones; or None."""
    for _, path in periodic_checkpoints(run_dir):
        try:
            return path, load(path)
        except CheckpointError:
            continue
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
        found = newest_valid(path)
        if found is None:
            raise CheckpointError(path, "no valid checkpoint in this run directory")
        return found
    return path, load(path)
