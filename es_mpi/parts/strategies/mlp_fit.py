"""Supervised fitting of an MLPPolicy's flat parameters with numpy backprop: softmax
cross-entropy (with an optional entropy bonus) for discrete heads, squared error for
continuous ones. Used by action-space CEM to imitate the elite's actions."""

import numpy as np

from es_mpi.parts.policies.mlp import elu


def _activation_forward(name, pre):
    if name == "tanh":
        return np.tanh(pre)
    if name == "relu":
        return np.maximum(pre, 0)
    return elu(pre)


def _activation_backward(name, pre, post, grad):
    if name == "tanh":
        return grad * (1 - post * post)
    if name == "relu":
        return grad * (pre > 0)
    return grad * np.where(pre > 0, 1.0, post + 1.0)


def loss_and_gradient(policy, params_p, inputs_bi, targets, entropy=0.0):
    """(mean loss, gradient as a flat float32 vector laid out like params_p).

    `targets`: action indices (discrete head) or action vectors (continuous head).
    """
    layers = policy.unflatten(params_p)
    name = policy.settings.activation
    activations, pres = [np.asarray(inputs_bi, dtype=np.float32)], []
    for weights, bias in layers[:-1]:
        pre = activations[-1] @ weights + bias
        pres.append(pre)
        activations.append(_activation_forward(name, pre))
    weights, bias = layers[-1]
    out_bu = activations[-1] @ weights + bias
    batch = len(out_bu)
    if policy.head.kind == "discrete":
        shifted_bu = out_bu - out_bu.max(axis=1, keepdims=True)
        log_probs_bu = shifted_bu - np.log(np.exp(shifted_bu).sum(axis=1, keepdims=True))
        probs_bu = np.exp(log_probs_bu)
        actions_b = np.asarray(targets, dtype=np.int64) - policy.head.start
        rows = np.arange(batch)
        entropy_b = -(probs_bu * log_probs_bu).sum(axis=1)
        loss = float(-log_probs_bu[rows, actions_b].mean() - entropy * entropy_b.mean())
        grad_bu = probs_bu.copy()
        grad_bu[rows, actions_b] -= 1.0
        grad_bu += entropy * probs_bu * (log_probs_bu + entropy_b[:, None])
    else:
        error_bu = out_bu - np.asarray(targets, dtype=np.float32).reshape(out_bu.shape)
        loss = float(0.5 * np.square(error_bu).sum(axis=1).mean())
        grad_bu = error_bu
    grad_bu = (grad_bu / batch).astype(np.float32)
    gradient_p = np.zeros_like(params_p, dtype=np.float32)
    grad_layers = policy.unflatten(gradient_p)
    for index in range(len(layers) - 1, -1, -1):
        grad_w, grad_b = grad_layers[index]
        grad_w[...] = activations[index].T @ grad_bu
        grad_b[...] = grad_bu.sum(axis=0)
        if index:
            grad_bu = _activation_backward(name, pres[index - 1], activations[index], grad_bu @ layers[index][0].T)
    return loss, gradient_p
