"""MPI helpers: abort-on-error and the buffer-based gathers of the iteration."""

import os
import sys
import traceback

import numpy as np

from es_mpi.run.open_mpi_defaults import set_open_mpi_defaults

set_open_mpi_defaults(os.environ)  # before MPI is initialised, which importing mpi4py does

from mpi4py import MPI  # noqa: E402


def world():
    return MPI.COMM_WORLD


def install_abort_on_error(comm):
    """An uncaught exception on any rank prints that rank's traceback and aborts the whole job.

    Without this, the other ranks would wait forever in the next collective (contract 5).
    """
    def hook(kind, value, tb):
        text = "".join(traceback.format_exception(kind, value, tb))
        sys.stderr.write("".join(f"[rank {comm.rank}] {line}\n" for line in text.splitlines()))
        sys.stderr.flush()
        comm.Abort(1)

    sys.excepthook = hook


def abort_with_one_line(comm, error, code):
    """Bad input that only this rank saw: say it in one line, then end the whole job (the other
    ranks may be waiting for this one in a collective)."""
    sys.stderr.write(f"es-mpi: error: [rank {comm.rank}] " + " ".join(str(error).splitlines()) + "\n")
    sys.stderr.flush()
    comm.Abort(code)


def max_over_ranks(comm, value):
    """The largest integer any rank holds (a buffer Allreduce)."""
    out = np.zeros(1, dtype=np.int64)
    comm.Allreduce(np.array([value], dtype=np.int64), out, op=MPI.MAX)
    return int(out[0])


def static_slice(n_items, rank, size):
    """[start, stop) of items owned by `rank`: contiguous, in global order, sizes differ by <= 1."""
    return n_items * rank // size, n_items * (rank + 1) // size


def allgather_variable(comm, local_rows_kf, n_cols):
    """Allgatherv of a variable number of float64 rows per rank, concatenated in rank order."""
    local = np.ascontiguousarray(local_rows_kf, dtype=np.float64).reshape(-1, n_cols)
    counts = np.zeros(comm.size, dtype=np.int64)
    comm.Allgather(np.array([local.size], dtype=np.int64), counts)
    displacements = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out = np.empty(int(counts.sum()), dtype=np.float64)
    comm.Allgatherv(local.reshape(-1), [out, counts, displacements, MPI.DOUBLE])
    return out.reshape(-1, n_cols)
