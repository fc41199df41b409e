"""A model defined outside jaxmlp, as a user's script would: registered, never edited in.

``coordination``: an embedded-atom-like many-body model. Each atom's energy is a small
MLP of its smooth coordination number (an *extra* input this architecture declares and
registers a builder for) plus a species-pair repulsion. Written with jax.numpy and flax
only, so it exercises the public seam and nothing of jaxmlp.nn.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

import jaxmlp


def _cutoff(r, r_max):
    """Smooth cosine cutoff, C1 at r_max; r may be 0 at padded edges."""
    return jnp.where(r < r_max, 0.5 * (jnp.cos(jnp.pi * r / r_max) + 1.0), 0.0)


def _lengths(inputs: jaxmlp.EdgeInputs):
    v = jnp.where(inputs.edge_mask[:, None], inputs.vectors, 1.0)
    return jnp.where(inputs.edge_mask, jnp.sqrt(jnp.sum(v * v, axis=-1)), 0.0)


R_MAX_FOR_COORDINATION = 4.0


def coordination(inputs: jaxmlp.EdgeInputs):
    """[n_nodes] smooth neighbour count within 4 Å (the extra this model needs)."""
    r = _lengths(inputs)
    weight = jnp.where(inputs.edge_mask, _cutoff(r, R_MAX_FOR_COORDINATION), 0.0)
    return jax.ops.segment_sum(weight, inputs.receivers, num_segments=inputs.n_nodes)


class Coordination(nn.Module):
    num_species: int
    r_max: float
    hidden: int = 8

    @nn.compact
    def __call__(self, inputs: jaxmlp.EdgeInputs):
        z = inputs.extras["coordination"][:, None]  # [n_nodes, 1]
        emb = nn.Embed(self.num_species, self.hidden)(
            inputs.species
        )  # [n_nodes, hidden]
        h = jnp.tanh(nn.Dense(self.hidden)(jnp.sqrt(z + 1.0)) + emb)
        embedding_energy = nn.Dense(1)(h)[:, 0]
        r = _lengths(inputs)
        a = self.param(
            "repulsion", nn.initializers.constant(0.5), (self.num_species,) * 2
        )
        pair = (a + a.T)[
            inputs.species[inputs.senders], inputs.species[inputs.receivers]
        ]
        rep = jnp.where(
            inputs.edge_mask, pair * jnp.exp(-2.0 * r) * _cutoff(r, self.r_max), 0.0
        )
        return embedding_energy + 0.5 * jax.ops.segment_sum(
            rep, inputs.receivers, num_segments=inputs.n_nodes
        )


def factory(spec: jaxmlp.ArchitectureSpec):
    return Coordination(spec.num_species, spec.r_max, **dict(spec.hyper))


jaxmlp.register_extra("coordination", coordination, overwrite=True)
jaxmlp.register_architecture(
    "coordination", factory, extras=("coordination",), overwrite=True
)
