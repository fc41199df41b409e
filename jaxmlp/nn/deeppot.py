"""DeepPot-SE: the smooth-edition two-body embedding descriptor ``se_e2_a`` of
DeePMD-kit and per-element fitting networks.

Zhang, Han, Wang, Saidi, Car & E, "End-to-end symmetry preserving inter-atomic
potential energy model for finite and extended systems" (NeurIPS 2018); Wang, Zhang,
Han & E, "DeePMD-kit" (Comput. Phys. Commun. 228, 178, 2018). Lengths in Å.

For atom i and each neighbour j within ``r_max`` (r = |r_ij|, r_ij = r_j - r_i):

* the smooth weight s(r) = sw(r) / r, with DeePMD-kit's switch
  sw = u^3 (-6 u^2 + 15 u - 10) + 1, u = (r - r_smooth) / (r_max - r_smooth), equal
  to 1 below ``r_smooth`` and to 0 (with zero first and second derivatives) at
  ``r_max``, so energies and forces are continuous as a neighbour crosses the cutoff;
* the environment row R_ij = s_hat(r) (1, x/r, y/r, z/r) [4], with
  s_hat = s / s_ref the dimensionless weight (``s_ref`` below);
* the embedding G_ij = N_{Z_j}(s_hat(r)) [M1], one embedding network per neighbour
  species (DeePMD-kit's ``type_one_side``), tanh layers with DeePMD-kit's residual
  connections (x + tanh(Wx + b) when the width is kept, (x, x) + tanh(Wx + b) when
  it doubles).

The descriptor is D_i = T_i^T T_i[:, :M2] [M1, M2] with T_i = sum_j R_ij^T G_ij /
(1 + sum_j s_hat_ij) [4, M1]: the contraction over the four rows removes the rotation
(T^T T is invariant under O(3), inversion included) and the sum over j the
permutation. The per-atom energy is E_i = F_{Z_i}(D_i) - F_{Z_i}(0), with F_Z the
fitting network of element Z (tanh layers, residual where widths agree) and the
subtraction making an isolated atom's network energy zero (jaxmlp's E0 is the
isolated-atom energy).

Normalisation (no pass over the data): DeePMD-kit standardises R with per-type means
and deviations taken from the data and divides T by ``sel``. Here s_ref is the
root-mean-square s of an ideal gas of neighbours inside r_max (2/r_max-ish, Å^-1), and
T is divided by 1 + the atom's own smooth weight sum, so T is a weighted average of
the embeddings, O(1) whatever the density: with a constant divisor (the average
neighbour count) the descriptor's RMS was 2.8 in the ethanol molecule (neighbours at
1.1 Å) and 0.04 in bulk copper, and DeepPot-SE collapsed on ethanol (tanh
saturation). The divisor is smooth (each weight vanishes with two derivatives at
r_max) and 1 for an isolated atom.

Edge-based: the descriptor is a segment sum over edges, no neighbour matrix and no
``sel`` (maximum neighbour count) to choose. The embedding is evaluated for every
species on every edge and selected by the neighbour's species (S times the cost of one
network, no weight gather).

Shapes: ``inputs.vectors`` [n_edges, 3] Å (receiver minus sender) -> [n_nodes] eV
(before jaxmlp's scale, shift and E0).
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp.edges import EdgeInputs
from jaxmlp.nn.element_networks import SpeciesDense, select_species
from jaxmlp.nn.radial import mask_vectors, safe_norm


def smooth_switch(r, r_smooth: float, r_max: float):
    """DeePMD-kit's switch: 1 below r_smooth, 0 from r_max on, C2 in between."""
    u = jnp.clip((r - r_smooth) / (r_max - r_smooth), 0.0, 1.0)
    return u**3 * (-6.0 * u**2 + 15.0 * u - 10.0) + 1.0


@functools.lru_cache(maxsize=32)
def reference_weight(r_smooth: float, r_max: float) -> float:
    """RMS of s(r) = sw(r)/r (Å^-1) over neighbours uniform in the ball of radius
    r_max: sqrt(int 4 pi r^2 s^2 dr / (4/3 pi r_max^3))."""
    r = np.linspace(0.0, r_max, 20001)
    u = np.clip((r - r_smooth) / (r_max - r_smooth), 0.0, 1.0)
    sw = u**3 * (-6.0 * u**2 + 15.0 * u - 10.0) + 1.0
    integrand = 4.0 * np.pi * sw**2  # r^2 s^2 = sw^2
    return float(np.sqrt(np.trapezoid(integrand, r) / (4.0 / 3.0 * np.pi * r_max**3)))


