"""`es-mpi train` with meters: bytes handed to MPI, CPU seconds and episode lengths per iteration.

Run under mpiexec in place of `python -m es_mpi train JOB --run-dir DIR`:

    mpiexec -n 2 python benchmarks/instrumented_train.py JOB --run-dir DIR

It builds the same Trainer and calls the same train() as the CLI (metrics.csv included), but
gives it COMM_WORLD, and the node layer's node and leaders communicators, as a subclass whose
collective methods count their buffers before calling MPI, and wraps trainer.step to read the
counters and time.process_time around each iteration.

- bytes: sent = the send buffer (the buffer itself at a Bcast's root), received = the receive
  buffer (the buffer at a Bcast's other ranks; the pickle size for lowercase object calls).
  An MPI.IN_PLACE contribution counts as sent. Payload at the API, not wire bytes: how MPI moves
  them is its own business. Per communicator and call site (the es_mpi.run functions that made
  the call), averaged over iterations.
- CPU seconds of each rank per iteration: unlike wall time they do not count time the
  operating system gave to other jobs, but they do count waiting for other ranks, since Open
  MPI polls while it waits.
- episode lengths in global member order, from the results exchange: the work each member was,
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

RESULTS_COLUMNS = 5  # run/node_results.RESULT_COLUMNS (float64)


def expected_bytes(population, node_sizes, rank, obs_size, obs_probability, obs_norm=True):
    """(sent, received) per iteration on world `rank` of nodes `node_sizes` (consecutive ranks), from
    reading trainer.step (eval off, openai_es).

    On every rank: the agreement's node Allgather (3 uint64 a rank: checksum, rank, intact) and two
    node Allreduces (4 float64: busy s, stop signal, members
    played and its negative; 1 float64), and rank 0's records-written flag (an int64 world
    Bcast). With more than one node, each leader also Bcasts the node rows (4 uint64 a node) and 5
    float64 to its node, and the leaders swap the results blocks (population x 5 float64, in
    place), the node rows (Allgather) and 5 float64 (Allreduces); with observation normalisation, the sampled episodes' [sum, sum of squares,
    count] rows (2 x obs_size + 1 float64; a random sample, so its expected size is used). The
    results themselves never cross MPI within a node: the ranks write them into node-shared memory.
    """
    from es_mpi.run.placement import member_blocks

    n_nodes, bounds = len(node_sizes), np.cumsum([0, *node_sizes])
    node = int(np.searchsorted(bounds, rank, side="right")) - 1
    leader, root = rank == bounds[node], rank == 0
    sent, received = 24 + 40, 24 * node_sizes[node] + 40
    sent, received = sent + (8 if root else 0), received + (0 if root else 8)
    if n_nodes > 1:
        bcast = 32 * n_nodes + 40
        sent, received = sent + (bcast if leader else 0), received + (0 if leader else bcast)
    if n_nodes > 1 and leader:
        start, stop = member_blocks(population, 2, node_sizes)[node]
        sent += 8 * RESULTS_COLUMNS * (stop - start) + 32 + 40
        received += 8 * RESULTS_COLUMNS * population + 32 * n_nodes + 40
        if obs_norm:
            row_bytes = 8 * (2 * obs_size + 1)
            sent += row_bytes * obs_probability * (stop - start)
            received += row_bytes * obs_probability * population
    return sent, received


def nbytes(buffer_spec):
    """Bytes of an mpi4py buffer argument: an array, or [array, counts, displacements, type]."""
    return np.asarray(receive_array(buffer_spec)).nbytes


def receive_array(buffer_spec):
    return buffer_spec[0] if isinstance(buffer_spec, (list, tuple)) else buffer_spec


def call_site():
    """'Trainer method > es_mpi.run helper' of the current MPI call."""
    names, frame = [], sys._getframe(3)
    while frame is not None:
        path = pathlib.Path(frame.f_code.co_filename)
        if path.parent.name == "run" and path.parent.parent.name == "es_mpi":
            names.append(f"{path.stem}.{frame.f_code.co_name}")
        if path.name == "trainer.py":
            break
        frame = frame.f_back
    return " > ".join(reversed(names)) or "outside es_mpi"


def counting_comm_class():
    from mpi4py import MPI

    class CountingComm(MPI.Intracomm):
        """A communicator with byte counters on the calls a trainer makes; `label` names it in the
        call sites (world, node, leaders)."""

        sent = collections.Counter()
        received = collections.Counter()
        label = "world"

        def _count(self, method, sent, received):
            site = f"{self.label}: {call_site()} > {method}"
            self.sent[site] += sent
            self.received[site] += received

        def _own_part(self, recvbuf):
            """What an MPI.IN_PLACE Allgatherv contributes: this rank's segment of the receive buffer."""
            array, counts = recvbuf[0], recvbuf[1]
            return int(counts[self.rank]) * np.asarray(array).itemsize

        def Allgather(self, sendbuf, recvbuf):
            self._count("Allgather", nbytes(sendbuf), nbytes(recvbuf))
            return super().Allgather(sendbuf, recvbuf)

        def Allgatherv(self, sendbuf, recvbuf):
            sent = self._own_part(recvbuf) if sendbuf is MPI.IN_PLACE else nbytes(sendbuf)
            self._count("Allgatherv", sent, nbytes(recvbuf))
            return super().Allgatherv(sendbuf, recvbuf)

        def Allreduce(self, sendbuf, recvbuf, op=MPI.SUM):
            self._count("Allreduce", nbytes(recvbuf if sendbuf is MPI.IN_PLACE else sendbuf), nbytes(recvbuf))
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


