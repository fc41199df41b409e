"""NequIP: E(3)-equivariant message passing (Batzner et al., Nat. Commun. 2022).

The network sees only edge geometry: ``(vectors, species, senders, receivers,
edge_mask) -> [n_nodes]`` per-atom energies in the network's internal unit (the model
wrapper scales and shifts them to eV). Each layer: species-dependent self-connection,
linear, tensor product of sender features with spherical harmonics of the edge weighted
per (path, channel) by an MLP of the radial basis ("uvu"), scatter to receivers /
sqrt(avg neighbors), linear, gate nonlinearity, residual.

Layout, chosen for speed on CPU: features are a dict ``irrep -> [n_nodes, 2l+1, C]``
(channels last, so each linear is one matmul), the edge tensor product is the fused
kernel of :mod:`jaxmlp.nn.tensor_product`, all linears act on nodes (never edges), the
first dense layer of every layer's radial MLP is one fused matmul, and messages are
summed with one ``segment_sum`` per path (edges in any order: MD's lists are unsorted).
Weights are drawn N(0, 1) and scaled by 1/sqrt(fan_in) in the forward pass (e3nn's
convention).
"""

from __future__ import annotations

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp.nn.radial import bessel_basis, mask_vectors, polynomial_cutoff, safe_norm
from jaxmlp.nn.tensor_product import (
    Irrep,
    edge_tensor_product,
    gather_paths,
    irrep_name,
    make_plan,
)

SILU_NORM = 1.679  # ~unit second moment of silu(x) * SILU_NORM for x ~ N(0, 1)


def hidden_irreps(l_max: int, parity: bool) -> tuple[Irrep, ...]:
    """Irreps of the hidden features: 0e + 1o + 2e ... or, with ``parity``, both parities."""
    irreps = []
    for l in range(l_max + 1):
        natural = (-1) ** l
        irreps.append((l, natural))
        if parity:
            irreps.append((l, -natural))
    return tuple(irreps)


def _normal(key, shape, dtype=jnp.float32):
    return jax.random.normal(key, shape, dtype)


def _linear(x, w):
    """[n, d, C_in] @ [C_in, C_out] / sqrt(C_in) -> [n, d, C_out]."""
    return (x @ w.astype(x.dtype)) * (1.0 / np.sqrt(w.shape[0]))


def _gate_acts():
    """e3nn-normalised activations (unit second moment for N(0,1) input)."""
    return (
        e3nn.normalize_function(jax.nn.silu),  # even scalars and gates
        e3nn.normalize_function(jnp.tanh),  # odd scalars
    )


class RadialMLP(nn.Module):
    """Per-layer radial MLPs: [n_edges, num_basis] -> per layer, per path [n_edges, C].

    Layer i's MLP ends in a dense layer of num_paths * C outputs (one param matrix); the
    forward pass applies it one path's columns at a time, so each path's weights are
    their own array (no slicing of an edge-sized array, whose gradient would be a pad).
    No biases, so zero radial features (padded edges, r >= r_max) give zero weights. The
    first dense layer of all layers is one matmul (params ``w0``: [num_basis, L * H]).
    """

    hidden: tuple[int, ...]
    channels: int
    num_paths: tuple[int, ...]  # per layer

    @nn.compact
    def __call__(self, x):
        n_basis = x.shape[1]
        c = self.channels
        h0 = self.hidden[0]
        w0 = self.param("w0", _normal, (n_basis, len(self.num_paths) * h0))
        y = jax.nn.silu((x @ w0.astype(x.dtype)) * (1.0 / np.sqrt(n_basis))) * SILU_NORM
        outs = []
        for i, num_paths in enumerate(self.num_paths):
            z = y[:, i * h0 : (i + 1) * h0]
            for k, width in enumerate(self.hidden[1:]):
                w = self.param(f"layer{i}_w{k + 1}", _normal, (z.shape[-1], width))
                z = (
                    jax.nn.silu((z @ w.astype(z.dtype)) * (1.0 / np.sqrt(z.shape[-1])))
                    * SILU_NORM
                )
            w = self.param(
                f"layer{i}_w{len(self.hidden)}", _normal, (z.shape[-1], num_paths * c)
            )
            w = w.astype(z.dtype) * (1.0 / np.sqrt(z.shape[-1]))
            outs.append([z @ w[:, p * c : (p + 1) * c] for p in range(num_paths)])
        return outs