class ResidualTanhStack(nn.Module):
    """DeePMD-kit's embedding/fitting layers on [..., S, in] inputs, one set of weights
    per species (the S axis): y = tanh(W x + b), plus x when the width is kept and
    (x, x) when it doubles. Returns [..., S, widths[-1]]."""

    num_species: int
    widths: tuple[int, ...]

    @nn.compact
    def __call__(self, x):
        for t, width in enumerate(self.widths):
            y = jnp.tanh(SpeciesDense(self.num_species, width, name=f"layer_{t}")(x))
            if x.ndim == y.ndim and x.shape[-1] == width:
                y = y + x
            elif x.ndim == y.ndim and 2 * x.shape[-1] == width:
                y = y + jnp.concatenate([x, x], axis=-1)
            x = y
        return x


class DeepPotSE(nn.Module):
    """DeepPot-SE (``se_e2_a``) network (see the module docstring); eV per atom.

    Attributes:
        num_species: size of the species table.
        r_max: cutoff, Å (DeePMD-kit's ``rcut``).
        r_smooth: start of the switch, Å (DeePMD-kit's ``rcut_smth``).
        embedding: widths of each neighbour species' embedding network (``neuron``).
        axis_neurons: M2, the embedding columns of the second factor (``axis_neuron``).
        fitting: widths of each element's fitting network (``fitting_net.neuron``).
    """

    num_species: int
    r_max: float
    r_smooth: float = 0.5
    embedding: tuple[int, ...] = (25, 50, 100)
    axis_neurons: int = 16
    fitting: tuple[int, ...] = (240, 240, 240)

    def descriptor(self, inputs: EdgeInputs):
        """[n_nodes, M1 * M2] descriptor D (flattened), dimensionless."""
        if not 0.0 <= self.r_smooth < self.r_max:
            raise ValueError(
                f"r_smooth must lie in [0, r_max = {self.r_max}), got {self.r_smooth}"
            )
        m1 = self.embedding[-1]
        if not 0 < self.axis_neurons <= m1:
            raise ValueError(
                f"axis_neurons must lie in [1, {m1}] (the last embedding width), "
                f"got {self.axis_neurons}"
            )
        dtype = inputs.vectors.dtype
        vectors = mask_vectors(inputs.vectors, inputs.edge_mask, self.r_max)
        r = safe_norm(vectors)  # [n_edges] Å; padded edges at 2 r_max, never 0
        s_ref = reference_weight(float(self.r_smooth), float(self.r_max))
        s = smooth_switch(r, self.r_smooth, self.r_max) / (r * s_ref)
        s = jnp.where(inputs.edge_mask, s, 0.0)  # [n_edges], dimensionless
        # vectors point receiver <- sender, i.e. r_i - r_j; DeePMD-kit's r_ij is
        # r_j - r_i, a sign that T^T T does not see
        rows = s[:, None] * jnp.concatenate(
            [jnp.ones_like(r)[:, None], vectors / r[:, None]], axis=1
        )  # [n_edges, 4]
        g = ResidualTanhStack(self.num_species, tuple(self.embedding), name="embed")(
            s[:, None].astype(dtype)
        )  # [n_edges, S, M1]
        neighbour = inputs.species[inputs.senders]  # [n_edges]
        g = jnp.take_along_axis(g, neighbour[:, None, None], axis=1)[:, 0]  # [E, M1]
        weight = 1.0 + jax.ops.segment_sum(
            s, inputs.receivers, num_segments=inputs.n_nodes
        )  # [n_nodes], >= 1
        t = jax.ops.segment_sum(
            rows[:, :, None] * g[:, None, :],
            inputs.receivers,
            num_segments=inputs.n_nodes,
        ) / weight[:, None, None].astype(dtype)  # [n_nodes, 4, M1]
        d = jnp.einsum("nam,nak->nmk", t, t[:, :, : self.axis_neurons])
        return d.reshape(inputs.n_nodes, -1)  # [n_nodes, M1 * M2]

    @nn.compact
    def __call__(self, inputs: EdgeInputs):
        x = self.descriptor(inputs)  # [n_nodes, M1 M2]
        self.sow("intermediates", "descriptor", x)
        x = jnp.concatenate([x, jnp.zeros_like(x[:1])], axis=0)  # + an isolated atom
        x = ResidualTanhStack(self.num_species, tuple(self.fitting), name="fit")(x)
        y = SpeciesDense(self.num_species, 1, name="readout")(x)[..., 0]  # [n+1, S]
        isolated = jnp.broadcast_to(y[-1:], y[:-1].shape)
        return select_species(y[:-1] - isolated, inputs.species)  # [n_nodes] eV
