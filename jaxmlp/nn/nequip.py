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

Edge chunking (more than ``edge_chunk_above`` edges, the default above 4096): each
layer's whole edge pipeline (geometry, radial MLP, gather, tensor product, scatter)
runs ``edge_chunk`` edges at a time in a rematerialised ``lax.scan``
(:func:`aggregate_chunked`), so memory is node-sized plus one chunk: about 24 KB per
atom for the default model instead of 0.93 MB (fcc Cu, 5 Å), and, the working set
fitting in cache, about twice as fast on CPU from a few hundred atoms on
(``benchmarks/results/large_systems.md``). Fewer edges, or a symbolic edge count
(``jax.export``), take the all-at-once path.
"""

from __future__ import annotations

from typing import NamedTuple

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp.nn.chunks import split_chunks
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
    """Parameters of the per-layer radial MLPs (see :func:`radial_weights`).

    Layer i's MLP ends in a dense layer of num_paths * C outputs (one param matrix); the
    forward pass applies it one path's columns at a time, so each path's weights are
    their own array (no slicing of an edge-sized array, whose gradient would be a pad).
    No biases, so zero radial features (padded edges, r >= r_max) give zero weights. The
    first dense layer of all layers is one matmul (params ``w0``: [num_basis, L * H]).
    Calling the module returns ``(w0, per layer (w1, ..., w_last))``, the arrays, so
    that the edge pipeline can run them inside a ``lax.scan`` (no flax there).
    """

    num_basis: int
    hidden: tuple[int, ...]
    channels: int
    num_paths: tuple[int, ...]  # per layer

    @nn.compact
    def __call__(self):
        h0 = self.hidden[0]
        w0 = self.param("w0", _normal, (self.num_basis, len(self.num_paths) * h0))
        layers = []
        for i, num_paths in enumerate(self.num_paths):
            sizes = tuple(self.hidden) + (num_paths * self.channels,)
            layers.append(
                tuple(
                    self.param(f"layer{i}_w{k + 1}", _normal, (sizes[k], sizes[k + 1]))
                    for k in range(len(sizes) - 1)
                )
            )
        return w0, tuple(layers)


def _silu_dense(x, w):
    """silu(x @ w / sqrt(fan_in)) * SILU_NORM."""
    return (
        jax.nn.silu((x @ w.astype(x.dtype)) * (1.0 / np.sqrt(w.shape[0]))) * SILU_NORM
    )


def _radial_tail(z, ws, channels: int):
    """Hidden layers and the last layer of one layer's MLP: per path [n_edges, C]."""
    for w in ws[:-1]:
        z = _silu_dense(z, w)
    w = ws[-1].astype(z.dtype) * (1.0 / np.sqrt(z.shape[-1]))
    num_paths = w.shape[1] // channels
    return [z @ w[:, p * channels : (p + 1) * channels] for p in range(num_paths)]


