"""The job file's sections: one frozen dataclass per TOML table, every key typed, ranged and documented.

The [strategy] section's schemas are each in its strategy's file (parts/strategies/), handed to
the parser by the registry; `strategy_sections` picks one by `strategy.name`.
"""

import dataclasses

from es_mpi.job.settings import setting


@dataclasses.dataclass(frozen=True)
class RunSettings:
    name: str = setting("", "str", doc="run name; the run directory defaults to runs/<name> (default: job file stem)")
    dir: str = setting(None, "str", optional=True, doc="run directory (overrides runs/<name>)")
    seed: int = setting(0, "int", lo=0, hi=2**63 - 1, doc="job seed: every random draw derives from it")
    lanes: int = setting(16, "int", lo=1, hi=1024,
                         doc="most episodes a rank plays at once with one batched forward pass per step (MLP policies whose lanes' weights fit in 512 KB; Atari conv policies in 6 MiB, their lanes one C++ vector env); saves per-step overhead, never changes results")
    placement: str = setting("dynamic", "str", choices=("dynamic", "static"),
                             doc="who plays which member: 'dynamic' (each node's ranks and lanes claim the next pair or group of their node's block from a shared counter as they free up) or 'static' (fixed contiguous slices); never changes results")
    pipeline: bool = setting(False, "bool",
                             doc="pipelined iterations (openai_es): a rank that runs out of iteration t's episodes starts on t+1, whose members perturb the centre after t-1, while t's last episodes finish; hides the tail at scale, and the update is one iteration stale, which cost Hopper 1.54x the episodes and HalfCheetah 1.41x over fifteen seeds each: worth it only where ranks wait for more than about a third of an iteration (docs/scaling.md, 'The pipelined mode (measured)')")


@dataclasses.dataclass(frozen=True)
class EnvSettings:
    id: str = setting("CartPole-v1", "str", doc="gymnasium environment id")
    kwargs: dict = setting({}, "table", doc="keyword arguments for gymnasium.make")
    step_cap: object = setting("env", "int_or_str", lo=1, choices=("env", "adaptive"),
                               doc="episode step cap: 'env' (its own limit), 'adaptive' (2x the mean length of the last iteration), or a number")
    alive_bonus: float = setting(0.0, "float", lo=0.0,
                                 doc="subtracted from every reward of training episodes (ARS: 1 for Hopper and Walker2d, 5 for Humanoid) so that standing still is not rewarded; evaluation returns stay the env's own")


@dataclasses.dataclass(frozen=True)
class PolicySettings:
    kind: str = setting("mlp", "str", choices=("mlp", "cnn", "tabular"),
                        doc="network family: mlp (flat observations), cnn (Atari frames), or tabular (a state x action table; Discrete observations and actions)")
    network: str = setting("paper", "str", choices=("paper", "nature"),
                           doc="cnn layout: paper (ES paper: 16 8x8/4, 32 4x4/2, fc 256) or nature (Nature DQN: 32 8x8/4, 64 4x4/2, 64 3x3/1, fc 512)")
    hidden: list = setting([64, 64], "int_list", lo=1, hi=65536, doc="hidden layer sizes")
    activation: str = setting("tanh", "str", choices=("tanh", "relu", "elu"), doc="hidden nonlinearity")
    action: str = setting("auto", "str", choices=("auto", "continuous", "discrete", "bins"),
                          doc="action head: auto picks discrete for Discrete spaces, continuous for Box")
    bins: int = setting(10, "int", lo=2, hi=1000, doc="bins per action dimension when action = 'bins' (ES paper, Hopper/Swimmer)")
    init_scale: float = setting(0.01, "float", lo=0.0, doc="column norm of the output layer at initialisation")
    vbn: bool = setting(False, "bool", doc="virtual batch normalisation of the hidden layers from a fixed reference batch")
    vbn_batch: int = setting(128, "int", lo=2, hi=100_000, doc="observations in the VBN reference batch")
    vbn_probability: float = setting(0.01, "float", lo=1e-6, hi=1.0,
                                     doc="chance that a random-action step's observation joins the reference batch")


