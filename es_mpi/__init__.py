"""es-mpi: distributed evolution strategies for reinforcement learning on MPI."""

import os

# One BLAS thread per rank: ranks already fill the cores, and a fixed thread count keeps
# float results identical whatever the machine (docs/architecture.md, contract 1). The
# variables reach the processes es-mpi starts; threadpoolctl pins the pools already loaded
# here, whatever the variables said when numpy was imported.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import numpy  # noqa: E402  (loads the BLAS that threadpoolctl then pins)
import threadpoolctl  # noqa: E402

threadpoolctl.threadpool_limits(limits=1)

__version__ = "0.1.0"


def __getattr__(name):
    """`es_mpi.load_policy` imports its machinery on first use: `import es_mpi` stays light."""
    if name == "load_policy":
        from es_mpi.run.trained_policy import load_policy

        return load_policy
    raise AttributeError(f"module 'es_mpi' has no attribute {name!r}")
