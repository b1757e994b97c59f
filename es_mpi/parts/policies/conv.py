"""Convolutional policies for Atari frames: numpy float32 over a flat parameter vector.

Every convolution of both networks has a stride that divides its kernel (8/4, 4/2, 3/1), so
it is kernel / stride vertical "taps": cut the input into bands of `stride` rows; for each
output position, a band's `stride` x kernel window (all channels) is one row vector; tap d is
one matmul of those rows, d bands down, by the kernel rows d * stride.. of the weights; the taps'
outputs are added. The rows of all taps are one array (the windows of consecutive bands) read at
row offsets, so the only copy is the one that lays the windows out: for frames, one copy that
moves each kernel-wide run of pixels as a single item; for later layers, the affine that finishes
the layer before writes its output straight into that layout. The 1/255 pixel scale is folded
into the first layer's weights, so frames are cast, never scaled.

While playing, a layer is one stacked matmul over the observations, which numpy runs as one
BLAS call per observation and tap with the shapes a batch of one has; everything else is
elementwise. So each observation's floats are those it would get alone (tests/test_conv_policy.py
checks every batch size from 1 to 16). The VBN reference batch goes through the very same calls.
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
REFERENCE_CHUNK = 16  # reference observations per stacked matmul: bounds the temporaries
CONV_LANE_WEIGHT_BYTES = 6 * 2**20  # see ConvPolicy.useful_lanes; measured in benchmarks/atari.py


def relu_into(following, zeros, z):
    """max(z, 0) written in the input layout of the layer `following` (a new array): numpy's maximum
    against an array of zeros runs vectorised, against 0 not."""
    view = following.arrange(z)
    return np.maximum(view, zeros, out=np.empty(view.shape, dtype=np.float32))


class ConvLayer:
    """VALID convolution whose stride divides its kernel, as kernel / stride vertical taps.

    Input layout (`arrange`): (band, output column, window), a window being the stride x kernel
    input patch of one band at one output column, ordered (row in band, column, channel) for
    hidden layers, whose channels-last outputs give each row of it as one contiguous run, and
    (channel, row in band, column) for frames, which come channel-first. Neighbouring windows
    overlap (kernel > stride), so the layout holds some inputs more than once. `weights_iu` (the
    parameter layout) has rows ordered (kernel row, kernel column, input channel); `arrange_weights`
    sorts them into one (window, filters) matrix per tap. With `input_scale`, the weights also
    carry the input's scale.
    """

    def __init__(self, in_hwc, filters, kernel, stride, channels_first=False, input_scale=None):
        height, width, channels = in_hwc
        if kernel % stride:
            raise ValueError(f"a {kernel}x{kernel} convolution with stride {stride}: the stride must divide the kernel")
        self.kernel, self.stride, self.filters, self.channels = kernel, stride, filters, channels
        self.out_hwc = ((height - kernel) // stride + 1, (width - kernel) // stride + 1, filters)
        if min(self.out_hwc[:2]) < 1:
            raise ValueError(f"a {kernel}x{kernel} convolution does not fit a {height}x{width} input")
        self.taps = kernel // stride
        self.bands = self.out_hwc[0] + self.taps - 1
        self.window = stride * kernel * channels
        self.fan_in = kernel * kernel * channels
        self.channels_first, self.input_scale = channels_first, input_scale
        window = (channels, stride, kernel) if channels_first else (stride, kernel, channels)
        self.input_shape = (self.bands, self.out_hwc[1], *window)
        self.weight_shape = (self.taps, self.window, filters)

    def arrange(self, x_bhwc):
        """A view of channels-last maps (B, H, W, C) as this layer's input (B, *input_shape)."""
        x_bhwc = np.ascontiguousarray(x_bhwc, dtype=np.float32)  # no copy for the layer before's output
        s, k, c = self.stride, self.kernel, self.channels
        sb, sh, sw, _ = x_bhwc.strides
        return np.ndarray((x_bhwc.shape[0], self.bands, self.out_hwc[1], s, k * c), np.float32, x_bhwc, 0,
                          (sb, s * sh, s * sw, sh, 4)).reshape(-1, *self.input_shape)

    def arrange_weights(self, weights_iu, out):
        """Parameter-layout weights into `out`, (taps, window, filters), times `input_scale` if set."""
        t, s, k, c, f = self.taps, self.stride, self.kernel, self.channels, self.filters
        w = weights_iu.reshape(t, s, k, c, f)
        if self.channels_first:
            w = w.transpose(0, 3, 1, 2, 4)
        out = out.reshape(w.shape)
        if self.input_scale is None:
            np.copyto(out, w)
        else:
            np.multiply(w, self.input_scale, out=out)

    def linear(self, x_b, weights):
        """Input (B, *input_shape), contiguous, through tap weights (B or 1, taps, window, filters)
        -> pre-activations (B, out h, out w, filters), contiguous."""
        b, t, i = x_b.shape[0], self.taps, self.window
        out_h, out_w, f = self.out_hwc
        n = out_h * out_w
        # (B, taps, Q, I): tap d reads the windows from band d on; a view, overlapping across taps
        rows = np.ndarray((b, t, n, i), np.float32, x_b, 0, (x_b[0].nbytes, 4 * i * out_w, 4 * i, 4))
        per_tap = np.matmul(rows, weights)  # (B, taps, Q, U)
        if t == 1:
            return per_tap.reshape(b, out_h, out_w, f)
        z_bqu = np.add(per_tap[:, 0], per_tap[:, 1])
        for tap in range(2, t):
            z_bqu += per_tap[:, tap]
        return z_bqu.reshape(b, out_h, out_w, f)


