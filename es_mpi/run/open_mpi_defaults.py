"""Open MPI settings es-mpi needs, set before MPI starts (without importing mpi4py, which would start it)."""


def set_open_mpi_defaults(environ):
    """Only shared-memory windows are used; Open MPI's UCX one-sided component prints errors on
    machines without UCX hardware. A value the user set wins."""
    environ.setdefault("OMPI_MCA_osc", "^ucx")
