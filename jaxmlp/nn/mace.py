"""MACE: higher body-order equivariant message passing (Batatia et al., NeurIPS 2022).

The network sees only edge geometry: ``(vectors, species, senders, receivers,
edge_mask) -> [n_nodes]`` per-atom energies in network units (the model wrapper
multiplies by ``scale`` and adds ``shift`` and the per-species E0, as mace-torch's
``ScaleShiftMACE`` does).

It mirrors mace-torch's ``MACE`` with its default blocks (first interaction
``RealAgnosticInteractionBlock``, later ones ``RealAgnosticResidualInteractionBlock``,
``EquivariantProductBasisBlock``, linear readouts and a non-linear last readout),
so that parameter counts agree and mace-torch weights transfer exactly
(``benchmarks/mace_torch_check.py``). Per layer t:

1. ``sc = skip(h, species)`` (species-dependent linear; layers t > 0),
2. ``h' = linear_up(h)``; per edge ``m_ij = TP(h'_j, Y(r_ij); R(|r_ij|))`` with one
   radial-MLP weight per channel and path; ``A_i = linear(sum_j m_ij) /
   avg_num_neighbors`` (layer 0: ``A_i = skip(A_i, species)``),
3. ``h_i = linear(B(A_i, species)) + sc``, B the symmetric contraction to body order
   ``correlation + 1``,
4. ``E_i += readout_t(h_i)``; the last layer keeps scalars only and its readout is an
   MLP.

Radial basis: ``sqrt(2/r_max) sin(n pi r / r_max) / r`` times the polynomial cutoff of
order ``num_poly_cutoff``; spherical harmonics up to ``max_ell`` ("component"
normalisation). Hidden features: ``channels x (0e + 1o + ... up to max_L)``.
"""

from __future__ import annotations

import math

import e3nn_jax as e3nn
import flax.linen as nn

from jaxmlp.nn.blocks import (
    ConvPlan,
    IrrepsLinear,
    MidLinear,
    RadialMLP,
    SpeciesLinear,
    SymmetricContraction,
    aggregate_messages,
    normal_init,
    normalized_silu,
)
from jaxmlp.nn.radial import bessel_basis, mask_vectors, polynomial_cutoff, safe_norm


class Interaction(nn.Module):
    """Messages ``A_i`` ``[n, D_target, C]`` and the residual ``sc`` (or ``None``)."""

    ls_in: tuple[int, ...]
    ls_sh: tuple[int, ...]
    ls_target: tuple[int, ...]
    ls_hidden_out: tuple[int, ...]
    channels: int
    num_species: int
    avg_num_neighbors: float
    radial_hidden: tuple[int, ...]
    num_basis: int
    residual: bool
    edge_chunk: int = 256

    @nn.compact
    def __call__(self, h, species, geometry_fn, edges):
        """``edges``: ``(vectors, edge_mask, senders, receivers)``; ``geometry_fn(vectors,
        edge_mask) -> (radial, sh)`` per edge (see :func:`aggregate_messages`)."""
        sc = None
        if self.residual:
            sc = SpeciesLinear(
                self.ls_in,
                self.ls_hidden_out,
                self.channels,
                self.num_species,
                name="skip",
            )(h, species)
        h = IrrepsLinear(self.ls_in, self.ls_in, self.channels, name="linear_up")(h)
        plan = ConvPlan(self.ls_in, self.ls_sh, self.ls_target)
        radial_ws = RadialMLP(
            self.num_basis,
            tuple(self.radial_hidden),
            plan.num_paths * self.channels,
            name="radial_mlp",
        )()
        messages = aggregate_messages(
            plan, h, radial_ws, geometry_fn, *edges, self.edge_chunk
        )  # [n, Q, C]
        mid_counts = tuple((l, plan.mid_counts[l]) for l in self.ls_target)
        a = MidLinear(mid_counts, self.channels, name="linear")(messages)
        a = a / self.avg_num_neighbors
        if not self.residual:
            a = SpeciesLinear(
                self.ls_target,
                self.ls_target,
                self.channels,
                self.num_species,
                name="skip",
            )(a, species)
        return a, sc


