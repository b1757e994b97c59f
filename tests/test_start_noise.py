"""benchmarks/start_noise.py: how much a perturbed member's training return owes to its start state."""

import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, child_env, run_es

sys.path.insert(0, str(REPO / "benchmarks"))
import start_noise  # noqa: E402


@pytest.fixture(scope="module")
def hopper_run(tmp_path_factory):
    """A real Hopper run of the shipped job, two iterations: a checkpoint with its job and statistics."""
    run_dir = tmp_path_factory.mktemp("start_noise") / "hopper"
    trained = run_es("train", REPO / "jobs" / "hopper.toml", "--run-dir", run_dir, "--set", "stop.iterations=2",
                     "--set", "eval.every=0", "--set", "noise.size=1000000", timeout=180)
    assert trained.returncode == 0, trained.stderr[-2000:]
    return run_dir


def test_a_start_state_decides_the_episode_and_others_change_it(hopper_run):
    _, ckpt, _, task, normalizer = start_noise.open_checkpoint(hopper_run)
    try:
        directions_np = np.random.default_rng(1).standard_normal((2, ckpt.params.size))
        returns_n2z, lengths_n2z = start_noise.play_draw(task, normalizer, ckpt.params, 0.025, 1.0, directions_np,
                                                         [7, 7, 8, 9])
        env_returns_n2z, env_lengths_n2z = start_noise.play_draw(task, normalizer, ckpt.params, 0.025, 0.0,
                                                                 directions_np, [7, 7, 8, 9])
    finally:
        task.close()
    assert returns_n2z.shape == lengths_n2z.shape == (2, 2, 4)
    assert np.array_equal(returns_n2z[..., 0], returns_n2z[..., 1])  # the same start: the same episode
    assert np.all(returns_n2z[..., 1:].std(axis=2) > 0)  # Hopper's reset noise moves every member's return
    # training scores an episode as the env's return less the alive bonus per step
    assert np.array_equal(env_lengths_n2z, lengths_n2z)
    assert env_returns_n2z - returns_n2z == pytest.approx(lengths_n2z * 1.0)


def test_the_top_sets_count_how_often_start_states_reorder_the_pairs():
    steady_n2z = np.array([[[5, 5], [0, 0]], [[1, 1], [0, 0]], [[3, 3], [0, 0]]], dtype=float)
    row = start_noise.draw_row(steady_n2z, np.full((3, 2, 2), 1000), 1000, top=1)
    assert row["distinct top-1 sets"] == "1 of 2" and row["member return std over start states"] == "0"
    assert row["episodes ended early"] == "0%"
    swapped_n2z = steady_n2z.copy()
    swapped_n2z[1, 0, 1] = 9  # pair 1 beats pair 0 from the second start state only
    lengths_n2z = np.full((3, 2, 2), 1000)
    lengths_n2z[2, 1, :] = 40
    row = start_noise.draw_row(swapped_n2z, lengths_n2z, 1000, top=1)
    assert row["distinct top-1 sets"] == "2 of 2" and row["episodes ended early"] == "17%"


def test_the_report_holds_one_row_per_draw(hopper_run, tmp_path, monkeypatch):
    import common

    monkeypatch.setattr(common, "REPO", tmp_path)  # the report names its path relative to the repo
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    start_noise.report(start_noise.parse_args([str(hopper_run), "--draws", "2", "--pairs", "2", "--starts", "2",
                                               "--name", "probe"]))
    text = (tmp_path / "probe.md").read_text()
    assert "Hopper-v5, iteration 2" in text and "2 draws of 2 pairs at sigma 0.025" in text
    assert [line.split(" | ")[0] for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()] == \
        ["| 0", "| 1"]


def test_a_file_that_is_no_checkpoint_is_refused_in_one_line(tmp_path):
    bogus = tmp_path / "ckpt-00000001.h5"
    bogus.write_bytes(b"not hdf5")
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "start_noise.py"), str(bogus),
                           "--name", "start_noise_probe"], cwd=REPO, env=child_env(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"start_noise.py: {bogus}")
    assert not (REPO / "benchmarks" / "results" / "start_noise_probe.md").exists()
