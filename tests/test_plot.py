"""es-mpi plot: runs grouped by job (seeds apart), median and band, any metric, PNG and SVG."""

import struct

import numpy as np
import pytest

from conftest import run_cli, run_es
from es_mpi.commands.plot import band, group_runs

pytest.importorskip("matplotlib")

JOB = """
[run]
seed = {seed}
[env]
id = "Pendulum-v1"
step_cap = 50
[policy]
hidden = [4]
[strategy]
pairs = 2
sigma = {sigma}
[noise]
size = 10000
[eval]
every = 2
episodes = 1
[stop]
iterations = {iterations}
"""

OBJECTIVE_JOB = """
[objective]
function = "es_mpi.objectives:sphere"
dim = 3
[strategy]
pairs = 2
[noise]
size = 10000
[obs_norm]
enabled = false
[eval]
every = 1
episodes = 1
[stop]
iterations = 2
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three seeds of one job, and one seed of a job with another sigma."""
    base = tmp_path_factory.mktemp("plot")
    made = []
    for seed, sigma, iterations in ((1, 0.02, 4), (2, 0.02, 4), (3, 0.02, 4), (1, 0.05, 4)):
        job = base / f"job-{seed}-{sigma}.toml"
        job.write_text(JOB.format(seed=seed, sigma=sigma, iterations=iterations))
        run_dir = base / f"run-{seed}-{sigma}"
        done = run_es("train", job, "--run-dir", run_dir, timeout=120)
        assert done.returncode == 0, done.stderr
        made.append(run_dir)
    return made


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_seeds_of_one_job_are_one_group(runs):
    groups = group_runs(runs)
    assert [members for _, members in groups] == [runs[:3], runs[3:]]
    assert "strategy.sigma=0.02" in groups[0][0] and "strategy.sigma=0.05" in groups[1][0]
    assert "run.seed" not in groups[0][0]


def test_group_by_overrides_the_grouping(runs):
    assert group_runs(runs, ["env.id"]) == [("env.id=Pendulum-v1", runs)]
    by_seed = group_runs(runs, ["run.seed"])
    assert [members for _, members in by_seed] == [[runs[0], runs[3]], [runs[1]], [runs[2]]]


def test_runs_of_different_kinds_are_grouped_apart(runs, tmp_path):
    """A run whose job has keys the others lack (an objective's) is its own group, not a KeyError."""
    job = tmp_path / "sphere.toml"
    job.write_text(OBJECTIVE_JOB)
    run_dir = tmp_path / "sphere"
    done = run_es("train", job, "--run-dir", run_dir, timeout=120)
    assert done.returncode == 0, done.stderr
    groups = group_runs([runs[0], run_dir])
    assert [members for _, members in groups] == [[runs[0]], [run_dir]]
    assert groups[1][0].startswith("es_mpi.objectives:sphere")


def test_band_is_median_and_min_max_where_all_runs_have_data():
    grid, low, median, high = band([np.array([0.0, 10.0]), np.array([0.0, 10.0]), np.array([0.0, 20.0])],
                                   [np.array([0.0, 10.0]), np.array([1.0, 1.0]), np.array([5.0, 25.0])])
    assert grid[0] == 0.0 and grid[-1] == 10.0
    np.testing.assert_allclose([low[0], median[0], high[0]], [0.0, 1.0, 5.0])
    np.testing.assert_allclose([low[-1], median[-1], high[-1]], [1.0, 10.0, 15.0])


def test_plot_png_has_the_figure_size(runs, tmp_path):
    out = tmp_path / "curves.png"
    done = run_es("plot", *runs, "-o", out, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "eval_return of 4 runs in 2 groups" in done.stdout
    assert png_size(out) == (800, 500)


@pytest.mark.parametrize("x_axis, label", [("timesteps", "timesteps"), ("episodes", "episodes"),
                                           ("wall", "training wall time (s)")])
def test_svg_names_the_groups_seeds_and_axes(runs, tmp_path, x_axis, label):
    out = tmp_path / "curves.svg"
    done = run_cli("plot", *runs, "--x", x_axis, "--metric", "return_max", "-o", out)
    assert done.returncode == 0, done.stderr
    svg = out.read_text()
    assert "(3 seeds)" in svg and "(1 seed)" in svg
    assert f">{label}<" in svg and ">return max<" in svg


def test_a_plot_of_single_runs_does_not_claim_a_median(runs, tmp_path):
    out = tmp_path / "curves.svg"
    done = run_cli("plot", *runs[:3], "--group-by", "run.seed", "-o", out)
    assert done.returncode == 0, done.stderr
    svg = out.read_text()
    assert ">one run per curve<" in svg and "median over seeds" not in svg


def test_an_unknown_metric_is_one_line(runs):
    done = run_cli("plot", *runs, "--metric", "nosuch")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "--metric nosuch" in done.stderr and "eval_return" in done.stderr


def test_frames_of_a_run_that_is_not_atari_is_one_line(runs):
    done = run_cli("plot", *runs, "--x", "frames")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "--x frames" in done.stderr and "not an Atari run" in done.stderr


def test_plot_refuses_other_formats(runs, tmp_path):
    done = run_cli("plot", *runs, "-o", tmp_path / "x.jpg")
    assert done.returncode == 2 and ".png or .svg" in done.stderr
