"""benchmarks/emulated_cluster.py at 8 ranks: its efficiency arithmetic against a real run's metrics."""

import math
import pathlib
import sys

import numpy as np
import pytest

from es_mpi.core.seeding import Purpose
from es_mpi.run.mpi import static_slice
from es_mpi.run.placement import node_blocks
from test_trace_env import write_trace

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "benchmarks"))

import emulated_cluster as bench  # noqa: E402

RANKS, NODE_SIZE, EPISODES_PER_RANK, ITERATIONS = 8, 4, 10, 3
RECORDED_JOB = """
[env]
id = "Hopper-v5"
[policy]
hidden = []
action = "continuous"
[strategy]
pairs = 8
top_pairs = 4
sigma = 0.02
[obs_norm]
probability = 1.0
"""


@pytest.fixture
def trace(tmp_path):
    """Episodes of 5 to 40 steps that ask 10 to 80 ms each: an iteration lasts about half a second."""
    lengths = [5, 10, 20, 40, 8, 30]
    return write_trace(tmp_path / "trace.npz", lengths=lengths, truncated=[False] * 5 + [True],
                       cpu_s=[0.002 * n for n in lengths], job_toml=np.array(RECORDED_JOB))


@pytest.mark.parametrize("pipeline", [False, True], ids=["synchronous", "pipelined"])
def test_efficiency_is_the_serial_work_of_the_metrics_over_ranks_times_iteration_s(trace, tmp_path, pipeline):
    job = bench.trace_job(trace, RANKS, EPISODES_PER_RANK, ITERATIONS, time_scale=1.0, eval_every=2,
                          placement="static", pipeline=pipeline)
    assert job.run.pipeline == pipeline
    assert bench.population(job) == RANKS * EPISODES_PER_RANK and job.strategy.top_pairs == 20
    rows, cpu_s, wall_s, _ = bench.run_emulated(job, RANKS, NODE_SIZE, nanosleep_us=2000, timeout=240,
                                                workdir=tmp_path)
    assert [int(r["iteration"]) for r in rows] == list(range(1, ITERATIONS + 1))
    assert cpu_s > 0 and wall_s > 0

    # The benchmark's serial work (from the traces and the seeds) is what the metrics report: it
    # raises if the drawn lengths are not the timesteps, or the seconds not return_mean x episodes.
    serial = bench.serial_work(job, rows)
    evaluated = [not math.isnan(r["eval_return"]) for r in rows]
    assert evaluated == [False, True, False]

    def from_metrics(row):
        evaluation = row["eval_return"] * job.eval.episodes if not math.isnan(row["eval_return"]) else 0.0
        return row["return_mean"] * row["episodes"] + evaluation

    for row in rows:
        assert serial[int(row["iteration"])] == pytest.approx(from_metrics(row), rel=1e-9)
    expected = sum(map(from_metrics, rows[1:])) / (RANKS * sum(r["iteration_s"] for r in rows[1:]))
    assert bench.efficiency(serial, rows[1:], RANKS) == pytest.approx(expected, rel=1e-9)

    # The ranks really sleep: with static placement rank 0 plays its node's first slice (members 0-9;
    # on an evaluation iteration node 0's evaluation episodes come first in it), and its busy seconds
    # (episodes_s) are at least what those episodes asked for.
    for row, evaluating in zip(rows, evaluated):
        assert rank0_asks(job, int(row["iteration"]), evaluating) > 0
        assert row["episodes_s"] >= rank0_asks(job, int(row["iteration"]), evaluating)


def rank0_asks(job, iteration, evaluating):
    """Seconds of the episodes rank 0 plays with static placement: the first slice of node 0's units."""
    sizes = [NODE_SIZE] * (RANKS // NODE_SIZE)
    first, stop = node_blocks(bench.population(job) // 2, sizes)[0]
    eval_first, eval_stop = node_blocks(job.eval.episodes, sizes)[0] if evaluating else (0, 0)
    n_eval = eval_stop - eval_first
    start, end = static_slice(n_eval + stop - first, 0, NODE_SIZE)
    evaluations = [eval_first + u for u in range(start, end) if u < n_eval]
    pairs = [first + u - n_eval for u in range(start, end) if u >= n_eval]
    members = [m for pair in pairs for m in (2 * pair, 2 * pair + 1)]
    told = max(0, iteration - 2 if job.run.pipeline else iteration - 1)  # the state the members perturbed
    return sum(s for _, s in bench.asked_episodes(job, iteration, members)) + \
        sum(s for _, s in bench.asked_episodes(job, told, evaluations, Purpose.EVAL_EPISODE))


def test_a_disagreeing_metrics_row_is_caught(trace):
    """serial_work must notice metrics that do not match the traces (another seed's episodes)."""
    job = bench.trace_job(trace, RANKS, EPISODES_PER_RANK, ITERATIONS, time_scale=1.0, eval_every=0)
    asked = bench.asked_episodes(job, 1, range(bench.population(job)))
    row = dict(iteration=1.0, timesteps=float(sum(n for n, _ in asked)), episodes=float(len(asked)),
               return_mean=sum(s for _, s in asked) / len(asked), eval_return=math.nan, iteration_s=1.0)
    assert math.isclose(bench.serial_work(job, [row])[1], sum(s for _, s in asked))
    with pytest.raises(RuntimeError, match="steps"):
        bench.serial_work(job, [dict(row, timesteps=row["timesteps"] + 1)])
    with pytest.raises(RuntimeError, match="ask"):
        bench.serial_work(job, [dict(row, return_mean=row["return_mean"] * 1.01)])
    evaluation = bench.asked_episodes(job, 0, range(job.eval.episodes), Purpose.EVAL_EPISODE)  # the state before 1
    evaluated = dict(row, eval_return=sum(s for _, s in evaluation) / len(evaluation))
    assert math.isclose(bench.serial_work(job, [evaluated])[1], sum(s for _, s in asked + evaluation))
    with pytest.raises(RuntimeError, match="evaluation"):
        bench.serial_work(job, [dict(evaluated, eval_return=evaluated["eval_return"] * 1.01)])
