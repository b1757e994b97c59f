"""The one way es-mpi reads a file someone else may have written: job files, locks, metrics.

A FIFO, a device or a directory in place of a file would block start-up or read without end
(`/dev/zero`), so a file is opened without blocking, must be a regular file, and is refused when
it is larger than its kind of file can be. Every refusal is an `UnreadableFile`: one line naming
the file and the reason, exit code 2.
"""

import os
import stat

from es_mpi.core.errors import UserError

MAX_NESTING = 16  # arrays and tables inside one another in a job (a real job needs 3)

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


class UnreadableFile(UserError):
    def __init__(self, path, reason):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")

    def __reduce__(self):
        """Picklable, so that rank 0 can broadcast it."""
        return type(self), (self.path, self.reason)


def _kind(mode):
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def read_bytes(path, limit, what):
    """The bytes of regular file `path`, at most `limit` of them; `what` names the file in errors."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO opens at once, unread
    except OSError as err:
        raise UnreadableFile(path, f"cannot read {what} ({err.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFile(path, f"{what} must be a regular file, not {_kind(info.st_mode)}")
        if info.st_size > limit:
            raise UnreadableFile(path, f"{what} is {info.st_size:,} bytes, more than {limit:,}")
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, limit + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise UnreadableFile(path, f"{what} grew past {limit:,} bytes while being read")
        return b"".join(chunks)
    except OSError as err:
        raise UnreadableFile(path, f"cannot read {what} ({err.strerror})") from None
    finally:
        os.close(fd)


def read_text(path, limit, what):
    """`read_bytes` decoded as UTF-8 (a bad byte is named by its offset)."""
    data = read_bytes(path, limit, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UnreadableFile(path, f"{what} is not UTF-8 text (byte {err.start})") from None


def nesting_depth(value):
    """How deeply lists and dicts nest in `value` (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > MAX_NESTING:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest
