"""benchmarks/learning.py's reading of a run: first evaluation at a target, final return, medians."""

import sys

import pytest

from conftest import REPO, run_es

sys.path.insert(0, str(REPO / "benchmarks"))
import learning  # noqa: E402


def test_first_reach_reads_a_real_metrics_csv(tmp_path):
    run_dir = tmp_path / "run"
    trained = run_es("train", REPO / "jobs" / "cartpole.toml", "--run-dir", run_dir, "--set", "stop.iterations=6",
                     "--set", "eval.every=2", "--set", "eval.episodes=3", "--set", "strategy.pairs=4", timeout=120)
    assert trained.returncode == 0, trained.stderr[-2000:]
    rows = learning.read_metrics(run_dir / "metrics.csv")
    evaluated = [row for row in rows if row["iteration"] % 2 == 0]
    assert [row["iteration"] for row in rows] == [1, 2, 3, 4, 5, 6]
    best = max(row["eval_return"] for row in evaluated)
    first = next(row for row in evaluated if row["eval_return"] >= best)
    steps, seconds = learning.first_reach(rows, best)
    assert steps == first["timesteps"]
    started = rows[0]["wall_time"] - rows[0]["iteration_s"]
    assert seconds > 0 and seconds == pytest.approx(first["wall_time"] - started, abs=1e-3)
    assert learning.first_reach(rows, best + 1) is None
    assert learning.final_return(rows) == evaluated[-1]["eval_return"]


def test_a_seed_that_never_reached_the_target_counts_as_the_worst():
    assert learning.summarise([300, None, 100], str)[2] == 300
    assert learning.summarise([None, None, 100], str)[2] is None
    assert learning.summarise([100, 200], str)[2] == 150


def test_builtin_targets_are_the_paper_row_and_the_registry_threshold():
    targets = learning.builtin_targets("Hopper-v5", "all")
    assert [(t.value, t.source, t.paper_steps) for t in targets] == [
        (1718.0, "ES paper", 3_730_000), (3800.0, "gymnasium registry", None)]
    assert [t.value for t in learning.builtin_targets("Swimmer-v5", "registry")] == [360.0]
