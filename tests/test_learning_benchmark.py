"""benchmarks/learning.py's reading of a run: first evaluation at a target (timesteps, episodes), final return,
medians, seeds within the reference's budget, and the curves."""

import math
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, child_env, run_es

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
    steps, seconds, episodes = learning.first_reach(rows, best)
    assert steps == first["timesteps"]
    assert episodes == sum(row["episodes"] for row in rows[:rows.index(first) + 1]) and episodes % 8 == 0
    assert seconds > 0 and seconds == pytest.approx(sum(row["iteration_s"] for row in rows[:rows.index(first) + 1]))
    assert learning.first_reach(rows, best + 1) is None
    assert learning.final_return(rows) == evaluated[-1]["eval_return"]


def test_a_seed_that_never_reached_the_target_counts_as_the_worst():
    assert learning.summarise([300, None, 100], str)[2] == 300
    assert learning.summarise([None, None, 100], str)[2] is None
    assert learning.summarise([100, 200], str)[2] == 150


def test_builtin_targets_are_the_paper_row_ars_row_and_the_registry_threshold():
    targets = learning.builtin_targets("Hopper-v5", "all")
    assert [(t.value, t.source, t.paper_steps) for t in targets] == [
        (1718.0, "ES paper", 3_730_000), (3120.0, "ARS", None), (3800.0, "gymnasium registry", None)]
    assert [t.value for t in learning.builtin_targets("Swimmer-v5", "registry")] == [360.0]


def metrics_rows(episodes_per_iteration, eval_returns, steps_per_episode=1000):
    """Synthetic metrics.csv rows: one iteration per evaluation return (NaN: not evaluated)."""
    rows = []
    for k, eval_return in enumerate(eval_returns, start=1):
        rows.append({"iteration": k, "episodes": episodes_per_iteration, "iteration_s": 2.0,
                     "timesteps": k * episodes_per_iteration * steps_per_episode, "eval_return": eval_return})
    return rows


def test_builtin_targets_include_the_ars_row_in_episodes():
    [ars] = learning.builtin_targets("HalfCheetah-v5", "ars")
    assert (ars.value, ars.source, ars.paper_steps, ars.ars_episodes) == (3430.0, "ARS", None, 1_707)
    assert [(t.value, t.source) for t in learning.builtin_targets("HalfCheetah-v5", "all")] == [
        (2385.0, "ES paper"), (3430.0, "ARS"), (4800.0, "gymnasium registry")]
    assert learning.ARS_ROWS["Humanoid-v5"] == (6000.0, 142_600)
    assert learning.ARS_ROWS["Ant-v5"] == (3580.0, 20_800)
    assert learning.builtin_targets("InvertedPendulum-v5", "ars") == []


def test_ars_runs_are_bounded_by_twice_its_episodes_at_full_length():
    args = learning.parse_args(["jobs/halfcheetah.toml", "--targets", "ars", "--no-plots"])
    targets = learning.builtin_targets("HalfCheetah-v5", "ars")
    assert learning.timestep_budget("HalfCheetah-v5", targets, args) == 2 * 1_707 * 1000
    paper_args = learning.parse_args(["jobs/halfcheetah.toml", "--targets", "paper", "--no-plots"])
    paper = learning.builtin_targets("HalfCheetah-v5", "paper")
    assert learning.timestep_budget("HalfCheetah-v5", paper, paper_args) == 2_880_000
    assert learning.timestep_budget("HalfCheetah-v5", learning.builtin_targets("HalfCheetah-v5", "all"),
                                    learning.parse_args(["jobs/halfcheetah.toml", "--no-plots"])) == 2 * 1_707 * 1000


