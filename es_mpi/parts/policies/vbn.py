"""Virtual batch normalisation (Salimans et al., 2016; the ES paper's Atari networks).

Each evaluated member first passes a fixed reference batch through its own (perturbed)
hidden layers. Every layer's per-channel mean and variance over that batch fix an affine
map (scale, shift) that the member then applies to every observation it plays: a member's
action never depends on the other observations it sees, only on the reference batch and its
own parameters. The VBN scale (gamma) and shift (beta) are ordinary parameters.
"""

import numpy as np

EPSILON = 1e-5


def channel_moments(z):
    """Mean and variance (float64) of each channel (last axis) over all other axes."""
    z_bc = z.reshape(-1, z.shape[-1])
    return z_bc.mean(axis=0, dtype=np.float64), z_bc.var(axis=0, dtype=np.float64)


def normalizing_affine(mean_c, var_c, gamma_c, beta_c):
    """(scale, shift) in float32 so that z * scale + shift = gamma (z - mean) / sqrt(var + eps) + beta."""
    scale_c = np.asarray(gamma_c, dtype=np.float64) / np.sqrt(var_c + EPSILON)
    shift_c = np.asarray(beta_c, dtype=np.float64) - mean_c * scale_c
    return scale_c.astype(np.float32), shift_c.astype(np.float32)


def finish_hidden(z, scale, shift, activation):
    """Affine (VBN) or bias (scale None) on z in place, then the nonlinearity: the same ops for
    reference and play."""
    if scale is None:
        z += shift
    else:
        z *= scale
        z += shift
    return activation(z)


def fit_reference(reference, linears, norms, finish):
    """Run the reference batch through hidden layers `linears` with VBN parameters `norms`.

    `finish(index, z, scale, shift)` is what play does after linear layer `index` (the affine and
    the nonlinearity, see finish_hidden). Returns the per-layer (scale, shift) to play with and the
    (mean, var) they came from.
    """
    x, affines, moments = reference, [], []
    for index, (linear, (gamma_c, beta_c)) in enumerate(zip(linears, norms)):
        z = linear(x)
        mean_c, var_c = channel_moments(z)
        scale_c, shift_c = normalizing_affine(mean_c, var_c, gamma_c, beta_c)
        x = finish(index, z, scale_c, shift_c)
        affines.append((scale_c, shift_c))
        moments.append((mean_c, var_c))
    return affines, moments
