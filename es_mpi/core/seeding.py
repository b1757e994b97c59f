"""Every random draw is a pure function of (job seed, iteration, member index, purpose).

Nothing here may depend on the MPI rank or the rank count (docs/architecture.md, contract 1).
"""

import enum

import numpy as np


class Purpose(enum.IntEnum):
    INIT_PARAMS = 1
    NOISE_OFFSETS = 2
    EPISODE = 3
    OBS_SAMPLE = 4
    EVAL_EPISODE = 5
    NOISE_TABLE = 6
    STRATEGY = 7
    ACTION = 8
    VBN_REFERENCE = 9
    CROSSOVER = 10
    POLICY_SAMPLE = 11
    MINIBATCH = 12


def rng(seed, *key, purpose):
    """A Philox generator keyed by (seed, *key, purpose); the same key gives the same stream."""
    words = [int(seed), *(int(k) for k in key), int(purpose)]
    return np.random.Generator(np.random.Philox(np.random.SeedSequence(words)))


def episode_seed(seed, iteration, member, purpose=Purpose.EPISODE):
    """The integer a gymnasium env is reset with for one episode."""
    return int(rng(seed, iteration, member, purpose=purpose).integers(0, 2**31 - 1))