@dataclasses.dataclass(frozen=True)
class AtariSettings:
    """The ES paper's preprocessing (ale-py's vector env or gymnasium's wrappers, parts/atari.py); ALE ids only.

    The parser cannot tell an ALE id from another (that takes gymnasium's registry): a job holds
    this section as written, or None, and the build step fills in the defaults for ALE games."""
    noop_max: int = setting(30, "int", lo=0, hi=10_000, doc="up to this many no-op actions at reset")
    frame_skip: int = setting(4, "int", lo=1, hi=100, doc="frames per action (max-pooled over the last two)")
    screen_size: int = setting(84, "int", lo=16, hi=1024, doc="grayscale frames are resized to screen_size x screen_size")
    frame_stack: int = setting(4, "int", lo=1, hi=64, doc="frames stacked into one observation")
    repeat_action_probability: float = setting(0.0, "float", lo=0.0, hi=1.0,
                                               doc="sticky actions: chance the ALE repeats the previous action (0: the ES paper)")
    full_action_space: bool = setting(False, "bool", doc="all 18 actions instead of the game's minimal set")
    max_episode_steps: int = setting(5000, "int", lo=1, doc="episode limit in agent steps (after frame skip)")
    backend: str = setting("vector", "str", choices=("vector", "gymnasium"),
                           doc="vector: ale-py's C++ vector env (no-ops as whole agent steps); gymnasium: its wrappers (renders; takes env.kwargs)")


@dataclasses.dataclass(frozen=True)
class NoiseSettings:
    size: int = setting(50_000_000, "int", lo=1000, hi=2**40, doc="float32 entries in the node-shared noise table (4 bytes each)")
    seed: int = setting(123, "int", lo=0, hi=2**63 - 1, doc="seed of the noise table contents")


@dataclasses.dataclass(frozen=True)
class ObsNormSettings:
    enabled: bool = setting(True, "bool", doc="normalise observations by running mean and std")
    probability: float = setting(0.01, "float", lo=0.0, hi=1.0, doc="share of population episodes whose observations update the statistics")
    clip: float = setting(5.0, "float", lo=0.0, doc="normalised observations are clipped to [-clip, clip]")
    min_std: float = setting(0.1, "float", lo=1e-8,
                             doc="floor on the running std (the ES paper's 0.1); ARS has none, so a small one "
                                 "keeps an observation that moves little, like a torso's angle, at unit scale")


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    every: int = setting(10, "int", lo=0, doc="evaluate the centre policy every N iterations (0: never)")
    episodes: int = setting(10, "int", lo=1, hi=100000, doc="evaluation episodes")


@dataclasses.dataclass(frozen=True)
class CheckpointSettings:
    every: int = setting(10, "int", lo=1, doc="write a checkpoint every N iterations (and at the end, and on a signal)")
    keep: int = setting(3, "int", lo=1, doc="periodic checkpoints to keep (best.h5 is kept besides)")


@dataclasses.dataclass(frozen=True)
class StopSettings:
    iterations: int = setting(1000, "int", lo=1, doc="stop after this many iterations")
    timesteps: int = setting(None, "int", lo=1, optional=True, doc="stop once this many training timesteps are spent")
    target_return: float = setting(None, "float", optional=True, doc="stop once the evaluation return reaches this")


@dataclasses.dataclass(frozen=True)
class ObjectiveSettings:
    function: str = setting(None, "str", optional=True,
                            doc="black-box objective 'module:function' (float64 vector -> float, minimised; "
                                "fitness = -f(x)); set it instead of [env]")
    dim: int = setting(10, "int", lo=1, hi=2**31, doc="dimension of the objective's input")
    initial: float = setting(0.0, "float", doc="initial point: every coordinate starts here")
    initial_std: float = setting(0.0, "float", lo=0.0, doc="std of a seeded Gaussian offset added to the initial point")


@dataclasses.dataclass(frozen=True)
class LogSettings:
    tensorboard: bool = setting(False, "bool", doc="also write every metrics row as TensorBoard scalars to <run dir>/tensorboard (rank 0; needs the 'tensorboard' extra); metrics.csv stays the record")


SECTIONS = {
    "run": RunSettings, "env": EnvSettings, "atari": AtariSettings, "policy": PolicySettings, "noise": NoiseSettings,
    "obs_norm": ObsNormSettings, "eval": EvalSettings, "checkpoint": CheckpointSettings,
    "stop": StopSettings, "objective": ObjectiveSettings, "log": LogSettings,
}
