"""One writer per run directory: a lock file naming the host, PID and Slurm job that hold it.

Creating the lock (O_CREAT | O_EXCL) is also the check that the directory can be written, before any
work. A lock whose holder is gone is taken over, with a message: the same host and a dead PID, or
the same Slurm job id (a requeued job starts again, possibly on another node).
"""

import json
import os
import socket
import time

from es_mpi.core.errors import ConfigError

LOCK_NAME = "es-mpi.lock"


def _holder():
    return {"host": socket.gethostname(), "pid": os.getpid(), "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale(holder):
    """Why the holder is gone, or None if it may still be writing."""
    mine = _holder()
    if holder.get("slurm_job_id") and holder.get("slurm_job_id") == mine["slurm_job_id"]:
        return f"Slurm job {holder['slurm_job_id']} started again"
    if holder.get("host") == mine["host"] and isinstance(holder.get("pid"), int) and not _alive(holder["pid"]):
        return f"PID {holder['pid']} on {holder['host']} is gone"
    return None


def acquire(run_dir, job_path, log):
    """Take the run directory's lock; ConfigError (naming the holder) if another run holds it."""
    path = run_dir / LOCK_NAME
    text = json.dumps(_holder())
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except FileExistsError:
            holder = _read(path)
            why = _stale(holder) if holder is not None else "its lock file is unreadable"
            if why is None:
                raise ConfigError(job_path, "run.dir", f"{run_dir} is in use by es-mpi (PID {holder.get('pid')} on "
                                                       f"{holder.get('host')}, Slurm job {holder.get('slurm_job_id')}, "
                                                       f"since {holder.get('since')}); if that run is gone, delete "
                                                       f"{path}") from None
            log(f"es-mpi: taking over the lock of {run_dir}: {why}")
            path.unlink(missing_ok=True)
            continue
        except OSError as err:
            raise ConfigError(job_path, "run.dir", f"cannot write in {run_dir}: {err.strerror}") from None
        with os.fdopen(fd, "w") as fh:
            fh.write(text + "\n")
        return path
    raise ConfigError(job_path, "run.dir", f"{run_dir}: another es-mpi run took the lock at the same moment")


def _read(path):
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def release(path):
    if path is not None:
        path.unlink(missing_ok=True)
