"""Run under mpiexec: every rank plays its node's block through rollout.play with many lanes; the last
rank starts late. Rank 0 prints, as one JSON line, per rank and iteration: the members it played and
the most members it held (claimed, not yet finished) at any claim.

"Late" is made exact with files in `signal_dir` instead of sleeps: the last rank makes its first claim
only once every other rank is ready (has filled its lanes and is stepping, or found nothing left), and
the others' episodes take their first step only once the last rank is ready. So without a cap on what
a rank holds, the early ranks have claimed the whole block before the last rank looks.

argv: population, group, lanes per rank, signal_dir.
"""

import json
import pathlib
import sys
import time

import gymnasium as gym
import numpy as np

from es_mpi.core.environment import node_size_from_env
from es_mpi.run.mpi import world
from es_mpi.run.node_runtime import Handles
from es_mpi.run.placement import Placement
from es_mpi.run.rollout import Actors, EnvLanes, Start, play

EPISODE_STEPS = 3
WAIT_S = 60.0


class Signals:
    """Files that say which ranks are ready in an iteration."""

    def __init__(self, directory, rank, size):
        self.directory, self.rank, self.late = pathlib.Path(directory), rank, size - 1
        self.others = [r for r in range(size) if r != self.late]
        self.iteration, self.ready = 0, False

    def path(self, rank):
        return self.directory / f"ready-{self.iteration}-{rank}"

    def mark_ready(self):
        if not self.ready:
            self.ready = True
            self.path(self.rank).touch()

    def wait_for(self, ranks):
        deadline = time.monotonic() + WAIT_S
        while not all(self.path(rank).exists() for rank in ranks):
            if time.monotonic() > deadline:
                raise RuntimeError(f"rank {self.rank}: ranks {ranks} not ready after {WAIT_S} s")
            time.sleep(0.01)


class Counting(gym.Env):
    """Episodes of EPISODE_STEPS steps; counts finished episodes in `held` and holds the first step
    of an early rank until the late rank is ready."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, signals, held):
        self.signals, self.held = signals, held

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action):
        if not self.signals.ready:
            self.signals.mark_ready()
            if self.signals.rank != self.signals.late:
                self.signals.wait_for([self.signals.late])
        self.t += 1
        done = self.t >= EPISODE_STEPS
        if done:
            self.held["finished"] += 1
        return np.zeros(2, dtype=np.float32), 1.0, done, False, {}


def claims(members, group, signals, held):
    """The placement's members, counting what the rank holds: a unit is held from its first member's
    claim until its members finish. The late rank waits for the others before its first claim."""
    if signals.rank == signals.late:
        signals.wait_for(signals.others)
    for member in members:
        if member % group == 0:
            held["claimed"] += group
            held["most"] = max(held["most"], held["claimed"] - held["finished"])
        yield member
    signals.mark_ready()


def main():
    population, group, n_lanes, signal_dir = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    comm = world()
    handles = Handles()
    nodes = handles.node_layer(comm, node_size_from_env())
    placement = Placement("dynamic", nodes, population, group, handles.window)
    signals = Signals(signal_dir, comm.rank, comm.size)
    held = dict(claimed=0, finished=0, most=0)
    lanes = EnvLanes([Counting(signals, held) for _ in range(n_lanes)])
    forward = Actors(n_lanes)
    iterations = []
    for iteration in range(2):
        signals.iteration, signals.ready = iteration, False
        held.update(claimed=0, finished=0, most=0)
        episodes = play(lanes, forward, claims(placement.members(), group, signals, held),
                        lambda m: Start(lambda x: 0, m, step_cap=100), most_held=placement.share)
        nodes.node.Barrier()  # as the results exchange does
        iterations.append(dict(played=sorted(episodes), most_held=held["most"]))
    everyone = comm.gather(dict(block=placement.block, share=placement.share, iterations=iterations), root=0)
    handles.free()
    if comm.rank == 0:
        print(json.dumps(everyone))


if __name__ == "__main__":
    main()
