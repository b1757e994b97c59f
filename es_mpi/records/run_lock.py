"""One writer per run directory: a lock file naming the host, PID and Slurm job that hold it.

Creating the lock (O_CREAT | O_EXCL) is also the check that the directory can be written, before any
work. A lock is taken over, with a message, only when its holder is gone: the same host and a dead
PID, or the same Slurm job started again (a requeued job, possibly on another node, has a higher
SLURM_RESTART_COUNT). Two steps of one Slurm allocation never share a run directory.
"""

import json
import os
import pathlib
import socket
import time

from es_mpi.core.environment import slurm_restart_count
from es_mpi.core.errors import ConfigError
from es_mpi.core.guarded_read import UnreadableFile, read_text

LOCK_NAME = "es-mpi.lock"
MAX_LOCK_BYTES = 4096
MAX_PID = 2**31 - 1  # what kill(2) takes; a larger number names no process


def _holder():
    return {"host": socket.gethostname(), "pid": os.getpid(), "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            "slurm_restart_count": slurm_restart_count(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _is_pid(value):
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_PID


def _alive(pid):
    """Whether pid is a process that may still write. A zombie (exited, not yet reaped, as under a
    container init that never reaps) answers kill(pid, 0) but is gone."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc here: ask the kernel
        stat = None
    if stat is not None:
        return stat.rpartition(")")[2].split()[:1] not in (["Z"], ["X"])
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
    if holder.get("host") == mine["host"]:
        pid = holder.get("pid")
        if not _is_pid(pid):
            return f"it names no process (PID {pid!r})"
        return None if _alive(pid) else f"PID {pid} on {holder['host']} is gone"
    restarts = holder.get("slurm_restart_count", 0)
    if holder.get("slurm_job_id") and holder.get("slurm_job_id") == mine["slurm_job_id"] and \
            isinstance(restarts, int) and restarts < mine["slurm_restart_count"]:
        return f"Slurm job {holder['slurm_job_id']} was requeued (restart {mine['slurm_restart_count']})"
    return None


def acquire(run_dir, job_path, log):
    """Take the run directory's lock; ConfigError (naming the holder) if another run holds it."""
    path = run_dir / LOCK_NAME
    text = json.dumps(_holder())
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except FileExistsError:
            holder = _read(path, job_path)
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


def _read(path, job_path):
    """The holder a lock file names, or None when it names none; a lock that is not a regular file
    (a directory, a FIFO that would block the start) is refused, never read or removed."""
    try:
        holder = json.loads(read_text(path, MAX_LOCK_BYTES, "the run's lock"))
    except UnreadableFile as err:
        raise ConfigError(job_path, "run.dir", f"{err}; remove it if no run uses this directory") from None
    except (ValueError, RecursionError):
        return None
    return holder if isinstance(holder, dict) else None


def release(path):
    if path is not None:
        path.unlink(missing_ok=True)
