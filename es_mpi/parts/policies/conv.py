"""Convolutional policies for Atari frames: numpy float32 over a flat parameter vector.

Layout is channels-last (batch, height, width, channels). A convolution is im2col through
stride tricks (a view, then one copy) and one BLAS matmul per layer. While playing, matmuls
are stacked per observation ((B, P, K) @ (K, O)), so each observation's floats are those it
would get alone: results never depend on which other observations share the call. Only the
VBN reference batch, always passed whole, goes through one flat (B*P, K) @ (K, O) matmul.
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

    def patches(self, x_bhwc):
        """im2col: (B, out positions, fan_in) from a strided view, one copy."""
        b, k, s = x_bhwc.shape[0], self.kernel, self.stride
        sb, sh, sw, sc = x_bhwc.strides
        out_h, out_w, _ = self.out_hwc
        view = np.lib.stride_tricks.as_strided(
            x_bhwc, shape=(b, out_h, out_w, k, k, x_bhwc.shape[3]),
            strides=(sb, s * sh, s * sw, sh, sw, sc), writeable=False)
        return view.reshape(b, out_h * out_w, self.fan_in)

    def __call__(self, x_bhwc, weights_iu, stacked=True):
        b = x_bhwc.shape[0]
        out_bqu = np.empty((b, self.out_hwc[0] * self.out_hwc[1], self.filters), dtype=np.float32)
        for start in range(0, b, IM2COL_CHUNK):
            patches = self.patches(x_bhwc[start:start + IM2COL_CHUNK])
            out = out_bqu[start:start + IM2COL_CHUNK]
            if stacked:
                np.matmul(patches, weights_iu, out=out)
            else:
                np.matmul(patches.reshape(-1, self.fan_in), weights_iu, out=out.reshape(-1, self.filters))
        return out_bqu.reshape(b, *self.out_hwc)


class DenseLayer:
    """Fully connected over the flattened input, one stacked matmul row per observation."""

    def __init__(self, fan_in, units):
        self.fan_in, self.units, self.out_hwc = fan_in, units, (units,)

    def __call__(self, x_b, weights_iu, stacked=True):
        b = x_b.shape[0]
        if not stacked:
            return x_b.reshape(b, self.fan_in) @ weights_iu
        return np.matmul(x_b.reshape(b, 1, self.fan_in), weights_iu).reshape(b, self.units)


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
    """Observations (uint8 or float, any batch shape) -> (B, H, W, C) float32 in [0, 1]."""
    x_bchw = np.asarray(obs, dtype=np.float32).reshape(-1, *obs_chw)
    x_bhwc = np.ascontiguousarray(x_bchw.transpose(0, 2, 3, 1))
    x_bhwc *= PIXEL_SCALE
    return x_bhwc


class BoundConvNet:
    """A member's network with its VBN affines fixed: call it on one observation for an action."""

    def __init__(self, policy, linears, affines, output, moments):
        self.policy, self.linears, self.affines, self.output = policy, linears, affines, output
        self.moments = moments  # per hidden layer (mean_c, var_c) of the reference batch; None without VBN

    def logits(self, obs):
        """(B, n_outputs) for a batch of observations; row i depends on observation i only."""
        x = prepare_frames(obs, self.policy.obs_chw)
        for linear, (scale, shift) in zip(self.linears, self.affines):
            x = finish_hidden(linear(x), scale, shift, relu)
        out_linear, out_bias = self.output
        return out_linear(x) + out_bias

    def actions(self, obs):
        return [self.policy.head(row) for row in self.logits(obs)]

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
        hidden, (out_weights, out_bias) = self.unflatten(params_p)
        linears = [functools.partial(layer, weights_iu=parts[0]) for layer, parts in zip(self.hidden, hidden)]
        output = (functools.partial(self.output, weights_iu=out_weights), out_bias)
        if not self.vbn:
            return BoundConvNet(self, linears, [(None, parts[1]) for parts in hidden], output, None)
        if self.reference is None:
            raise RuntimeError("policy.vbn is on but no reference batch was set")
        reference_linears = [functools.partial(layer, weights_iu=parts[0], stacked=False)
                             for layer, parts in zip(self.hidden, hidden)]
        affines, moments = fit_reference(self.reference_frames, reference_linears,
                                         [parts[1:] for parts in hidden], relu)
        return BoundConvNet(self, linears, affines, output, moments)

