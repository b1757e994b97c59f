"""Multi-layer perceptron policy as a numpy forward pass over a flat float32 vector."""

import numpy as np

from es_mpi.parts.policies.base import Policy, normalized_columns
from es_mpi.parts.policies.vbn import finish_hidden, fit_reference


def elu(x):
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


ACTIVATIONS = {
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0, out=x),  # in place: the forward pass owns its temporaries
    "elu": elu,
}


LANE_WEIGHT_BYTES = 512 * 1024  # measured: 16 lanes of a 64x64 net gain 10%, 2 lanes of a 256x256 one lose 4%


class ActionHead:
    """Turns network outputs into an environment action."""

    def __init__(self, kind, action_space, bins):
        self.kind = kind
        if kind == "discrete":
            self.n_outputs = int(action_space.n)
            self.start = int(getattr(action_space, "start", 0))
        else:
            self.low = np.asarray(action_space.low, dtype=np.float32).ravel()
            self.high = np.asarray(action_space.high, dtype=np.float32).ravel()
            self.shape = action_space.shape
            self.flat = len(self.shape) == 1
            if kind == "continuous":
                self.n_outputs = self.low.size
            else:
                self.bins = bins
                self.n_outputs = self.low.size * bins
                self.levels_aj = self.low[:, None] + (self.high - self.low)[:, None] * (
                    np.arange(bins, dtype=np.float32) / (bins - 1))
                self.rows_a = np.arange(self.low.size)

    def __call__(self, out):
        """min(max(out, low), high) is np.clip's result without its Python wrapper's cost."""
        if self.kind == "discrete":
            return int(np.argmax(out)) + self.start
        if self.kind == "continuous":
            action = np.minimum(np.maximum(out, self.low), self.high)
            return action if self.flat else action.reshape(self.shape)
        picks_a = np.argmax(out.reshape(self.low.size, self.bins), axis=1)
        return self.levels_aj[self.rows_a, picks_a].reshape(self.shape)

    def rows(self, out_lu):
        """One action per row of outputs: what __call__ gives for each row, in fewer numpy calls."""
        if self.kind == "discrete":
            return [int(pick) + self.start for pick in np.argmax(out_lu, axis=1)]
        if self.kind == "continuous":
            actions_la = np.minimum(np.maximum(out_lu, self.low), self.high)
            return list(actions_la if self.flat else actions_la.reshape(-1, *self.shape))
        picks_la = np.argmax(out_lu.reshape(len(out_lu), self.low.size, self.bins), axis=2)
        return [self.levels_aj[self.rows_a, picks_a].reshape(self.shape) for picks_a in picks_la]

    def sample(self, out, draw, action_std):
        """A random action: softmax sampling (discrete), Gaussian around the output (continuous)."""
        if self.kind == "discrete":
            weights = np.exp(out - out.max())
            cumulative = np.cumsum(weights)
            pick = int(np.searchsorted(cumulative, draw.random() * cumulative[-1], side="right"))
            return min(pick, self.n_outputs - 1) + self.start
        if self.kind == "continuous":
            noisy = out + action_std * draw.standard_normal(out.size).astype(np.float32)
            return np.clip(noisy, self.low, self.high).reshape(self.shape)
        raise ValueError("sampled actions need a discrete or continuous action head, not bins")


