"""benchmarks/peer_ppo.py without torch: its arguments, PPO's first reaches and the report load and
work with torch and Stable-Baselines3 unimportable (the peers extra is optional)."""

import importlib
import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))


@pytest.fixture
def peer_ppo(monkeypatch):
    """The module imported afresh while `import torch` and `import stable_baselines3` fail."""
    for name in ("torch", "stable_baselines3"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "peer_ppo", raising=False)
    module = importlib.import_module("peer_ppo")
    with pytest.raises(ImportError):
        import torch  # noqa: F401
    return module


def test_defaults_are_the_issues_targets_and_rl_zoos_settings(peer_ppo):
    args = peer_ppo.parse_args([])
    assert args.targets == [2385.0, 3430.0, 4800.0]
    assert args.env == "HalfCheetah-v5" and args.job == REPO / "jobs" / "halfcheetah.toml"
    assert peer_ppo.RL_ZOO_HALFCHEETAH["n_steps"] == 512 and peer_ppo.RL_ZOO_HALFCHEETAH["learning_rate"] == 2.0633e-05
    args = peer_ppo.parse_args(["--target", "4000", "--target", "1000", "--threads", "1", "--ranks", "3"])
    assert (args.targets, args.threads, args.ranks) == ([1000.0, 4000.0], 1, 3)


def test_bad_arguments_exit_2(peer_ppo, capsys):
    with pytest.raises(SystemExit) as stopped:
        peer_ppo.parse_args(["--threads", "0"])
    assert stopped.value.code == 2
    assert "--threads" in capsys.readouterr().err


def test_a_missing_peers_extra_stops_before_training(peer_ppo):
    with pytest.raises(SystemExit, match="peers"):
        peer_ppo.check_peers_installed()


def test_first_reaches_take_ppos_first_evaluation_at_the_target(peer_ppo):
    points = [(5_120, 6.0, 7.0, 900.0), (10_240, 12.0, 14.5, 2_400.0), (15_360, 18.0, 22.0, 2_300.0),
              (20_480, 24.0, 29.0, 3_500.0)]
    assert peer_ppo.first_reaches(points, [2385.0, 3430.0, 4800.0]) == {
        2385.0: (10_240, 12.0, 14.5), 3430.0: (20_480, 24.0, 29.0), 4800.0: None}


def test_the_report_puts_both_runs_side_by_side(peer_ppo):
    import learning

    args = peer_ppo.parse_args(["--threads", "2", "--ranks", "2"])
    ppo = {2385.0: (50_176, 60.0, 66.0), 3430.0: (100_352, 120.0, 135.0), 4800.0: None}
    es = {2385.0: learning.Reach(2_000_000, 60.0, 2_000), 3430.0: None, 4800.0: None}
    command = ["python", "-m", "es_mpi", "train", "jobs/halfcheetah.toml", "-n", "2"]
    lines = peer_ppo.report_lines(args, ppo, es, {"stable-baselines3": "2.3.0", "torch": "2.3.1"}, command)
    table = [line for line in "\n".join(lines).splitlines() if line.startswith("| ")]
    assert table[1] == "| 2385 | 50,176 | 60 | 66 | 2,000,000 | 60 | 0.91 |"
    assert table[2] == "| 3430 | 100,352 | 120 | 135 | - | - | - |"
    assert table[3] == "| 4800 | - | - | - | - | - | - |"
    assert "Versions: stable-baselines3 2.3.0, torch 2.3.1" in lines
    assert "python -m es_mpi train jobs/halfcheetah.toml -n 2" in lines