class NequIPLayer(nn.Module):
    """One interaction block: ``h {irrep: [n_nodes, d, C]} -> h' {irrep: [n_nodes, d, C]}``."""

    irreps_in: tuple[Irrep, ...]
    irreps_out: tuple[Irrep, ...]
    l_max_sh: int
    channels: int
    num_species: int
    avg_num_neighbors: float

    def plan(self):
        return make_plan(self.irreps_in, self.l_max_sh, self.target(), self.channels)

    def target(self) -> tuple[Irrep, ...]:
        """Irreps before the gate: the outputs, plus 0e for the scalars' and gates' channels."""
        return tuple(sorted(set(self.irreps_out) | {(0, 1)}))

    @nn.compact
    def __call__(self, h, sh, weights, species_onehot, senders, receivers):
        c = self.channels
        n_nodes = species_onehot.shape[0]
        nonscalars = [ir for ir in self.irreps_out if ir[0] > 0]
        n_gates = len(nonscalars) * c
        width = {ir: c for ir in self.target()}
        width[(0, 1)] = (c if (0, 1) in self.irreps_out else 0) + n_gates

        # species-dependent self-connection: per species a linear, mixed by one-hot
        self_connection = {}
        for ir in self.target():
            if ir not in h:
                continue
            w = self.param(
                f"self_connection_{irrep_name(ir)}",
                _normal,
                (self.num_species, c, width[ir]),
            )
            x = h[ir]  # [n, d, C]
            if self.num_species == 1:
                self_connection[ir] = _linear(x, w[0])
            else:
                y = _linear(x, jnp.transpose(w, (1, 0, 2)).reshape(c, -1))
                y = y.reshape(n_nodes, x.shape[1], self.num_species, width[ir])
                self_connection[ir] = jnp.einsum("ndsf,ns->ndf", y, species_onehot)

        # linear on nodes, then the tensor product on edges
        h_senders = {}
        for ir in self.irreps_in:
            w = self.param(f"linear_up_{irrep_name(ir)}", _normal, (c, c))
            h_senders[ir] = _linear(h[ir], w)[senders]  # [n_edges, d, C]
        plan = self.plan()
        messages = edge_tensor_product(
            plan, h_senders, sh, weights
        )  # [[n_edges, d3, C]]
        norm = 1.0 / np.sqrt(self.avg_num_neighbors)
        # no indices_are_sorted hint: MD's edge lists are not sorted by receiver
        messages = [
            jax.ops.segment_sum(m, receivers, num_segments=n_nodes) * norm
            for m in messages
        ]  # per path [n_nodes, d3, C]

        # linear on nodes mixing paths and channels, plus the self-connection
        out = {}
        for ir in self.target():
            if not plan.paths_to(
                ir
            ):  # unreachable from this layer's input (e.g. 0o in layer 0)
                out[ir] = jnp.zeros((n_nodes, 2 * ir[0] + 1, width[ir]), sh.dtype)
            else:
                x = gather_paths(plan, messages, ir)  # [n, d, P * C]
                w = self.param(
                    f"linear_down_{irrep_name(ir)}", _normal, (x.shape[-1], width[ir])
                )
                out[ir] = _linear(x, w)
            if ir in self_connection:
                out[ir] = out[ir] + self_connection[ir]

        # gate: scalars activated, non-scalars multiplied by activated gate scalars
        even_act, odd_act = _gate_acts()
        result = {}
        scalars = out[(0, 1)]  # [n, 1, C + n_gates]
        n_scalars = scalars.shape[-1] - n_gates
        if (0, 1) in self.irreps_out:
            result[(0, 1)] = even_act(scalars[..., :n_scalars])
        if (0, -1) in self.irreps_out:
            result[(0, -1)] = odd_act(out[(0, -1)])
        gates = even_act(scalars[..., n_scalars:])  # [n, 1, n_gates]
        for k, ir in enumerate(nonscalars):
            result[ir] = out[ir] * gates[..., k * c : (k + 1) * c]
        return result


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
        c = self.channels
        vectors = mask_vectors(vectors, edge_mask, self.r_max)  # [n_edges, 3]
        r = safe_norm(vectors)  # [n_edges]
        envelope = polynomial_cutoff(r, self.r_max, self.cutoff_p) * edge_mask
        radial = bessel_basis(r, self.num_basis, self.r_max) * envelope[:, None]
        sh = e3nn.spherical_harmonics(
            e3nn.Irreps.spherical_harmonics(self.l_max),
            vectors,
            normalize=True,
            normalization="component",
        ).array
        sh = sh * envelope[:, None]  # [n_edges, (l_max+1)^2]; messages vanish at r_max
        species_onehot = jax.nn.one_hot(species, self.num_species, dtype=vectors.dtype)

        embedding = self.param("embedding", _normal, (self.num_species, c))
        h = {(0, 1): embedding.astype(vectors.dtype)[species][:, None, :]}  # [n, 1, C]
        irreps = hidden_irreps(self.l_max, self.parity)
        layers = []
        irreps_in = ((0, 1),)
        for i in range(self.num_layers):
            layers.append(
                NequIPLayer(
                    irreps_in,
                    irreps,
                    self.l_max,
                    c,
                    self.num_species,
                    self.avg_num_neighbors,
                    name=f"layer_{i}",
                )
            )
            irreps_in = irreps
        num_paths = tuple(layer.plan().num_paths for layer in layers)
        weights = RadialMLP(tuple(self.radial_hidden), c, num_paths, name="radial")(
            radial
        )
        for layer, w in zip(layers, weights):
            update = layer(h, sh, w, species_onehot, senders, receivers)
            if set(update) == set(h):
                h = {ir: h[ir] + update[ir] for ir in h}
            else:
                h = update
        scalars = h[(0, 1)][:, 0, :]  # [n_nodes, C]
        w1 = self.param("readout_1", _normal, (c, max(c // 2, 1)))
        w2 = self.param("readout_2", _normal, (max(c // 2, 1), 1))
        return _linear(_linear(scalars, w1), w2)[:, 0]
