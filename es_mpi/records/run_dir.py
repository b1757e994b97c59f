"""The run directory: start fresh, resume from its newest valid checkpoint, or refuse. No MPI here.

Rank 0 calls `decide_start` once and broadcasts what it returns (or raised) to every rank, so
every rank starts from the same loaded checkpoint or exits with the same error.
"""

import dataclasses
import pathlib
import re

from es_mpi.core.errors import CheckpointError, ConfigError
from es_mpi.parts.job_file import job_from_text
from es_mpi.records import checkpoint as ckpt_io
from es_mpi.records import run_lock
from es_mpi.records.metrics import METRICS_NAME
from es_mpi.records.status import STATUS_NAME

RUN_FILE_NAMES = (ckpt_io.BEST_NAME, METRICS_NAME, STATUS_NAME)
# ".NAME.tmp-XXXXXXXX": what a write that was killed leaves of one of the run files above
LEFTOVER_RE = re.compile(r"^\.(ckpt-\d{8}\.h5|" + "|".join(map(re.escape, RUN_FILE_NAMES)) + r")\.tmp-[A-Za-z0-9_]+$")

# Job sections that must match a checkpoint to resume from it; the rest may change.
RESUME_MUST_MATCH = ("env", "atari", "policy", "strategy", "noise", "obs_norm", "objective")


@dataclasses.dataclass
class Start:
    """Where a run starts: `checkpoint` (and its `path`) to resume from, or None for a fresh start;
    `lock` is the run directory's lock file, held until the run ends."""
    path: pathlib.Path = None
    checkpoint: ckpt_io.Checkpoint = None
    lock: pathlib.Path = None


def is_run_file(name):
    """Files es-mpi writes into a run directory: the only ones --force deletes."""
    return name in RUN_FILE_NAMES or ckpt_io.NAME_RE.match(name) is not None


def decide_start(job, resume, force, log=print):
    """Start for `job` in its run directory; ConfigError or CheckpointError when it must not start.

    --resume takes the newest checkpoint that loads (and refuses one from another job); without
    it an existing run is refused unless --force, which deletes es-mpi's own files only. The lock
    is taken first (it also proves the directory writable), and let go again on a refusal.
    """
    run_dir = job.run_dir()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(job.path, "run.dir", f"cannot use {run_dir}: {err.strerror}") from None
    lock = run_lock.acquire(run_dir, job.path, log)
    try:
        return dataclasses.replace(_start_in(job, run_dir, resume, force, log), lock=lock)
    except BaseException:
        run_lock.release(lock)
        raise


def _start_in(job, run_dir, resume, force, log):
    try:
        existing = [p for p in run_dir.iterdir() if is_run_file(p.name)]
        _check_regular(job, existing, log)
        _remove_leftover_temporaries(run_dir, log)
        if resume:
            best = run_dir / ckpt_io.BEST_NAME
            if best.is_file() and ckpt_io.written_by_newer(best):
                ckpt_io.load(best)  # raises NewerCheckpoint, naming it
            skipped = []
            found = ckpt_io.newest_valid(run_dir, skipped)
            if found is None and skipped:
                raise CheckpointError(run_dir, f"--resume: no checkpoint here loads (all corrupt; newest: {skipped[0]})")
            if found is not None:
                check_compatible(job, *found)
                return Start(*found)
        elif existing and not force:
            raise ConfigError(job.path, "run.dir", f"run directory {run_dir} already exists; use --resume to continue "
                                                   "it or --force to start over (its checkpoints and metrics are deleted)")
        elif force:
            for path in existing:
                if path.is_file():
                    path.unlink()
        return Start()
    except OSError as err:
        raise ConfigError(job.path, "run.dir", f"cannot use {run_dir}: {err.strerror}") from None


def _check_regular(job, existing, log):
    """A directory or FIFO where es-mpi keeps a file is refused (it would fail a write later), except
    one named like a periodic checkpoint: never one of es-mpi's, so it is skipped, said once here."""
    for path in existing:
        if path.is_file():
            continue
        kind = "a directory" if path.is_dir() else "not a regular file"
        if ckpt_io.NAME_RE.match(path.name):
            log(f"es-mpi: ignoring {path}: {kind}, not a checkpoint")
        else:
            raise ConfigError(job.path, "run.dir", f"{path} is {kind}; es-mpi writes this file: move it away")


def _remove_leftover_temporaries(run_dir, log):
    """Temporary files of writes that were killed (safe_files.temporary_beside) go; the lock is ours."""
    leftovers = [path for path in run_dir.iterdir()
                 if LEFTOVER_RE.match(path.name) and path.is_file() and not path.is_symlink()]
    for path in leftovers:
        path.unlink(missing_ok=True)
    if leftovers:
        log(f"es-mpi: removed {len(leftovers)} temporary file(s) of an interrupted write in {run_dir}")


def check_compatible(job, path, ckpt):
    """CheckpointError unless the checkpoint was written by the same job (seed and RESUME_MUST_MATCH)."""
    saved = job_from_text(ckpt.config_toml, path).to_dict()
    wanted = job.to_dict()
    if saved["run"]["seed"] != wanted["run"]["seed"]:
        raise CheckpointError(path, "was written with a different run.seed; cannot resume")
    for section in RESUME_MUST_MATCH:
        saved_section, wanted_section = saved.get(section, {}), wanted.get(section, {})
        for key in sorted(set(saved_section) | set(wanted_section)):
            if saved_section.get(key) != wanted_section.get(key):
                raise CheckpointError(path, f"was written with {section}.{key} = {saved_section.get(key)!r}, "
                                            f"the job says {wanted_section.get(key)!r}; cannot resume")
