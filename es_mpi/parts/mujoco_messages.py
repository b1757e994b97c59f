"""MuJoCo's own warnings, routed through one handler per process.

MuJoCo prints every warning to stderr (and appends it to MUJOCO_LOG.TXT in the working
directory) each time a model compiles: gymnasium's models trigger the `settotalmass`
deprecation once per env, so a 2-rank run with lanes printed it dozens of times. Known
deprecations that are the model authors' to fix are dropped; any other warning is shown
once per process.
"""

import functools
import sys

KNOWN_DEPRECATIONS = ("compiler attribute 'settotalmass' is deprecated",)


class WarningFilter:
    def __init__(self, stream=None):
        self.stream = stream
        self.shown = set()

    def __call__(self, message):
        message = message.strip()
        if any(known in message for known in KNOWN_DEPRECATIONS) or message in self.shown:
            return
        self.shown.add(message)
        (self.stream or sys.stderr).write(f"MuJoCo warning: {message}\n")


@functools.lru_cache(maxsize=1)
def filter_mujoco_warnings():
    """Install the filter (once); returns it."""
    import mujoco

    handler = WarningFilter()
    mujoco.set_mju_user_warning(handler)
    return handler
