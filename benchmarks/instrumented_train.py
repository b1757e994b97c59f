"""`es-mpi train` with meters: bytes handed to MPI, CPU seconds and episode lengths per iteration.

Run under mpiexec in place of `python -m es_mpi train JOB --run-dir DIR`:

    mpiexec -n 2 python benchmarks/instrumented_train.py JOB --run-dir DIR

It builds the same Trainer and calls the same train() as the CLI (metrics.csv included), but
gives it COMM_WORLD as a subclass whose collective methods count their buffers before calling
MPI, and wraps trainer.step to read the counters and time.process_time around each iteration.

- bytes: sent = the send buffer (the buffer itself at a Bcast's root), received = the receive
  buffer (the buffer at a Bcast's other ranks; the pickle size for lowercase object calls).
  Payload at the API, not wire bytes: how MPI moves them is its own business. Per call site
  (the Trainer method and es_mpi.run.mpi helper that made the call), averaged over iterations.
- CPU seconds of each rank per iteration: unlike wall time they do not count time the
  operating system gave to other jobs, but they do count waiting for other ranks, since Open
  MPI polls while it waits.
- episode lengths in global member order, from the results gather: the work each member was,
  whatever the rank count, to compute the imbalance of any placement.

Rank 0 prints one JSON line. `expected_bytes` is the figure derived by hand from trainer.step.
"""

import argparse
import collections
import json
import pathlib
import pickle
import sys
import time

import common  # noqa: F401  (puts this checkout first on sys.path)

import numpy as np  # noqa: E402

RESULTS_COLUMNS = 4  # trainer.EPISODE_COLUMNS: return, length, capped, nonfinite (float64)


def expected_bytes(population, n_ranks, rank, obs_size, obs_probability, obs_norm=True):
    """(sent, received) per iteration on `rank`, from reading trainer.step (eval off, openai_es).

    The results Allgatherv (population x 4 float64), the checksum (uint64) and busy-time +
    stop-flag (2 float64) Allgathers, rank 0's records-written flag (an int64 Bcast), and with
    observation normalisation the count Allgather (int64) and the Allgatherv of the sampled
    episodes' [sum, sum of squares, count] rows (2 x obs_size + 1 float64; a random sample, so its
    expected size is used).
    """
    start = population // 2 * rank // n_ranks * 2
    stop = population // 2 * (rank + 1) // n_ranks * 2
    sent = 8 * RESULTS_COLUMNS * (stop - start) + 8 + 16 + (8 if rank == 0 else 0)
    received = 8 * RESULTS_COLUMNS * population + 8 * n_ranks + 16 * n_ranks + (0 if rank == 0 else 8)
    if obs_norm:
        row_bytes = 8 * (2 * obs_size + 1)
        sent += 8 + row_bytes * obs_probability * (stop - start)
        received += 8 * n_ranks + row_bytes * obs_probability * population
    return sent, received


def nbytes(buffer_spec):
    """Bytes of an mpi4py buffer argument: an array, or [array, counts, displacements, type]."""
    return np.asarray(receive_array(buffer_spec)).nbytes


def receive_array(buffer_spec):
    return buffer_spec[0] if isinstance(buffer_spec, (list, tuple)) else buffer_spec


def call_site():
    """'Trainer method > es_mpi.run.mpi helper' of the current MPI call."""
    names, frame = [], sys._getframe(2)
    while frame is not None:
        path = pathlib.Path(frame.f_code.co_filename)
        if path.parent.name == "run" and path.parent.parent.name == "es_mpi" and path.name in ("trainer.py", "mpi.py"):
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
        results_n4 = None  # the last results gather (population x 4)

        def _count(self, method, sent, received):
            site = f"{call_site()} > {method}"
            self.sent[site] += sent
            self.received[site] += received

        def Allgather(self, sendbuf, recvbuf):
            self._count("Allgather", nbytes(sendbuf), nbytes(recvbuf))
            return super().Allgather(sendbuf, recvbuf)

        def Allgatherv(self, sendbuf, recvbuf):
            self._count("Allgatherv", nbytes(sendbuf), nbytes(recvbuf))
            out = super().Allgatherv(sendbuf, recvbuf)
            gathered = receive_array(recvbuf)
            if gathered.ndim == 2 and gathered.shape[1] == RESULTS_COLUMNS:
                type(self).results_n4 = gathered.copy()
            return out

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


def metered(trainer, comm, records):
    """trainer.step, appending {cpu_s, lengths} to `records` per iteration."""
    step = trainer.step

    def metered_step():
        cpu_start = time.process_time()
        out = step()
        lengths = comm.results_n4[:, 1].astype(int).tolist() if comm.results_n4 is not None else []
        records.append(dict(cpu_s=time.process_time() - cpu_start, lengths=lengths))
        return out

    return metered_step


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("job", help="job file")
    parser.add_argument("--run-dir", required=True, help="run directory (must not exist)")
    args = parser.parse_args()

    from es_mpi.job.parse import load_job
    from es_mpi.parts.build import build_task
    from es_mpi.run.mpi import install_abort_on_error, world
    from es_mpi.run.trainer import Trainer

    task = build_task(load_job(args.job, (), args.run_dir))
    plain = world()
    install_abort_on_error(plain)
    comm = counting_comm_class()(plain)
    trainer = Trainer(task, comm, log=lambda line: None)
    before_sent, before_received = collections.Counter(comm.sent), collections.Counter(comm.received)
    records = []
    trainer.step = metered(trainer, comm, records)
    trainer.train()
    trainer.close()
    iterations = len(records)
    per_site = {site: ((comm.sent[site] - before_sent[site]) / iterations,
                       (comm.received[site] - before_received[site]) / iterations)
                for site in sorted(set(comm.sent) | set(comm.received))}
    mine = dict(sites={site: pair for site, pair in per_site.items() if pair != (0, 0)},
                cpu_s=[record["cpu_s"] for record in records])
    everyone = plain.gather(mine, root=0)
    if plain.rank == 0:
        print(json.dumps(dict(iterations=iterations, n_params=int(trainer.strategy.center().size),
                              population=trainer.strategy.population, per_rank=everyone,
                              lengths=[record["lengths"] for record in records])))


if __name__ == "__main__":
    main()
