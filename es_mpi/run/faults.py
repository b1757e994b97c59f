"""Fault-injection knobs for tests and for checking a cluster; both are inert unless set.

- ES_MPI_FAULT_INJECT=RANK:ITERATION flips one parameter on that rank after that iteration's
  update, so that the checksum catches it and rank 0 repairs it.
- ES_MPI_FAIL_AT=RANK:PLACE makes that rank alone fail at one place: `start` (a one-line input error
  only that rank sees, after MPI started), `iteration` (an exception after its episodes of iteration
  1) or `checkpoint` (an OSError while writing the first checkpoint). Whatever fails, the whole job
  must end within seconds (docs/architecture.md, contract 5). `ES_MPI_FAIL_AT=all:runtime` makes
  every rank refuse, alike, once the node runtime holds its communicators and some windows: the
  start-up that fails partway must free them all and end with one line.
"""

import os

import numpy as np

from es_mpi.core.errors import UserError


def flip_parameter(rank, iteration, center_p):
    if os.environ.get("ES_MPI_FAULT_INJECT", "") == f"{rank}:{iteration}":
        center_p[0] += np.float32(1.0)


EVERY_RANK = ("runtime",)  # places where failing on one rank alone would be a different test


def fail_at(rank, place):
    if os.environ.get("ES_MPI_FAIL_AT", "") != (f"all:{place}" if place in EVERY_RANK else f"{rank}:{place}"):
        return
    if place in ("start", "runtime"):
        raise UserError(f"injected input error at {'start-up' if place == 'start' else 'runtime start-up'} "
                        "(ES_MPI_FAIL_AT)")
    if place == "checkpoint":
        raise OSError("injected write error (ES_MPI_FAIL_AT)")
    raise RuntimeError(f"injected failure at {place} (ES_MPI_FAIL_AT)")
