"""Strategies on a plain function, without MPI or environments: for tests and benchmarks."""

import math

import numpy as np


def minimize(strategy, function, max_evaluations, target):
    """ask/evaluate/tell until min f <= target or the budget is spent.

    Returns (evaluations, best value): evaluations count whole iterations, up to and
    including the one that first reached the target (fitness = -f).
    """
    best, evaluations, iteration = math.inf, 0, 0
    while evaluations < max_evaluations:
        iteration += 1
        strategy.ask(iteration)
        values_n = np.array([function(strategy.member_params(m).astype(np.float64))
                             for m in range(strategy.population)])
        evaluations += strategy.population
        best = min(best, float(values_n.min()))
        if best <= target:
            break
        strategy.tell(-values_n)
    return evaluations, best
