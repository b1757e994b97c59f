"""Convolutional policies for Atari frames: numpy float32 over a flat parameter vector.

Layout is channels-last (batch, height, width, channels); the channel-first frame stack is read
through a transposed view by the one ufunc that scales it to float32. A convolution is im2col
through stride tricks (a view, then one copy) and one BLAS matmul per layer. While playing, a
layer is one stacked matmul over the observations ((B, Q, I) @ (B or 1, I, U)), which numpy runs
as one BLAS call per observation with the shapes a batch of one has, so each observation's floats
are those it would get alone (tests/test_conv_policy.py checks every batch size). Only the VBN
reference batch, always passed whole, goes through flat (B*Q, I) @ (I, U) matmuls.
"""

import functools

import numpy as np

from es_mpi.parts.policies.base import Policy, normalized_columns
from es_mpi.parts.policies.vbn import finish_hidden, fit_reference

# name -> ([(filters, kernel, stride), ...], [dense units, ...]); one output per action follows.
NETWORKS = {
    "paper": ([(16, 8, 4), (32, 4, 2)], [256]),
    "nature": ([(32, 8, 4), (64, 4, 2), (64, 3, 1)], [512]),
}
PIXEL_SCALE = np.float32(1.0 / 255.0)
IM2COL_CHUNK = 16  # observations per im2col copy: bounds the temporary for a reference batch
CONV_LANE_WEIGHT_BYTES = 12 * 2**20  # see ConvPolicy.useful_lanes; measured in benchmarks/atari.py


def relu(x):
    return np.maximum(x, 0, out=x)


