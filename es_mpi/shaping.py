"""Fitness shaping: rank-based, so one lucky episode cannot dominate an update."""

import numpy as np


def centered_ranks(values):
    """Ranks mapped to [-0.5, 0.5], same shape as `values`; ties broken by position (stable)."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    ranks = np.empty(flat.size, dtype=np.float64)
    ranks[np.argsort(flat, kind="stable")] = np.arange(flat.size, dtype=np.float64)
    if flat.size > 1:
        ranks /= flat.size - 1
    return (ranks - 0.5).reshape(np.shape(values))


def shape_fitness(values, method):
    if method == "centered_rank":
        return centered_ranks(values)
    if method == "none":
        values = np.asarray(values, dtype=np.float64)
        return np.where(np.isfinite(values), values, np.nanmin(np.where(np.isfinite(values), values, np.nan)))
    raise ValueError(f"unknown fitness shaping {method!r}")
