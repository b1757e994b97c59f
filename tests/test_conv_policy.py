"""Conv policies and VBN against naive float64 loop implementations; batch-independence of actions;
VBN reference statistics from the same arithmetic as play."""

import pathlib

import gymnasium as gym
import numpy as np
import pytest

from es_mpi.parts.job_file import job_from_text
from es_mpi.parts.policies import make_policy
from es_mpi.parts.policies.conv import (CONV_LANE_WEIGHT_BYTES, NETWORKS, ConvLayer, DenseLayer, build_layers,
                                         frame_windows)
from es_mpi.parts.policies.vbn import EPSILON, channel_moments, normalizing_affine

FRAMES = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
ACTIONS = gym.spaces.Discrete(6)
TOLERANCE = 1e-5


def policy_settings(network, vbn):
    text = f"""[env]\nid = "ALE/Pong-v5"\n[obs_norm]\nenabled = false\n
[policy]\nkind = "cnn"\nnetwork = "{network}"\nvbn = {str(vbn).lower()}\n"""
    return job_from_text(text, pathlib.Path("test.toml")).policy


def naive_conv(x_bhwc, weights_iu, kernel, stride):
    """One output pixel at a time, weights indexed (kernel row, kernel column, channel, filter)."""
    b, h, w, c = x_bhwc.shape
    w_kkco = weights_iu.astype(np.float64).reshape(kernel, kernel, c, -1)
    out_h, out_w = (h - kernel) // stride + 1, (w - kernel) // stride + 1
    out = np.zeros((b, out_h, out_w, w_kkco.shape[-1]))
    for i in range(out_h):
        for j in range(out_w):
            patch = x_bhwc[:, i * stride:i * stride + kernel, j * stride:j * stride + kernel, :].astype(np.float64)
            out[:, i, j, :] = np.einsum("bklc,klco->bo", patch, w_kkco)
    return out


def naive_dense(x_b, weights_iu):
    x_bf = x_b.reshape(x_b.shape[0], -1).astype(np.float64)
    out = np.zeros((x_bf.shape[0], weights_iu.shape[1]))
    for o in range(weights_iu.shape[1]):
        out[:, o] = x_bf @ weights_iu[:, o].astype(np.float64)
    return out


def assert_close(actual, expected):
    scale = max(1.0, float(np.abs(expected).max()))
    assert np.abs(np.asarray(actual, dtype=np.float64) - expected).max() <= TOLERANCE * scale


def layer_shapes():
    shapes = set()
    for network in NETWORKS:
        hidden, output = build_layers(network, FRAMES.shape, ACTIONS.n)
        shape = (84, 84, 4)
        for index, layer in enumerate([*hidden, output]):
            shapes.add((type(layer).__name__, shape, getattr(layer, "filters", None) or layer.units,
                        getattr(layer, "kernel", None), getattr(layer, "stride", None), index == 0))
            shape = layer.out_hwc
    return sorted(shapes, key=str)


def through_layer(layer, x_bhwc, weights_iu, frames_dtype=np.float32):
    """One layer as play runs it: its input layout (frames: from channel-first frames of
    `frames_dtype`), its weights layout, its linear part; -> (B, ...) pre-activations."""
    weights = np.empty((1, *layer.weight_shape), dtype=np.float32)
    layer.arrange_weights(weights_iu, out=weights[0])
    if isinstance(layer, DenseLayer):
        return layer.linear(x_bhwc, weights)
    if layer.channels_first:
        frames = x_bhwc.transpose(0, 3, 1, 2).astype(frames_dtype)
        x = frame_windows(frames, frames.shape[1:], layer)
    else:
        x = np.ascontiguousarray(layer.arrange(x_bhwc))
    return layer.linear(x, weights)


@pytest.mark.parametrize("kind, in_shape, units, kernel, stride, frames", layer_shapes())
def test_each_layer_in_its_own_layouts_matches_a_naive_loop(kind, in_shape, units, kernel, stride, frames):
    draw = np.random.default_rng(7)
    x = draw.integers(0, 256, (3, *in_shape)).astype(np.float32) if frames else \
        draw.standard_normal((3, *in_shape)).astype(np.float32)
    if kind == "ConvLayer":
        layer = ConvLayer(in_shape, units, kernel, stride, channels_first=frames,
                          input_scale=np.float32(1 / 255) if frames else None)
        weights = draw.standard_normal((layer.fan_in, units)).astype(np.float32)
        expected = naive_conv(x / 255.0 if frames else x, weights, kernel, stride)
        assert_close(through_layer(layer, x, weights), expected)
        if frames:  # uint8 frames take the cast path: the same bits as float frames of the same values
            assert np.array_equal(through_layer(layer, x, weights, np.uint8), through_layer(layer, x, weights))
    else:
        layer = DenseLayer(in_shape, units)
        weights = draw.standard_normal((layer.fan_in, units)).astype(np.float32)
        assert_close(through_layer(layer, x, weights), naive_dense(x, weights))


