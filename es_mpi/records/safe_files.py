"""Writing files in a run directory without following links a stranger planted there.

Every file es-mpi writes is either replaced atomically (a fresh temporary file with a random
name, made with O_EXCL, then renamed over the target: a rename replaces a link, never writes
through it), or appended to with O_NOFOLLOW.
"""

import contextlib
import os
import pathlib
import tempfile


def temporary_beside(path):
    """A new, empty regular file beside `path` with an unguessable name (O_EXCL: never a link)."""
    path = pathlib.Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; run files get the usual permissions
    finally:
        os.close(fd)
    return pathlib.Path(name)


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_dir(directory):
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def replacing(path, durable=False):
    """Yield a temporary path to write; on success it is renamed over `path` (fsynced first, and
    the directory after, when `durable`); on any error it is removed and `path` is left as it was."""
    path = pathlib.Path(path)
    tmp = temporary_beside(path)
    try:
        yield tmp
        if durable:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def replace_text(path, text):
    with replacing(path) as tmp:
        tmp.write_text(text)


def append_text(path, text):
    """Append to an existing regular file; False (nothing written) when `path` is a link or missing."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
    except (FileNotFoundError, IsADirectoryError):
        return False
    except OSError as err:
        if os.path.islink(path):
            return False
        raise err
    with os.fdopen(fd, "a") as fh:
        fh.write(text)
    return True
