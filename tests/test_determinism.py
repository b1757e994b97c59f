"""Contract 1: the same bytes whatever the rank count, the node layout and the placement, and a resumed
run (on another layout too) equals an unbroken one, for every strategy; a node whose copy of the state
changed is repaired to those bytes. Every run of this module shares one mpiexec
(tests/train_matrix_probe.py): each is the whole `es-mpi train` command on a communicator of its rank
count, without a process start of its own."""

import csv
import hashlib
import json

import h5py
import numpy as np
import pytest

from conftest import MPIEXEC, PYTHON, REPO, run, run_cli
from es_mpi.parts.strategies import STRATEGIES
from es_mpi.records import checkpoint as ckpt_io
from strategy_cases import strategy_cases, strategy_toml

CARTPOLE = """
[env]
id = "CartPole-v1"
step_cap = 200
[policy]
hidden = [8]
[strategy]
pairs = 6
sigma = 0.1
learning_rate = 0.05
[noise]
size = 200_000
[obs_norm]
probability = 0.5
[eval]
every = 2
episodes = 3
[checkpoint]
every = 1
[stop]
iterations = 4
"""

# Hopper ends episodes early at different times; the adaptive cap and obs normalisation are on.
HOPPER = """
[env]
id = "Hopper-v5"
step_cap = "adaptive"
[policy]
hidden = [8]
action = "bins"
bins = 5
[strategy]
pairs = 5
sigma = 0.05
optimizer = "sgd"
[noise]
size = 200_000
[obs_norm]
probability = 0.6
[eval]
every = 2
episodes = 2
[checkpoint]
every = 1
[stop]
iterations = 4
"""

# Every post-paper option on: ARS top-b directions with return-std steps, plain SGD, the alive
# bonus, a linear policy with action bins, and a step and sigma that decay (sigma reaches its
# floor at iteration 3).
HOPPER_ARS = HOPPER.replace('step_cap = "adaptive"', 'step_cap = "adaptive"\nalive_bonus = 1.0') \
    .replace("hidden = [8]", "hidden = []") \
    .replace('optimizer = "sgd"', 'optimizer = "sgd"\nmomentum = 0.0\ntop_pairs = 3\nshaping = "return_std"\n'
             'learning_rate_decay = 0.7\nsigma_decay = 0.8\nsigma_min = 0.03')

DIM = 70  # 5 blocks of 16 columns: 3 ranks as one node get 16, 32 and 22 columns, nodes of 2 get 32 and 38

OBJECTIVE = f"""
[objective]
function = "es_mpi.objectives:rosenbrock"
dim = {DIM}
initial_std = 0.5
[noise]
size = 10000
[obs_norm]
enabled = false
[eval]
every = 2
episodes = 3
[checkpoint]
every = 2
keep = 5
[stop]
iterations = 4
[strategy]
"""

TAXI_TABULAR = """
[env]
id = "Taxi-v4"
step_cap = 40
[policy]
kind = "tabular"
[obs_norm]
enabled = false
[noise]
size = 10000
[eval]
every = 2
episodes = 3
[checkpoint]
every = 2
keep = 5
[stop]
iterations = 4
[strategy]
"""

CARTPOLE_MLP = """
[env]
id = "CartPole-v1"
step_cap = 60
[policy]
hidden = [8]
[obs_norm]
enabled = true
probability = 0.5
[noise]
size = 10000
[eval]
every = 2
episodes = 3
[checkpoint]
every = 2
keep = 5
[stop]
iterations = 4
[strategy]
"""

# Every registered strategy (tests/strategy_cases.py); these shrunk to small or odd populations, some in
# more than one variant (the options that change how the update's columns are computed).
STRATEGY_CASES = strategy_cases({
    "openai_es": {"": dict(pairs=4), "sgd_l2": dict(pairs=4, optimizer="sgd", l2=0.01)},
    "nes": {"": dict(population=7, mirrored=False), "mirrored": dict(population=8, mirrored=True)},
    "simple_es": {"": dict(population=7)},
    "ga": {"": dict(population=9, truncation=0.3)},
    "cma_es": {"full": dict(variant="full", population=7), "separable": dict(variant="separable", population=7)},
    "cem": {"": dict(population=7, extra_std=0.1)},
    "cem_tabular": {"": dict(policies=7, percentile=50.0, memory=2)},
    "cem_action": {"": dict(population=7, percentile=50.0, batch_size=16, memory=1)},
})


