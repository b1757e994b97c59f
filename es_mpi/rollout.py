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


def run_episode(env, act, seed, step_cap, normalizer=None, record_obs=False, record_transitions=False):
    """Play one episode. A NaN/inf observation or reward ends it as the worst fitness (-inf).

    `record_transitions` keeps each step's policy input and action (tabular / action-space CEM).

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
        total += float(reward)
        length += 1
        if terminated or truncated:
            ended = terminated
            break
    stats = np.concatenate([sum_o, sumsq_o, [length]]) if record_obs and length else None
    transitions = np.array(steps) if record_transitions else None
    return Episode(total, length, not ended, False, stats, transitions)
