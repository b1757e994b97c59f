"""The one episode loop: members play in lanes, one forward pass per step for every lane in play.

A lane is where one member's episode runs. Two sources of lanes: `EnvLanes` (gymnasium envs, one
per lane) and `vector_rollout.VectorLanes` (the lanes of one ale-py vector env). Two forward
passes: a policy's batched one (`policy.lanes(n)`, loaded with member parameters) and `Actors`
(loaded with functions obs -> action). A member playing alone is a lane of one (`run_episode`).
"""

import dataclasses
import math

import numpy as np
from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker, TimeLimit

from es_mpi.run.obstat import normalize


@dataclasses.dataclass
class Episode:
    total_return: float
    length: int
    capped: bool
    nonfinite: bool
    obs_stats: np.ndarray = None  # [sum_o, sumsq_o, count] when recorded
    transitions: np.ndarray = None  # rows [policy input..., action...] when recorded


class _InPlay:
    """A member in a slot: its lane, return and length so far, recorded steps (its observation sums
    are its slot's rows of play's `_ObsSums`)."""

    __slots__ = ("index", "lane", "total", "length", "record_obs", "reward_offset", "cap", "steps")

    def __init__(self, index, lane, start, cap, record_transitions):
        self.index, self.lane, self.total, self.length = index, lane, 0.0, 0
        self.record_obs, self.reward_offset, self.cap = start.record_obs, start.reward_offset, cap
        self.steps = [] if record_transitions else None

    def nonfinite(self):
        return Episode(-math.inf, self.length, False, True, None)

    def finished(self, capped, sums_2o):
        stats = None
        if self.record_obs and self.length:
            stats = np.concatenate([sums_2o.ravel(), [self.length]])
        transitions = np.array(self.steps) if self.steps is not None else None
        return Episode(self.total, self.length, capped, False, stats, transitions)


class _ObsSums:
    """Per slot: the sum and the sum of squares of its member's observations, in float64, added one
    step at a time for all slots at once. Each element gets the same float64 additions as a slot
    adding its own row (elementwise ufuncs, no reduction), so the sums do not depend on the batch."""

    def __init__(self, n_slots, width):
        self.sums_s2o = np.zeros((n_slots, 2, width))
        self.x64_so = np.empty((n_slots, width))

    def add(self, x_so):
        """x_so: float32 rows, cast to float64 inside each ufunc (exact), as `sum += x` and
        np.square(x, dtype=float64) cast them."""
        n = len(x_so)
        sums, x64 = self.sums_s2o[:n], self.x64_so[:n]
        np.add(sums[:, 0], x_so, out=sums[:, 0])
        np.add(sums[:, 1], np.multiply(x_so, x_so, out=x64, dtype=np.float64), out=sums[:, 1])

    def clear(self, slot):
        self.sums_s2o[slot] = 0.0

    def move(self, source, target):
        self.sums_s2o[target] = self.sums_s2o[source]


def _stepped(env):
    """(what to call `step` on, the step limit that call leaves out): gymnasium.make's own wrappers
    peeled off the outside while they add nothing to a step after reset: TimeLimit (its truncation
    becomes play's step cap, which ends the episode at the same step with the same flags),
    OrderEnforcing (play resets first), PassiveEnvChecker once its first-step checks are done. Each
    costs a Python call per step; any other wrapper, or a subclass, stops the peeling."""
    limit = math.inf
    while True:
        kind = type(env)
        if kind is TimeLimit:
            limit = min(limit, env._max_episode_steps)
        elif not (kind is OrderEnforcing or kind is PassiveEnvChecker and env.checked_step and env.checked_data_reuse):
            return env, limit
        env = env.env


