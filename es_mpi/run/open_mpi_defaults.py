"""Open MPI settings es-mpi needs, set before MPI starts (without importing mpi4py, which would start it)."""

import pathlib
import sys


def set_open_mpi_defaults(environ):
    """Only shared-memory windows are used; Open MPI's UCX one-sided component prints errors on
    machines without UCX hardware. Open MPI from PyPI looks for its help files under the prefix it
    was built for, so every abort would print "Sorry! You were supposed to get help..." instead
    of the message: point it at this environment's copy. A value the user set wins."""
    environ.setdefault("OMPI_MCA_osc", "^ucx")
    if (pathlib.Path(sys.prefix) / "share" / "openmpi" / "help-mpi-api.txt").is_file():
        environ.setdefault("OPAL_PREFIX", sys.prefix)
