"""The built code's scaling model (benchmarks/built_model_events.py, built_model.py) on hand-checkable cases."""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "benchmarks"))

import built_model_events as model  # noqa: E402

E = model.Episode


def one_step(*seconds):
    """Units of one member each, every episode one step of the given seconds."""
    return [(E(1, s),) for s in seconds]


def test_a_free_rank_claims_the_next_unit_and_the_makespan_is_known():
    # 2 ranks, one lane each, units of 3, 1, 1, 1 s: rank 0 holds the 3 s unit while rank 1 claims the rest.
    play = model.play_node(one_step(3, 1, 1, 1), node_ranks=2, lanes=1)
    assert play.end_s == [3, 3] and play.makespan_s == 3
    assert play.members == [1, 3]
    assert play.claims == [2, 4]  # each rank's last claim comes back past the block
    it = model.iteration(one_step(3, 1, 1, 1), [2], lanes=1, costs=model.FixedCosts(update_s=1.0))
    assert it.play_s == 3 and it.iteration_s == 4 and it.episode_s == 6
    assert model.efficiency([it], 2) == pytest.approx(6 / (2 * 4))


def test_lanes_take_no_more_than_the_share_so_a_full_first_fill_leaves_nothing_to_balance():
    # 2 ranks, 4 pairs (2 long, 2 short): the share is 2 pairs = 4 members.
    long, short = (E(1, 2.0), E(1, 2.0)), (E(1, 1.0), E(1, 1.0))
    units = [long, long, short, short]
    assert model.share_members(4, 2, 2) == 4
    laned = model.play_node(units, node_ranks=2, lanes=16)
    assert laned.members == [4, 4] and laned.busy_s == [8, 4] and laned.makespan_s == 8
    # One lane: a pair stays on its rank (its second member is the rank's next), then the next claims.
    alone = model.play_node(units, node_ranks=2, lanes=1)
    assert alone.members == [4, 4] and alone.busy_s == [6, 6] and alone.makespan_s == 6
    assert model.efficiency([model.iteration(units, [2], 16, model.FixedCosts())], 2) == pytest.approx(12 / 16)
    assert model.efficiency([model.iteration(units, [2], 1, model.FixedCosts())], 2) == pytest.approx(1.0)


def test_members_in_play_take_turns_on_the_core():
    # Rank 0 plays a 2-step episode (1 s a step) beside a 1 s one: its first pass takes 2 s.
    # Rank 1's two 0.5 s episodes end after 1 s, so rank 1 claims the last unit (10 s) first.
    units = [(E(2, 2.0),), (E(1, 1.0),), (E(1, 0.5),), (E(1, 0.5),), (E(1, 10.0),)]
    play = model.play_node(units, node_ranks=2, lanes=2)
    assert play.end_s == [3, 11] and play.busy_s == [3, 11]
    assert play.members == [2, 3]


def test_claims_are_charged_and_nodes_split_the_population_in_proportion():
    assert model.node_blocks(10, [2, 3]) == [(0, 4), (4, 10)]
    play = model.play_node(one_step(1, 1), node_ranks=1, lanes=1, claim_s=0.25)
    assert play.claims == [3] and play.end_s == [pytest.approx(2.75)]


def test_evaluation_episodes_are_units_claimed_first_in_each_nodes_order():
    pair = (E(1, 1.0), E(1, 1.0))
    # One node of 2 ranks, one lane: rank 0 claims the evaluation episode (3 s) first, rank 1 both pairs.
    # (Claimed last, it would start at 2 s and end at 5 s.)
    play = model.play_node([pair, pair], node_ranks=2, lanes=1, evaluations=[E(1, 3.0)])
    assert play.members == [1, 4] and play.end_s == [3, 4] and play.claims == [2, 3]
    costs = model.FixedCosts(update_s=1.0, eval_exchange_s=0.5)
    it = model.iteration([pair, pair], [2], 1, costs, eval_episodes=[E(1, 3.0)])
    assert it.play_s == 4 and it.iteration_s == 4 + 1 + 0.5 and it.episode_s == 7
    assert model.iteration([pair, pair], [2], 1, costs).iteration_s == 2 + 1  # no evaluation, no extra exchange
    # Two nodes of one rank: 3 evaluation episodes (2 s) are cut like the units, 1 to node 0 and 2 to node 1,
    # so node 0 plays 2 + 2 s and node 1 2 + 2 + 6 s (cut the other way the slowest node would take 8 s).
    slow = (E(1, 3.0), E(1, 3.0))
    it = model.iteration([pair, slow], [1, 1], 1, model.FixedCosts(), eval_episodes=[E(1, 2.0)] * 3)
    assert it.play_s == 10 and it.busy_max_s == 10 and it.busy_mean_s == 7
    assert (it.members_min, it.members_max) == (3, 4)


