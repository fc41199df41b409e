"""PaiNN: polarizable atom interaction network (equivariant message passing).

Schütt, Unke & Gastegger, "Equivariant message passing for the prediction of tensorial
properties and molecular spectra" (ICML 2021, arXiv:2102.03150). Each atom i carries
scalar features s_i [F] (rotation invariant) and vector features v_i [3, F] (each of
the F channels a Cartesian vector that rotates and inverts with the structure). Vectors
start at zero and enter through the edge directions r̂_ij, so the network is O(3)
equivariant by construction: the energy is invariant, forces and stress equivariant.

Edge basis: the sin expansion rbf_n(r) = sin(n pi r / r_max) / r, n = 1..``num_rbf``
(r in Å), times the cosine cutoff f_c(r) = 0.5 (cos(pi r / r_max) + 1), zero with zero
slope at r_max (energy C1 across the cutoff).

Each of ``num_interactions`` layers is a message block then an update block
(both residual); ``Dense`` is atom-wise and acts on the feature axis (for vectors, on
each Cartesian component alike, without bias, which keeps them equivariant):

* message (eq. 7-8): x_ij = phi(s_j) * W(r_ij), phi = Dense(3F) . silu . Dense(F) and
  W = Dense(3F)(rbf(r_ij)) f_c(r_ij), split into (x_vv, x_s, x_vs) of F each;
  Δs_i = sum_j x_s,  Δv_i = sum_j x_vv * v_j + x_vs * r̂_ij,
  with the sums divided by sqrt(``avg_num_neighbors``): with the cosine cutoff the
  weighted neighbour count is close to the square root of the raw count at 4-5 Å
  cutoffs in condensed matter, so features stay O(1).
* update (eq. 9-11): U v_i, V v_i linear maps of the channels;
  a = Dense(3F) . silu . Dense(F) of [s_i, ||V v_i||], split into (a_vv, a_sv, a_ss);
  Δv_i = a_vv * U v_i,  Δs_i = a_sv * <U v_i, V v_i> + a_ss.

The per-atom energy is the readout Dense(1) . silu . Dense(F/2) of s_i (eV, before
jaxmlp's scale, shift and E0). ||V v|| is sqrt(|V v|^2 + eps), smooth and with a finite
gradient at v = 0 (isolated atoms and the first layer's update before any vector
arrives): the O(sqrt eps) = 1e-4 offset is a constant, absorbed by the biases.

Shapes: ``inputs.vectors`` [n_edges, 3] Å (receiver minus sender) -> [n_nodes] eV.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxmlp.edges import EdgeInputs
from jaxmlp.nn.radial import mask_vectors, safe_norm

NORM_EPS = 1e-8  # Å^0: in sqrt(|v|^2 + eps), features are dimensionless


def cosine_cutoff(r, r_max: float):
    """0.5 (cos(pi r / r_max) + 1) inside r_max, 0 outside (C1 at r_max)."""
    return jnp.where(r < r_max, 0.5 * (jnp.cos(jnp.pi * r / r_max) + 1.0), 0.0)


def sin_rbf(r, num_rbf: int, r_max: float):
    """[n_edges, num_rbf] sin(n pi r / r_max) / r, n = 1..num_rbf; r > 0 in Å."""
    n = jnp.arange(1, num_rbf + 1, dtype=r.dtype)
    return jnp.sin(n[None, :] * (jnp.pi / r_max) * r[:, None]) / r[:, None]


def smooth_vector_norm(v, axis: int = -2):
    """sqrt(sum v^2 + eps) over the Cartesian ``axis``: smooth, finite gradient at 0."""
    return jnp.sqrt(jnp.sum(v * v, axis=axis) + NORM_EPS)


class PaiNN(nn.Module):
    """PaiNN (see the module docstring); per-atom energies in eV.

    Attributes:
        num_species: size of the species table.
        r_max: cutoff, Å.
        avg_num_neighbors: the message sums are divided by its square root.
        features: F, width of the scalar and of the vector features.
        num_interactions: message + update layers.
        num_rbf: sin radial basis functions.
    """

    num_species: int
    r_max: float
    avg_num_neighbors: float = 16.0
    features: int = 64
    num_interactions: int = 3
    num_rbf: int = 20

    @nn.compact
    def __call__(self, inputs: EdgeInputs):
        f = self.features
        n_nodes = inputs.n_nodes
        senders, receivers = inputs.senders, inputs.receivers
        vectors = mask_vectors(inputs.vectors, inputs.edge_mask, self.r_max)
        r = safe_norm(vectors)  # [n_edges] Å, > 0 (padding sits at 2 r_max)
        unit = vectors / r[:, None]  # [n_edges, 3]
        cutoff = jnp.where(inputs.edge_mask, cosine_cutoff(r, self.r_max), 0.0)
        rbf = sin_rbf(r, self.num_rbf, self.r_max)  # [n_edges, num_rbf]

        s = nn.Embed(self.num_species, f, name="embedding")(inputs.species)  # [n, F]
        v = jnp.zeros((n_nodes, 3, f), s.dtype)  # [n_nodes, 3, F]

        norm = math.sqrt(self.avg_num_neighbors)

        def aggregate(x):
            total = jax.ops.segment_sum(x, receivers, num_segments=n_nodes)
            return total / norm

        for layer in range(self.num_interactions):
            # message block
            phi = nn.Dense(f, name=f"message_{layer}_phi_in")(s)
            phi = nn.Dense(3 * f, name=f"message_{layer}_phi_out")(nn.silu(phi))
            w = nn.Dense(3 * f, name=f"message_{layer}_filter")(rbf)
            x = phi[senders] * (w * cutoff[:, None])  # [n_edges, 3F]
            x_vv, x_s, x_vs = jnp.split(x, 3, axis=-1)  # [n_edges, F] each
            dv = x_vv[:, None, :] * v[senders] + x_vs[:, None, :] * unit[:, :, None]
            s = s + aggregate(x_s)
            v = v + aggregate(dv)  # [n_nodes, 3, F]

            # update block
            uv = nn.Dense(f, use_bias=False, name=f"update_{layer}_U")(v)
            vv = nn.Dense(f, use_bias=False, name=f"update_{layer}_V")(v)
            a = jnp.concatenate([s, smooth_vector_norm(vv)], axis=-1)  # [n, 2F]
            a = nn.Dense(f, name=f"update_{layer}_in")(a)
            a = nn.Dense(3 * f, name=f"update_{layer}_out")(nn.silu(a))
            a_vv, a_sv, a_ss = jnp.split(a, 3, axis=-1)  # [n_nodes, F] each
            v = v + a_vv[:, None, :] * uv
            s = s + a_sv * jnp.sum(uv * vv, axis=-2) + a_ss

        self.sow("intermediates", "vectors", v)  # [n_nodes, 3, F], for tests
        h = nn.silu(nn.Dense(max(f // 2, 1), name="readout_hidden")(s))
        return nn.Dense(1, name="readout")(h)[:, 0]  # [n_nodes]
