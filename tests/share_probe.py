"""Run under mpiexec: build OpenAI-ES on the node layer's shared arrays and report, as one JSON line,
which memory each rank's centre and Adam moments are and what a write by one rank shows the others."""

import json

import numpy as np

from es_mpi.parts.strategies.openai_es import OpenAIES, OpenAIESSettings
from es_mpi.core.environment import node_size_from_env
from es_mpi.run.mpi import world
from es_mpi.run.node_memory import NodeArrays
from es_mpi.run.node_runtime import Handles
from noise_probe import mapping_of

N_PARAMS = 70


def main():
    comm = world()
    handles = Handles()
    nodes = handles.node_layer(comm, node_size_from_env())
    arrays = NodeArrays(nodes, handles.window)
    noise = np.random.default_rng(0).standard_normal(10_000).astype(np.float32)
    strategy = OpenAIES(OpenAIESSettings(pairs=3), np.arange(5, 5 + N_PARAMS, dtype=np.float32), noise, 0, share=arrays.share)
    identities = [mapping_of(a.ctypes.data)[0] for a in (strategy.params_p, strategy.optimizer.m_p,
                                                         strategy.optimizer.v_p)]
    comm.Barrier()
    if comm.rank == 1:
        with arrays.share.unlocked():
            strategy.params_p[:] = -1.0
    comm.Barrier()
    reports = comm.gather(dict(rank=comm.rank, node=nodes.index, columns=list(strategy.columns), identities=identities,
                               first=float(strategy.params_p[0]), windows=len(arrays.windows)))
    handles.free()
    if comm.rank == 0:
        print(json.dumps(reports))


if __name__ == "__main__":
    main()
