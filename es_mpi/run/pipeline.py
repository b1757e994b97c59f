"""The pipelined mode (`run.pipeline = true`): a rank that has played its members of iteration t
starts on t + 1 while t's last episodes finish elsewhere (docs/architecture.md, "The pipelined mode").

Iteration t's members perturb the centre after t - 2, the last one told when its play starts, and
t's tell applies their returns to the centre after t - 1: the update is one iteration stale. A rank:

    plays t, and between two steps tests whether every rank has played t - 1; once so, it tells
        t - 1 (exchange, update, agreement, row, checkpoint: blocking, but every rank comes to it
        within a step of the others, since each tests between steps);
    if t - 1 is still untold when t's members run out, waits until every rank has played it, and
        tells it;
    enters t's non-blocking world barrier (`NodeRuntime.played_all`) and plays t + 1.

So at most two iterations are in flight. Everything t + 1's episodes play is fixed when its play
starts (trainer.Playing: a private copy of the centre, the ask's offsets, the normalizer, the step
cap), so the tell of t, which writes the node's centre in place, changes none of their bits,
wherever among the steps it lands. A periodic checkpoint written by t's tell also carries the
state t + 1 plays (`extra/pipeline/...`), so `--resume` replays t + 1 exactly.
"""

import dataclasses
import time

import numpy as np

from es_mpi.core.array_state import StateError
from es_mpi.core.errors import AgreedError, CheckpointError
from es_mpi.run.obstat import ObsStat
from es_mpi.run.trainer import Playing, Trainer

IN_FLIGHT = "pipeline"  # the checkpoint's extra/ group of the iteration in flight


class Stopped(Exception):
    """A tell between two steps ended the run: the play is abandoned (a resume replays it)."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


@dataclasses.dataclass
class Played:
    """An iteration every rank may not have played yet, and this rank's part of it."""
    playing: Playing
    busy_s: float
    transitions: dict
    everyone: object  # the request of its world barrier (NodeRuntime.played_all)


class PipelinedTrainer(Trainer):
    untold = None  # the Played iteration whose tell is still to come
    playing = None  # the Playing being played now: its state goes into every periodic checkpoint
    restored = None  # the state the checkpoint's iteration in flight plays, until the first Playing takes it
    telling_s = 0.0  # seconds of tells inside the current play (not the play's own time)
    last_told_at = None  # when the last tell ended: a row's iteration time counts from there

    def _restore(self, start):
        super()._restore(start)
        self.restored = in_flight_state(start.path, start.checkpoint, self.strategy)

    def _iterate(self):
        self.last_told_at = time.perf_counter()
        while True:
            t = self.iteration + 1 + (self.untold is not None)
            self.playing = self._playing(t, self.restored)
            self.restored = None
            if t > self.job.stop.iterations:  # nothing more to play, only the last tell; its checkpoint
                return self._tell_untold()    # still carries t, for a resume with a larger stop
            self.telling_s, start = 0.0, time.perf_counter()
            try:
                transitions = self._evaluate_members(self.playing, self._test_untold)
            except Stopped as stopped:
                return stopped.code
            busy_s = time.perf_counter() - start - self.telling_s
            code = self._tell_untold()
            if code is not None:
                return code
            self.untold = Played(self.playing, busy_s, transitions, self.runtime.played_all())

    def _test_untold(self):
        """Between two steps: tell the untold iteration once every rank has played it."""
        if self.untold is not None and self.untold.everyone.Test():
            code = self._tell_untold()
            if code is not None:
                raise Stopped(code)

    def _tell_untold(self):
        """Wait until every rank has played the untold iteration, tell it and conclude its row;
        -> the exit code when the run ends there, else None."""
        if self.untold is None:
            return None
        untold, self.untold = self.untold, None
        start = time.perf_counter()
        untold.everyone.Wait()
        waited_s = time.perf_counter() - start
        row, stop_signal = self._tell(untold.playing, untold.busy_s, untold.transitions, self.last_told_at, waited_s)
        self.last_told_at = time.perf_counter()
        code = self._conclude(row, stop_signal, untold.playing)
        self.telling_s += time.perf_counter() - start
        return code

    def _tell(self, playing, busy_s, transitions, since, waited_s=0.0):
        self.strategy.ask(playing.iteration)  # the offsets of the iteration told, not of the one in play
        return super()._tell(playing, busy_s, transitions, since, waited_s)

    def _in_flight(self):
        """The state the iteration in flight plays, under extra/pipeline/ (rank 0 holds it)."""
        state = self.playing.state
        flat = {f"{IN_FLIGHT}/{key}": np.int64(state[key]) for key in ("iteration", "timesteps", "step_cap")}
        flat[f"{IN_FLIGHT}/params"] = state["params"]
        for part in ("strategy", "obstat"):
            flat.update({f"{IN_FLIGHT}/{part}/{key}": value for key, value in state[part].items()})
        return flat


def in_flight_state(path, ckpt, strategy):
    """The state the checkpoint's iteration in flight plays (as Trainer._state() gives it), checked
    against the strategy's and observation statistics' layouts; None when the checkpoint has none
    (written without run.pipeline: the resumed run then plays the checkpoint's own centre first)."""
    prefix = f"{IN_FLIGHT}/"
    stored = {key[len(prefix):]: value for key, value in ckpt.extra.items() if key.startswith(prefix)}
    if not stored:
        return None

    def refuse(key, reason):
        raise AgreedError(CheckpointError(path, f"extra/{IN_FLIGHT}/{key}: {reason}"))

    state = {}
    for key, low, high in (("iteration", max(0, ckpt.iteration - 1), ckpt.iteration),
                           ("timesteps", 0, ckpt.timesteps), ("step_cap", 1, None)):
        if key not in stored:
            refuse(key, "missing")
        value = np.asarray(stored[key])
        if value.shape != () or value.dtype.kind not in "iu" or value < low or (high is not None and value > high):
            refuse(key, f"{value.tolist()!r} is not an integer in [{low}, {high if high is not None else 'inf'}]")
        state[key] = int(value)
    center_p = np.asarray(strategy.center())
    params = np.asarray(stored.get("params", np.zeros(0)))
    if params.dtype != center_p.dtype or params.shape != center_p.shape:
        refuse("params", f"{params.dtype}{list(params.shape)}, expected {center_p.dtype}{list(center_p.shape)}")
    state["params"] = params
    for part, expected in (("strategy", strategy.state_dict()), ("obstat", None)):
        values = {key[len(part) + 1:]: value for key, value in stored.items() if key.startswith(f"{part}/")}
        try:
            if expected is None:
                ObsStat(np.asarray(ckpt.obstat["sum"]).size).load_state_dict(values)
            else:
                check_like(values, expected)
        except StateError as err:
            refuse(f"{part}/{err.key}", err.reason)
        state[part] = values
    return state


def check_like(values, expected):
    """StateError unless `values` has exactly `expected`'s keys, dtypes and shapes."""
    for key in sorted(set(values) | set(expected)):
        if key not in values:
            raise StateError(key, "missing")
        if key not in expected:
            raise StateError(key, "not part of this state")
        value, want = np.asarray(values[key]), np.asarray(expected[key])
        if value.dtype != want.dtype or value.shape != want.shape:
            raise StateError(key, f"{value.dtype}{list(value.shape)}, expected {want.dtype}{list(want.shape)}")