class ConvLayer:
    """VALID convolution; weights_iu has rows ordered (kernel row, kernel column, input channel)."""

    def __init__(self, in_hwc, filters, kernel, stride):
        height, width, channels = in_hwc
        self.kernel, self.stride, self.filters = kernel, stride, filters
        self.out_hwc = ((height - kernel) // stride + 1, (width - kernel) // stride + 1, filters)
        if min(self.out_hwc[:2]) < 1:
            raise ValueError(f"a {kernel}x{kernel} convolution does not fit a {height}x{width} input")
        self.fan_in = kernel * kernel * channels
        self.positions = self.out_hwc[0] * self.out_hwc[1]

    def patches(self, x_bhwc):
        """im2col: (B, out positions, fan_in) from a strided view, one copy."""
        b, k, s = x_bhwc.shape[0], self.kernel, self.stride
        sb, sh, sw, sc = x_bhwc.strides
        out_h, out_w, _ = self.out_hwc
        view = np.lib.stride_tricks.as_strided(
            x_bhwc, shape=(b, out_h, out_w, k, k, x_bhwc.shape[3]),
            strides=(sb, s * sh, s * sw, sh, sw, sc), writeable=False)
        return view.reshape(b, self.positions, self.fan_in)

    def __call__(self, x_bhwc, weights_iu):
        """A whole batch through one weight matrix as flat (B*Q, I) @ (I, U) matmuls (the VBN reference pass)."""
        b = x_bhwc.shape[0]
        out_bqu = np.empty((b, self.positions, self.filters), dtype=np.float32)
        for start in range(0, b, IM2COL_CHUNK):
            patches = self.patches(x_bhwc[start:start + IM2COL_CHUNK])
            out = out_bqu[start:start + IM2COL_CHUNK]
            np.matmul(patches.reshape(-1, self.fan_in), weights_iu, out=out.reshape(-1, self.filters))
        return out_bqu.reshape(b, *self.out_hwc)

    def lanes(self, x_bhwc, weights_biu):
        """Observation b through weights_biu[b] (or all through weights_1iu): one (Q, I) @ (I, U) matmul
        each, the call a batch of one makes, so no observation's floats depend on the others."""
        return np.matmul(self.patches(x_bhwc), weights_biu).reshape(x_bhwc.shape[0], *self.out_hwc)


class DenseLayer:
    """Fully connected over the flattened input."""

    def __init__(self, fan_in, units):
        self.fan_in, self.units, self.out_hwc = fan_in, units, (units,)

    def __call__(self, x_b, weights_iu):
        return x_b.reshape(x_b.shape[0], self.fan_in) @ weights_iu

    def lanes(self, x_b, weights_biu):
        """One (1, I) @ (I, U) row per observation, as in ConvLayer.lanes."""
        b = x_b.shape[0]
        return np.matmul(x_b.reshape(b, 1, self.fan_in), weights_biu).reshape(b, self.units)


def build_layers(network, obs_chw, n_outputs):
    """Hidden layers of `network` for (channels, height, width) frames, and the output layer."""
    conv_specs, dense_units = NETWORKS[network]
    shape = (obs_chw[1], obs_chw[2], obs_chw[0])
    hidden = []
    for filters, kernel, stride in conv_specs:
        hidden.append(ConvLayer(shape, filters, kernel, stride))
        shape = hidden[-1].out_hwc
    for units in dense_units:
        hidden.append(DenseLayer(int(np.prod(shape)), units))
        shape = hidden[-1].out_hwc
    return hidden, DenseLayer(int(np.prod(shape)), n_outputs)


def prepare_frames(obs, obs_chw):
    """Observations (uint8 or float, any batch shape) -> (B, H, W, C) float32 in [0, 1].

    One ufunc pass reads the channel-first stack through a transposed view and writes the
    scaled float32 frames channels-last; for uint8 input the bits are float32(v) * (1/255).
    """
    x_bchw = np.asarray(obs).reshape(-1, *obs_chw)
    x_bhwc = np.empty((x_bchw.shape[0], obs_chw[1], obs_chw[2], obs_chw[0]), dtype=np.float32)
    return np.multiply(x_bchw.transpose(0, 2, 3, 1), PIXEL_SCALE, out=x_bhwc)


def _hidden_shape(layer):
    """How a per-unit (scale, shift) row broadcasts over one lane's layer output."""
    return (1,) * (len(layer.out_hwc) - 1) + (layer.out_hwc[-1],)


class ConvLanes:
    """The forward pass of several members at once, one lane each (see rollout.play).

    Each layer keeps its lanes' weights in one (lanes, I, U) array and the lanes' VBN affines
    (or biases) in (lanes, ..., U) rows; a layer is one stacked matmul over the lanes, which numpy
    runs as one BLAS call per lane with the shapes a lone member's call has. So a lane's actions
    are bit for bit those of the member played alone (`ConvPolicy.bind` is a one-lane ConvLanes).
    """

    def __init__(self, policy, n_lanes):
        self.policy, self.head = policy, policy.head
        layers = [*policy.hidden, policy.output]
        self.weights = [np.zeros((n_lanes, layer.fan_in, layer.out_hwc[-1]), dtype=np.float32) for layer in layers]
        self.scales = [np.ones((n_lanes, *_hidden_shape(layer)), dtype=np.float32) for layer in policy.hidden]
        self.shifts = [np.zeros((n_lanes, *_hidden_shape(layer)), dtype=np.float32) for layer in layers]
        self.moments = [None] * n_lanes  # per lane, the VBN reference (mean_c, var_c) of each hidden layer

    def load(self, lane, params_p):
        """A member's parameters into `lane`; with VBN, its reference pass fixes the lane's affines."""
        hidden, (out_weights, out_bias) = self.policy.unflatten(params_p)
        affines, self.moments[lane] = self.policy.fit_affines(hidden)
        for weights, parts in zip(self.weights, hidden):
            weights[lane] = parts[0]
        self.weights[-1][lane] = out_weights
        for scale, shift, (layer_scale, layer_shift) in zip(self.scales, self.shifts, affines):
            scale[lane] = 1.0 if layer_scale is None else layer_scale.reshape(scale.shape[1:])
            shift[lane] = layer_shift.reshape(shift.shape[1:])
        self.shifts[-1][lane] = out_bias

    def move(self, source, target):
        """Copy one lane's parameters into another lane."""
        for array in (*self.weights, *self.scales, *self.shifts):
            array[target] = array[source]
        self.moments[target] = self.moments[source]

    def logits(self, obs, lanes=None):
        """(B, n_outputs): observation b through lane b (lanes=None), or every observation through lane `lanes`."""
        x = prepare_frames(obs, self.policy.obs_chw)
        pick = slice(0, len(x)) if lanes is None else slice(lanes, lanes + 1)
        for layer, weights, scale, shift in zip(self.policy.hidden, self.weights, self.scales, self.shifts):
            z = layer.lanes(x, weights[pick])
            x = finish_hidden(z, scale[pick] if self.policy.vbn else None, shift[pick], relu)
        return self.policy.output.lanes(x, self.weights[-1][pick]) + self.shifts[-1][pick]

    def __call__(self, obs):
        """Observations of the first len(obs) lanes -> one action per lane."""
        return self.head.rows(self.logits(obs))


class BoundConvNet:
    """A member's network with its VBN affines fixed: call it on one observation for an action."""

    def __init__(self, policy, params_p):
        self.policy, self.lane = policy, ConvLanes(policy, 1)
        self.lane.load(0, params_p)
        self.moments = self.lane.moments[0]  # per hidden layer (mean_c, var_c) of the reference batch; None without VBN
        self.affines = [(scale[0].ravel(), shift[0].ravel()) for scale, shift in zip(self.lane.scales, self.lane.shifts)]

    def logits(self, obs):
        """(B, n_outputs) for a batch of observations; row b depends on observation b only."""
        return self.lane.logits(obs, lanes=0)

    def actions(self, obs):
        return self.policy.head.rows(self.logits(obs))

    def __call__(self, obs):
        return self.policy.head(self.logits(obs)[0])


class ConvPolicy(Policy):
    def __init__(self, settings, obs_chw, head):
        self.settings, self.head, self.obs_chw = settings, head, tuple(obs_chw)
        self.vbn = settings.vbn
        self.hidden, self.output = build_layers(settings.network, self.obs_chw, head.n_outputs)
        per_unit = 2 if self.vbn else 1  # (gamma, beta) with VBN, else a bias
        self.n_params = sum(layer.fan_in * units + per_unit * units
                            for layer, units in self._hidden_units()) + \
            self.output.fan_in * self.output.units + self.output.units
        self.reference = self.reference_frames = None

    def _hidden_units(self):
        return [(layer, layer.out_hwc[-1]) for layer in self.hidden]

    def set_reference(self, observations):
        """The VBN reference batch (raw observations, e.g. uint8 frames), shared by every member."""
        self.reference = np.asarray(observations)
        self.reference_frames = prepare_frames(self.reference, self.obs_chw)

    def init_params(self, draw):
        """Normalised-column Gaussian weights (output layer `init_scale`); zero biases; gamma 1, beta 0."""
        parts = []
        for layer, units in self._hidden_units():
            parts.append(normalized_columns(draw, layer.fan_in, units, 1.0))
            parts += [np.ones(units), np.zeros(units)] if self.vbn else [np.zeros(units)]
        parts += [normalized_columns(draw, self.output.fan_in, self.output.units, self.settings.init_scale),
                  np.zeros(self.output.units)]
        return np.concatenate(parts).astype(np.float32)

    def unflatten(self, params_p):
        """[(weights_iu, gamma_u, beta_u) or (weights_iu, bias_u)] per hidden layer, (weights, bias) of the output."""
        at, hidden = 0, []

        def take(n):
            nonlocal at
            at += n
            return params_p[at - n:at]

        for layer, units in self._hidden_units():
            weights = take(layer.fan_in * units).reshape(layer.fan_in, units)
            hidden.append((weights, take(units), take(units)) if self.vbn else (weights, take(units)))
        output = (take(self.output.fan_in * self.output.units).reshape(self.output.fan_in, self.output.units),
                  take(self.output.units))
        return hidden, output

    def bind(self, params_p):
        """Fix the member's parameters; with VBN, run the reference batch through them first."""
        return BoundConvNet(self, params_p)

    def useful_lanes(self, requested):
        """Lanes share one C++ vector env, whose batched step is cheaper than single ones; each
        lane's weights are read once a step, so their sum must stay in cache (CONV_LANE_WEIGHT_BYTES)."""
        return max(1, min(requested, CONV_LANE_WEIGHT_BYTES // (4 * self.n_params)))

    def lanes(self, n_lanes):
        return ConvLanes(self, n_lanes)

    def fit_affines(self, hidden):
        """Per hidden layer (scale or None, shift) to play with, and the VBN reference moments (None without VBN)."""
        if not self.vbn:
            return [(None, parts[1]) for parts in hidden], None
        if self.reference is None:
            raise RuntimeError("policy.vbn is on but no reference batch was set")
        linears = [functools.partial(layer, weights_iu=parts[0]) for layer, parts in zip(self.hidden, hidden)]
        return fit_reference(self.reference_frames, linears, [parts[1:] for parts in hidden], relu)
