"""The VBN reference batch: collected once per run by random play, kept in every checkpoint."""

import gymnasium as gym
import numpy as np

from es_mpi.core.errors import CheckpointError
from es_mpi.core.seeding import Purpose, rng

CHECKPOINT_KEY = "vbn_reference"  # under the checkpoint's extra/ group


def random_action(space, draw):
    if isinstance(space, gym.spaces.Discrete):
        return int(draw.integers(space.n)) + int(space.start)
    low, high = np.broadcast_arrays(space.low, space.high)
    bounded = np.isfinite(low) & np.isfinite(high)
    sample = np.where(bounded, draw.uniform(np.where(bounded, low, 0), np.where(bounded, high, 1)),
                      draw.standard_normal(space.shape))
    return sample.astype(space.dtype)


def collect_reference(env, size, probability, seed, step_cap):
    """`size` observations from uniformly random play; each step's observation joins with `probability`.

    A pure function of (job seed, env): every rank, and every later resume, would get the same batch.
    """
    draw = rng(seed, purpose=Purpose.VBN_REFERENCE)
    kept = []
    while len(kept) < size:
        obs, _ = env.reset(seed=int(draw.integers(0, 2**31 - 1)))
        for _ in range(step_cap):
            if draw.random() < probability:
                kept.append(np.array(obs))
                if len(kept) == size:
                    break
            obs, _, terminated, truncated, _ = env.step(random_action(env.action_space, draw))
            if terminated or truncated:
                break
    return np.asarray(kept, dtype=env.observation_space.dtype)


def reference_from_checkpoint(path, ckpt, job, observation_space):
    """The checkpoint's reference batch, checked against the job's batch size and the observation shape."""
    reference = ckpt.extra.get(CHECKPOINT_KEY)
    if reference is None:
        raise CheckpointError(path, f"policy.vbn is on but extra/{CHECKPOINT_KEY} is missing")
    expected = (job.policy.vbn_batch, *observation_space.shape)
    if reference.shape != expected or reference.dtype != observation_space.dtype:
        raise CheckpointError(path, f"extra/{CHECKPOINT_KEY} is {reference.dtype}{list(reference.shape)}, "
                                    f"expected {observation_space.dtype}{list(expected)}")
    return reference
