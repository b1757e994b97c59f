"""One episode: parameters, env seed, step cap -> return, length, flags, observation stats."""

import dataclasses
import math

import numpy as np


@dataclasses.dataclass
class Episode:
    total_return: float
    length: int
    capped: bool
    nonfinite: bool
    obs_stats: np.ndarray = None  # [sum_o, sumsq_o, count] when recorded
    transitions: np.ndarray = None  # rows [policy input..., action...] when recorded


def run_episode(env, act, seed, step_cap, normalizer=None, record_obs=False, record_transitions=False,
                reward_offset=0.0):
    """Play one episode. A NaN/inf observation or reward ends it as the worst fitness (-inf).

    `record_transitions` keeps each step's policy input and action (tabular / action-space CEM);
    `reward_offset` is subtracted from every reward (the alive bonus, during training only).

    The per-step path calls ufuncs directly (np.clip's Python wrapper costs more than the
    arithmetic); min(max(v, -clip), clip) gives the same bits as np.clip(v, -clip, clip).
    """
    obs, _ = env.reset(seed=seed)
    if normalizer is not None:
        mean_o, inv_std_o, clip = normalizer
        low = -clip
    size = int(np.prod(np.shape(obs)))
    if record_obs:
        sum_o, sumsq_o = np.zeros(size), np.zeros(size)
    total, length, ended = 0.0, 0, False
    steps = []
    step, isfinite, as_float32 = env.step, math.isfinite, np.float32
    minimum, maximum, subtract, multiply = np.minimum, np.maximum, np.subtract, np.multiply
    while length < step_cap:
        x = np.asarray(obs, dtype=as_float32).reshape(size)
        if not isfinite(x.dot(x)):
            return Episode(-math.inf, length, False, True, None)
        if record_obs:
            sum_o += x
            sumsq_o += np.square(x, dtype=np.float64)
        if normalizer is not None:
            x = multiply(subtract(x, mean_o), inv_std_o)
            x = minimum(maximum(x, low, out=x), clip, out=x)
        action = act(x)
        if record_transitions:
            steps.append(np.concatenate([x, np.ravel(action)]).astype(np.float64))
        obs, reward, terminated, truncated, _ = step(action)
        if not isfinite(reward):
            return Episode(-math.inf, length + 1, False, True, None)
        total += float(reward) - reward_offset
        length += 1
        if terminated or truncated:
            ended = terminated
            break
    stats = np.concatenate([sum_o, sumsq_o, [length]]) if record_obs and length else None
    transitions = np.array(steps) if record_transitions else None
    return Episode(total, length, not ended, False, stats, transitions)


class _Lane:
    """One member playing in a lane of `run_lanes`: its env, input row, totals and observation sums."""

    def __init__(self, index, env, seed, x_o, record_obs):
        self.index, self.env, self.x_o = index, env, x_o
        self.obs, _ = env.reset(seed=seed)
        self.flat = isinstance(self.obs, np.ndarray) and self.obs.ndim == 1
        self.total, self.length = 0.0, 0
        self.sums_2o = np.zeros((2, x_o.size)) if record_obs else None

    def load_observation(self):
        self.x_o[:] = self.obs if self.flat else np.ravel(self.obs)

    def record(self):
        self.sums_2o[0] += self.x_o
        self.sums_2o[1] += np.square(self.x_o, dtype=np.float64)

    def act(self, action, reward_offset):
        """Step the env; an Episode if the member is done."""
        self.obs, reward, terminated, truncated, _ = self.env.step(action)
        self.length += 1
        if not math.isfinite(reward):
            return self.nonfinite()
        self.total += float(reward) - reward_offset
        return self.finish(capped=not terminated) if terminated or truncated else None

    def nonfinite(self):
        self.x_o[:] = 0.0
        return Episode(-math.inf, self.length, False, True, None)

    def finish(self, capped):
        stats = None
        if self.sums_2o is not None and self.length:
            stats = np.concatenate([self.sums_2o[0], self.sums_2o[1], [self.length]])
        return Episode(self.total, self.length, capped, False, stats)


def run_lanes(envs, forward, members, member, step_cap, normalizer=None, reward_offset=0.0):
    """Play the episodes of `members`, up to one per env at once, with one batched forward pass per
    step; -> {member: Episode}.

    `forward` is a policy's lanes forward pass (`load(slot, params_p)`, `move(source, target)`,
    `x_lo -> actions` for the first len(x_lo) slots);
    `members` is an iterable of member indices, drawn one at a time as slots free up (dynamic
    placement claims them then); `member(m) -> (params_p, seed, record_obs)` describes member m's
    episode. A slot whose member is done takes the next one; once none is left, the last lane moves into it, so the batch is
    always the first n slots and shrinks as the work runs out. Each row is computed on its own
    (a gemv per lane, elementwise ufuncs): an episode's bits do not depend on its slot or its
    neighbours, it is exactly what `run_episode` plays.
    """
    x_lo = np.zeros((len(envs), int(np.prod(envs[0].observation_space.shape))), dtype=np.float32)
    x_rows = list(x_lo)
    episodes, pending = {}, iter(members)

    def start(slot, env):
        k = next(pending, None)
        if k is None:
            return None
        params_p, seed, record_obs = member(k)
        forward.load(slot, params_p)
        return _Lane(k, env, seed, x_rows[slot], record_obs)

    def finish(slot, episode):
        """Record a finished episode; refill its slot, or move the last lane into it."""
        episodes[lanes[slot].index] = episode
        following = start(slot, lanes[slot].env)
        if following is not None:
            lanes[slot] = following
            return
        last = lanes.pop()
        if slot < len(lanes):
            forward.move(len(lanes), slot)
            last.x_o, lanes[slot] = x_rows[slot], last

    lanes = [lane for lane in (start(slot, env) for slot, env in enumerate(envs)) if lane is not None]
    while lanes:
        capped = [slot for slot, lane in enumerate(lanes) if lane.length >= step_cap]
        for slot in reversed(capped):
            finish(slot, lanes[slot].finish(capped=True))
        if capped:
            continue
        for lane in lanes:
            lane.load_observation()
        n = len(lanes)
        x_flat = x_lo[:n].reshape(-1)
        if not math.isfinite(x_flat.dot(x_flat)):
            bad = [slot for slot in range(n) if not math.isfinite(x_rows[slot].dot(x_rows[slot]))]
            for slot in reversed(bad):
                finish(slot, lanes[slot].nonfinite())
            continue
        for lane in lanes:
            if lane.sums_2o is not None:
                lane.record()
        z_lo = x_lo[:n]
        if normalizer is not None:
            mean_o, inv_std_o, clip = normalizer
            z_lo = np.multiply(np.subtract(z_lo, mean_o), inv_std_o)
            z_lo = np.minimum(np.maximum(z_lo, -clip, out=z_lo), clip, out=z_lo)
        actions = forward(z_lo)
        done = [(slot, episode) for slot, episode in
                ((slot, lane.act(action, reward_offset)) for slot, (lane, action) in enumerate(zip(lanes, actions)))
                if episode is not None]
        for slot, episode in reversed(done):
            finish(slot, episode)
    return episodes