def test_every_layer_shape_of_both_networks_is_covered():
    convs = {(s[1], s[2], s[3], s[4], s[5]) for s in layer_shapes() if s[0] == "ConvLayer"}
    assert convs == {((84, 84, 4), 16, 8, 4, True), ((20, 20, 16), 32, 4, 2, False),
                     ((84, 84, 4), 32, 8, 4, True), ((20, 20, 32), 64, 4, 2, False), ((9, 9, 64), 64, 3, 1, False)}


def test_a_stride_that_does_not_divide_the_kernel_is_refused():
    with pytest.raises(ValueError, match="stride must divide the kernel"):
        ConvLayer((84, 84, 4), 16, 8, 3)


def naive_network(policy, params_p, obs, reference=None):
    """float64 loop forward; with a reference batch, VBN statistics are taken from it layer by layer."""
    hidden, (out_w, out_b) = policy.unflatten(params_p)

    def through(x, layer, weights):
        if isinstance(layer, ConvLayer):
            return naive_conv(x, weights, layer.kernel, layer.stride)
        return naive_dense(x, weights)

    def frames(batch):
        return np.asarray(batch, dtype=np.float64).transpose(0, 2, 3, 1) / 255.0

    x, ref, moments = frames(obs), None if reference is None else frames(reference), []
    for layer, parts in zip(policy.hidden, hidden):
        z = through(x, layer, parts[0])
        if reference is None:
            x = np.maximum(z + parts[1], 0)
            continue
        z_ref = through(ref, layer, parts[0])
        axes = tuple(range(z_ref.ndim - 1))
        mean, var = z_ref.mean(axis=axes), z_ref.var(axis=axes)
        moments.append((mean, var))
        gamma, beta = parts[1].astype(np.float64), parts[2].astype(np.float64)
        x = np.maximum(gamma * (z - mean) / np.sqrt(var + EPSILON) + beta, 0)
        ref = np.maximum(gamma * (z_ref - mean) / np.sqrt(var + EPSILON) + beta, 0)
    return naive_dense(x, out_w) + out_b, moments


def random_member(policy, seed):
    """Initial parameters plus a perturbation, as an ES member would have."""
    draw = np.random.default_rng(seed)
    return (policy.init_params(draw) + 0.05 * draw.standard_normal(policy.n_params)).astype(np.float32)


def frames_batch(n, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, *FRAMES.shape), dtype=np.uint8)


@pytest.mark.parametrize("network", sorted(NETWORKS))
@pytest.mark.parametrize("vbn", [False, True])
def test_network_end_to_end_matches_naive(network, vbn):
    policy = make_policy(policy_settings(network, vbn), FRAMES, ACTIONS)
    params_p = random_member(policy, 1)
    reference = frames_batch(6, 2) if vbn else None
    if vbn:
        policy.set_reference(reference)
    obs = frames_batch(2, 3)
    expected, moments = naive_network(policy, params_p, obs, reference)
    bound = policy.bind(params_p)
    assert_close(bound.logits(obs), expected)
    if vbn:
        for (mean, var), (naive_mean, naive_var) in zip(bound.moments, moments):
            assert_close(mean, naive_mean)
            assert_close(var, naive_var)


def test_vbn_plays_with_the_reference_statistics_of_the_members_own_parameters():
    policy = make_policy(policy_settings("paper", True), FRAMES, ACTIONS)
    policy.set_reference(frames_batch(8, 4))
    member_a, member_b = random_member(policy, 5), random_member(policy, 6)
    bound_a, bound_b = policy.bind(member_a), policy.bind(member_b)
    hidden_a, _ = policy.unflatten(member_a)
    for (mean, var), (scale, shift), parts in zip(bound_a.moments, bound_a.affines, hidden_a):
        expected_scale, expected_shift = normalizing_affine(mean, var, parts[1], parts[2])
        assert np.array_equal(scale, expected_scale) and np.array_equal(shift, expected_shift)
    assert not np.allclose(bound_a.moments[0][0], bound_b.moments[0][0])
    again = policy.bind(member_a)
    for (mean, var), (mean2, var2) in zip(bound_a.moments, again.moments):
        assert np.array_equal(mean, mean2) and np.array_equal(var, var2)


@pytest.mark.parametrize("network", sorted(NETWORKS))
def test_an_observations_output_does_not_depend_on_the_rest_of_the_call(network):
    policy = make_policy(policy_settings(network, True), FRAMES, ACTIONS)
    policy.set_reference(frames_batch(4, 7))
    bound = policy.bind(random_member(policy, 8))
    batch = frames_batch(20, 9)
    together = bound.logits(batch)
    alone = np.concatenate([bound.logits(batch[i:i + 1]) for i in range(len(batch))])
    shuffled = bound.logits(batch[::-1])[::-1]
    assert np.array_equal(together, alone) and np.array_equal(together, shuffled)
    assert [bound(frame.astype(np.float32).ravel()) for frame in batch] == bound.actions(batch)