class DenseLayer:
    """Fully connected over the flattened input, channels-last maps or a vector."""

    def __init__(self, in_shape, units):
        self.input_shape, self.units, self.out_hwc = tuple(in_shape), units, (units,)
        self.fan_in = int(np.prod(in_shape))
        self.weight_shape = (self.fan_in, units)

    def arrange(self, x_b):
        return x_b

    def arrange_weights(self, weights_iu, out):
        np.copyto(out, weights_iu)

    def linear(self, x_b, weights):
        """One (1, I) @ (I, U) row per observation through weights (B or 1, I, U)."""
        b = x_b.shape[0]
        return np.matmul(x_b.reshape(b, 1, self.fan_in), weights).reshape(b, self.units)


def build_layers(network, obs_chw, n_outputs):
    """Hidden layers of `network` for (channels, height, width) frames, and the output layer."""
    conv_specs, dense_units = NETWORKS[network]
    shape = (obs_chw[1], obs_chw[2], obs_chw[0])
    hidden = []
    for filters, kernel, stride in conv_specs:
        first = not hidden
        hidden.append(ConvLayer(shape, filters, kernel, stride, channels_first=first,
                                input_scale=PIXEL_SCALE if first else None))
        shape = hidden[-1].out_hwc
    for units in dense_units:
        hidden.append(DenseLayer(shape, units))
        shape = hidden[-1].out_hwc
    return hidden, DenseLayer(shape, n_outputs)


def frame_windows(obs, obs_chw, layer):
    """Observations (uint8 or float, any batch shape) -> the first layer's input (B, *input_shape), float32.

    The values are the pixels themselves (the 1/255 is in the weights). One copy moves each
    kernel-wide run of a frame row, as one opaque item, to its place in a window; a cast to
    float32 follows unless the frames already are float32.
    """
    channels, height, width = obs_chw
    x = np.ascontiguousarray(np.asarray(obs).reshape(-1, channels, height, width))
    b, size, s, k = x.shape[0], x.itemsize, layer.stride, layer.kernel
    run = np.dtype((np.void, k * size))
    runs = np.ndarray((b, layer.bands, layer.out_hwc[1], channels, s), run, x, 0,
                      (x[0].nbytes, s * width * size, s * size, height * width * size, width * size))
    out = np.empty((b, *layer.input_shape), dtype=np.float32)
    if x.dtype == np.float32:
        np.copyto(out.view(run).reshape(runs.shape), runs)
        return out
    moved = np.empty(runs.shape, dtype=run)
    np.copyto(moved, runs)
    np.copyto(out, moved.view(x.dtype).reshape(out.shape), casting="same_kind")
    return out