def test_evaluation_units_do_not_raise_the_share_so_whoever_frees_up_plays_them():
    # 2 ranks, 2 pairs, 16 lanes: the share is 1 pair (2 members) with or without the one evaluation
    # episode (Placement.share covers the block's pairs alone).
    pair = (E(1, 1.0), E(1, 1.0))
    assert model.share_members(2, 2, 2) == 2
    without = model.play_node([pair, pair], node_ranks=2, lanes=16)
    assert without.members == [2, 2] and without.makespan_s == 2
    # Rank 0 fills its 2 slots first: the evaluation episode and half of pair A (one pass of 2 s), then
    # the rest of A (1 s); rank 1 takes pair B (2 s). Rank 0's third claim, and rank 1's second, come
    # back past the block. Were the share 2 pairs, rank 0 would take everything: 5 s.
    for fill_order in (None, model.round_robin):
        burst = model.play_node([pair, pair], node_ranks=2, lanes=16, evaluations=[E(1, 1.0)],
                                fill_order=fill_order)
        assert burst.members == [3, 2] and burst.end_s == [3.0, 2.0] and burst.claims == [3, 2]


def test_an_iteration_models_the_synchronous_mode_only():
    with pytest.raises(ValueError, match="the pipelined mode is `pipelined`"):
        model.iteration(one_step(1), [1], 1, model.FixedCosts(), mode="pipelined")


def test_the_update_cost_per_pair_follows_the_measured_widths():
    import built_model

    points = [(100, 3e-6), (1100, 4e-6), (10_100, 13e-6)]
    assert built_model.tell_per_pair(points, 1100) == pytest.approx(4e-6)
    assert built_model.tell_per_pair(points, 600) == pytest.approx(3.5e-6)
    assert built_model.tell_per_pair(points, 1) == pytest.approx(3e-6)  # the per-row cost stays
    assert built_model.tell_per_pair(points, 20_200) == pytest.approx(26e-6)


def test_the_model_draws_the_episodes_the_trace_env_replays():
    import built_model

    built_model.check_draws(built_model.Draws(0))  # raises if any of the first 40 members differ


def test_the_models_pipelined_mode_starts_the_next_iteration_in_the_tail():
    # The pipelined mode's model (run/pipeline.py), on a case checked by hand.
    # Rank 1 plays iteration 0's short unit, then all of iteration 1 while rank 0 holds the long unit.
    its = [one_step(3, 1), one_step(1, 1)]
    run = model.pipelined(its, [2], lanes=1, costs=model.FixedCosts())
    assert run.finished_s == [3, 3] and run.wall_s == 3
    assert run.efficiency(2) == pytest.approx(6 / (2 * 3))
    synchronous = [model.iteration(units, [2], 1, model.FixedCosts()) for units in its]
    assert model.efficiency(synchronous, 2) == pytest.approx(6 / (2 * 4))


def test_the_models_pipelined_mode_waits_for_the_exchange_two_iterations_back():
    # Iteration 2 opens at iteration 0's end (3 s) + the exchange (0.5 s); both ranks idle until then.
    its = [one_step(3, 1), one_step(1, 1), one_step(1, 1)]
    run = model.pipelined(its, [2], lanes=1, costs=model.FixedCosts(exchange_s=0.5))
    assert run.finished_s == [3, 3, 4.5] and run.wall_s == 5.0
    assert run.efficiency(2) == pytest.approx(8 / (2 * 5.0))