def test_targets_can_name_several_sources():
    """--targets paper ars: the ES paper's row and ARS's row, not the registry; the paper's steps bound the run."""
    args = learning.parse_args(["jobs/hopper.toml", "--targets", "paper", "ars", "--no-plots"])
    targets = learning.builtin_targets("Hopper-v5", args.targets)
    assert [(t.value, t.source) for t in targets] == [(1718.0, "ES paper"), (3120.0, "ARS")]
    assert learning.timestep_budget("Hopper-v5", targets, args) == 2 * 1_973 * 1000
    swimmer = learning.parse_args(["jobs/swimmer.toml", "--targets", "paper", "ars", "--no-plots"])
    assert learning.timestep_budget("Swimmer-v5", learning.builtin_targets("Swimmer-v5", swimmer.targets),
                                    swimmer) == 1_390_000


def test_first_reach_counts_training_episodes_not_evaluations():
    rows = metrics_rows(32, [math.nan, 100.0, math.nan, 250.0, 400.0])
    assert learning.first_reach(rows, 200.0) == learning.Reach(timesteps=4 * 32 * 1000, seconds=8.0, episodes=128)
    assert learning.first_reach(rows, 401.0) is None


def test_the_ars_row_counts_seeds_within_twice_its_episodes():
    """Hopper's ARS row: 1,973 episodes; 16 episodes an iteration, evaluated every iteration."""
    reach_at = [50, 100, 200, 246, None]  # iterations: 800, 1,600, 3,200, 3,936 episodes, never
    per_seed = []
    for iteration in reach_at:
        returns = [1000.0] * 300
        if iteration is not None:
            returns[iteration - 1] = 3200.0
        per_seed.append(metrics_rows(16, returns))
    [ars] = learning.builtin_targets("Hopper-v5", "ars")
    row = learning.target_row("Hopper-v5", "jobs/hopper.toml", ars, per_seed)
    assert row["episodes per seed"] == "800 / 1,600 / 3,200 / 3,936 / -"
    assert row["median episodes"] == "3,200"
    assert row["seeds within budget"] == "4 of 5"  # 3,936 <= 2 x 1,973 = 3,946
    assert row["beats reference"] == "no"  # the median 3,200 > 1,973
    assert row["reference"] == "ARS: 1,973 episodes"
    faster = learning.target_row("Hopper-v5", "jobs/hopper.toml", ars, per_seed[:3])
    assert (faster["median episodes"], faster["beats reference"], faster["seeds within budget"]) == \
        ("1,600", "yes", "3 of 3")


def test_the_paper_row_counts_seeds_within_its_timesteps():
    per_seed = [metrics_rows(32, [math.nan] * (k - 1) + [2400.0]) for k in (50, 90, 100)]
    [paper] = learning.builtin_targets("HalfCheetah-v5", "paper")
    row = learning.target_row("HalfCheetah-v5", "jobs/halfcheetah.toml", paper, per_seed)
    assert row["steps per seed"] == "1,600,000 / 2,880,000 / 3,200,000"
    assert (row["seeds within budget"], row["beats reference"]) == ("2 of 3", "yes")


def test_the_curve_band_holds_each_seeds_latest_evaluation():
    seed_a = metrics_rows(10, [1.0, math.nan, 3.0])  # evaluated at 10 and 30 episodes
    seed_b = metrics_rows(20, [2.0, 6.0])  # evaluated at 20 and 40 episodes; ends there
    seed_c = metrics_rows(10, [math.nan, 5.0, math.nan, 7.0, 9.0])  # 20, 40, 50
    episodes_g, median_g, low_g, high_g = learning.curve_band([seed_a, seed_b, seed_c])
    assert episodes_g.tolist() == [10, 20, 30, 40, 50]
    assert low_g.tolist() == [1, 1, 2, 3, 3]
    assert high_g.tolist() == [1, 5, 5, 7, 9]
    assert median_g.tolist() == [1, 2, 3, 6, 6]