class EnvLanes:
    """Gymnasium envs, one per lane. Each lane's latest observation is kept as a float32 row of one
    (lanes x width) array, the batch the forward pass reads; `made` are the envs to close with the lanes.
    Resets go through each env's wrappers; steps skip gymnasium.make's own (`_stepped`)."""

    may_be_nonfinite = True

    def __init__(self, envs, made=()):
        self.envs, self.made, self.n_lanes = list(envs), list(made), len(envs)
        self.x_lo = self.obs_views = None
        self.steppers = list(self.envs)
        # the TimeLimit every lane's steps skip becomes play's cap; lanes that disagree skip nothing
        limits = {_stepped(env)[1] for env in self.envs}
        self.max_episode_steps = limits.pop() if len(limits) == 1 else math.inf
        self.peel = self.max_episode_steps < math.inf

    @classmethod
    def around(cls, env, make_env, n_lanes):
        """`env` and n_lanes - 1 new ones from `make_env`."""
        made = [make_env() for _ in range(n_lanes - 1)]
        return cls([env, *made], made)

    def start(self, starts):
        """Reset the lane of each (lane, seed)."""
        for lane, seed in starts:
            obs, _ = self.envs[lane].reset(seed=seed)
            if self.x_lo is None:  # each row seen in the observation's own shape, so any observation copies in
                self.x_lo = np.zeros((self.n_lanes, np.size(obs)), dtype=np.float32)
                self.obs_views = [row.reshape(np.shape(obs)) for row in self.x_lo]
            self.obs_views[lane][...] = obs
            if self.peel:
                stepper, limit = _stepped(self.envs[lane])
                self.steppers[lane] = stepper if limit == self.max_episode_steps else self.envs[lane]

    def observe(self, take):
        """The latest observations of the lanes `take` (a slice, or a list in slot order): (n, width) float32."""
        return self.x_lo[take]

    def step(self, lanes_l, actions):
        """Step each lane with its action; -> (reward, terminated, truncated) per lane."""
        outcomes, steppers, views = [], self.steppers, self.obs_views
        for lane, action in zip(lanes_l, actions):
            views[lane][...], reward, terminated, truncated, _ = steppers[lane].step(action)
            outcomes.append((reward, terminated, truncated))
        return outcomes

    def close(self):
        for env in self.made:
            env.close()


class Actors:
    """A forward pass whose lanes hold functions obs -> action: a member's own actor (action-space
    or tabular CEM), a VBN network, a network too large for batched lanes."""

    def __init__(self, n_lanes=1):
        self.acts = [None] * n_lanes

    def load(self, lane, act):
        self.acts[lane] = act

    def move(self, source, target):
        self.acts[target] = self.acts[source]

    def __call__(self, x_lo):
        """Row l through lane l's actor (rows by index: iterating an array costs more than the call)."""
        acts = self.acts
        return [acts[lane](x_lo[lane]) for lane in range(len(x_lo))]


@dataclasses.dataclass(frozen=True)
class Start:
    """What one episode needs: its `player` (what `forward.load` takes), its seed, whether its
    observations are recorded, the offset subtracted from every reward (the alive bonus, training
    only) and its step cap (training's adaptive cap, or the env's limit for an evaluation)."""
    player: object
    seed: int
    record_obs: bool = False
    reward_offset: float = 0.0
    step_cap: float = math.inf


