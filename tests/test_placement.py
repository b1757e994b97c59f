"""Placement (run/placement.py): node blocks and claims from the node counter (that dynamic and
static placement give the bytes of one rank: test_determinism.py's matrix)."""

import json

import pytest

from conftest import MPIEXEC, PYTHON, REPO, run
from es_mpi.run.placement import member_blocks, node_blocks


def test_node_blocks_are_contiguous_in_node_order_and_proportional():
    for n_units, sizes in ((10, [4]), (10, [2, 2]), (7, [3, 2, 2]), (3, [2, 2, 2, 2]), (1000, [128, 128, 64])):
        blocks = node_blocks(n_units, sizes)
        assert blocks[0][0] == 0 and blocks[-1][1] == n_units
        assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
        for (start, stop), size in zip(blocks, sizes):
            assert abs((stop - start) - n_units * size / sum(sizes)) < 1
    assert member_blocks(12, 2, [2, 1]) == [(0, 8), (8, 12)]


def probe(mode, n_ranks, node_size, population=24, group=2, slow_s=0.02):
    command = [MPIEXEC, "-n", str(n_ranks), "--oversubscribe", "--bind-to", "none", PYTHON,
               str(REPO / "tests" / "placement_probe.py"), mode, str(population), str(group), str(slow_s)]
    result = run(command, timeout=120, env_extra={"ES_MPI_NODE_SIZE": str(node_size) if node_size else ""})
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.mpi
@pytest.mark.parametrize("n_ranks, node_size", [(3, None), (5, 2)], ids=["one-node", "nodes-of-2"])
def test_dynamic_claims_cover_each_block_once_and_follow_the_speed_of_the_ranks(n_ranks, node_size):
    ranks = probe("dynamic", n_ranks, node_size)
    for iteration in range(2):
        for rank in ranks:
            start, stop = rank["block"]
            assert all(start <= m < stop for m in rank["played"][iteration])
        blocks = sorted({tuple(rank["block"]) for rank in ranks})
        for start, stop in blocks:
            members = sorted(m for rank in ranks if tuple(rank["block"]) == (start, stop)
                             for m in rank["played"][iteration])
            assert members == list(range(start, stop))  # each member of the block exactly once
        for rank in ranks:
            played = rank["played"][iteration]
            assert all(played[k + 1] == played[k] + 1 for k in range(0, len(played), 2))  # whole pairs
    # the slow last rank plays less than an even share of its node's block: the fast ranks take the rest
    # (an even share, not "less than each fast rank": on two cores one fast rank may get no time at all)
    slow = ranks[-1]
    start, stop = slow["block"]
    sharing = sum(tuple(rank["block"]) == (start, stop) for rank in ranks)
    if sharing > 1:  # with nodes of 2, the fifth rank is alone on its node
        assert all(len(slow["played"][i]) < (stop - start) / sharing for i in range(2))


@pytest.mark.mpi
def test_static_placement_is_a_fixed_slice_whatever_the_speed():
    ranks = probe("static", 3, None, population=24)
    assert [rank["played"][0] for rank in ranks] == [list(range(0, 8)), list(range(8, 16)), list(range(16, 24))]
    assert all(rank["played"][0] == rank["played"][1] for rank in ranks)


@pytest.mark.mpi
def test_lanes_take_their_share_so_a_rank_that_starts_late_finds_its_own(tmp_path):
    """4 ranks of 16 lanes on 16 pairs (the whole block fits in one rank's lanes); the last rank makes
    its first claim only after the others have filled their lanes. No rank holds more than its share
    (4 pairs) plus one unit while units remain, so the late rank still finds its share."""
    population, group = 32, 2
    command = [MPIEXEC, "-n", "4", "--oversubscribe", "--bind-to", "none", PYTHON,
               str(REPO / "tests" / "lanes_share_probe.py"), str(population), str(group), "16", str(tmp_path)]
    result = run(command, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    ranks = json.loads(result.stdout.strip().splitlines()[-1])
    share = population // 4
    assert [rank["share"] for rank in ranks] == [share] * 4
    for iteration in range(2):
        played = [rank["iterations"][iteration]["played"] for rank in ranks]
        assert sorted(m for mine in played for m in mine) == list(range(population))
        for rank in ranks:
            assert rank["iterations"][iteration]["most_held"] <= share + group
        assert len(played[-1]) == share  # the late rank: the others left its share for it
