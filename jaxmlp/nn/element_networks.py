"""Per-element feed-forward networks: one set of weights per species, all evaluated
as batched einsums.

Behler-Parrinello and DeepPot-SE give every element its own atomic-energy network.
Instead of gathering each atom's weights, every atom goes through every species'
network (S times the cost of one network, no gather, vectorised), and the atom's own
species column is selected at the end with :func:`select_species`.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp


class SpeciesDense(nn.Module):
    """One dense layer per species, applied to every atom for every species.

    ``x`` [n, in] (shared input) or [n, S, in] -> [n, S, features]; LeCun-normal kernels
    [S, in, features], zero biases.
    """

    num_species: int
    features: int

    @nn.compact
    def __call__(self, x):
        init = nn.initializers.lecun_normal(in_axis=-2, out_axis=-1, batch_axis=(0,))
        kernel = self.param(
            "kernel", init, (self.num_species, x.shape[-1], self.features)
        )
        bias = self.param(
            "bias", nn.initializers.zeros, (self.num_species, self.features)
        )
        kernel, bias = kernel.astype(x.dtype), bias.astype(x.dtype)
        if x.ndim == 2:
            return jnp.einsum("ni,sio->nso", x, kernel) + bias[None]
        return jnp.einsum("nsi,sio->nso", x, kernel) + bias[None]


def select_species(y, species):
    """[n, S] -> [n]: each atom's own species column."""
    return jnp.take_along_axis(y, species[:, None], axis=1)[:, 0]
