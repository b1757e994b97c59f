"""Episodes on the lanes of one ale-py vector env (parts/atari.AtariLanes), one batched forward pass per step."""

import numpy as np

from es_mpi.run.rollout import Episode


class _Slot:
    """A member in play: its episode index, the env lane it plays in, its return and length so far."""

    def __init__(self, index, lane):
        self.index, self.lane, self.total, self.length = index, lane, 0.0, 0


def run_vector_lanes(lanes_env, forward, members, member, step_cap, reward_offset=0.0):
    """Play the episodes of `members`, up to one per lane at once; -> {member: Episode}. The same
    contract as rollout.run_lanes.

    Slot s of `forward` holds the member that plays in env lane slots[s].lane; the slots in play
    are always the first n, so a finished member's slot is refilled with the next episode (same
    lane, which `lanes_env.start` resets), or, once none is left, the last slot moves into it and
    its lane idles (stepped with no-ops, results ignored). A lane in its no-op start gets a
    forward pass whose action is dropped. An episode is a function of its parameters and seed:
    its lane only feeds it observations, and each slot's forward pass is computed on its own.
    `member(m) -> (params_p, seed, record_obs)`; Atari jobs never record observations.
    `reward_offset` is subtracted from every reward, as in run_lanes.
    """
    cap = min(step_cap, lanes_env.max_episode_steps)
    episodes, pending, slots, starts = {}, iter(members), [], []
    actions_l = np.zeros(lanes_env.n_lanes, dtype=np.int64)

    def assign(slot, lane):
        """The next episode into `slot` (appended when slot == len(slots)); False when none is left."""
        k = next(pending, None)
        if k is None:
            return False
        params_p, seed, _ = member(k)
        forward.load(slot, params_p)
        if slot == len(slots):
            slots.append(_Slot(k, lane))
        else:
            slots[slot] = _Slot(k, lane)
        starts.append((lane, seed))
        return True

    def finish(slot, capped):
        episodes[slots[slot].index] = Episode(slots[slot].total, slots[slot].length, capped, False, None)
        if assign(slot, slots[slot].lane):
            return
        last = slots.pop()
        if slot < len(slots):
            forward.move(len(slots), slot)
            slots[slot] = last

    def begin_started():
        if starts:
            lanes, seeds = zip(*starts)
            lanes_env.start(list(lanes), list(seeds))
            starts.clear()

    for lane in range(lanes_env.n_lanes):
        if not assign(lane, lane):
            break
    begin_started()
    while slots:
        capped = [slot for slot, state in enumerate(slots) if state.length >= cap]
        for slot in reversed(capped):
            finish(slot, capped=True)
        begin_started()
        if capped:
            continue
        n = len(slots)
        lanes = [state.lane for state in slots]
        obs_lchw = lanes_env.obs_lchw
        actions = forward(obs_lchw[:n] if lanes == list(range(n)) else obs_lchw[lanes])
        actions_l[:] = 0
        actions_l[lanes] = actions
        _, rewards_l, terminated_l, truncated_l, warming_l = lanes_env.step(actions_l)
        done = []
        for slot, state in enumerate(slots):
            lane = state.lane
            if warming_l[lane]:
                continue
            state.total += float(rewards_l[lane]) - reward_offset
            state.length += 1
            if terminated_l[lane] or truncated_l[lane]:
                done.append((slot, not terminated_l[lane]))
        for slot, was_capped in reversed(done):
            finish(slot, was_capped)
        begin_started()
    return episodes