class ConvLanes:
    """The forward pass of several members at once, one lane each (see rollout.play).

    Each layer keeps its lanes' weights in one (lanes, ...) array in the layer's own layout and the
    lanes' VBN affines (or biases) tiled over the next layer's input; a layer is one stacked matmul over
    the lanes, which numpy runs as BLAS calls per lane with the shapes a lone member's calls have.
    So a lane's actions are bit for bit those of the member played alone (`ConvPolicy.bind` is a
    one-lane ConvLanes).
    """

    def __init__(self, policy, n_lanes):
        self.policy, self.head = policy, policy.head
        layers = [*policy.hidden, policy.output]
        self.weights = [np.zeros((n_lanes, *layer.weight_shape), dtype=np.float32) for layer in layers]
        self.scales = [np.ones((n_lanes, *policy.affine_shape(i)), dtype=np.float32) for i in range(len(policy.hidden))]
        self.shifts = [np.zeros((n_lanes, *policy.affine_shape(i)), dtype=np.float32) for i in range(len(layers))]
        self.moments = [None] * n_lanes  # per lane, the VBN reference (mean_c, var_c) of each hidden layer
        self.affines = [None] * n_lanes  # per lane, the (scale or None, shift) of each hidden layer

    def load(self, lane, params_p):
        """A member's parameters into `lane`; with VBN, its reference pass fixes the lane's affines."""
        hidden, (out_weights, out_bias) = self.policy.unflatten(params_p)
        for layer, weights, parts in zip(self.policy.hidden, self.weights, hidden):
            layer.arrange_weights(parts[0], out=weights[lane])
        self.policy.output.arrange_weights(out_weights, out=self.weights[-1][lane])
        arranged = [weights[lane:lane + 1] for weights in self.weights]
        self.affines[lane], self.moments[lane] = self.policy.fit_affines(hidden, arranged)
        for scale, shift, (layer_scale, layer_shift) in zip(self.scales, self.shifts, self.affines[lane]):
            scale[lane] = 1.0 if layer_scale is None else layer_scale
            shift[lane] = layer_shift
        self.shifts[-1][lane] = out_bias

    def move(self, source, target):
        """Copy one lane's parameters into another lane."""
        for array in (*self.weights, *self.scales, *self.shifts):
            array[target] = array[source]
        self.moments[target], self.affines[target] = self.moments[source], self.affines[source]

    def logits(self, obs, lanes=None):
        """(B, n_outputs): observation b through lane b (lanes=None), or every observation through lane `lanes`."""
        policy = self.policy
        x = frame_windows(obs, policy.obs_chw, policy.hidden[0])
        pick = slice(0, len(x)) if lanes is None else slice(lanes, lanes + 1)
        for index, layer in enumerate(policy.hidden):
            z = layer.linear(x, self.weights[index][pick])
            x = policy.finish(index, z, self.scales[index][pick] if policy.vbn else None, self.shifts[index][pick])
        return policy.output.linear(x, self.weights[-1][pick]) + self.shifts[-1][pick]

    def __call__(self, obs):
        """Observations of the first len(obs) lanes -> one action per lane."""
        return self.head.rows(self.logits(obs))


class BoundConvNet:
    """A member's network with its VBN affines fixed: call it on one observation for an action."""

    def __init__(self, policy, params_p):
        self.policy, self.lane = policy, ConvLanes(policy, 1)
        self.lane.load(0, params_p)
        self.moments = self.lane.moments[0]  # per hidden layer (mean_c, var_c) of the reference batch; None without VBN
        self.affines = self.lane.affines[0]  # per hidden layer (scale_u or None, shift_u)

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
        self.reference = self.reference_windows = None
        following = [*self.hidden[1:], self.output]  # the layer that reads each hidden layer's output
        self._relus = [functools.partial(relu_into, layer, np.zeros(layer.input_shape, dtype=np.float32))
                       for layer in following]

    def _hidden_units(self):
        return [(layer, layer.out_hwc[-1]) for layer in self.hidden]

    def affine_shape(self, index):
        """Layer `index`'s per-unit (scale, shift), tiled over one observation's outputs of that layer,
        so that the affine's ufuncs run long inner loops."""
        return [*self.hidden, self.output][index].out_hwc

    def finish(self, index, z, scale, shift):
        """Hidden layer `index`'s affine (or bias) on its pre-activations `z`, in place, where they are
        not yet copied into overlapping windows; then ReLU, written in the layout the next layer reads."""
        return finish_hidden(z, scale, shift, self._relus[index])

    def set_reference(self, observations):
        """The VBN reference batch (raw observations, e.g. uint8 frames), shared by every member."""
        self.reference = np.asarray(observations)
        self.reference_windows = frame_windows(self.reference, self.obs_chw, self.hidden[0])

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

    def fit_affines(self, hidden, arranged):
        """Per hidden layer (scale or None, shift) to play with, and the VBN reference moments (None
        without VBN); `arranged` holds the member's weights as play reads them, (1, ...) per layer."""
        if not self.vbn:
            return [(None, parts[1]) for parts in hidden], None
        if self.reference is None:
            raise RuntimeError("policy.vbn is on but no reference batch was set")
        linears = [functools.partial(self._reference_linear, layer, weights)
                   for layer, weights in zip(self.hidden, arranged)]
        return fit_reference(self.reference_windows, linears, [parts[1:] for parts in hidden], self.finish)

    @staticmethod
    def _reference_linear(layer, weights, x_b):
        """`layer.linear` over the whole reference batch, a chunk at a time (the same calls play makes)."""
        return np.concatenate([layer.linear(x_b[start:start + REFERENCE_CHUNK], weights)
                               for start in range(0, len(x_b), REFERENCE_CHUNK)])
