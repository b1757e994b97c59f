"""Action-space cross-entropy method: play `population` sessions with actions sampled from
the policy (softmax for discrete heads, Gaussian with a decaying `action_std` for continuous
ones), keep the sessions at or above the `percentile` of returns, and fit the policy by
gradient descent (Adam) to the elite (input, action) pairs: a classifier or a regressor.

The pairs are gathered from all ranks in global member order (the trainer does this when
`wants_transitions` is set); minibatches are drawn from (seed, iteration, MINIBATCH), so
every rank takes the same steps. Evaluation plays the greedy policy.
"""

import dataclasses

import numpy as np

from es_mpi.core.array_state import Array, Part
from es_mpi.core.seeding import Purpose, rng
from es_mpi.job.settings import setting
from es_mpi.parts.policies.mlp import MLPPolicy
from es_mpi.parts.strategies.base import Strategy, percentile_elite
from es_mpi.parts.strategies.elite_memory import EliteMemory, stack_transitions
from es_mpi.parts.strategies.mlp_fit import loss_and_gradient
from es_mpi.parts.strategies.optim import Adam


@dataclasses.dataclass(frozen=True)
class ActionCEMSettings:
    name = "cem_action"
    population: int = setting(50, "int", lo=2, hi=1_000_000, doc="sessions played per iteration")
    percentile: float = setting(70.0, "float", lo=0.0, hi=100.0, doc="keep sessions returning at or above this percentile")
    epochs: int = setting(5, "int", lo=1, doc="passes over the elite pairs per iteration")
    batch_size: int = setting(128, "int", lo=1, doc="pairs per gradient step")
    learning_rate: float = setting(0.01, "float", lo=0.0, doc="Adam step size")
    entropy: float = setting(0.0, "float", lo=0.0, doc="entropy bonus coefficient (discrete heads): keeps exploring")
    action_std: float = setting(0.5, "float", lo=0.0, doc="initial std of sampled continuous actions")
    action_std_decay: float = setting(0.98, "float", lo=0.0, hi=1.0, doc="action_std is multiplied by this each iteration")
    action_std_min: float = setting(0.05, "float", lo=0.0, doc="lower bound of action_std")
    memory: int = setting(0, "int", lo=0, doc="also train on the elite pairs of this many previous iterations")


class ActionCEM(Strategy):
    Settings = ActionCEMSettings
    wants_transitions = True
    plays_params = False
    needs_environment = True

    @classmethod
    def check_policy(cls, policy):
        if not isinstance(policy, MLPPolicy) or policy.head.kind not in ("discrete", "continuous"):
            raise ValueError("cem_action needs an mlp policy with a discrete or continuous action head")

    def __init__(self, settings, initial_params_p, noise, seed, policy):
        self.check_policy(policy)
        head = policy.head
        self.settings, self.seed, self.policy = settings, seed, policy
        self.params_p = np.array(initial_params_p, dtype=np.float32)
        self.population = settings.population
        self.n_inputs = policy.sizes[0]
        self.n_action_columns = 1 if head.kind == "discrete" else head.n_outputs
        self.memory = EliteMemory(settings.memory, self.n_inputs + self.n_action_columns)
        self.optimizer = Adam(self.params_p.size, settings.learning_rate)
        self.action_std = np.float64(settings.action_std)
        self.iteration = 0

    def ask(self, iteration):
        self.iteration = iteration

    def member_params(self, member):
        return self.params_p

    def member_actor(self, member, policy):
        draw = rng(self.seed, self.iteration, member, purpose=Purpose.ACTION)
        return policy.bind_sampling(self.params_p, draw, np.float32(self.action_std))

    def elite_members(self, fitness_n):
        return percentile_elite(fitness_n, self.settings.percentile)

    def _update(self, fitness_n, transitions):
        rows_tf = stack_transitions(transitions, self.n_inputs + self.n_action_columns)
        training_tf = self.memory.rows_with(rows_tf)
        self.memory.add(rows_tf, self.iteration)
        losses = self._fit(training_tf)
        self.action_std = np.float64(max(self.settings.action_std_min, self.action_std * self.settings.action_std_decay))
        return {"elite_pairs": float(len(rows_tf)), "fit_loss": float(np.mean(losses)) if losses else float("nan"),
                "action_std": float(self.action_std)}

    def _fit(self, rows_tf):
        inputs_ti = rows_tf[:, :self.n_inputs].astype(np.float32)
        targets = rows_tf[:, self.n_inputs:]
        if self.n_action_columns == 1 and self.policy.head.kind == "discrete":
            targets = targets[:, 0].astype(np.int64)
        draw = rng(self.seed, self.iteration, purpose=Purpose.MINIBATCH)
        losses = []
        for _ in range(self.settings.epochs):
            order = draw.permutation(len(rows_tf))
            for start in range(0, len(order), self.settings.batch_size):
                batch = order[start:start + self.settings.batch_size]
                loss, gradient_p = loss_and_gradient(self.policy, self.params_p, inputs_ti[batch], targets[batch],
                                                     self.settings.entropy)
                self.params_p = self.params_p + self.optimizer.step(gradient_p)
                losses.append(loss)
        return losses

    def center(self):
        return self.params_p

    def state_layout(self):
        return [Array("params", "params_p", np.float32, (self.params_p.size,)),
                Array("action_std", "action_std", np.float64), Part("optimizer", "optimizer"), Part("memory", "memory")]