def counting_node_layer(counting):
    """node_runtime.NodeLayer whose node and leaders communicators count like the world (the same
    MPI communicators, which the runtime frees through its own handles)."""
    from es_mpi.run.nodes import NodeLayer

    class CountingNodeLayer(NodeLayer):
        def __init__(self, world, node, leaders, nodes_on_machine):
            super().__init__(world, node, leaders, nodes_on_machine)
            self.node = counting(self.node)
            self.node.label = "node"
            if self.leaders is not None:
                self.leaders = counting(self.leaders)
                self.leaders.label = "leaders"

    return CountingNodeLayer


def metered(trainer, records):
    """trainer.step, appending {cpu_s, lengths} to `records` per iteration (the lengths from the
    results exchange, copied before any rank can start the next iteration)."""
    step, exchange, seen = trainer.step, trainer.runtime.results.exchange, {}

    def exchange_and_keep(evaluating=False, iteration=0):
        exchanged = exchange(evaluating, iteration)
        seen["lengths"] = exchanged[0][:, 1].astype(int).tolist()
        return exchanged

    def metered_step():
        cpu_start = time.process_time()
        out = step()
        records.append(dict(cpu_s=time.process_time() - cpu_start, lengths=seen.pop("lengths", [])))
        return out

    trainer.runtime.results.exchange = exchange_and_keep
    return metered_step


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("job", help="job file")
    parser.add_argument("--run-dir", required=True, help="run directory (must not exist)")
    args = parser.parse_args()

    from es_mpi.core.environment import node_size_from_env
    from es_mpi.parts.job_file import load_job
    from es_mpi.parts.build import build_task
    from es_mpi.run.mpi import install_abort_on_error, world
    from es_mpi.run import node_runtime
    from es_mpi.run.trainer import Trainer

    task = build_task(load_job(args.job, (), args.run_dir))
    plain = world()
    install_abort_on_error(plain)
    counting = counting_comm_class()
    comm = counting(plain)
    node_runtime.NodeLayer = counting_node_layer(counting)
    with node_runtime.NodeRuntime.for_task(comm, task, node_size_from_env()) as runtime:
        trainer = Trainer(task, runtime, log=lambda line: None)
        before_sent, before_received = collections.Counter(comm.sent), collections.Counter(comm.received)
        records = []
        trainer.step = metered(trainer, records)
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
                              population=trainer.strategy.population, node_sizes=list(trainer.nodes.sizes),
                              per_rank=everyone,
                              lengths=[record["lengths"] for record in records])))


if __name__ == "__main__":
    main()
