"""The scaling model's arithmetic (benchmarks/scaling_projection.py): no MPI, no measurement."""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "benchmarks"))

import scaling_projection as model  # noqa: E402

FREE = model.Link(0.0, float("inf"))
FREE_MACHINE = model.Machine(FREE, FREE, float("inf"), claim_s=0.0, barrier_s=0.0)


def task(pair_costs_s, n_params=1000, sum_s=0.0, step_s=0.0, row_floats=0, probability=0.0):
    return model.Task("t", tuple(pair_costs_s), n_params, row_floats, probability, {n_params: sum_s}, step_s)


def test_perfect_balance_and_free_communication_give_efficiency_one():
    for design in model.DESIGNS:
        for n_ranks, per_node in ((16, 16), (64, 32), (1024, 128)):
            p = model.project(task([0.5] * 8), design, n_ranks, per_node, pairs=4 * n_ranks, machine=FREE_MACHINE)
            assert p.efficiency == pytest.approx(1.0)
            assert p.imbalance == pytest.approx(1.0)
            assert p.exchange_s == 0.0 and p.update_s == 0.0


def test_static_slices_of_a_known_list_give_the_known_imbalance():
    costs = [1, 1, 1, 1, 4, 4]  # 2 ranks: [1, 1, 1] and [1, 4, 4] -> max 9, mean 6
    assert model.static_loads(costs, 2) == [3, 9]
    assert model.imbalance(model.static_loads(costs, 2)) == pytest.approx(1.5)
    assert model.episode_seconds(costs, 2, 2, dynamic=False) == 9


def test_dynamic_claims_take_the_next_pair_in_global_order():
    costs = [1, 1, 1, 1, 4, 4]  # the free rank takes the next: [1, 1, 4] and [1, 1, 4]
    assert model.dynamic_loads(costs, 2) == [6, 6]
    assert model.dynamic_loads(costs, 2, claim_s=0.5) == [7.5, 7.5]
    assert model.dynamic_loads([5, 1, 1, 1, 1, 1], 2) == [5, 5]


def test_dynamic_placement_is_static_across_nodes():
    costs = [4, 4, 1, 1]  # 2 nodes of 1 rank: blocks [4, 4] and [1, 1], no claiming across them
    assert model.episode_seconds(costs, 2, 1, dynamic=True) == 8
    assert model.episode_seconds(costs, 2, 2, dynamic=True) == 5


def test_efficiency_is_serial_time_over_ranks_times_iteration_time():
    t = task([2.0] * 4, n_params=100, sum_s=0.01)  # each pair 2 s; the noise sum 0.01 s per pair
    p = model.project(t, model.DESIGNS[0], 4, 4, pairs=4, machine=FREE_MACHINE)
    assert p.episodes_s == 2.0 and p.update_s == pytest.approx(0.04)
    assert p.efficiency == pytest.approx((8.0 + 0.04) / (4 * 2.04))


def test_flat_gather_crosses_the_network_once_per_rank_of_the_node_hierarchical_once():
    t = task([1.0], row_floats=11, probability=1.0)
    flat = [model.bytes_into_node(t, 1000, 1024, per_node, hierarchical=False) for per_node in (32, 128)]
    hier = [model.bytes_into_node(t, 1000, 1024, per_node, hierarchical=True) for per_node in (32, 128)]
    assert flat[1] / flat[0] == pytest.approx(4 * (1 - 1 / 8) / (1 - 1 / 32), rel=0.05)
    payload = 1000 * (model.RESULT_BYTES + 11 * 8)
    assert hier[0] == pytest.approx(payload * 31 / 32, rel=0.01)
    assert hier[1] == pytest.approx(payload * 7 / 8, rel=0.01)
    assert model.bytes_into_node(t, 1000, 128, 128, hierarchical=False) == 0.0


def test_alpha_beta_terms():
    machine = model.Machine(model.Link(1e-6, 1e9), model.Link(2e-6, 12.5e9), float("inf"), 0.0, 1e-6)
    one_node = model.allgather_seconds(1e6, 4, 4, machine)
    assert one_node == pytest.approx(2 * 1e-6 + 1e6 / 1e9)
    two_nodes = model.allgather_seconds(1e6, 8, 4, machine)
    assert two_nodes == pytest.approx(one_node + 2e-6 + 4 * 0.5e6 / 12.5e9)
    assert model.hierarchical_allgather_seconds(1e6, 8, 4, machine) == pytest.approx(
        2 * 2 * 1e-6 + 0.5e6 / 1e9 + 2e-6 + 0.5e6 / 12.5e9)


def test_cooperative_update_takes_a_slice_and_streams_the_table_once():
    t = model.Task("t", (1.0,), 1280, 0, 0.0, {1280: 1e-3, 10: 2e-5}, 0.0)
    rows_bytes = 100 * 1280 * 4  # 100 pairs: the rows one full sum reads
    bus = model.Machine(FREE, FREE, node_memory_bytes_per_s=rows_bytes / 1e-3, claim_s=0.0, barrier_s=1e-6)
    # cooperative: a rank sums 10 of the 1,280 columns (2e-5 s per pair), then 7 barrier rounds
    assert model.update_seconds(t, 100, 128, bus, cooperative=True) == pytest.approx(100 * 2e-5 + 7e-6)
    # today: 128 ranks each stream the whole rows: the bus (0.128 s), not the arithmetic (0.1 s)
    assert model.update_seconds(t, 100, 128, bus, cooperative=False) == pytest.approx(0.128)
    assert model.slice_sum_seconds(t, 100, 2560) == pytest.approx(100 * 2e-3)
