"""NequIP: E(3)-equivariant message passing (Batzner et al., Nat. Commun. 2022).

The network sees only edge geometry: ``(vectors, species, senders, receivers,
edge_mask) -> [n_nodes]`` per-atom energies in the network's internal unit (the model
wrapper scales and shifts them to eV). Each layer: species-dependent self-connection,
linear, tensor product of sender features with spherical harmonics of the edge weighted
per path by an MLP of the radial basis, scatter to receivers / sqrt(avg neighbors),
linear, gate nonlinearity, residual.
"""

from __future__ import annotations

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxmlp.nn.radial import bessel_basis, mask_vectors, polynomial_cutoff, safe_norm


def hidden_irreps(channels: int, l_max: int, parity: bool) -> e3nn.Irreps:
    """C x (0e + 1o + 2e ...) or, with ``parity``, both parities for every l."""
    irreps = []
    for l in range(l_max + 1):
        natural = "e" if l % 2 == 0 else "o"
        other = "o" if natural == "e" else "e"
        irreps.append(f"{channels}x{l}{natural}")
        if parity:
            irreps.append(f"{channels}x{l}{other}")
    return e3nn.Irreps("+".join(irreps))


def gate_input_irreps(irreps: e3nn.Irreps) -> e3nn.Irreps:
    """Irreps a gate needs to output ``irreps``: scalars, one gate per non-scalar, rest."""
    scalars = e3nn.Irreps([(mul, ir) for mul, ir in irreps if ir.l == 0])
    nonscalars = e3nn.Irreps([(mul, ir) for mul, ir in irreps if ir.l > 0])
    gates = e3nn.Irreps(f"{nonscalars.num_irreps}x0e") if nonscalars.num_irreps else e3nn.Irreps("")
    return scalars + gates + nonscalars


class RadialMLP(nn.Module):
    """[n_edges, num_basis] -> [n_edges, num_out] per-path weights (no bias: 0 -> 0)."""

    hidden: tuple[int, ...]
    num_out: int

    @nn.compact
    def __call__(self, x):
        for width in self.hidden:
            x = nn.Dense(width, use_bias=False)(x)
            x = jax.nn.silu(x) * 1.679  # ~unit second moment for unit Gaussian input
        return nn.Dense(self.num_out, use_bias=False)(x)


class NequIPLayer(nn.Module):
    """One interaction block: ``h [n_nodes, irreps] -> h' [n_nodes, irreps_out]``."""

    irreps_out: e3nn.Irreps
    num_species: int
    avg_num_neighbors: float
    radial_hidden: tuple[int, ...]

    @nn.compact
    def __call__(self, h, sh, radial, species, senders, receivers):
        n_nodes = h.shape[0]
        target = gate_input_irreps(self.irreps_out)
        self_connection = e3nn.flax.Linear(
            target, num_indexed_weights=self.num_species, force_irreps_out=True
        )(
            species, h
        )
        h = e3nn.flax.Linear(h.irreps)(h)
        messages = e3nn.tensor_product(h[senders], sh, filter_ir_out=target)  # [n_edges, ...]
        weights = RadialMLP(self.radial_hidden, messages.irreps.num_irreps)(radial)
        messages = messages * weights
        h = e3nn.scatter_sum(messages, dst=receivers, output_size=n_nodes)
        h = h / jnp.sqrt(self.avg_num_neighbors)
        h = e3nn.flax.Linear(target, force_irreps_out=True)(h) + self_connection
        return e3nn.gate(h, even_act=jax.nn.silu, odd_act=jnp.tanh, even_gate_act=jax.nn.silu)


class NequIP(nn.Module):
    """NequIP network; returns [n_nodes] per-atom energies (network units)."""

    num_species: int
    r_max: float
    avg_num_neighbors: float
    num_layers: int = 3
    channels: int = 32
    l_max: int = 2
    parity: bool = False
    num_basis: int = 8
    cutoff_p: int = 6
    radial_hidden: tuple[int, ...] = (64, 64)

    @nn.compact
    def __call__(self, vectors, species, senders, receivers, edge_mask):
        vectors = mask_vectors(vectors, edge_mask, self.r_max)  # [n_edges, 3]
        r = safe_norm(vectors)  # [n_edges]
        envelope = polynomial_cutoff(r, self.r_max, self.cutoff_p) * edge_mask
        radial = bessel_basis(r, self.num_basis, self.r_max) * envelope[:, None]
        sh = e3nn.spherical_harmonics(
            e3nn.Irreps.spherical_harmonics(self.l_max),
            vectors,
            normalize=True,
            normalization="component",
        )
        sh = sh * envelope[:, None]  # messages vanish smoothly at r_max
        h = e3nn.IrrepsArray(
            f"{self.channels}x0e", nn.Embed(self.num_species, self.channels)(species)
        )
        irreps = hidden_irreps(self.channels, self.l_max, self.parity)
        for _ in range(self.num_layers):
            update = NequIPLayer(
                irreps, self.num_species, self.avg_num_neighbors, tuple(self.radial_hidden)
            )(h, sh, radial, species, senders, receivers)
            h = h + update if update.irreps == h.irreps else update
        h = e3nn.flax.Linear(f"{max(self.channels // 2, 1)}x0e")(h.filter(keep="0e"))
        return e3nn.flax.Linear("0e")(h).array[:, 0]
