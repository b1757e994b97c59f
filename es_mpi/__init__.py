"""es-mpi: distributed evolution strategies for reinforcement learning on MPI."""

import os

# One BLAS thread per rank: ranks already fill the cores, and a fixed thread count keeps
# float results identical whatever the machine (docs/architecture.md, contract 1).
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

__version__ = "0.1.0"