def job_frame(name):
    """An objective, unless the strategy needs an environment: tabular CEM its Taxi, others CartPole."""
    if not STRATEGIES.classes[name].needs_environment:
        return OBJECTIVE
    return TAXI_TABULAR if name == "cem_tabular" else CARTPOLE_MLP


STRATEGY_JOBS = {case: job_frame(name) + strategy_toml(name, settings)
                 for case, (name, settings) in STRATEGY_CASES.items()}

# Environments that end episodes at different times, observation normalisation, the adaptive cap,
# and every post-paper option: each rank count runs with another run.lanes (lanes never change results).
ENV_JOBS = {"cartpole": CARTPOLE, "hopper": HOPPER, "hopper-ars": HOPPER_ARS}
RESUMED_ENV_JOBS = ("hopper", "hopper-ars")
# Placement: with every observation recorded, episodes that end at different times.
PLACEMENT_JOB = HOPPER_ARS.replace("probability = 0.6", "probability = 1.0")
# The pipelined mode: two iterations in flight, with every option of HOPPER_ARS.
PIPELINE_JOB = "[run]\npipeline = true\n" + HOPPER_ARS

# (run, ranks, ES_MPI_NODE_SIZE, the start line's layout, arguments): the runs of each strategy job, in order.
STRATEGY_RUNS = [
    ("ranks1", 1, None, "", []),
    ("ranks2", 2, None, "", []),
    ("nodes3", 3, 3, "", []),  # ES_MPI_NODE_SIZE=3: the knob's one node; the others take the machine's
    ("nodes2", 3, 2, " (nodes of 2+1)", []),
    ("nodes1", 3, 1, " (nodes of 1+1+1)", []),
    ("moved", 3, 2, " (nodes of 2+1)", ["--set", "stop.iterations=2"]),
    ("moved-resumed", 3, None, "", ["--resume"]),  # the run directory of "moved", on one node of 3
]
ENV_RUNS = [("ranks1", 1, ["--set", "run.lanes=1"]), ("ranks2", 2, ["--set", "run.lanes=16"]),
            ("ranks3", 3, ["--set", "run.lanes=2"])]
RESUME_RUNS = [("straight", ["--set", "stop.iterations=6"]), ("broken", ["--set", "stop.iterations=3"]),
               ("broken-resumed", ["--resume", "--set", "stop.iterations=6"])]
# (ranks, layout) of CartPole on virtual nodes of 2.
VIRTUAL_NODES = [(4, "2+2"), (6, "2+2+2"), (5, "2+2+1")]
# (run, ranks, ES_MPI_NODE_SIZE, arguments) of the pipelined job: rank counts, 2+2+1 virtual nodes, a
# run stopped with iteration 4 in flight and resumed on another layout.
PIPELINE_RUNS = [("ranks1", 1, None, []), ("ranks2", 2, None, ["--set", "run.lanes=2"]), ("ranks3", 3, None, []),
                 ("ranks5", 5, None, ["--set", "run.placement=static"]), ("nodes221", 5, 2, []),
                 ("straight", 2, None, ["--set", "stop.iterations=6"]),
                 ("broken", 3, 2, ["--set", "stop.iterations=3"]),
                 ("broken-resumed", 5, None, ["--resume", "--set", "stop.iterations=6"])]
# (run, ranks, ES_MPI_NODE_SIZE, run.placement)
PLACEMENT_RUNS = [("one", 1, None, "static"), ("static3", 3, None, "static"), ("dynamic3", 3, None, "dynamic"),
                  ("dynamic-nodes", 5, 2, "dynamic"), ("static-nodes", 5, 2, "static")]
# run: (ranks, ES_MPI_NODE_SIZE, ES_MPI_FAULT_INJECT, the rank repaired from): the fault flips the first
# centre parameter in the node's one copy after iteration 2.
REPAIRS = {
    "two-nodes-of-one": (2, 1, "1:2", "rank 0 (node 0)"),
    "rank-0-of-three-nodes": (3, 1, "0:2", "rank 1 (node 1)"),
    "rank-0s-node-of-two": (4, 2, "0:2", "rank 2 (node 1)"),
    "a-non-leader-of-node-1": (4, 2, "3:2", "rank 0 (node 0)"),
}
WORLD_RANKS = 6  # the most any run above needs


def state_digest(path):
    """Hash of everything that must be identical: params, strategy and optimizer state, obs stats."""
    digest = hashlib.sha256()
    with h5py.File(path, "r") as f:
        def visit(name, node):
            if isinstance(node, h5py.Dataset):
                digest.update(name.encode() + node[()].tobytes())
        digest.update(f["params"][()].tobytes())
        f["strategy"].visititems(visit)
        f["obstat"].visititems(visit)
        digest.update(str((int(f.attrs["iteration"]), int(f.attrs["timesteps"]), int(f.attrs["step_cap"]))).encode())
    return digest.hexdigest()


