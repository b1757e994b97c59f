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


def over_return_std(values):
    """Returns divided by their standard deviation (ARS); non-finite ones count as the worst finite."""
    values = worst_for_nonfinite(values)
    std = values.std()
    return values / std if std > 0 else np.zeros_like(values)


def worst_for_nonfinite(values):
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    return np.where(np.isfinite(values), values, finite.min() if finite.size else 0.0)


def shape_fitness(values, method):
    if method == "centered_rank":
        return centered_ranks(values)
    if method == "return_std":
        return over_return_std(values)
    if method == "none":
        return worst_for_nonfinite(values)
    raise ValueError(f"unknown fitness shaping {method!r}")
