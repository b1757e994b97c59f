"""Errors a user can fix: printed as one line, exit code 2, no traceback."""

EXIT_OK = 0
EXIT_CRASH = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 3


class UserError(Exception):
    """Bad input (job file, checkpoint, argument). `str()` is the whole message."""


class ConfigError(UserError):
    def __init__(self, path, key, reason):
        self.path, self.key, self.reason = str(path), key, reason
        where = f"{self.path}: {key}" if key else self.path
        super().__init__(f"{where}: {reason}")

    def __reduce__(self):
        """Picklable, so that rank 0 can broadcast its verdict to the other ranks."""
        return type(self), (self.path, self.key, self.reason)


class CheckpointError(UserError):
    def __init__(self, path, reason):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")

    def __reduce__(self):
        return type(self), (self.path, self.reason)


class RunFailure(Exception):
    """The run cannot go on (a checkpoint cannot be written, the parameters diverged): every rank
    knows it at the same point, rank 0 prints `str()` as one line, the exit code is 1."""


class CheckpointWriteError(RunFailure):
    """Writing a checkpoint failed (disk full, quota, I/O error); the previous one is intact."""


class AgreedError(Exception):
    """A UserError that every rank raised at the same point from the same data (rank 0's verdict on the
    run directory, the broadcast checkpoint, a setting the node runtime refused): reported once, and
    every rank exits 2 by itself."""

    def __init__(self, error):
        super().__init__(str(error))
        self.error = error
