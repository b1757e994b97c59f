"""The node-cooperative update (core/node_share.py): each rank of a node computes its own columns
of the update straight into the node's one copy of the state, and any layout gives the bytes of one
rank; the repair finds the node whose copy changed, rank 0's included."""

import json

import h5py
import numpy as np
import pytest

from conftest import MPIEXEC, PYTHON, REPO, run, run_es, run_mpi
from strategy_cases import strategy_cases, strategy_toml
from es_mpi.core.node_share import ALIGN, NodeShare, column_slice
from es_mpi.parts.strategies.base import weighted_noise_moments
from es_mpi.parts.strategies.openai_es import weighted_noise_sum
from es_mpi.records import checkpoint as ckpt_io
from test_bad_input import runtime_noise_removed
from test_determinism import CARTPOLE, state_digest
from test_strategies_mpi import state_bytes

DIM = 70  # 5 blocks of 16 columns: 3 ranks get 16, 32 and 22 columns, 2 ranks 32 and 38

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
episodes = 2
[checkpoint]
every = 2
keep = 5
[stop]
iterations = 4
[strategy]
"""

# every registered cooperative strategy; these shrunk, in more than one variant, CMA-ES in the
# variant that cooperates
COOPERATIVE = {case: strategy_toml(name, settings) for case, (name, settings) in strategy_cases({
    "openai_es": {"": dict(pairs=4), "sgd_l2": dict(pairs=4, optimizer="sgd", l2=0.01)},
    "nes": {"": dict(population=7, mirrored=False), "mirrored": dict(population=8, mirrored=True)},
    "cem": {"": dict(population=7, extra_std=0.1)},
    "cma_es": {"separable": dict(variant="separable", population=7)},
}, keep=lambda cls: cls.cooperative).items()}


def table(size=300_000, seed=0):
    return np.random.default_rng(seed).standard_normal(size).astype(np.float32)


def test_column_slices_tile_the_columns_in_aligned_blocks():
    for n_columns in (0, 1, 15, 16, 70, 1000, 159_505):
        for size in (1, 2, 3, 7, 128):
            slices = [column_slice(n_columns, rank, size) for rank in range(size)]
            assert slices[0][0] == 0 and slices[-1][1] == n_columns
            assert all(stop == start for (_, stop), (start, _) in zip(slices, slices[1:]))
            assert all(start % ALIGN == 0 for start, _ in slices)
    assert [column_slice(DIM, rank, 3) for rank in range(3)] == [(0, 16), (16, 48), (48, 70)]


@pytest.mark.parametrize("chunk", [7, 64, 1 << 16])
def test_a_column_slice_of_the_noise_sums_has_the_bytes_of_the_whole(chunk):
    noise = table()
    n_params = 5_003
    draw = np.random.default_rng(1)
    offsets_n = draw.integers(0, noise.size - n_params, size=37)
    weights_n = draw.standard_normal(37)
    whole_sum = weighted_noise_sum(noise, offsets_n, weights_n, n_params)
    whole_first, whole_second = weighted_noise_moments(noise, offsets_n, weights_n, n_params)
    for start, stop in ((0, n_params), (0, 1), (3, 2_000), (2_000, 2_001), (4_096, n_params), (17, 17)):
        part = weighted_noise_sum(noise, offsets_n, weights_n, n_params, chunk=chunk, columns=(start, stop))
        assert part.tobytes() == whole_sum[start:stop].tobytes()
        first, second = weighted_noise_moments(noise, offsets_n, weights_n, n_params, (start, stop), chunk=chunk)
        assert first.tobytes() == whole_first[start:stop].tobytes()
        assert second.tobytes() == whole_second[start:stop].tobytes()


def test_the_moments_are_the_weighted_sums_they_claim():
    noise = table()
    offsets_n, weights_n = np.array([5, 900, 77]), np.array([0.5, -2.0, 1.25])
    rows_np = np.stack([noise[o:o + 300].astype(np.float64) for o in offsets_n])
    first, second = weighted_noise_moments(noise, offsets_n, weights_n, 300)
    np.testing.assert_allclose(first, weights_n @ rows_np, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(second, weights_n @ np.square(rows_np), rtol=1e-12, atol=1e-12)


def test_a_rank_sees_when_its_columns_changed_after_it_wrote_them():
    arrays = []
    share = NodeShare(rank=1, size=3, allocate=lambda shape, dtype: arrays.append(np.zeros(shape, dtype)) or arrays[-1])
    params_p = share.array(np.arange(DIM, dtype=np.float32), np.float32)
    assert share.holds(params_p) and not share.holds(params_p.copy()) and not share.writes
    assert not params_p.any(), "a rank other than the node's rank 0 wrote the initial values"
    with share.update_phase(), share.column_phase():
        params_p[16:48] = np.arange(16, 48)
    assert share.intact()
    with share.unlocked():
        params_p[0] += 1  # another rank's columns: not this rank's to vouch for
    assert share.intact()
    with share.unlocked():
        params_p[20] += 1
    assert not share.intact()


def one_process_share():
    """A NodeShare of one rank holding private arrays: the guard must not need a second rank."""
    return NodeShare(rank=0, size=1, allocate=lambda shape, dtype: np.zeros(shape, dtype))


@pytest.mark.parametrize("name", sorted(COOPERATIVE))
def test_a_strategy_writes_its_columns_only_inside_the_update_phase(name):
    """One process: the node's arrays are read-only outside the update phase, so a write there fails at
    once; tell outside the phase is refused; inside it, tell gives the bytes of a private strategy."""
    from es_mpi.parts.job_file import job_from_text
    from es_mpi.parts.strategies import make_strategy

    settings = job_from_text(OBJECTIVE + COOPERATIVE[name], "job.toml").strategy
    noise = table(10_000)
    start_p = np.linspace(-1.0, 1.0, DIM)
    share = one_process_share()
    shared = make_strategy(settings, start_p, noise, 3, share=share)
    private = make_strategy(settings, start_p, noise, 3)
    held = [array for array in shared.state_dict().values() if share.holds(array)]
    assert held, "a cooperative strategy keeps its vectors in the node's arrays"
    for array in held:
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 1.0
    fitness_n = np.linspace(0.0, 1.0, shared.population)
    refused = make_strategy(settings, start_p, noise, 3, share=one_process_share())
    for strategy in (shared, private, refused):
        strategy.ask(1)
    with pytest.raises(RuntimeError, match="update phase"):
        refused.tell(fitness_n)
    with share.update_phase():
        shared.tell(fitness_n)
    private.tell(fitness_n)
    assert state_bytes_of(shared) == state_bytes_of(private)
    for array in held:
        with pytest.raises(ValueError, match="read-only"):
            array[...] = 0.0


def state_bytes_of(strategy):
    return {key: np.asarray(value).tobytes() for key, value in strategy.state_dict().items()}


def train(n_ranks, job, run_dir, node_size, *extra, env=None):
    env = {**(env or {}), "ES_MPI_NODE_SIZE": str(node_size) if node_size else ""}
    result = run_mpi(n_ranks, "train", job, "--run-dir", run_dir, *extra, timeout=180, env_extra=env) \
        if n_ranks > 1 else run_es("train", job, "--run-dir", run_dir, *extra, timeout=180, env_extra=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.mpi
@pytest.mark.parametrize("name", sorted(COOPERATIVE))
def test_every_layout_and_a_resume_give_the_bytes_of_one_rank(write_job, tmp_path, name):
    """3 ranks as one node of 3, as 2+1 and as 1+1+1: the same final state as 1 rank; and a run
    stopped on 2+1 and resumed on one node of 3 ends on the same bytes."""
    job = write_job(OBJECTIVE + COOPERATIVE[name])
    train(1, job, tmp_path / "one", None)
    expected = state_bytes(ckpt_io.checkpoint_path(tmp_path / "one", 4))
    for node_size, layout in ((3, None), (2, "2+1"), (1, "1+1+1")):
        run_dir = tmp_path / f"nodes{node_size}"
        result = train(3, job, run_dir, node_size)
        assert (f"3 ranks (nodes of {layout})," if layout else "3 ranks,") in result.stdout.splitlines()[0]
        assert state_bytes(ckpt_io.checkpoint_path(run_dir, 4)) == expected, layout
    train(3, job, tmp_path / "moved", 2, "--set", "stop.iterations=2")
    resumed = train(3, job, tmp_path / "moved", 3, "--resume")
    assert "resumed from iteration 2" in resumed.stdout
    assert state_bytes(ckpt_io.checkpoint_path(tmp_path / "moved", 4)) == expected


@pytest.mark.mpi
@pytest.mark.parametrize("n_ranks, node_size, fault, source", [(3, 1, "0:2", "rank 1 (node 1)"),
                                                               (4, 2, "0:2", "rank 2 (node 1)"),
                                                               (4, 2, "3:2", "rank 0 (node 0)")],
                         ids=["rank-0-of-three-nodes", "rank-0s-node-of-two", "a-non-leader-of-node-1"])
def test_a_node_whose_copy_changed_is_repaired_from_an_intact_one(write_job, tmp_path, n_ranks, node_size, fault,
                                                                  source):
    """The fault flips the first centre parameter in the node's one copy; the node's rank 0 owns that
    column and sees the change, so the repair copies another node's state, even against rank 0."""
    job = write_job(CARTPOLE)
    train(1, job, tmp_path / "clean", None)
    result = train(n_ranks, job, tmp_path / "faulty", node_size, env={"ES_MPI_FAULT_INJECT": fault})
    assert f"at iteration 2; repaired from {source}" in result.stdout
    with h5py.File(tmp_path / "faulty" / "ckpt-00000004.h5", "r") as f:
        assert list(f["metrics/repairs"][()]) == [0, 1, 1, 1]
    assert state_digest(tmp_path / "clean" / "ckpt-00000004.h5") == \
        state_digest(tmp_path / "faulty" / "ckpt-00000004.h5")


