"""Strategies on black-box functions: evaluations to a target (pycma beside CMA-ES), and the
per-iteration `tell` time of full vs separable CMA-ES against the parameter count.

    python benchmarks/strategies.py                      # 10-D and 100-D, tell up to 100k
    python benchmarks/strategies.py --dims 10 --tell-sizes 100 1000 10000 --budget 20000

Writes a markdown table to benchmarks/results/strategies.md. The full covariance needs
8 n^2 bytes (80 GB at n = 100k), so full CMA-ES is timed only up to --full-max.
"""

import argparse
import pathlib
import platform
import time

import numpy as np

from es_mpi.parts.strategies.blackbox import minimize
from es_mpi.run.noise import local_table
from es_mpi.parts.objectives import rastrigin, rosenbrock, sphere
from es_mpi.parts.strategies import STRATEGIES as REGISTERED, make_strategy

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "strategies.md"
# (function, initial point, initial sigma, target)
PROBLEMS = {"sphere": (sphere, 1.0, 0.5, 1e-6), "rosenbrock": (rosenbrock, 0.0, 0.5, 1e-6),
            "rastrigin": (rastrigin, 3.0, 2.0, 1e-6)}
STRATEGIES = {
    "cma_es (full)": ("cma_es", dict(variant="full")),
    "cma_es (separable)": ("cma_es", dict(variant="separable")),
    "nes": ("nes", {}),
    "cem": ("cem", dict(extra_std=0.05, extra_std_decay=0.99)),
    "simple_es": ("simple_es", dict(sigma=0.02)),
    "ga": ("ga", dict(sigma=0.02, population=50, truncation=0.2)),
    "openai_es": ("openai_es", dict(sigma=0.02, pairs=10, learning_rate=0.02, l2=0.0)),
}


def ours(name, settings, sigma, function, x0, dim, budget, target, noise):
    key = "sigma" if name != "openai_es" and name not in ("simple_es", "ga") else None
    settings = {**({key: sigma} if key else {}), **settings}
    strategy = make_strategy(REGISTERED.settings(name, **settings), np.full(dim, x0, dtype=np.float32), noise, 0)
    return minimize(strategy, function, budget, target)


def pycma(function, x0, sigma, dim, budget, target):
    import cma

    es = cma.CMAEvolutionStrategy(np.full(dim, x0), sigma, dict(seed=1, verbose=-9, maxfevals=budget))
    best = np.inf
    while not es.stop() and best > target:
        candidates = es.ask()
        values = [function(np.asarray(x)) for x in candidates]
        es.tell(candidates, values)
        best = min(best, min(values))
    return es.countevals, best


def cell(evaluations, best, target):
    return f"{evaluations}" if best <= target else f"> {evaluations} (f = {best:.2g})"


def tell_seconds(variant, n_params, noise, repeats=3):
    strategy = make_strategy(REGISTERED.settings("cma_es", variant=variant), np.zeros(n_params, dtype=np.float32), noise, 0)
    fitness_n = -np.arange(strategy.population, dtype=np.float64)
    times = []
    for t in range(1, repeats + 1):
        strategy.ask(t)
        start = time.perf_counter()
        strategy.tell(fitness_n)
        times.append(time.perf_counter() - start)
    return strategy.population, min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--budget", type=int, default=100_000, help="evaluations per run at most")
    parser.add_argument("--tell-sizes", type=int, nargs="+", default=[100, 1000, 10_000, 100_000])
    parser.add_argument("--full-max", type=int, default=2000, help="largest n for full CMA-ES tell timing")
    args = parser.parse_args()
    noise = local_table(max(1_000_000, 2 * max(args.tell_sizes)), 7)
    lines = [f"# Strategies on black-box functions ({platform.node()}, {time.strftime('%Y-%m-%d')})", "",
             f"Evaluations until min f <= target (whole iterations; at most {args.budget}), job seed 0, "
             "default population unless noted. sphere from 1, rosenbrock from 0, rastrigin from 3 "
             "(sigma 2 for CMA/NES/CEM there, 0.5 elsewhere); targets 1e-6.", ""]
    header = "| strategy | " + " | ".join(f"{p} {d}-D" for d in args.dims for p in PROBLEMS) + " |"
    lines += [header, "|" + "---|" * (1 + len(args.dims) * len(PROBLEMS))]
    for label, (name, settings) in STRATEGIES.items():
        row = []
        for dim in args.dims:
            for function, x0, sigma, target in PROBLEMS.values():
                row.append(cell(*ours(name, settings, sigma, function, x0, dim, args.budget, target, noise), target))
        lines.append(f"| {label} | " + " | ".join(row) + " |")
        print(lines[-1], flush=True)
    try:
        row = [cell(*pycma(f, x0, sigma, dim, args.budget, target), target)
               for dim in args.dims for f, x0, sigma, target in PROBLEMS.values()]
        lines.append("| pycma (reference) | " + " | ".join(row) + " |")
    except ImportError:
        lines.append("| pycma (reference) | not installed |")
    print(lines[-1], flush=True)
    lines += ["", "## CMA-ES `tell` time per iteration (default population, best of 3)", "",
              "| parameters | population | full (s) | separable (s) |", "|---|---|---|---|"]
    for n_params in args.tell_sizes:
        population, separable_s = tell_seconds("separable", n_params, noise)
        full = f"{tell_seconds('full', n_params, noise)[1]:.4f}" if n_params <= args.full_max else "n/a (memory)"
        lines.append(f"| {n_params} | {population} | {full} | {separable_s:.4f} |")
        print(lines[-1], flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
