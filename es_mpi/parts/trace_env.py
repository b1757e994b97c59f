"""A trace env: replays recorded episodes' lengths and costs by sleeping, for an emulated cluster.

Many ranks oversubscribed on a few cores spend their episodes asleep, as busy cores would be
busy, so placement, waits and the exchange can be measured at 64 ranks on one small machine
(benchmarks/emulated_cluster.py). A trace (.npz, written by benchmarks/record_traces.py) holds
one row per recorded episode of a real env: its length, whether the env's time limit cut it, and
the CPU seconds a core spent on it. `reset(seed)` picks a recorded episode by a seeded draw, so
member m of iteration t replays the same episode whatever the rank count, and each step costs
`time_scale` x the episode's seconds / its length.

The costs are charged to the one core the process stands for (`CORE`): every trace env of the
process (a rank's lanes, its evaluation episodes) adds its steps to the time that core is busy
until, so lanes stepping in turn take the sum of their costs, as on a real core. The process
sleeps until that time, not for each step's cost: the policy's own work and the sleeps' overshoot
do not add up, and an episode lasts what it asked for. A gap of more than IDLE_GAP_S between two
steps (the pipelined mode tells an iteration between two steps, and waits there) is time the core
spent on something else: the work still owed stays owed after it, instead of being done during
it. It sleeps only once at least MIN_SLEEP_S is owed, and at an episode's last step: on this kind of machine a sleep costs tens of microseconds
of CPU, which per step would keep dozens of ranks from being idle. Every reward is the step's
cost, so a return is the seconds the episode asked for and metrics.csv carries the serial work.
Observations are zeros of the recorded env's shape: the policy has the recorded size, but its
inputs cost nothing to make.
"""

import io
import pathlib
import time

import gymnasium as gym
import numpy as np

from es_mpi.core.guarded_read import UnreadableFile, read_bytes

TRACE_ENV_ID = "es_mpi/Trace-v0"
MAX_TRACE_BYTES = 64 * 2**20  # the committed traces are a few KB
MIN_SLEEP_S = 0.05
IDLE_GAP_S = 0.01  # above a step's own work and a wait of Open MPI's progress loop (2 ms in the benchmark)

# The arrays every trace holds, with their kinds; other keys (what the recorder measured besides,
# where the trace came from) are kept for readers of the file and not needed to replay it.
EPISODE_ARRAYS = {"lengths_e": "i", "truncated_e": "b", "cpu_s_e": "f"}


def register():
    """Make TRACE_ENV_ID known to gymnasium (once); a job names it with env.kwargs.trace = PATH."""
    if TRACE_ENV_ID not in gym.envs.registry:
        gym.register(TRACE_ENV_ID, entry_point=f"{__name__}:TraceEnv", disable_env_checker=True, order_enforce=False)


def load_trace(path):
    """The trace at `path` as {name: array}, checked to replay; ValueError naming the file and key."""
    path = pathlib.Path(path)
    try:
        data = read_bytes(path, MAX_TRACE_BYTES, "the trace")  # a FIFO or a device named as a trace never blocks
    except UnreadableFile as err:
        raise ValueError(f"trace {path}: {err.reason}") from None
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            trace = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"trace {path}: cannot read it as .npz ({err})") from None
    for name, kind in {**EPISODE_ARRAYS, "action_low_a": "f", "action_high_a": "f", "obs_size": "i"}.items():
        if name not in trace:
            raise ValueError(f"trace {path}: no {name!r} array")
        if trace[name].dtype.kind not in (kind, "u" if kind == "i" else kind):
            raise ValueError(f"trace {path}: {name} has dtype {trace[name].dtype}, expected kind {kind!r}")
    n = trace["lengths_e"].size
    for name in EPISODE_ARRAYS:
        if trace[name].shape != (n,) or n == 0:
            raise ValueError(f"trace {path}: {name} must hold one value per episode ({n}), has shape {trace[name].shape}")
    if trace["lengths_e"].min() < 1:
        raise ValueError(f"trace {path}: lengths_e must be at least 1")
    if not (np.all(np.isfinite(trace["cpu_s_e"])) and trace["cpu_s_e"].min() >= 0):
        raise ValueError(f"trace {path}: cpu_s_e must be finite and non-negative")
    if trace["obs_size"].shape != () or trace["obs_size"] < 1:
        raise ValueError(f"trace {path}: obs_size must be one integer of at least 1")
    low, high = trace["action_low_a"], trace["action_high_a"]
    if low.ndim != 1 or low.shape != high.shape or low.size == 0 or not np.all(low < high):
        raise ValueError(f"trace {path}: action_low_a and action_high_a must be equal-length bounds, low < high")
    return trace


class EmulatedCore:
    """The core a process stands for: `busy_until` is when the work charged so far is done."""

    def __init__(self):
        self.busy_until = 0.0
        self.last_charge = 0.0  # when the last step was charged,
        self.owed_then = 0.0  # and the work owed at that moment

    def start(self):
        """An episode begins: the core is busy from now at the earliest (waiting for work is no work)."""
        self.busy_until = max(self.busy_until, time.perf_counter())

    def charge(self, seconds, last):
        """Add one step's cost; sleep until it is done once MIN_SLEEP_S is owed, or at an episode's `last` step.
        After a gap of more than IDLE_GAP_S since the last step, what was owed is still owed."""
        now = time.perf_counter()
        if now - self.last_charge > IDLE_GAP_S:
            self.busy_until = max(self.busy_until, now + max(0.0, self.owed_then))
        self.busy_until += seconds
        owed = self.busy_until - now
        if owed >= MIN_SLEEP_S or (last and owed > 0):
            time.sleep(owed)
        self.last_charge = time.perf_counter()
        self.owed_then = self.busy_until - self.last_charge


CORE = EmulatedCore()


class TraceEnv(gym.Env):
    """Recorded episodes replayed as sleeps; `time_scale` stretches every recorded second."""

    metadata = {"render_modes": []}

    def __init__(self, trace, time_scale=1.0, render_mode=None):
        if not (isinstance(time_scale, (int, float)) and 0 < time_scale < float("inf")):
            raise ValueError(f"time_scale must be a positive number, not {time_scale!r}")
        recorded = load_trace(trace)
        self.lengths_e = recorded["lengths_e"].astype(np.int64)
        self.truncated_e = recorded["truncated_e"].astype(bool)
        self.seconds_e = time_scale * recorded["cpu_s_e"].astype(np.float64)
        self._obs_o = np.zeros(int(recorded["obs_size"]), dtype=np.float32)
        self._obs_o.flags.writeable = False
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, self._obs_o.shape, np.float32)
        self.action_space = gym.spaces.Box(recorded["action_low_a"].astype(np.float32),
                                           recorded["action_high_a"].astype(np.float32), dtype=np.float32)
        self.episode, self._steps, self._step_s = None, 0, 0.0

    def draw(self):
        """The recorded episode the next reset replays: a draw from the env's seeded generator."""
        return int(self.np_random.integers(self.lengths_e.size))

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode, self._steps = self.draw(), 0
        self._step_s = float(self.seconds_e[self.episode] / self.lengths_e[self.episode])
        CORE.start()
        return self._obs_o, {"episode": self.episode}

    def step(self, action):
        self._steps += 1
        done = bool(self._steps >= self.lengths_e[self.episode])
        CORE.charge(self._step_s, done)
        truncated = done and bool(self.truncated_e[self.episode])
        return self._obs_o, self._step_s, done and not truncated, truncated, {}