@pytest.mark.mpi
def test_a_lone_node_whose_copy_changed_stops_the_run_at_the_last_good_checkpoint(write_job, tmp_path):
    """One node of 2 ranks holds the only copy: nothing to repair from, so one line and exit 1, and
    a resume from the named checkpoint ends on the clean run's bytes."""
    job = write_job(CARTPOLE)
    train(1, job, tmp_path / "clean", None)
    result = run_mpi(2, "train", job, "--run-dir", tmp_path / "faulty", timeout=180,
                     env_extra={"ES_MPI_FAULT_INJECT": "1:2", "ES_MPI_NODE_SIZE": ""})
    assert result.returncode == 1, result.stderr[-2000:]
    checkpoint = tmp_path / "faulty" / "ckpt-00000001.h5"
    assert runtime_noise_removed(result.stderr) == [
        "es-mpi: error: iteration 2: every node's copy of the strategy state changed after its update (a rank's "
        f"digest of its columns no longer matches); no intact copy to repair from; last good checkpoint {checkpoint}"]
    assert not (tmp_path / "faulty" / "ckpt-00000002.h5").exists()
    train(2, job, tmp_path / "faulty", None, "--resume")
    assert state_digest(tmp_path / "clean" / "ckpt-00000004.h5") == \
        state_digest(tmp_path / "faulty" / "ckpt-00000004.h5")


