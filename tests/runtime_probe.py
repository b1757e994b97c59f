"""Run under mpiexec: start a node runtime (OpenAI-ES on a small objective) and report, as one JSON line
from rank 0, what each rank made and whether it is all freed: after a normal `with` block, or after a
start-up refused partway (ES_MPI_FAIL_AT=all:runtime). Windows and communicators are counted by a
Handles subclass that remembers what it kept."""

import json

import numpy as np

from es_mpi.core.environment import node_size_from_env
from es_mpi.core.errors import AgreedError
from es_mpi.parts.strategies.openai_es import OpenAIESSettings
from es_mpi.parts.strategies.openai_es import OpenAIES
from es_mpi.run.mpi import MPI, world
from es_mpi.run.node_runtime import Handles, NodeRuntime

N_PARAMS = 40


class CountingHandles(Handles):
    def __init__(self):
        super().__init__()
        self.made = []

    def _keep(self, handle):
        self.made.append(handle)
        return super()._keep(handle)


def make_strategy(noise, share):
    return OpenAIES(OpenAIESSettings(pairs=3), np.zeros(N_PARAMS, dtype=np.float32), noise, 0, share=share)


def main():
    comm = world()
    handles = CountingHandles()
    refused = None
    try:
        with NodeRuntime(comm, 10_000, 0, "dynamic", make_strategy, None, node_size_from_env(), handles) as runtime:
            members = list(runtime.members())
    except AgreedError as err:
        refused, members = str(err), None
    windows = [h for h in handles.made if isinstance(h, MPI.Win)]
    comms = [h for h in handles.made if isinstance(h, MPI.Comm)]
    report = dict(rank=comm.rank, refused=refused, members=members, windows=len(windows), comms=len(comms),
                  live=sum(1 for h in windows if h != MPI.WIN_NULL) + sum(1 for h in comms if h != MPI.COMM_NULL))
    reports = comm.gather(report, root=0)
    if comm.rank == 0:
        print(json.dumps(reports))


if __name__ == "__main__":
    main()