def state_bytes(path):
    """{name: bytes} of the state and the counters, and of the metrics that must be identical too."""
    ckpt = ckpt_io.load(path)
    state = {f"strategy/{k}": np.asarray(v).tobytes() for k, v in ckpt.strategy.items()}
    state.update({f"obstat/{k}": np.asarray(v).tobytes() for k, v in ckpt.obstat.items()})
    state["params"] = ckpt.params.tobytes()
    state["counters"] = str((ckpt.iteration, ckpt.timesteps, ckpt.step_cap)).encode()
    for column in ("return_mean", "return_max", "eval_return", "timesteps"):
        state[f"metrics/{column}"] = ckpt.metrics[column].tobytes()
    return state


class Matrix:
    """The runs of one mpiexec: `plan` for the probe; each run's exit code, stdout and run directory."""

    def __init__(self, base):
        self.base, self.plan, self.run_dirs, self.result = base, [], {}, None

    def job(self, name, text):
        (self.base / name).mkdir()
        (self.base / name / f"{name}.toml").write_text(text)

    def add(self, job_name, name, ranks, node_size=None, *extra, run_dir=None, env=None):
        """Run `train` of job `job_name` as its run `name`, on `ranks` ranks with ES_MPI_NODE_SIZE=node_size
        (None: one node per machine) and the variables in `env`; in the run directory of run `run_dir` if given."""
        self.run_dirs[job_name, name] = self.base / job_name / (run_dir or name)
        variables = {"ES_MPI_NODE_SIZE": None if node_size is None else str(node_size), **(env or {})}
        argv = ["train", str(self.base / job_name / f"{job_name}.toml"), "--run-dir",
                str(self.run_dirs[job_name, name]), *map(str, extra)]
        self.plan.append({"ranks": ranks, "env": variables, "argv": argv,
                          "stdout": str(self.base / job_name / f"{name}.out")})

    def ran(self, job_name, name):
        """(exit code, stdout, run directory) of one run; the code is None if the run never ended."""
        out = self.base / job_name / f"{name}.out"
        code = out.with_name(out.name + ".code")
        return (int(code.read_text()) if code.exists() else None, out.read_text() if out.exists() else "",
                self.run_dirs[job_name, name])


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    """Every run of this module's tests, inside one mpiexec."""
    runs = Matrix(tmp_path_factory.mktemp("matrix"))
    for name, text in {**STRATEGY_JOBS, **ENV_JOBS, "placement": PLACEMENT_JOB, "pipeline": PIPELINE_JOB}.items():
        runs.job(name, text)
    for name in STRATEGY_JOBS:
        for run_name, ranks, node_size, _, extra in STRATEGY_RUNS:
            runs.add(name, run_name, ranks, node_size, *extra, run_dir="moved" if run_name == "moved-resumed" else None)
    for name in ENV_JOBS:
        for run_name, ranks, extra in ENV_RUNS:
            runs.add(name, run_name, ranks, None, *extra)
    for name in RESUMED_ENV_JOBS:
        for run_name, extra in RESUME_RUNS:
            runs.add(name, run_name, 2, None, *extra, run_dir="broken" if run_name == "broken-resumed" else None)
    runs.add("cartpole", "one", 1)
    for ranks, _ in VIRTUAL_NODES:
        runs.add("cartpole", f"virtual{ranks}", ranks, 2)
    runs.add("cartpole", "straight", 1, None, "--set", "stop.iterations=6")
    runs.add("cartpole", "moved", 4, 2, "--set", "stop.iterations=3")
    runs.add("cartpole", "moved-resumed", 3, 1, "--resume", "--set", "stop.iterations=6", run_dir="moved")
    for run_name, ranks, node_size, placement in PLACEMENT_RUNS:
        runs.add("placement", run_name, ranks, node_size, "--set", f"run.placement={placement}")
    for run_name, ranks, node_size, extra in PIPELINE_RUNS:
        runs.add("pipeline", run_name, ranks, node_size, *extra, run_dir="broken" if run_name == "broken-resumed" else None)
    for repair, (ranks, node_size, fault, _) in REPAIRS.items():
        runs.add("cartpole", repair, ranks, node_size, env={"ES_MPI_FAULT_INJECT": fault})
    plan = runs.base / "plan.json"
    plan.write_text(json.dumps(runs.plan))
    command = [MPIEXEC, "-n", str(WORLD_RANKS), "--oversubscribe", "--bind-to", "none", PYTHON,
               str(REPO / "tests" / "train_matrix_probe.py"), str(plan)]
    runs.result = run(command, timeout=900, env_extra={"PYTHONPATH": f"{REPO}:{REPO / 'tests'}"})
    return runs