class MLPPolicy(Policy):
    def __init__(self, settings, n_inputs, head):
        self.settings, self.head = settings, head
        self.sizes = [n_inputs, *settings.hidden, head.n_outputs]
        self.activation = ACTIVATIONS[settings.activation]
        self.vbn = settings.vbn  # hidden layers then carry (gamma, beta) instead of a bias
        self.n_params = sum(i * o + o for i, o in zip(self.sizes[:-1], self.sizes[1:]))
        self.n_params += sum(self.sizes[1:-1]) if self.vbn else 0
        self.reference = None

    def set_reference(self, observations):
        """The VBN reference batch (raw observations), shared by every member."""
        self.reference = np.asarray(observations, dtype=np.float32).reshape(-1, self.sizes[0])

    def init_params(self, draw):
        """Normalised-column Gaussian weights (unit norm; output layer `init_scale`), zero biases."""
        parts = []
        for layer, (n_in, n_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            scale = self.settings.init_scale if layer == len(self.sizes) - 2 else 1.0
            hidden_vbn = self.vbn and layer < len(self.sizes) - 2
            parts += [normalized_columns(draw, n_in, n_out, scale), *([np.ones(n_out)] if hidden_vbn else []),
                      np.zeros(n_out)]
        return np.concatenate(parts).astype(np.float32)

    def unflatten(self, params_p):
        """(weights_iu, bias_u) views into params_p, layer by layer; (weights_iu, gamma_u, beta_u) for VBN layers."""
        layers, at = [], 0
        for layer, (n_in, n_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            weights = params_p[at:at + n_in * n_out].reshape(n_in, n_out)
            at += n_in * n_out
            n_vectors = 2 if self.vbn and layer < len(self.sizes) - 2 else 1
            layers.append((weights, *(params_p[at + v * n_out:at + (v + 1) * n_out] for v in range(n_vectors))))
            at += n_vectors * n_out
        return layers

    def bind(self, params_p):
        """A function obs_vector -> action for fixed parameters (unflattened once per episode).

        `x.dot(w)` calls the same BLAS gemv as `x @ w` (same bits) with half the call overhead.
        """
        layers, activation, head = self.unflatten(params_p), self.activation, self.head
        hidden, (last_w, last_b) = layers[:-1], layers[-1]
        if self.vbn:
            return self._bind_vbn(hidden, last_w, last_b)

        def act(x):
            for weights, bias in hidden:
                x = activation(x.dot(weights) + bias)
            return head(x.dot(last_w) + last_b)

        return act

    def useful_lanes(self, requested):
        """How many lanes pay off: batching saves numpy call overhead, which matters for small
        networks only; the lanes' weights must stay in cache (LANE_WEIGHT_BYTES), or each step
        streams them from memory and costs more than it saves. VBN members fit their own
        affines, so they play alone. 1 means one member at a time."""
        if self.vbn:
            return 1
        return max(1, min(requested, LANE_WEIGHT_BYTES // (4 * self.n_params)))

    def lanes(self, n_lanes):
        return LanesForward(self, n_lanes)

    def _bind_vbn(self, hidden, last_w, last_b):
        """Hidden affines fixed by the reference batch through these parameters (see vbn.py)."""
        if self.reference is None:
            raise RuntimeError("policy.vbn is on but no reference batch was set")
        linears = [(lambda x, w=weights: x @ w) for weights, _, _ in hidden]
        activation, head = self.activation, self.head
        affines, _ = fit_reference(self.reference, linears, [parts[1:] for parts in hidden],
                                   lambda _, z, scale, shift: finish_hidden(z, scale, shift, activation))

        def act(x):
            for linear, (scale, shift) in zip(linears, affines):
                x = finish_hidden(linear(x), scale, shift, activation)
            return head(x @ last_w + last_b)

        return act

    def bind_sampling(self, params_p, draw, action_std):
        """Like `bind`, but actions are sampled from the output distribution with `draw`."""
        layers, activation, head = self.unflatten(params_p), self.activation, self.head
        hidden, (last_w, last_b) = layers[:-1], layers[-1]

        def act(x):
            for weights, bias in hidden:
                x = activation(x @ weights + bias)
            return head.sample(x @ last_w + last_b, draw, action_std)

        return act


class LanesForward:
    """The forward pass of several members at once, one lane each (see rollout.play).

    Each layer keeps its lanes' weights in one contiguous (lanes x in x out) array, so a layer is
    one matmul over all lanes, which numpy runs as one BLAS gemv per lane: the same call `bind`
    makes, so a lane's output does not depend on the other lanes.
    """

    def __init__(self, policy, n_lanes):
        self.policy = policy
        self.layers = [(np.zeros((n_lanes, *weights.shape), dtype=np.float32),
                        np.zeros((n_lanes, 1, bias.size), dtype=np.float32))
                       for weights, bias in policy.unflatten(np.zeros(policy.n_params, dtype=np.float32))]
        self.activation, self.head = policy.activation, policy.head

    def load(self, lane, params_p):
        for (weights_liu, bias_l1u), (weights, bias) in zip(self.layers, self.policy.unflatten(params_p)):
            weights_liu[lane], bias_l1u[lane, 0] = weights, bias

    def move(self, source, target):
        """Copy one lane's parameters into another lane."""
        for weights_liu, bias_l1u in self.layers:
            weights_liu[target], bias_l1u[target] = weights_liu[source], bias_l1u[source]

    def __call__(self, x_lo):
        """Inputs of the first len(x_lo) lanes -> one action per lane."""
        x, matmul, n = x_lo[:, None], np.matmul, len(x_lo)
        for weights_liu, bias_l1u in self.layers[:-1]:
            x = self.activation(matmul(x, weights_liu[:n]) + bias_l1u[:n])
        weights_liu, bias_l1u = self.layers[-1]
        return self.head.rows((matmul(x, weights_liu[:n]) + bias_l1u[:n])[:, 0])
