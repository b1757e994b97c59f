"""Progress lines on stdout that a closed console cannot stop.

A user who pipes `es-mpi train` into `head`, or whose terminal goes away, has closed the console,
not asked to stop training: the run keeps going, checkpoints and exits with its own code.
"""

import os
import sys


def say(line):
    """Print one line; once stdout is closed (EPIPE), the rest goes to /dev/null."""
    try:
        print(line, flush=True)
    except BrokenPipeError:
        silence_stdout()


def silence_stdout():
    """Point stdout at /dev/null, so that neither later lines nor the flush at exit fail."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