def ran_well(matrix, job_name, run_name):
    """(stdout, run directory) of a run that exited 0."""
    code, stdout, run_dir = matrix.ran(job_name, run_name)
    assert code == 0, (run_name, code, matrix.result.returncode, matrix.result.stderr[-3000:])
    return stdout, run_dir


def start_line(stdout):
    return next(line for line in stdout.splitlines() if line.startswith("es-mpi: "))


@pytest.mark.mpi
@pytest.mark.parametrize("name", sorted(STRATEGY_JOBS))
def test_rank_counts_layouts_and_a_moved_resume_give_the_bytes_of_one_rank(matrix, name):
    """1, 2 and 3 ranks; 3 ranks as one node, as 2+1 and as 1+1+1 (the start line shows the layout
    ran); a run stopped on 2+1 and resumed on one node of 3: all end on the bytes of one rank, and
    `es-mpi eval` plays the checkpoint."""
    _, one = ran_well(matrix, name, "ranks1")
    expected = state_bytes(ckpt_io.checkpoint_path(one, 4))
    for run_name, ranks, _, layout, _ in STRATEGY_RUNS[1:]:
        stdout, run_dir = ran_well(matrix, name, run_name)
        assert f", {ranks} ranks{layout}, run directory " in start_line(stdout), (run_name, stdout[:500])
        if run_name == "moved":  # stopped at 2; its run directory goes on in "moved-resumed"
            continue
        if run_name == "moved-resumed":
            assert "resumed from iteration 2" in stdout
        assert state_bytes(ckpt_io.checkpoint_path(run_dir, 4)) == expected, run_name
    played = run_cli("eval", one, "--episodes", "2")
    assert played.returncode == 0 and "over 2 episodes" in played.stdout, played.stderr[-2000:]


@pytest.mark.mpi
@pytest.mark.parametrize("name", sorted(ENV_JOBS))
def test_one_two_three_ranks_give_identical_bytes(matrix, name):
    """Also with different run.lanes per run: lanes never change results."""
    digests = [state_digest(ran_well(matrix, name, run_name)[1] / "ckpt-00000004.h5") for run_name, _, _ in ENV_RUNS]
    assert digests[0] == digests[1] == digests[2]


