"""Bytes each rank hands to MPI per training iteration, counted at the mpi4py calls.

Run under mpiexec in place of `python -m es_mpi train JOB --run-dir DIR`:

    mpiexec -n 2 python benchmarks/comm_bytes.py JOB --run-dir DIR

It trains exactly as the CLI does, but gives the Trainer a communicator whose collective
methods count their buffers before calling MPI: bytes sent (the send buffer; the buffer
itself at a Bcast's root) and received (the receive buffer; the buffer at a Bcast's other
ranks; the pickle size for lowercase object calls). What the Trainer's constructor sends
(start decision, noise-table window) is subtracted; the rest, divided by the iterations,
is printed by rank 0 as one JSON line: per rank, and per call site (the Trainer method and
es_mpi.mpi helper that made the call). These are payload bytes at the API, not wire bytes:
how MPI moves them (ring, tree, shared memory) is its own business.

`expected_bytes` is the same figure derived by hand from trainer.step, for comparison.
"""

import argparse
import collections
import json
import pathlib
import pickle
import sys

import common  # noqa: F401  (puts this checkout first on sys.path)

import numpy as np  # noqa: E402

RESULTS_COLUMNS = 4  # trainer.EPISODE_COLUMNS: return, length, capped, nonfinite (float64)


def expected_bytes(population, n_ranks, rank, obs_size, obs_probability, obs_norm=True):
    """(sent, received) per iteration on `rank`, from reading trainer.step (eval off, openai_es).

    The results Allgatherv (population x 4 float64), the checksum (uint64) and busy-time +
    stop-flag (2 float64) Allgathers, and with observation normalisation the count Allgather
    (int64) and the Allgatherv of the sampled episodes' [sum, sum of squares, count] rows
    (2 x obs_size + 1 float64; a random sample, so its expected size is used).
    """
    start = population // 2 * rank // n_ranks * 2
    stop = population // 2 * (rank + 1) // n_ranks * 2
    sent = 8 * RESULTS_COLUMNS * (stop - start) + 8 + 16
    received = 8 * RESULTS_COLUMNS * population + 8 * n_ranks + 16 * n_ranks
    if obs_norm:
        row_bytes = 8 * (2 * obs_size + 1)
        sent += 8 + row_bytes * obs_probability * (stop - start)
        received += 8 * n_ranks + row_bytes * obs_probability * population
    return sent, received


def nbytes(buffer_spec):
    """Bytes of an mpi4py buffer argument: an array, or [array, counts, displacements, type]."""
    if isinstance(buffer_spec, (list, tuple)):
        buffer_spec = buffer_spec[0]
    return np.asarray(buffer_spec).nbytes


def call_site():
    """'Trainer method > es_mpi.mpi helper' of the current MPI call."""
    names, frame = [], sys._getframe(2)
    while frame is not None:
        path = pathlib.Path(frame.f_code.co_filename)
        if path.parent.name == "es_mpi" and path.name in ("trainer.py", "mpi.py"):
            names.append(frame.f_code.co_name)
        if path.name == "trainer.py":
            break
        frame = frame.f_back
    return " > ".join(reversed(names)) or "outside es_mpi"


def counting_comm_class():
    from mpi4py import MPI

    class CountingComm(MPI.Intracomm):
        """COMM_WORLD with byte counters on the calls a trainer makes."""

        sent = collections.Counter()
        received = collections.Counter()

        def _count(self, method, sent, received):
            site = f"{call_site()} > {method}"
            self.sent[site] += sent
            self.received[site] += received

        def Allgather(self, sendbuf, recvbuf):
            self._count("Allgather", nbytes(sendbuf), nbytes(recvbuf))
            return super().Allgather(sendbuf, recvbuf)

        def Allgatherv(self, sendbuf, recvbuf):
            self._count("Allgatherv", nbytes(sendbuf), nbytes(recvbuf))
            return super().Allgatherv(sendbuf, recvbuf)

        def Allreduce(self, sendbuf, recvbuf, op=MPI.SUM):
            self._count("Allreduce", nbytes(sendbuf), nbytes(recvbuf))
            return super().Allreduce(sendbuf, recvbuf, op)

        def Bcast(self, buf, root=0):
            size = nbytes(buf)
            self._count("Bcast", size if self.rank == root else 0, 0 if self.rank == root else size)
            return super().Bcast(buf, root)

        def bcast(self, obj, root=0):
            out = super().bcast(obj, root)
            size = len(pickle.dumps(out))
            self._count("bcast", size if self.rank == root else 0, 0 if self.rank == root else size)
            return out

        def allgather(self, obj):
            out = super().allgather(obj)
            self._count("allgather", len(pickle.dumps(obj)), len(pickle.dumps(out)))
            return out

        def allreduce(self, obj, op=MPI.SUM):
            out = super().allreduce(obj, op)
            self._count("allreduce", len(pickle.dumps(obj)), len(pickle.dumps(out)))
            return out

    return CountingComm


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("job", help="job file")
    parser.add_argument("--run-dir", required=True, help="run directory (must not exist)")
    args = parser.parse_args()

    from es_mpi.config import check_runnable, load_job
    from es_mpi.mpi import install_abort_on_error, world
    from es_mpi.trainer import Trainer

    job = load_job(args.job, (), args.run_dir)
    check_runnable(job)
    plain = world()
    install_abort_on_error(plain)
    comm = counting_comm_class()(plain)
    trainer = Trainer(job, comm, log=lambda line: None)
    before_sent, before_received = collections.Counter(comm.sent), collections.Counter(comm.received)
    trainer.train()
    iterations = trainer.iteration
    trainer.close()
    sites = sorted(set(comm.sent) | set(comm.received))
    per_site = {site: ((comm.sent[site] - before_sent[site]) / iterations,
                       (comm.received[site] - before_received[site]) / iterations) for site in sites}
    per_site = {site: pair for site, pair in per_site.items() if pair != (0, 0)}
    everyone = plain.gather(per_site, root=0)
    if plain.rank == 0:
        print(json.dumps(dict(iterations=iterations, n_params=int(trainer.strategy.center().size),
                              population=trainer.strategy.population, per_rank=everyone)))


if __name__ == "__main__":
    main()