@pytest.mark.mpi
def test_a_node_holds_one_centre_and_one_optimizer_state(tmp_path):
    """5 ranks as nodes of 2+2+1: each node's ranks map the same memory for the centre and Adam's
    moments (one copy per node, four windows with the gradient), split the columns among themselves,
    and a write by rank 1 is seen by rank 0 alone."""
    command = [MPIEXEC, "-n", "5", "--oversubscribe", "--bind-to", "none", PYTHON,
               str(REPO / "tests" / "share_probe.py")]
    result = run(command, timeout=120, env_extra={"ES_MPI_NODE_SIZE": "2", "PYTHONPATH": f"{REPO}:{REPO / 'tests'}"})
    assert result.returncode == 0, result.stderr[-2000:]
    reports = json.loads(result.stdout.strip().splitlines()[-1])
    assert [r["node"] for r in reports] == [0, 0, 1, 1, 2]
    assert [r["columns"] for r in reports] == [[0, 32], [32, 70], [0, 32], [32, 70], [0, 70]]
    assert [r["first"] for r in reports] == [-1.0, -1.0, 5.0, 5.0, 5.0]
    assert all(r["windows"] == 4 for r in reports)
    for node in range(3):
        assert len({tuple(r["identities"]) for r in reports if r["node"] == node}) == 1, node
    assert len({r["identities"][0] for r in reports}) == 3, "the nodes share one centre"
