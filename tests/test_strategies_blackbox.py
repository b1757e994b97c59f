"""Every strategy on black-box functions, pure numpy (no MPI): stated targets within stated
budgets, CMA-ES against pycma, exact state round-trips through an HDF5 checkpoint."""

import numpy as np
import pytest

from strategy_cases import learns_from_fitness_alone, strategy_cases

from es_mpi.records import checkpoint as ckpt_io
from es_mpi.parts.strategies.blackbox import minimize
from es_mpi.run.noise import local_table
from es_mpi.parts.objectives import ackley, rastrigin, rosenbrock, sphere
from es_mpi.parts.strategies import STRATEGIES, make_strategy
from es_mpi.run.obstat import ObsStat

NOISE = local_table(1_000_000, 7)
DIM = 10

# (strategy, settings, target, evaluation budget). Sphere starts at (1, ..., 1), f = 10;
# Rosenbrock at the origin, f = 9. Fixed-sigma methods stop near their noise floor, and
# diagonal-Gaussian methods crawl along Rosenbrock's valley: their targets say so.
SPHERE_CASES = [
    ("cma_es", dict(sigma=0.5, variant="full"), 1e-6, 2_000),
    ("cma_es", dict(sigma=0.5, variant="separable"), 1e-6, 2_000),
    ("nes", dict(sigma=0.5), 1e-6, 3_000),
    ("cem", dict(sigma=0.5, extra_std=0.05, extra_std_decay=0.99), 1e-3, 20_000),
    ("simple_es", dict(sigma=0.02), 1e-3, 20_000),
    ("ga", dict(sigma=0.02, population=50, truncation=0.2), 1e-2, 20_000),
    ("openai_es", dict(sigma=0.02, pairs=10, learning_rate=0.02, l2=0.0), 1e-2, 20_000),
]
ROSENBROCK_CASES = [
    ("cma_es", dict(sigma=0.5, variant="full"), 1e-2, 10_000),
    ("cma_es", dict(sigma=0.5, variant="separable"), 1e-2, 40_000),
    ("nes", dict(sigma=0.5), 1.0, 60_000),
    ("cem", dict(sigma=0.5, extra_std=0.05, extra_std_decay=0.99), 5.0, 30_000),
    ("simple_es", dict(sigma=0.01, population=20), 2.0, 30_000),
    ("ga", dict(sigma=0.02, population=50, truncation=0.2), 3.0, 30_000),
    ("openai_es", dict(sigma=0.02, pairs=10, learning_rate=0.02, l2=0.0), 1.0, 30_000),
]


def build(name, settings, x0, seed=0, dim=DIM):
    return make_strategy(STRATEGIES.settings(name, **settings), np.full(dim, x0, dtype=np.float32), NOISE, seed)


@pytest.mark.parametrize("name,settings,target,budget", SPHERE_CASES)
def test_reaches_target_on_sphere(name, settings, target, budget):
    evaluations, best = minimize(build(name, settings, 1.0), sphere, budget, target)
    assert best <= target, f"{name} reached {best:.3g} after {evaluations} evaluations"


@pytest.mark.parametrize("name,settings,target,budget", ROSENBROCK_CASES)
def test_reaches_target_on_rosenbrock(name, settings, target, budget):
    evaluations, best = minimize(build(name, settings, 0.0), rosenbrock, budget, target)
    assert best <= target, f"{name} reached {best:.3g} after {evaluations} evaluations"


@pytest.mark.parametrize("seed", [0, 1])
def test_cma_es_finds_the_global_rastrigin_minimum_with_a_large_population(seed):
    """10-D Rastrigin from (3, ..., 3): population 200 reaches the global basin (default 10 does not)."""
    strategy = build("cma_es", dict(sigma=2.0, population=200), 3.0, seed)
    evaluations, best = minimize(strategy, rastrigin, 30_000, 1e-6)
    assert best <= 1e-6, f"reached {best:.3g} after {evaluations} evaluations"


def test_cma_es_needs_at_most_1_5x_the_evaluations_of_pycma_on_rosenbrock():
    cma = pytest.importorskip("cma")
    target, budget, seeds = 1e-8, 30_000, range(4)
    ours = [minimize(build("cma_es", dict(sigma=0.5), 0.0, seed), rosenbrock, budget, target) for seed in seeds]
    assert all(best <= target for _, best in ours), ours
    reference = []
    for seed in seeds:
        es = cma.CMAEvolutionStrategy(np.zeros(DIM), 0.5, dict(seed=seed + 1, verbose=-9, maxfevals=budget))
        best = np.inf
        while not es.stop() and best > target:
            candidates = es.ask()
            values = [rosenbrock(np.asarray(x)) for x in candidates]
            es.tell(candidates, values)
            best = min(best, min(values))
        reference.append(es.countevals)
    assert np.median([e for e, _ in ours]) <= 1.5 * np.median(reference), (ours, reference)


def test_ackley_and_the_other_functions_are_zero_at_their_minimum():
    assert sphere(np.zeros(5)) == 0.0 and rastrigin(np.zeros(5)) == 0.0
    assert rosenbrock(np.ones(5)) == 0.0 and abs(ackley(np.zeros(5))) < 1e-12


# every registered strategy whose tell needs no environment; these shrunk or in more than one variant
ROUND_TRIP_STRATEGIES = strategy_cases({"nes": {"unmirrored": dict(mirrored=False), "": {}},
                                        "ga": {"": dict(population=20)}, "openai_es": {"": dict(pairs=5)},
                                        "cma_es": {"full": dict(variant="full"), "separable": dict(variant="separable")}},
                                       keep=learns_from_fitness_alone)


@pytest.mark.parametrize("name,settings", list(ROUND_TRIP_STRATEGIES.values()), ids=list(ROUND_TRIP_STRATEGIES))
def test_state_round_trips_exactly_through_an_hdf5_checkpoint(tmp_path, name, settings):
    """Save after 3 iterations, load into a fresh strategy: the next iteration is bit-identical."""
    strategy = build(name, settings, 0.5)
    for t in (1, 2, 3):
        strategy.ask(t)
        strategy.tell(-np.array([rosenbrock(strategy.member_params(m).astype(np.float64))
                                 for m in range(strategy.population)]))
    path = tmp_path / "ckpt.h5"
    ckpt_io.save(path, ckpt_io.Checkpoint(
        config_toml="", iteration=3, timesteps=0, step_cap=1, best_eval_return=0.0, eval_return=0.0,
        params=strategy.center(), strategy=strategy.state_dict(), obstat=ObsStat(1).state_dict(),
        metrics={"iteration": np.arange(1, 4)}, versions={}))  # what a checkpoint must hold besides
    restored = build(name, settings, 0.0)
    restored.load_state_dict(ckpt_io.load(path).strategy)
    for twin in (strategy, restored):
        twin.ask(4)
        twin.tell(-np.array([sphere(twin.member_params(m).astype(np.float64)) for m in range(twin.population)]))
    assert strategy.center().tobytes() == restored.center().tobytes()
    for key, value in strategy.state_dict().items():
        assert np.asarray(value).tobytes() == np.asarray(restored.state_dict()[key]).tobytes(), key