def radial_weights(params, radial, channels: int, layer: int | None = None):
    """Radial weights from the basis ``radial`` [n_edges, num_basis].

    Args:
        params: ``(w0, layers)`` from :class:`RadialMLP`.
        radial: [n_edges, num_basis] radial basis times the envelope.
        channels: C.
        layer: None: every layer, the first dense layer of all of them as one matmul
            (returns per layer, per path [n_edges, C]); an index: that layer only,
            through its columns of ``w0`` (returns per path [n_edges, C]).
    """
    w0, layers = params
    h0 = w0.shape[1] // len(layers)
    if layer is not None:
        z = _silu_dense(radial, w0[:, layer * h0 : (layer + 1) * h0])
        return _radial_tail(z, layers[layer], channels)
    y = _silu_dense(radial, w0)  # [n_edges, L * H]
    return [
        _radial_tail(y[:, i * h0 : (i + 1) * h0], ws, channels)
        for i, ws in enumerate(layers)
    ]


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
    def __call__(self, h, species_onehot, aggregate_fn):
        """``aggregate_fn(plan, h_up)``: per path [n_nodes, d3, C], the messages of
        the sender features ``h_up`` {irrep: [n_nodes, d, C]} summed over each
        receiver's edges (see :func:`aggregate` and :func:`aggregate_chunked`)."""
        c = self.channels
        n_nodes = species_onehot.shape[0]
        dtype = species_onehot.dtype
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

        # linear on nodes, then the tensor product on edges, summed per receiver
        h_up = {}
        for ir in self.irreps_in:
            w = self.param(f"linear_up_{irrep_name(ir)}", _normal, (c, c))
            h_up[ir] = _linear(h[ir], w)  # [n_nodes, d, C]
        plan = self.plan()
        norm = 1.0 / np.sqrt(self.avg_num_neighbors)
        messages = [m * norm for m in aggregate_fn(plan, h_up)]  # [[n_nodes, d3, C]]

        # linear on nodes mixing paths and channels, plus the self-connection
        out = {}
        for ir in self.target():
            if not plan.paths_to(ir):  # unreachable (e.g. 0o in layer 0)
                out[ir] = jnp.zeros((n_nodes, 2 * ir[0] + 1, width[ir]), dtype)
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


def edge_geometry(vectors, edge_mask, r_max, num_basis, cutoff_p, l_max):
    """Radial basis [n_edges, num_basis] and spherical harmonics [n_edges, (l_max+1)^2]
    of edge vectors [n_edges, 3] Å, both times the cutoff envelope (zero at padding)."""
    vectors = mask_vectors(vectors, edge_mask, r_max)  # [n_edges, 3]
    r = safe_norm(vectors)  # [n_edges]
    envelope = polynomial_cutoff(r, r_max, cutoff_p) * edge_mask
    radial = bessel_basis(r, num_basis, r_max) * envelope[:, None]
    sh = e3nn.spherical_harmonics(
        e3nn.Irreps.spherical_harmonics(l_max),
        vectors,
        normalize=True,
        normalization="component",
    ).array
    sh = sh * envelope[:, None]  # [n_edges, (l_max+1)^2]; messages vanish at r_max
    return radial, sh


def aggregate(sh, weights, senders, receivers):
    """``aggregate_fn`` of one layer over all edges at once: per path [n_nodes, d3, C]."""

    def aggregate_fn(plan, h_up):
        n_nodes = next(iter(h_up.values())).shape[0]
        h_senders = {ir: h_up[ir][senders] for ir in plan.irreps_in}  # [n_edges, d, C]
        messages = edge_tensor_product(plan, h_senders, sh, weights)
        # no indices_are_sorted hint: MD's edge lists are not sorted by receiver
        return [
            jax.ops.segment_sum(m, receivers, num_segments=n_nodes) for m in messages
        ]

    return aggregate_fn


class EdgeChunks(NamedTuple):
    """Edges split into ``[n_chunks, chunk, ...]`` blocks, the last one padded with
    masked edges (vector 0, senders and receivers 0) that contribute exactly zero."""

    vectors: jax.Array  # [n_chunks, chunk, 3] Å
    edge_mask: jax.Array  # [n_chunks, chunk]
    senders: jax.Array  # [n_chunks, chunk]
    receivers: jax.Array  # [n_chunks, chunk]


def chunk_edges(chunk: int, vectors, senders, receivers, edge_mask) -> EdgeChunks:
    """Split the edge arrays into chunks of ``chunk`` edges (see :class:`EdgeChunks`)."""
    return EdgeChunks(
        *(split_chunks(a, chunk) for a in (vectors, edge_mask, senders, receivers))
    )