class MACE(nn.Module):
    """MACE network; returns [n_nodes] per-atom energies (network units).

    Attributes:
        num_species: number of species (one-hot size).
        r_max: cutoff, Å.
        avg_num_neighbors: messages are divided by it (mace-torch convention).
        num_interactions: message-passing layers.
        channels: multiplicity of every hidden irrep (mace-torch ``num_channels``).
        max_L: hidden irreps ``channels x (0e + 1o + ... L)`` (mace-torch ``max_L``).
        max_ell: spherical harmonics order of the edge attributes.
        correlation: body order - 1 of the product basis.
        num_bessel: radial Bessel functions.
        num_poly_cutoff: order p of the polynomial cutoff envelope.
        radial_mlp: hidden widths of the radial MLP (mace-torch ``radial_MLP``).
        readout_mlp: hidden scalars of the last, non-linear readout (``MLP_irreps``).
        edge_chunk: process edges this many at a time (0: all at once): geometry,
            radial MLP, tensor product and scatter of each layer in one rematerialised
            ``lax.scan`` (:func:`~jaxmlp.nn.blocks.aggregate_messages`); changes speed
            and memory, not results.
        node_chunk: evaluate the product basis this many nodes at a time (0: all at
            once), rematerialised likewise (:func:`~jaxmlp.nn.blocks.map_node_chunks`):
            its products of features, ``[n, Q, C]`` per degree, dominate MACE's memory
            otherwise (about 1.3 MB per atom for the defaults).
    """

    num_species: int
    r_max: float
    avg_num_neighbors: float
    num_interactions: int = 2
    channels: int = 128
    max_L: int = 1
    max_ell: int = 3
    correlation: int = 3
    num_bessel: int = 8
    num_poly_cutoff: int = 5
    radial_mlp: tuple[int, ...] = (64, 64, 64)
    readout_mlp: int = 16
    edge_chunk: int = 256
    node_chunk: int = 64

    def _check(self):
        for field in (
            "num_interactions",
            "channels",
            "correlation",
            "num_bessel",
            "readout_mlp",
        ):
            if int(getattr(self, field)) < 1:
                raise ValueError(
                    f"MACE {field} must be >= 1, got {getattr(self, field)}"
                )
        for field in ("max_L", "max_ell"):
            if int(getattr(self, field)) < 0:
                raise ValueError(
                    f"MACE {field} must be >= 0, got {getattr(self, field)}"
                )

    @nn.compact
    def __call__(self, vectors, species, senders, receivers, edge_mask):
        self._check()
        c = self.channels
        ls_sh = tuple(range(self.max_ell + 1))

        def geometry_fn(vectors, edge_mask):
            vectors = mask_vectors(vectors, edge_mask, self.r_max)  # [n_edges, 3]
            r = safe_norm(vectors)  # [n_edges]
            envelope = polynomial_cutoff(r, self.r_max, self.num_poly_cutoff)
            envelope = envelope * edge_mask
            radial = bessel_basis(r, self.num_bessel, self.r_max) * envelope[:, None]
            sh = e3nn.spherical_harmonics(
                e3nn.Irreps.spherical_harmonics(self.max_ell),
                vectors,
                normalize=True,
                normalization="component",
            ).array  # [n_edges, (max_ell + 1)^2]
            return radial, sh

        edges = (vectors, edge_mask, senders, receivers)
        ls_hidden = tuple(range(self.max_L + 1))
        embed = self.param("embedding", normal_init(), (self.num_species, c))
        h = embed.astype(vectors.dtype)[species][:, None, :] / math.sqrt(
            self.num_species
        )
        ls_h = (0,)
        energies = []
        for t in range(self.num_interactions):
            last = t == self.num_interactions - 1
            ls_out = (0,) if last else ls_hidden
            a, sc = Interaction(
                ls_h,
                ls_sh,
                ls_sh,
                ls_out,
                c,
                self.num_species,
                self.avg_num_neighbors,
                tuple(self.radial_mlp),
                self.num_bessel,
                residual=t > 0,
                edge_chunk=self.edge_chunk,
                name=f"interaction_{t}",
            )(h, species, geometry_fn, edges)
            b = SymmetricContraction(
                ls_sh,
                ls_out,
                self.correlation,
                self.num_species,
                node_chunk=self.node_chunk,
                name=f"product_{t}",
            )(a, species)
            h = IrrepsLinear(ls_out, ls_out, c, name=f"product_linear_{t}")(b)
            if sc is not None:
                h = h + sc
            ls_h = ls_out
            scalars = h[:, 0, :]  # [n, C]
            if last and self.num_interactions > 1:
                w1 = self.param(f"readout_{t}_1", normal_init(), (c, self.readout_mlp))
                w2 = self.param(f"readout_{t}_2", normal_init(), (self.readout_mlp, 1))
                hidden = normalized_silu(scalars @ (w1.astype(h.dtype) / math.sqrt(c)))
                out = hidden @ (w2.astype(h.dtype) / math.sqrt(self.readout_mlp))
            else:
                w = self.param(f"readout_{t}", normal_init(), (c, 1))
                out = scalars @ (w.astype(h.dtype) / math.sqrt(c))
            energies.append(out[:, 0])
        return sum(energies)
