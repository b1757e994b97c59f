"""`es_mpi.load_policy(path)`: a checkpoint's centre policy as a plain observation -> action call.

The observation goes through what training put in front of the network: the running
observation normalisation (mean, std, clip, as of the checkpoint) and, with policy.vbn, the
reference batch the hidden layers are normalised by. No MPI. The policy's shape comes from the
job's environment, made once to read its spaces and closed again; `make_env` gives the same
environment (Atari preprocessing included) for a loop of your own.
"""

import numpy as np

from es_mpi.core.array_state import StateError
from es_mpi.core.errors import CheckpointError
from es_mpi.parts.build import build_task
from es_mpi.parts.envs import make_env
from es_mpi.parts.job_file import job_from_text
from es_mpi.parts.atari import make_atari_env
from es_mpi.records import checkpoint as ckpt_io
from es_mpi.run.evaluation import normalizer_for
from es_mpi.run.obstat import ObsStat, normalize
from es_mpi.run.vbn_reference import reference_from_checkpoint


def refuse_objectives(path, job):
    if job.objective.function is not None:
        raise CheckpointError(path, f"holds a black-box objective ({job.objective.function}), not a policy "
                                    "that maps observations to actions")


class TrainedPolicy:
    """policy(observation) -> action, exactly as `es-mpi eval` plays it."""

    def __init__(self, path, ckpt, job, act, normalizer, observation_size):
        self.path, self.job, self.iteration = path, job, ckpt.iteration
        self._act, self._normalizer, self._size = act, normalizer, observation_size

    def __call__(self, observation):
        """The same float32 operations as the rollout, so returns match `es-mpi eval` bit for bit."""
        return self._act(normalize(np.asarray(observation, dtype=np.float32).reshape(self._size), self._normalizer))

    def make_env(self, render_mode=None):
        """The environment the policy was trained on, with the job's env.kwargs (and Atari wrappers)."""
        if self.job.atari is not None:
            return make_atari_env(self.job.env, self.job.atari, render_mode)
        return make_env(self.job.env, render_mode=render_mode)


def load_policy(path, trust_code=False):
    """A checkpoint file (or a run directory: its newest valid checkpoint) -> TrainedPolicy.

    As with `es-mpi eval`, a checkpoint whose job names a Python module is refused (a ConfigError)
    unless trust_code: a file never makes es-mpi import code."""
    path, ckpt = ckpt_io.resolve(path)
    job = job_from_text(ckpt.config_toml, path)
    refuse_objectives(path, job)
    task, normalizer = ready_to_play(path, ckpt, job, trust_code=trust_code)
    task.close()  # its env only told the policy's shape
    return TrainedPolicy(path, ckpt, task.job, task.policy.bind(ckpt.params), normalizer,
                         int(np.prod(task.env.observation_space.shape)))


def ready_to_play(path, ckpt, job, render_mode=None, trust_code=False):
    """(task, normalizer): the checkpoint's job built once, its policy set up as training left it
    (parameter count checked, VBN reference, observation statistics). What eval and load_policy share."""
    task = build_task(job, render_mode=render_mode, trust_code=trust_code)
    try:
        policy, space = task.policy, task.env.observation_space
        if ckpt.params.size != policy.n_params:
            raise CheckpointError(path, f"params has {ckpt.params.size} entries, the policy needs {policy.n_params}")
        if task.job.policy.vbn:
            policy.set_reference(reference_from_checkpoint(path, ckpt, task.job, space))
        obstat = ObsStat(int(np.prod(space.shape)))
        try:
            obstat.load_state_dict(ckpt.obstat)
        except StateError as err:
            raise CheckpointError(path, f"obstat/{err.key}: {err.reason}") from None
    except BaseException:
        task.close()
        raise
    return task, normalizer_for(task.job, obstat)