def aggregate_chunked(chunks: EdgeChunks, geometry_fn, radial_params, layer, channels):
    """``aggregate_fn`` of layer ``layer``, one chunk of edges at a time.

    Everything per edge (geometry, this layer's radial MLP, the gather of sender
    features, the tensor product) runs inside a ``lax.scan`` over the chunks, in a
    ``jax.checkpoint``-ed function recomputed in the backward pass; only its inputs (a
    chunk of vectors, masks and indices) are kept per chunk. Its messages are
    scatter-added into the node-sized carry outside the checkpoint: the addition is
    linear, so the backward pass keeps no carry per chunk.
    """

    def aggregate_fn(plan, h_up):
        h_up = {ir: h_up[ir] for ir in plan.irreps_in}
        n_nodes = next(iter(h_up.values())).shape[0]

        @jax.checkpoint
        def messages_fn(h_up, radial_params, vectors, edge_mask, senders):
            radial, sh = geometry_fn(vectors, edge_mask)
            weights = radial_weights(radial_params, radial, channels, layer)
            h_senders = {ir: x[senders] for ir, x in h_up.items()}  # [chunk, d, C]
            return edge_tensor_product(plan, h_senders, sh, weights)

        def body(total, xs):
            vectors, edge_mask, senders, receivers = xs
            messages = messages_fn(h_up, radial_params, vectors, edge_mask, senders)
            return [t.at[receivers].add(m) for t, m in zip(total, messages)], None

        xs = tuple(chunks)
        first = [a[0] for a in xs[:3]]  # one chunk: the messages' shapes and dtype
        shapes = jax.eval_shape(messages_fn, h_up, radial_params, *first)
        init = [jnp.zeros((n_nodes,) + m.shape[1:], m.dtype) for m in shapes]
        total, _ = jax.lax.scan(body, init, xs)
        return total

    return aggregate_fn


class NequIP(nn.Module):
    """NequIP network; returns [n_nodes] per-atom energies (network units).

    Attributes:
        edge_chunk: edges per chunk of the chunked edge pipeline (0: never chunk);
            changes speed and memory, not results (beyond float rounding).
        edge_chunk_above: chunk only graphs with more edges than this (static count).
    """

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
    edge_chunk: int = 512
    edge_chunk_above: int = 4096

    def chunk_size(self, n_edges) -> int:
        """Edges per chunk for ``n_edges`` edges; 0: all at once (see ``edge_chunk``)."""
        if self.edge_chunk <= 0 or not isinstance(n_edges, int):
            return 0
        return self.edge_chunk if n_edges > self.edge_chunk_above else 0

    @nn.compact
    def __call__(self, vectors, species, senders, receivers, edge_mask):
        c = self.channels
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
        radial_params = RadialMLP(
            self.num_basis, tuple(self.radial_hidden), c, num_paths, name="radial"
        )()

        def geometry_fn(vectors, edge_mask):
            return edge_geometry(
                vectors,
                edge_mask,
                self.r_max,
                self.num_basis,
                self.cutoff_p,
                self.l_max,
            )

        chunk = self.chunk_size(vectors.shape[0])
        if chunk:
            chunks = chunk_edges(chunk, vectors, senders, receivers, edge_mask)
            aggregates = [
                aggregate_chunked(chunks, geometry_fn, radial_params, i, c)
                for i in range(self.num_layers)
            ]
        else:
            radial, sh = geometry_fn(vectors, edge_mask)
            weights = radial_weights(radial_params, radial, c)
            aggregates = [aggregate(sh, w, senders, receivers) for w in weights]
        for layer, aggregate_fn in zip(layers, aggregates):
            update = layer(h, species_onehot, aggregate_fn)
            if set(update) == set(h):
                h = {ir: h[ir] + update[ir] for ir in h}
            else:
                h = update
        scalars = h[(0, 1)][:, 0, :]  # [n_nodes, C]
        w1 = self.param("readout_1", _normal, (c, max(c // 2, 1)))
        w2 = self.param("readout_2", _normal, (max(c // 2, 1), 1))
        return _linear(_linear(scalars, w1), w2)[:, 0]