@pytest.mark.mpi
@pytest.mark.parametrize("name", RESUMED_ENV_JOBS)
def test_resume_is_byte_identical_to_an_unbroken_run(matrix, name):
    _, straight = ran_well(matrix, name, "straight")
    ran_well(matrix, name, "broken")
    resumed, broken = ran_well(matrix, name, "broken-resumed")
    assert "resumed from iteration 3" in resumed
    assert state_digest(straight / "ckpt-00000006.h5") == state_digest(broken / "ckpt-00000006.h5")
    with h5py.File(broken / "ckpt-00000006.h5", "r") as f:
        assert list(f["metrics/iteration"][()]) == [1, 2, 3, 4, 5, 6]
    csv_rows = (broken / "metrics.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in csv_rows[1:]] == ["1", "2", "3", "4", "5", "6"]


@pytest.mark.mpi
def test_virtual_node_layouts_give_the_bytes_of_one_rank(matrix):
    """4 ranks as 2 x 2, 6 as 3 x 2, 5 as nodes of 2, 2 and 1: the start line shows the layout ran."""
    expected = state_digest(ran_well(matrix, "cartpole", "one")[1] / "ckpt-00000004.h5")
    for ranks, layout in VIRTUAL_NODES:
        stdout, run_dir = ran_well(matrix, "cartpole", f"virtual{ranks}")
        assert f", {ranks} ranks (nodes of {layout}), " in start_line(stdout)
        assert state_digest(run_dir / "ckpt-00000004.h5") == expected, layout


@pytest.mark.mpi
def test_resume_on_another_layout_equals_a_straight_run(matrix):
    _, straight = ran_well(matrix, "cartpole", "straight")
    first, _ = ran_well(matrix, "cartpole", "moved")
    assert "4 ranks (nodes of 2+2)," in first
    resumed, moved = ran_well(matrix, "cartpole", "moved-resumed")
    assert "3 ranks (nodes of 1+1+1)," in resumed
    assert json.loads((moved / "status.json").read_text())["node_sizes"] == [1, 1, 1]
    assert "resumed from iteration 3" in resumed
    assert state_digest(straight / "ckpt-00000006.h5") == state_digest(moved / "ckpt-00000006.h5")


@pytest.mark.mpi
def test_dynamic_and_static_placement_give_the_bytes_of_one_rank(matrix):
    """Hopper with ARS options: episodes end at different times, every episode records observations."""
    digests, counts = {}, {}
    for name, _, _, _ in PLACEMENT_RUNS:
        run_dir = ran_well(matrix, "placement", name)[1]
        digests[name] = state_digest(run_dir / "ckpt-00000004.h5")
        with open(run_dir / "metrics.csv") as fh:
            counts[name] = {(int(row["members_min"]), int(row["members_max"])) for row in csv.DictReader(fh)}
    assert set(digests.values()) == {digests["one"]}, digests
    # members_min/max: 5 pairs in static slices of whole pairs, 2+2+1 on one node of 3 ranks, one pair
    # each on 2+2+1 nodes. On evaluation iterations the 3 evaluation episodes come first in the node's
    # units: 3+3+2 units are 0, 6 and 4 members on one node of 3; on 2+2+1 nodes a node of 2 slices
    # its one evaluation episode and 2 pairs as 1+2 units, 0 and 4 members. Dynamic claims play every
    # member once, so the counts bracket an even split.
    assert counts["one"] == {(10, 10)} and counts["static3"] == {(2, 4), (0, 6)}
    assert counts["static-nodes"] == {(2, 2), (0, 4)}
    for name, n_ranks in (("dynamic3", 3), ("dynamic-nodes", 5)):
        assert all(low * n_ranks <= 10 <= high * n_ranks and low % 2 == high % 2 == 0 for low, high in counts[name])


@pytest.mark.mpi
@pytest.mark.parametrize("repair", list(REPAIRS))
def test_a_node_whose_copy_changed_is_repaired_from_an_intact_one(matrix, repair):
    """The fault flips the first centre parameter in the node's one copy; the node's rank 0 owns that
    column and sees the change, so the repair copies another node's state, even against rank 0:
    `repairs` counts it and the run ends on a clean run's bytes. (Two nodes of one rank: rank 1's copy
    differs, and rank 0's repairs it; more in test_cooperative_update.py.)"""
    stdout, run_dir = ran_well(matrix, "cartpole", repair)
    assert f"at iteration 2; repaired from {REPAIRS[repair][3]}" in stdout
    with h5py.File(run_dir / "ckpt-00000004.h5", "r") as f:
        assert list(f["metrics/repairs"][()]) == [0, 1, 1, 1]
    clean = ran_well(matrix, "cartpole", "one")[1]
    assert state_digest(clean / "ckpt-00000004.h5") == state_digest(run_dir / "ckpt-00000004.h5")


@pytest.mark.mpi
def test_pipelined_mode_gives_the_bytes_of_one_rank_and_resumes_exactly(matrix):
    """Two iterations in flight: 1, 2, 3 and 5 ranks (static and dynamic), 5 as 2+2+1 virtual nodes end
    on the bytes of one rank; a run stopped at iteration 3 on 2+1 nodes, resumed on 5 ranks, equals a
    straight run. The mode is on: its bytes differ from the synchronous run of the same job."""
    expected = state_digest(ran_well(matrix, "pipeline", "ranks1")[1] / "ckpt-00000004.h5")
    for run_name, ranks, node_size, _ in PIPELINE_RUNS[1:5]:
        stdout, run_dir = ran_well(matrix, "pipeline", run_name)
        assert f", {ranks} ranks{' (nodes of 2+2+1)' if node_size else ''}, " in start_line(stdout), run_name
        assert state_digest(run_dir / "ckpt-00000004.h5") == expected, run_name
    synchronous = ran_well(matrix, "hopper-ars", "ranks1")[1]
    assert state_digest(synchronous / "ckpt-00000004.h5") != expected
    _, straight = ran_well(matrix, "pipeline", "straight")
    ran_well(matrix, "pipeline", "broken")
    resumed, broken = ran_well(matrix, "pipeline", "broken-resumed")
    assert "resumed from iteration 3" in resumed
    assert state_bytes(straight / "ckpt-00000006.h5") == state_bytes(broken / "ckpt-00000006.h5")
    with h5py.File(straight / "ckpt-00000006.h5", "r") as f:  # carries what iteration 7 plays: the state after 5
        assert int(f["extra/pipeline/iteration"][()]) == 5
        assert f["extra/pipeline/params"][()].tobytes() != f["params"][()].tobytes()
