"""Fault-injection knobs for tests and for checking a cluster; both are inert unless set.

- ES_MPI_FAULT_INJECT=RANK:ITERATION flips one parameter on that rank after that iteration's
  update, so that the checksum catches it and rank 0 repairs it.
- ES_MPI_FAIL_AT=RANK:PLACE makes that rank alone fail at one place: `start` (a one-line input error
  only that rank sees, after MPI started), `iteration` (an exception after its episodes of iteration
  1) or `checkpoint` (an OSError while writing the first checkpoint). Whatever fails, the whole job
  must end within seconds (docs/architecture.md, contract 5). `ES_MPI_FAIL_AT=all:runtime` makes
  every rank refuse, alike, once the node runtime holds its communicators and some windows: the
  start-up that fails partway must free them all and end with one line.
- ES_MPI_SLOW_RANK=RANK:SECONDS makes that rank sleep before every step of its lanes, and
  ES_MPI_CLAIM_LOG=DIR makes every rank append to DIR/claims-RANK.log a line "start ITERATION
  MEMBER TIME" as it starts an episode and "played ITERATION TIME" when its episodes of an
  iteration are done: together they show whether iterations overlap (the pipelined mode).
"""

import os
import pathlib
import time

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


def slowed(rank, between):
    """`between` (rollout.play's hook before every step, or None), after the slowed rank's sleep."""
    slow = os.environ.get("ES_MPI_SLOW_RANK", "")
    if not slow.startswith(f"{rank}:"):
        return between
    seconds = float(slow.split(":", 1)[1])

    def sleep_first():
        time.sleep(seconds)
        if between is not None:
            between()
    return sleep_first


def log_claim(rank, *fields):
    """One line of the claim log (ES_MPI_CLAIM_LOG): the fields, then the time."""
    log_dir = os.environ.get("ES_MPI_CLAIM_LOG")
    if log_dir:
        with open(pathlib.Path(log_dir) / f"claims-{rank}.log", "a") as log:
            log.write(" ".join(map(str, fields)) + f" {time.time():.6f}\n")
