"""Run under mpiexec: build OpenAI-ES on the node layer's shared arrays and report, as one JSON line,
which memory each rank's centre and Adam moments are and what a write by one rank shows the others."""

import json

import numpy as np

from es_mpi.parts.strategies.openai_es import OpenAIES, OpenAIESSettings
from es_mpi.run.mpi import world
from es_mpi.run.node_memory import NodeArrays
from es_mpi.run.nodes import NodeLayer
from noise_probe import mapping_of

N_PARAMS = 70


def main():
    comm = world()
    nodes = NodeLayer.from_env(comm)
    arrays = NodeArrays(nodes)
    noise = np.random.default_rng(0).standard_normal(10_000).astype(np.float32)
    strategy = OpenAIES(OpenAIESSettings(pairs=3), np.arange(5, 5 + N_PARAMS, dtype=np.float32), noise, 0, share=arrays.share)
    identities = [mapping_of(a.ctypes.data)[0] for a in (strategy.params_p, strategy.optimizer.m_p,
                                                         strategy.optimizer.v_p)]
    comm.Barrier()
    if comm.rank == 1:
        strategy.params_p[:] = -1.0
    comm.Barrier()
    reports = comm.gather(dict(rank=comm.rank, node=nodes.index, columns=list(strategy.columns), identities=identities,
                               first=float(strategy.params_p[0]), windows=len(arrays.windows)))
    arrays.free()
    nodes.free()
    if comm.rank == 0:
        print(json.dumps(reports))


if __name__ == "__main__":
    main()
