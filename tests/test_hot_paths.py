"""The speed-ups of the hot paths keep their results: chunking-invariant noise sum, np.clip's bits."""

import gymnasium as gym
import numpy as np

from es_mpi.parts.policies.mlp import ActionHead
from es_mpi.parts.strategies.openai_es import weighted_noise_sum


def test_weighted_noise_sum_is_the_weighted_sum_and_independent_of_chunking():
    draw = np.random.default_rng(3)
    noise = draw.standard_normal(50_000, dtype=np.float32)
    offsets_n = draw.integers(0, noise.size - 1_234, size=70)
    weights_n = draw.standard_normal(70).astype(np.float32)
    total_p = weighted_noise_sum(noise, offsets_n, weights_n, 1_234)
    exact_p = sum(np.float64(w) * noise[o:o + 1_234].astype(np.float64) for o, w in zip(offsets_n, weights_n))
    np.testing.assert_allclose(total_p, exact_p, rtol=0, atol=1e-4)
    for chunk in (1, 100, 1_233, 5_000):
        assert weighted_noise_sum(noise, offsets_n, weights_n, 1_234, chunk).tobytes() == total_p.tobytes()


def test_continuous_head_gives_np_clip_bits():
    space = gym.spaces.Box(low=np.array([-1, -2, 0, -0.5], dtype=np.float32),
                           high=np.array([1, 2, 3, 0.5], dtype=np.float32))
    head = ActionHead("continuous", space, bins=2)
    out = np.array([-3.0, np.nan, np.inf, 0.25], dtype=np.float32)
    action = head(out.copy())
    assert action.dtype == np.float32 and action.shape == space.shape
    assert action.tobytes() == np.clip(out, space.low, space.high).tobytes()
