"""The training loop: ask, play, tell and the records, on the node runtime's phases (run/node_runtime.py,
which owns every window, communicator and node barrier; docs/architecture.md)."""

import copy
import dataclasses
import math
import signal
import sys
import time

import numpy as np

from es_mpi.core.errors import EXIT_CRASH, EXIT_INTERRUPTED, EXIT_OK, AgreedError, RunFailure
from es_mpi.core.seeding import Purpose, episode_seed, rng
from es_mpi.core.stop_signals import catch_stop_signals
from es_mpi.records import checkpoint as ckpt_io
from es_mpi.records.metrics import METRICS_NAME, MetricsLog
from es_mpi.records import run_lock
from es_mpi.records.status import status_record, write_status
from es_mpi.records.tensorboard import TensorBoardScalars
from es_mpi.run import faults
from es_mpi.run.evaluation import evaluation_return, normalizer_for
from es_mpi.run.mpi import max_over_ranks
from es_mpi.run.obstat import ObsStat
from es_mpi.run.start import agree_on_start, restore_state, vbn_reference
from es_mpi.parts.atari import AtariLanes, VectorAtariEnv
from es_mpi.run.rollout import Actors, EnvLanes, Start, play
from es_mpi.run.vector_rollout import VectorLanes
from es_mpi.run.vbn_reference import CHECKPOINT_KEY as VBN_CHECKPOINT_KEY


def transition_width(env):
    """Columns of a recorded step: the flattened policy input, then the action."""
    return int(np.prod(env.observation_space.shape)) + int(np.prod(env.action_space.shape))


@dataclasses.dataclass
class Playing:
    """What one iteration's episodes play, fixed when its play starts: the pipelined mode
    (run/pipeline.py) tells the iteration before while they play."""
    iteration: int
    evaluating: bool
    told: int  # the last iteration told into the centre played: the evaluation episodes' seeds use it
    normalizer: object
    step_cap: int
    center_p: np.ndarray  # the centre its members perturb and its evaluation plays
    frozen: object  # member -> parameters around center_p (pipelined), or None: the strategy's own
    state: dict = None  # rank 0: the state its evaluation plays (best.h5); pipelined, every iteration
    prepare_s: float = 0.0  # seconds spent making this record and asking