def test_plot_env_draws_the_band_and_the_thresholds(tmp_path):
    image = pytest.importorskip("matplotlib.image")
    per_seed = [metrics_rows(16, [1000.0 * k / 10 + s * 100 for k in range(1, 41)]) for s in range(5)]
    [ars] = learning.builtin_targets("Hopper-v5", "ars")
    path = learning.plot_env("Hopper-v5", [("hopper", per_seed)], [ars], tmp_path / "curve.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = image.imread(path)
    assert pixels.shape[0] > 300 and pixels.shape[1] > 500
    colours = {tuple(p) for p in pixels[::4, ::4, :3].reshape(-1, 3).round(2).tolist()}
    assert len(colours) > 10  # lines, a shaded band and text, not a blank canvas


def test_reuse_needs_the_same_command_job_and_code():
    """The first ARS table reused runs that other code had trained: same command, same job, other bits."""
    command = ["python", "-m", "es_mpi", "train", "jobs/hopper.toml"]
    record = {"command": command[1:], "job_sha256": "job", "code_sha256": "code", "exit_code": 0}
    assert learning.reuse_refusal(record, command, "job", "code") is None
    assert "another command" in learning.reuse_refusal(record, command + ["--set", "run.seed=1"], "job", "code")
    assert "settings changed" in learning.reuse_refusal(record, command, "other job", "code")
    assert "other es_mpi code" in learning.reuse_refusal(record, command, "job", "other code")
    assert "other es_mpi code" in learning.reuse_refusal({**record, "code_sha256": None}, command, "job", "code")
    assert "exit code 1" in learning.reuse_refusal({**record, "exit_code": 1}, command, "job", "code")


def test_the_code_digest_changes_with_any_source_file(tmp_path):
    package = tmp_path / "es_mpi"
    (package / "run").mkdir(parents=True)
    (package / "run" / "rollout.py").write_text("STEP = 1\n")
    first = learning.code_digest(package)
    assert learning.code_digest(package) == first
    (package / "run" / "rollout.py").write_text("STEP = 2\n")
    assert learning.code_digest(package) != first
    assert learning.code_digest(REPO / "es_mpi") == learning.code_digest()


def test_the_report_names_the_options_a_probe_set():
    env_id, options = learning.job_options(REPO / "jobs" / "hopper.toml",
                                           ["eval.every=1", "strategy.sigma_decay=0.99", "strategy.sigma=0.03"])
    assert env_id == "Hopper-v5"
    parts = options.split(", ")
    assert parts[0] == "eval.every=1" and "strategy.sigma_decay=0.99" in parts and "strategy.sigma=0.03" in parts
    assert len(parts) == len(set(parts)) and "strategy.learning_rate=0.0005" in parts


def test_sigterm_stops_the_running_seed_and_starts_no_other(tmp_path):
    """Stopping the benchmark must stop its run too (checkpoint, exit 3) and start no later seed: a killed
    loop used to leave the next seed training, unwatched."""
    runs_dir = tmp_path / "runs"
    benchmark = subprocess.Popen(
        [sys.executable, str(REPO / "benchmarks" / "learning.py"), str(REPO / "jobs" / "cartpole.toml"), "--seeds", "2",
         "--ranks", "1", "--target", "1e9", "--max-timesteps", "0", "--runs-dir", str(runs_dir), "--name", "sigterm_probe",
         "--no-plots"], cwd=REPO, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first_metrics = runs_dir / "cartpole-seed0" / "metrics.csv"
    deadline = time.monotonic() + 120
    while not (first_metrics.exists() and len(first_metrics.read_text().splitlines()) > 2):
        assert benchmark.poll() is None and time.monotonic() < deadline, benchmark.communicate()
        time.sleep(0.2)
    benchmark.send_signal(signal.SIGTERM)
    stdout, stderr = benchmark.communicate(timeout=120)
    assert benchmark.returncode == 3, stderr[-2000:]
    assert stderr.splitlines()[-1].startswith("learning.py: ") and "stopped by a signal" in stderr, stderr[-2000:]
    run_log = (runs_dir / "cartpole-seed0.log").read_text()
    assert "stopped by signal" in run_log and "checkpoint written" in run_log, run_log[-2000:]
    assert not (runs_dir / "cartpole-seed0" / "learning.json").exists()
    assert not (runs_dir / "cartpole-seed1").exists() and not (runs_dir / "cartpole-seed1.log").exists()
    assert not (REPO / "benchmarks" / "results" / "sigterm_probe.md").exists()


def train_cartpole(run_dir, seed, iterations, *resume):
    trained = run_es("train", REPO / "jobs" / "cartpole.toml", "--run-dir", run_dir, *resume,
                     "--set", f"run.seed={seed}", "--set", f"stop.iterations={iterations}", "--set", "eval.every=2",
                     "--set", "eval.episodes=3", "--set", "strategy.pairs=4", timeout=120)
    assert trained.returncode == 0, trained.stderr[-2000:]


def test_reached_reads_runs_continued_over_sittings_from_their_checkpoints(tmp_path):
    """The long rows of ARS's table are runs continued with --resume: benchmarks/reached.py must count every
    sitting, order the seeds by run.seed and agree with learning.py's reading of the same metrics."""
    import reached

    runs = {seed: tmp_path / f"cartpole-seed{seed}" for seed in (3, 1)}
    train_cartpole(runs[3], 3, 6)
    train_cartpole(runs[1], 1, 4)
    train_cartpole(runs[1], 1, 6, "--resume")
    grouped = reached.group_runs([runs[3], runs[1]])
    assert list(grouped) == ["CartPole-v1"]
    assert [(seed, run_dir) for seed, run_dir, _, _ in grouped["CartPole-v1"]] == [(1, runs[1]), (3, runs[3])]
    for seed, run_dir, job, rows in grouped["CartPole-v1"]:
        assert job["run"]["seed"] == seed and [row["iteration"] for row in rows] == [1, 2, 3, 4, 5, 6]
        from_csv = learning.read_metrics(run_dir / "metrics.csv")
        for name in reached.NEEDED_COLUMNS:
            assert [row[name] for row in rows] == pytest.approx([row[name] for row in from_csv], nan_ok=True)
    per_seed = [rows for _, _, _, rows in grouped["CartPole-v1"]]
    target = max(row["eval_return"] for row in per_seed[0] if math.isfinite(row["eval_return"]))
    row = learning.target_row("CartPole-v1", reached.runs_label(grouped["CartPole-v1"]),
                              learning.Target(target, "--target"), per_seed)
    assert row["episodes per seed"].split(" / ")[0] == f"{learning.first_reach(per_seed[0], target).episodes:,}"
    details = reached.run_details("CartPole-v1", grouped["CartPole-v1"])
    assert details[0].startswith("- CartPole-v1: eval.every=2") and "strategy.pairs=4" in details[0]
    assert details[1].startswith(f"  - seed 1 (`{runs[1]}`): iteration 6, 48 training episodes")

    train_cartpole(tmp_path / "again-seed1", 1, 2)
    with pytest.raises(reached.BadRun, match="seed 1 is given twice"):
        reached.group_runs([runs[1], tmp_path / "again-seed1"])


def test_reached_refuses_a_directory_without_a_checkpoint_in_one_line(tmp_path):
    (tmp_path / "metrics.csv").write_text("iteration,episodes\n1,8\n")
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "reached.py"), str(tmp_path), "--no-plots",
                           "--name", "reached_probe"], cwd=REPO, env=child_env(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"reached.py: {tmp_path}: no valid checkpoint")
    assert not (REPO / "benchmarks" / "results" / "reached_probe.md").exists()


@pytest.mark.parametrize("script", ["reached.py", "learning.py", "throughput.py"])
def test_a_report_name_with_a_folder_is_refused_before_anything_is_written(tmp_path, script):
    # Every benchmark writes benchmarks/results/NAME.md; a path as NAME would write elsewhere.
    target = tmp_path / "report"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), str(tmp_path), "--name", str(target)],
                          cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert "argument --name: must be a file name without a folder" in done.stderr.splitlines()[-1]
    assert not target.with_suffix(".md").exists()
