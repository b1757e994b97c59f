"""Stop signals (Slurm's time-limit warning, preemption, Ctrl-C), caught from the start of `train`.

`es-mpi train` installs the flag before it imports gymnasium or starts MPI, so that a signal during
start-up is kept, never fatal: the run then stops before its first iteration with exit 3, and
`--resume` starts or continues it (docs/architecture.md, contract 5).
"""

import signal

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


class StopFlag:
    """The first stop signal received (0: none); repeats (Slurm may send two) are ignored."""

    def __init__(self):
        self.signal = 0
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        self.signal = self.signal or signum

    @property
    def name(self):
        return signal.Signals(self.signal).name


_flag = None


def ignore_stop_signals():
    """Once the run has ended: a stop said again (the launcher repeats it) must not kill a rank that is
    already exiting. Python puts its own handlers back to the default at shutdown, but not an ignore."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def catch_stop_signals():
    """The process's StopFlag, installed on first use."""
    global _flag
    if _flag is None:
        _flag = StopFlag()
    return _flag