class Trainer:
    """Trains `runtime.strategy` (run/node_runtime.py: the runtime owns its node arrays) on `task`."""
    write_failure = None  # rank 0's first failed record write of the iteration (see _rank0_write)

    def __init__(self, task, runtime, resume=False, force=False, log=print, strict_versions=False):
        self.task, self.job, self.runtime, self.log = task, task.job, runtime, log
        self.comm, self.strategy, self.nodes = runtime.world, runtime.strategy, runtime.nodes
        self.strict_versions, self.version_changes = strict_versions, []
        job = self.job
        self.rank, self.size = self.comm.rank, self.comm.size
        self.run_dir = job.run_dir()
        self.stop_flag = catch_stop_signals()
        self.env, self.policy = task.env, task.policy
        start = agree_on_start(self.comm, job, resume, force, log)
        self.lock = start.lock if self.rank == 0 else None  # rank 0 took it and lets it go
        try:
            self._start(start)
        except AgreedError:  # a checkpoint that does not fit, refused alike on every rank: free the run directory
            run_lock.release(self.lock)
            raise

    def _start(self, start):
        """What follows the run directory's verdict: the VBN reference, lanes, records and the checkpoint's state."""
        job, task = self.job, self.task
        self.last_checkpoint = start.path
        self.vbn_reference = vbn_reference(self.comm, task, start)
        self.lanes, self.lanes_forward = self._lanes()
        self.obstat = ObsStat(int(np.prod(self.env.observation_space.shape)))
        self.iteration, self.timesteps = 0, 0
        self.step_cap = task.step_limit
        self.best_eval_return, self.last_eval_return = -math.inf, math.nan
        self.metrics = MetricsLog(self.run_dir / METRICS_NAME if self.rank == 0 else None)
        if start.checkpoint is not None:
            self._restore(start)
        if self.rank == 0 and job.log.tensorboard:
            self.metrics.mirror = TensorBoardScalars(self.run_dir, self.timesteps)
        self.stopped_before_start = max_over_ranks(self.comm, self.stop_flag.signal)

    def _lanes(self):
        """Where members play (rollout.play) and their forward pass: up to `run.lanes` members at once
        through the policy's batched pass where it pays off, else a lane of one playing each member's actor."""
        n_lanes = self.policy.useful_lanes(self.job.run.lanes) if self.strategy.plays_params else 1
        if n_lanes < 2:
            return EnvLanes([self.env]), Actors()
        if isinstance(self.env, VectorAtariEnv):
            return VectorLanes(AtariLanes(self.job.env, self.job.atari, n_lanes)), self.policy.lanes(n_lanes)
        return EnvLanes.around(self.env, self.task.make_env, n_lanes), self.policy.lanes(n_lanes)

    # ----------------------------------------------------------------- resume
    def _restore(self, start):
        """The checkpoint's state (run/start.py) and progress counters."""
        ckpt = start.checkpoint
        self.version_changes = restore_state(start, self.strategy, self.obstat, self.strict_versions)
        if self.rank == 0:
            for change in self.version_changes:
                self.log(f"warning: {change} since {start.path.name} was written: the run may no longer be "
                         "byte-identical to an unbroken one")
        self.iteration, self.timesteps, self.step_cap = ckpt.iteration, ckpt.timesteps, ckpt.step_cap
        self.metrics.restore(ckpt.metrics)
        self.best_eval_return, self.last_eval_return = ckpt.best_eval_return, self.metrics.last_recorded("eval_return")
        if self.rank == 0:
            self.log(f"resumed from iteration {ckpt.iteration} ({ckpt.timesteps} timesteps) in {self.run_dir}")

    # ----------------------------------------------------------------- the iteration
    def _playing(self, t, state=None):
        """Iteration t's Playing from the state now (or from `state`, a checkpoint's pending iteration),
        and the strategy's ask for t. The state is copied only where someone keeps it: rank 0 on an
        evaluation iteration, and on every iteration of the pipelined mode (its checkpoints carry it)."""
        start = time.perf_counter()
        job, pipelined = self.job, self.job.run.pipeline
        evaluating = bool(job.eval.every) and t % job.eval.every == 0
        if state is None and self.rank == 0 and (evaluating or pipelined):
            state = self._state()
        self.strategy.ask(t)
        if state is not None and pipelined:
            obstat = ObsStat(self.obstat.sum_o.size)
            obstat.load_state_dict(state["obstat"])
            told, step_cap, center_p = state["iteration"], state["step_cap"], state["params"]
        else:
            obstat, told, step_cap, center_p = self.obstat, self.iteration, self.step_cap, self.strategy.center()
        if pipelined:  # a private copy: the update of the iteration before writes the centre while these play
            center_p = np.array(center_p, dtype=np.float32, copy=True)
        frozen = self.strategy.frozen_members(center_p) if pipelined else None
        return Playing(t, evaluating, told, normalizer_for(job, obstat), step_cap, center_p, frozen, state,
                       prepare_s=time.perf_counter() - start)

    def _evaluate_members(self, playing, between=None):
        """Play this rank's members of `playing` (the runtime's play phase), and on an evaluation
        iteration its evaluation episodes of the centre among them (members `population + e`: the
        env's own rewards and step limit, and the seeds `es-mpi eval` gives the state played),
        writing each result into the node's arrays; -> {member: transition rows} when the strategy
        learns from transitions. `between()` runs between two steps (the pipelined mode's test)."""
        seed, alone, population = self.job.run.seed, isinstance(self.lanes_forward, Actors), self.strategy.population
        iteration, center, bound = playing.iteration, playing.center_p, []

        def center_player():
            if not alone:
                return center
            if not bound:  # bound once, and only by a rank that plays an evaluation episode
                bound.append(self.policy.bind(center))
            return bound[0]

        def member_player(m):
            if playing.frozen is None:
                return self.strategy.member_actor(m, self.policy) if alone else self.strategy.member_params(m)
            params = playing.frozen(m)
            return self.policy.bind(params) if alone else params

        def member(m):
            faults.log_claim(self.rank, "start", iteration, m)
            if m >= population:
                return Start(center_player(), episode_seed(seed, playing.told, m - population, Purpose.EVAL_EPISODE),
                             step_cap=self.task.step_limit)
            return Start(member_player(m), episode_seed(seed, iteration, m), self._records_obs(iteration, m),
                         self.job.env.alive_bonus, playing.step_cap)

        episodes = play(self.lanes, self.lanes_forward, self.runtime.members(playing.evaluating, iteration), member,
                        playing.normalizer, self.strategy.wants_transitions, self.runtime.placement.share,
                        faults.slowed(self.rank, between))
        faults.log_claim(self.rank, "played", iteration)
        transitions = {}
        for member, episode in episodes.items():
            self.runtime.write(member, episode, iteration)
            if episode.transitions is not None:
                transitions[member] = episode.transitions
        return transitions

    def _records_obs(self, iteration, member):
        """Whether this member's observations join the normalisation statistics (a seeded coin; none is
        drawn at probability 1, where every coin says yes: a generator costs 27 us an episode)."""
        probability = self.job.obs_norm.probability
        return self.job.obs_norm.enabled and (probability >= 1.0 or
                                              rng(self.job.run.seed, iteration, member,
                                                  purpose=Purpose.OBS_SAMPLE).random() < probability)

    def _state(self):
        """The state a checkpoint holds, as it is now (a copy: the update changes arrays in place); its
        metrics are added when it is written (`_checkpoint_of`: the rows up to its iteration)."""
        return dict(iteration=self.iteration, timesteps=self.timesteps, step_cap=self.step_cap,
                    params=np.array(self.strategy.center(), copy=True),
                    strategy=copy.deepcopy(self.strategy.state_dict()),
                    obstat=copy.deepcopy(self.obstat.state_dict()))

    def step(self):
        """One iteration, identical float operations on every rank: ask, then the runtime's phases
        (play, exchange, update, agree), then the metrics row; -> (row, stop signal, Playing).

        An evaluation plays the centre the iteration's members perturbed, among them, and is reported
        on this row; rank 0 keeps that state (`Playing.state`) for best.h5."""
        t_start = time.perf_counter()
        playing = self._playing(self.iteration + 1)
        busy_start = time.perf_counter()
        transitions = self._evaluate_members(playing)
        busy_s = time.perf_counter() - busy_start
        row, stop_signal = self._tell(playing, busy_s, transitions, t_start)
        return row, stop_signal, playing

    def _tell(self, playing, busy_s, transitions, since, waited_s=0.0):
        """The runtime's exchange, update and agreement of the iteration `playing` played, and its
        metrics row, written only from a finite centre (its times count from `since`; `waited_s`:
        seconds waited before, for the pipelined mode's barrier); -> (row, stop signal)."""
        t, evaluating = playing.iteration, playing.evaluating
        exchange_start = time.perf_counter()
        results_n5, obs_rows_kf, eval_results_e5 = self.runtime.exchange(t, evaluating)
        gathered = time.perf_counter()
        returns_n, lengths_n = results_n5[:, 0], results_n5[:, 1]
        if self.strategy.wants_transitions:
            elite_members = self.strategy.elite_members(returns_n.copy())
            elite = self.runtime.gather_elite(elite_members, transitions, transition_width(self.env))
            tell_metrics = self.runtime.update(returns_n, elite)
        else:
            tell_metrics = self.runtime.update(returns_n)
        if obs_rows_kf is not None:
            self.obstat.add(obs_rows_kf)
        self.iteration, self.timesteps = t, self.timesteps + int(lengths_n.sum())
        if self.job.env.step_cap == "adaptive":
            self.step_cap = min(max(1, int(math.ceil(2.0 * lengths_n.mean()))), self.task.step_limit)
        eval_return, eval_nonfinite, eval_s = math.nan, 0, 0.0
        if evaluating:
            eval_returns = eval_results_e5[:, 0]
            eval_nonfinite = int(np.count_nonzero(~np.isfinite(eval_returns)))
            eval_return = evaluation_return(eval_returns)
            self.last_eval_return = eval_return
            eval_steps = eval_results_e5[:, 1].sum()  # the evaluation's share of the episodes' time, by steps
            eval_s = busy_s * eval_steps / max(1.0, eval_steps + lengths_n.sum())
            if eval_nonfinite and self.rank == 0:
                self.log(f"warning: iteration {t}: {eval_nonfinite} of {eval_returns.size} evaluation episodes "
                         "diverged (non-finite); scored -inf, this evaluation cannot set best.h5 or the target")
        repaired, stop_signal, agreed = self._agree(busy_s)
        self._check_finite_center()
        end = time.perf_counter()
        iteration_s = end - since
        finite = returns_n[np.isfinite(returns_n)]
        row = dict(
            iteration=t, timesteps=self.timesteps, episodes=returns_n.size,
            return_mean=float(finite.mean()) if finite.size else math.nan,
            return_max=float(finite.max()) if finite.size else math.nan,
            return_min=float(finite.min()) if finite.size else math.nan,
            eval_return=eval_return, eval_nonfinite=eval_nonfinite, timesteps_per_s=lengths_n.sum() / iteration_s,
            iteration_s=iteration_s, episodes_s=busy_s, wait_s=waited_s + gathered - exchange_start,
            update_s=playing.prepare_s + (end - gathered), eval_s=eval_s,
            imbalance=agreed.busy_max_s / agreed.busy_mean_s if agreed.busy_mean_s > 0 else 1.0,
            members_max=agreed.members_max, members_min=agreed.members_min,
            capped=int(results_n5[:, 2].sum()), nonfinite=int(results_n5[:, 3].sum()),
            node_bytes=self.runtime.take_crossed_bytes() + agreed.crossed_bytes,
            repairs=self.metrics.last("repairs", 0) + repaired, step_cap=self.step_cap,
            versions_changed=len(self.version_changes),
            wall_time=time.time(), **tell_metrics)
        self._rank0_write(self.metrics.append, row)
        return row, stop_signal

    def _rank0_write(self, write, *args):
        """Run one of rank 0's record writes; an OS error (disk full, quota) is kept as a one-line
        failure that `_records_agreed` shares with every rank at the end of the iteration."""
        try:
            write(*args)
        except RunFailure as failure:
            self.write_failure = self.write_failure or str(failure)
        except OSError as err:
            name = f" {err.filename}" if err.filename else ""
            self.write_failure = self.write_failure or f"cannot write{name} ({err.strerror or err})"

    def _records_agreed(self):
        """Whether rank 0's record writes of this iteration failed, the same on every rank (one 8-byte
        Bcast); rank 0 alone holds and prints the reason."""
        failed = np.array([self.write_failure is not None], dtype=np.int64)
        self.comm.Bcast(failed, root=0)
        if failed[0]:
            raise RunFailure(f"{self.write_failure or 'rank 0 could not write its records'}; stopped at iteration "
                             f"{self.iteration}, last good checkpoint {self.last_checkpoint or 'none'}")

    def _check_finite_center(self):
        """Diverged parameters end the run before anything is written from them (every rank alike):
        no metrics row, TensorBoard scalar, checkpoint or progress line."""
        if not np.all(np.isfinite(self.strategy.center())):
            raise RunFailure(f"iteration {self.iteration}: the centre parameters are not finite (NaN or inf; "
                             f"try a smaller strategy.sigma or learning rate); nothing was written from them, "
                             f"last good checkpoint {self.last_checkpoint or 'none'}")

    def _agree(self, busy_s):
        """The runtime's agreement (and repair); -> (repaired, stop signal, Agreement)."""
        try:
            agreed, source = self.runtime.agree(self.iteration, self.obstat, busy_s, self.stop_flag.signal)
        except RunFailure as failure:
            raise RunFailure(f"iteration {self.iteration}: {failure}; last good checkpoint "
                             f"{self.last_checkpoint or 'none'}") from None
        if source is not None and self.rank == 0:
            self.log(f"warning: parameter checksums differed across ranks at iteration {self.iteration}; "
                     f"repaired from rank {source[0]} (node {source[1]})")
        return int(source is not None), agreed.stop_signal, agreed

    # ----------------------------------------------------------------- stopping, saving
    def _stop_reason(self):
        stop = self.job.stop
        if self.iteration >= stop.iterations:
            return "iterations"
        if stop.timesteps is not None and self.timesteps >= stop.timesteps:
            return "timesteps"
        if stop.target_return is not None and self.last_eval_return >= stop.target_return:
            return "target_return"
        return None

    def _checkpoint(self, eval_return, periodic, best, playing):
        """Rank 0 writes the periodic checkpoint of the state now (not evaluated yet: its eval_return is
        NaN), and/or best.h5 of the state that the evaluation of `playing` played (the centre its
        members perturbed) with the evaluation's return."""
        if self.rank != 0:
            return
        if periodic:
            path = ckpt_io.checkpoint_path(self.run_dir, self.iteration)
            faults.fail_at(self.rank, "checkpoint")
            ckpt_io.save(path, self._checkpoint_of(self._state(), math.nan, self._in_flight()))
            self.last_checkpoint = path
            ckpt_io.prune(self.run_dir, self.job.checkpoint.keep)
        if best:
            ckpt_io.save(self.run_dir / ckpt_io.BEST_NAME, self._checkpoint_of(playing.state, eval_return))

    def _in_flight(self):
        """What a periodic checkpoint must also carry for an exact resume (the pipelined mode's
        iteration in flight, run/pipeline.py); nothing here."""
        return {}

    def _checkpoint_of(self, state, eval_return, extra=None):
        metrics = {key: column[:state["iteration"]] for key, column in self.metrics.columns().items()}
        extra = dict(extra or {})
        if self.vbn_reference is not None:
            extra[VBN_CHECKPOINT_KEY] = self.vbn_reference
        return ckpt_io.Checkpoint(
            config_toml=self.job.to_toml(), best_eval_return=self.best_eval_return, eval_return=eval_return,
            versions=ckpt_io.package_versions(), extra=extra, metrics=metrics, **state)

    def _write_status(self, state):
        if self.rank == 0:
            write_status(self.run_dir, status_record(
                state=state, job=self.job, iteration=self.iteration, timesteps=self.timesteps,
                best_eval_return=self.best_eval_return, last_eval_return=self.last_eval_return,
                checkpoint=self.last_checkpoint, rows=self.metrics.rows, n_ranks=self.size,
                node_sizes=self.nodes.sizes, version_changes=self.version_changes))

    def _stop_before_start(self):
        """A stop signal came during start-up: nothing new to checkpoint, so stop with exit 3 at once."""
        name = signal.Signals(self.stopped_before_start).name
        self._write_status(f"interrupted ({name})")
        if self.rank == 0:
            self.log(f"stopped by signal {name} before iteration {self.iteration + 1}; nothing new to checkpoint; "
                     "continue with --resume")
        return EXIT_INTERRUPTED

    def train(self):
        """Run to the stopping rule or a signal; returns the process exit code (1: the run failed,
        one line on stderr from rank 0)."""
        try:
            return self._train()
        except RunFailure as failure:
            self._rank0_write(self._write_status, "failed")
            if self.rank == 0:
                sys.stderr.write(f"es-mpi: error: {failure}\n")
                sys.stderr.flush()
            return EXIT_CRASH

    def _train(self):
        if self.rank == 0:
            self.log(f"es-mpi: {self.job.task_name()}, {self.strategy.name}, {self.policy.n_params} parameters, "
                     f"population {self.strategy.population}, {self.size} ranks{self.nodes.describe()}, "
                     f"run directory {self.run_dir}")
        if self.stopped_before_start:
            return self._stop_before_start()
        reason = self._stop_reason()
        return self._iterate() if reason is None else self._done(reason)

    def _iterate(self):
        """Iterations until one ends the run; -> the exit code."""
        while True:
            code = self._conclude(*self.step())
            if code is not None:
                return code

    def _conclude(self, row, stop_signal, playing):
        """After an iteration's row: the progress line, best.h5, the periodic checkpoint and the status;
        -> the exit code when the run ends here, else None."""
        if self.rank == 0:
            self.log(self.metrics.progress_line(row))
        improved = math.isfinite(row["eval_return"]) and row["eval_return"] > self.best_eval_return
        if improved:
            self.best_eval_return = row["eval_return"]
        reason = self._stop_reason()
        periodic = bool(stop_signal or reason or self.iteration % self.job.checkpoint.every == 0)
        self._rank0_write(self._checkpoint, row["eval_return"], periodic, improved, playing)
        self._rank0_write(self._write_status, f"interrupted ({signal.Signals(stop_signal).name})" if stop_signal
                          else f"done ({reason})" if reason else "running")
        self._records_agreed()
        if stop_signal:
            if self.rank == 0:
                self.log(f"stopped by signal {signal.Signals(stop_signal).name} after iteration "
                         f"{self.iteration}; checkpoint written; continue with --resume")
            return EXIT_INTERRUPTED
        return None if reason is None else self._done(reason)

    def _done(self, reason):
        if self.rank == 0:
            self.log(f"done ({reason}) at iteration {self.iteration}, {self.timesteps} timesteps; "
                     f"best evaluation return {self.best_eval_return:.2f}")
        return EXIT_OK

    def close(self):
        """Records, envs and the run lock (not collective: the runtime frees the MPI resources)."""
        self.metrics.close()
        self.env.close()
        self.lanes.close()  # what was made for the lanes (the task's env is closed above)
        run_lock.release(self.lock)
