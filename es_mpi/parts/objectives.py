"""Black-box test functions (minimised; training maximises fitness = -f(x)) and their lookup.

Every function takes a float64 vector and returns a float; the global minimum is 0.
"""

import importlib

import numpy as np


def sphere(x):
    return float(np.dot(x, x))


def rosenbrock(x):
    """Minimum 0 at (1, ..., 1); a curved valley that rewards covariance learning."""
    return float(np.sum(100.0 * np.square(x[1:] - np.square(x[:-1])) + np.square(1.0 - x[:-1])))


def rastrigin(x):
    """Minimum 0 at the origin, ~10^n local minima on a grid: needs a large population."""
    return float(10.0 * x.size + np.sum(np.square(x) - 10.0 * np.cos(2.0 * np.pi * x)))


def ackley(x):
    n = x.size
    return float(-20.0 * np.exp(-0.2 * np.sqrt(np.dot(x, x) / n))
                 - np.exp(np.sum(np.cos(2.0 * np.pi * x)) / n) + 20.0 + np.e)


# Job files name the functions above as `es_mpi.objectives:NAME`: a stable name that is looked
# up here, whatever module the functions live in, without importing anything.
BUILTIN_MODULE = "es_mpi.objectives"
BUILTIN = {"sphere": sphere, "rosenbrock": rosenbrock, "rastrigin": rastrigin, "ackley": ackley}


def load_objective(spec):
    """`module:function` -> the callable; ValueError with the reason if it cannot be found."""
    module_name, sep, function_name = spec.partition(":")
    if not sep or not module_name or not function_name:
        raise ValueError(f"expected 'module:function', got {spec!r}")
    if module_name == BUILTIN_MODULE:
        if function_name not in BUILTIN:
            raise ValueError(f"{BUILTIN_MODULE} has no function {function_name!r} (it has {', '.join(BUILTIN)})")
        return BUILTIN[function_name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"cannot import module {module_name!r} ({err})") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ValueError(f"module {module_name!r} has no function {function_name!r}")
    return function