def test_mlp_with_vbn_uses_reference_statistics():
    text = '[env]\nid = "CartPole-v1"\n[obs_norm]\nenabled = false\n[policy]\nvbn = true\nhidden = [8]\n'
    settings = job_from_text(text, pathlib.Path("test.toml")).policy
    space = gym.spaces.Box(-5, 5, (4,), np.float32)
    policy = make_policy(settings, space, gym.spaces.Discrete(2))
    assert policy.n_params == 4 * 8 + 2 * 8 + 8 * 2 + 2
    reference = np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32)
    policy.set_reference(reference)
    params_p = random_member(policy, 1)
    (w1, gamma, beta), (w2, b2) = policy.unflatten(params_p)
    z_ref = reference.astype(np.float64) @ w1
    mean, var = z_ref.mean(axis=0), z_ref.var(axis=0)
    obs = np.random.default_rng(2).standard_normal((10, 4)).astype(np.float32)
    hidden = np.tanh(gamma * (obs @ w1 - mean) / np.sqrt(var + EPSILON) + beta)
    expected = np.argmax(hidden @ w2 + b2, axis=1)
    act = policy.bind(params_p)
    assert [act(o) for o in obs] == list(expected)


@pytest.mark.parametrize("network", sorted(NETWORKS))
@pytest.mark.parametrize("vbn", [False, True])
def test_lanes_give_each_member_its_batch_of_one_bits_at_every_batch_size(network, vbn):
    """Every batch size from 1 to run.lanes' default: lane i's logits are member i's alone, bit for bit."""
    n_lanes = job_from_text('', pathlib.Path("t.toml")).run.lanes
    policy = make_policy(policy_settings(network, vbn), FRAMES, ACTIONS)
    if vbn:
        policy.set_reference(frames_batch(4, 10))
    members = [random_member(policy, 100 + i) for i in range(n_lanes)]
    obs = frames_batch(n_lanes, 11)
    alone = np.concatenate([policy.bind(params_p).logits(obs[i:i + 1]) for i, params_p in enumerate(members)])
    lanes = policy.lanes(n_lanes)
    for lane, params_p in enumerate(members):
        lanes.load(lane, params_p)
    for n in range(1, n_lanes + 1):
        assert np.array_equal(lanes.logits(obs[:n]), alone[:n]), f"batch of {n}"
        assert np.array_equal(lanes.logits(obs[:n].astype(np.float32).reshape(n, -1)), alone[:n]), f"float batch of {n}"
        assert lanes(obs[:n]) == [int(np.argmax(row)) for row in alone[:n]]
    lanes.move(n_lanes - 1, 0)
    assert np.array_equal(lanes.logits(obs[-1:]), alone[-1:])
    assert len({row.tobytes() for row in alone}) == n_lanes  # the members differ


@pytest.mark.parametrize("network", sorted(NETWORKS))
def test_vbn_reference_statistics_are_those_of_play(network):
    """Each reference observation played alone, layer by layer (the loop reproduces play's logits bit
    for bit), gives pre-activations whose channel moments are the member's VBN moments, bit for bit."""
    policy = make_policy(policy_settings(network, True), FRAMES, ACTIONS)
    reference = frames_batch(20, 12)  # more than one reference chunk
    policy.set_reference(reference)
    bound = policy.bind(random_member(policy, 13))
    lane, per_layer = bound.lane, [[] for _ in policy.hidden]
    for obs in reference:
        x = frame_windows(obs[None], FRAMES.shape, policy.hidden[0])
        for index, layer in enumerate(policy.hidden):
            z = layer.linear(x, lane.weights[index])
            per_layer[index].append(z.copy())  # finish works on z in place
            x = policy.finish(index, z, lane.scales[index], lane.shifts[index])
        logits = policy.output.linear(x, lane.weights[-1]) + lane.shifts[-1]
        assert np.array_equal(logits, bound.logits(obs[None]))
    for (mean, var), zs in zip(bound.moments, per_layer):
        play_mean, play_var = channel_moments(np.concatenate(zs))
        assert np.array_equal(mean, play_mean) and np.array_equal(var, play_var)


@pytest.mark.parametrize("network", sorted(NETWORKS))
def test_the_lanes_weights_fit_the_cache_budget(network):
    """As many lanes as the budget holds, never more than asked, and one whatever the size: with more,
    the fc layer's weights come from memory at every step (benchmarks/atari.py takes the pass apart)."""
    policy = make_policy(policy_settings(network, True), FRAMES, ACTIONS)
    lanes = policy.useful_lanes(16)
    assert lanes == 1 or lanes * 4 * policy.n_params <= CONV_LANE_WEIGHT_BYTES
    assert (lanes + 1) * 4 * policy.n_params > CONV_LANE_WEIGHT_BYTES
    assert policy.useful_lanes(1) == 1