def play(lanes, forward, members, member, normalizer=None, record_transitions=False, most_held=None, between=None):
    """Play the episodes of `members`, up to one per lane at once, with one forward pass per step;
    -> {member: Episode}. A NaN/inf observation or reward ends an episode as the worst fitness (-inf).

    `lanes` is a source of lanes (`EnvLanes`, `vector_rollout.VectorLanes`): `start([(lane, seed)])`,
    `observe(take)` -> the batch of the observations of lanes `take` (a slice while slot s plays in
    lane s, else the list), `step(lanes_l, actions)` -> per lane (reward, terminated, truncated),
    or None for a step that is not part of the episode; `may_be_nonfinite` says whether its
    observations need the NaN/inf check.
    `members` is an iterable of member indices, drawn one at a time as slots free up (dynamic
    placement claims them then); `member(m) -> Start` describes member m's episode. At most
    `most_held` members are in play at once (the rank's share of its node's block,
    run/placement.py). A slot whose member is done takes the next one, in the same lane; once none
    is left, the last slot moves into it, so the batch is always the first n slots and shrinks as
    the work runs out. `record_transitions` keeps each step's policy input and action (tabular and
    action-space CEM). `between()`, when given, runs before every step (the pipelined mode tests
    there whether the iteration before has been played everywhere, run/pipeline.py).

    Each slot's row is computed on its own (a gemv per lane, elementwise ufuncs): an episode's bits
    are a function of its player and seed, never of its lane, its neighbours or the lane count.
    (`x_lo`: one row per slot in play; Atari's rows are frames, (l, c, h, w).)
    """
    n_slots = lanes.n_lanes if most_held is None else min(lanes.n_lanes, most_held)
    episodes, pending, slots, lanes_l, starts = {}, iter(members), [], [], []
    obs_sums = None  # made at the first recorded step, which gives the width
    isfinite = math.isfinite

    def assign(slot, lane):
        """The next member into `slot` (appended when slot == len(slots)); False when none is left."""
        k = next(pending, None)
        if k is None:
            return False
        start = member(k)
        forward.load(slot, start.player)
        state = _InPlay(k, lane, start, min(start.step_cap, lanes.max_episode_steps), record_transitions)
        if obs_sums is not None:
            obs_sums.clear(slot)
        if slot == len(slots):
            slots.append(state)
            lanes_l.append(lane)
        else:
            slots[slot] = state
        starts.append((lane, start.seed))
        return True

    def finish(slot, episode):
        """Record a finished episode; refill its slot, or move the last slot into it."""
        nonlocal reslotted
        reslotted = True
        episodes[slots[slot].index] = episode
        if assign(slot, slots[slot].lane):
            return
        last = slots.pop()
        lanes_l.pop()
        if slot < len(slots):
            forward.move(len(slots), slot)
            if obs_sums is not None:
                obs_sums.move(len(slots), slot)
            slots[slot], lanes_l[slot] = last, last.lane

    for lane in range(n_slots):
        if not assign(lane, lane):
            break
    reslotted, check_finite = True, lanes.may_be_nonfinite
    if normalizer is not None:  # one flat call per step: same-shape 1-D ufuncs take numpy's fast path,
        mean_o, inv_std_o, clip = normalizer  # broadcasting (n, o) against (o,) costs more than the arithmetic
        tiled = (np.tile(mean_o, n_slots), np.tile(inv_std_o, n_slots))
    while slots:
        if between is not None:
            between()
        if starts:
            lanes.start(starts)
            starts.clear()
        if reslotted:  # the batch's lanes, and whether anyone records, change only when a member finishes
            reslotted, n = False, len(lanes_l)
            take = slice(0, n) if lanes_l == list(range(n)) else list(lanes_l)
            recording = any(state.record_obs for state in slots)
            if normalizer is not None:
                normalizer_flat = (tiled[0][:n * mean_o.size], tiled[1][:n * mean_o.size], clip)
        x_lo = lanes.observe(take)
        x_flat = x_lo.ravel()
        if check_finite and not isfinite(x_flat.dot(x_flat)):
            bad = [slot for slot in range(n) if not isfinite(x_lo[slot].dot(x_lo[slot]))]
            if bad:  # else the float32 sum overflowed while every row is finite
                for slot in reversed(bad):
                    finish(slot, slots[slot].nonfinite())
                continue
        if recording:  # every slot's row (one batched add); only recording members' sums are used
            if obs_sums is None:
                obs_sums = _ObsSums(n_slots, x_flat.size // n)
            obs_sums.add(x_lo.reshape(n, -1))
        z_lo = x_lo if normalizer is None else normalize(x_flat, normalizer_flat).reshape(x_lo.shape)
        actions = forward(z_lo)
        if record_transitions:
            for slot, (state, action) in enumerate(zip(slots, actions)):
                state.steps.append(np.concatenate([np.ravel(z_lo[slot]), np.ravel(action)]).astype(np.float64))
        done = []
        for slot, (state, outcome) in enumerate(zip(slots, lanes.step(lanes_l, actions))):
            if outcome is None:  # a no-op start step (Atari), not part of the episode
                continue
            reward, terminated, truncated = outcome
            state.length += 1
            if not isfinite(reward):
                done.append((slot, state.nonfinite()))
                continue
            state.total += float(reward) - state.reward_offset
            if terminated or truncated or state.length >= state.cap:
                sums_2o = obs_sums.sums_s2o[slot] if state.record_obs else None
                done.append((slot, state.finished(not terminated, sums_2o)))
        for slot, episode in reversed(done):
            finish(slot, episode)
    return episodes


def run_episode(env, act, seed, step_cap, normalizer=None, record_obs=False, record_transitions=False,
                reward_offset=0.0):
    """One member playing alone: the actor `act` in a lane of one (see `play`)."""
    return play(EnvLanes([env]), Actors(), (0,), lambda _: Start(act, seed, record_obs, reward_offset, step_cap),
                normalizer, record_transitions)[0]
