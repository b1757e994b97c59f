"""The conv forward pass before issue 23, kept only to time the current one against in one run.

Frames scaled to float32 channels-last through a transposed view, then per conv layer an im2col
copy (a stride-tricks view, then one copy) and one stacked matmul per lane, per-unit affines
broadcast; the same BLAS call per lane as the current pass, so the comparison is of layouts and
copies. Members' VBN affines come from the current policy's own fit.
"""

import numpy as np

from es_mpi.parts.policies.conv import PIXEL_SCALE, ConvLayer


def relu(x):
    return np.maximum(x, 0, out=x)


def patches(layer, x_bhwc):
    """im2col: (B, out positions, fan_in) from a strided view, one copy."""
    b, k, s = x_bhwc.shape[0], layer.kernel, layer.stride
    sb, sh, sw, sc = x_bhwc.strides
    out_h, out_w, _ = layer.out_hwc
    view = np.lib.stride_tricks.as_strided(x_bhwc, shape=(b, out_h, out_w, k, k, x_bhwc.shape[3]),
                                           strides=(sb, s * sh, s * sw, sh, sw, sc), writeable=False)
    return view.reshape(b, out_h * out_w, layer.fan_in)


class Im2colLanes:
    """The previous ConvLanes forward pass, one lane per member of `members` (parameter vectors)."""

    def __init__(self, policy, members):
        self.policy, n = policy, len(members)
        layers = [*policy.hidden, policy.output]
        self.weights = [np.zeros((n, layer.fan_in, layer.out_hwc[-1]), dtype=np.float32) for layer in layers]
        self.scales = [np.ones((n, *(1,) * (len(layer.out_hwc) - 1), layer.out_hwc[-1]), dtype=np.float32)
                       for layer in policy.hidden]
        self.shifts = [np.zeros_like(scale) for scale in self.scales] + [np.zeros((n, policy.output.units), np.float32)]
        fitted = policy.lanes(1)
        for lane, params_p in enumerate(members):
            hidden, (out_weights, out_bias) = policy.unflatten(params_p)
            fitted.load(0, params_p)
            for weights, parts in zip(self.weights, hidden):
                weights[lane] = parts[0]
            self.weights[-1][lane] = out_weights
            for scale, shift, (layer_scale, layer_shift) in zip(self.scales, self.shifts, fitted.affines[0]):
                scale[lane] = 1.0 if layer_scale is None else layer_scale.reshape(scale.shape[1:])
                shift[lane] = layer_shift.reshape(shift.shape[1:])
            self.shifts[-1][lane] = out_bias

    def __call__(self, obs):
        c, h, w = self.policy.obs_chw
        x_bchw = np.asarray(obs).reshape(-1, c, h, w)
        n = len(x_bchw)
        x = np.multiply(x_bchw.transpose(0, 2, 3, 1), PIXEL_SCALE, out=np.empty((n, h, w, c), dtype=np.float32))
        for layer, weights, scale, shift in zip(self.policy.hidden, self.weights, self.scales, self.shifts):
            if isinstance(layer, ConvLayer):
                z = np.matmul(patches(layer, x), weights[:n]).reshape(n, *layer.out_hwc)
            else:
                z = np.matmul(x.reshape(n, 1, layer.fan_in), weights[:n]).reshape(n, layer.units)
            if self.policy.vbn:
                z *= scale[:n]
            z += shift[:n]
            x = relu(z)
        logits = np.matmul(x.reshape(n, 1, -1), self.weights[-1][:n]).reshape(n, -1) + self.shifts[-1][:n]
        return self.policy.head.rows(logits)
