"""DimeNet++: directional message passing on edge embeddings, with angles of triplets.

Gasteiger, Giri, Margraf & Günnemann, "Fast and uncertainty-aware directional message
passing for non-equilibrium molecules" (NeurIPS-W 2020, arXiv:2011.14115), the faster
successor of DimeNet (Gasteiger, Groß & Günnemann, ICLR 2020, arXiv:2003.03123).

The state lives on the directed edges: a message m_ji [emb_size] for every edge j→i
(``inputs.vectors[e] = pos_i - pos_j``, Å). An interaction updates m_ji from the
messages m_kj of the edges that end at j (the ``"triplets"`` extra,
:mod:`jaxmlp.triplets`), weighted by a basis of the distance r_kj and of the angle θ
between the edges k→j and j→i (cos θ = v̂_kj · v̂_ji; θ = π minus the bond angle ∠kji).
Distances and angles only: the energy is invariant under rotations, inversion and
translations.

Bases, x = r / r_max, with DimeNet's envelope u(x) = 1 - 28 x^6 + 48 x^7 - 21 x^8
(:func:`jaxmlp.nn.radial.polynomial_cutoff`, p = 6: value, slope and curvature vanish
at r_max, so energy and forces are continuous as a neighbour crosses the cutoff):

* radial (edges): e_n(r) = u(x) sin(n π x) / x, n = 1..``num_radial``;
* spherical Fourier-Bessel (triplets):
  a_ln(r_kj, θ) = u(x) / x * sqrt(2) / |j_{l+1}(z_ln)| * j_l(z_ln x) * Y_l0(θ),
  l = 0..``num_spherical``-1, n = 1..``num_radial``, z_ln the n-th positive zero of the
  spherical Bessel function j_l (found once on the host with scipy), and
  Y_l0(θ) = sqrt((2l+1) / 4π) P_l(cos θ) (Legendre polynomials by Bonnet's recursion).
  j_l is the upward recursion from sin and cos where it is accurate, a 14-term power
  series at small arguments (x < l/2) where the recursion cancels (float32 safe).

Blocks (σ = swish = x sigmoid(x); "Dense" has a bias unless said otherwise; sums over
neighbours are divided by ``avg_num_neighbors`` so that features stay O(1)):

* embedding: h_i = Embed(species_i); m_ji = σ(Dense([h_j, h_i, σ(Dense(e(r_ji)))]));
* interaction (×``num_blocks``), DimeNet++'s down-projection / Hadamard / up-projection
  in place of DimeNet's bilinear layer:
  x_kj = σ(Dense_noBias[int_emb](σ(Dense(m_kj)) ⊙ W_rbf e(r_kj))),
  t_ji = Σ_k x_kj ⊙ W_sbf a(r_kj, θ_kji) / avg_num_neighbors,
  W_rbf, W_sbf two bias-free linear maps through ``basis_emb_size``;
  h = σ(Dense(m_ji)) + σ(Dense_noBias[emb](t_ji)), ``num_before_skip`` residual
  layers, m_ji ← m_ji + σ(Dense(h)), then ``num_after_skip`` residual layers
  (residual: h + σ(Dense(σ(Dense(h))))); the gates e(r_kj), a(r_kj, ·) vanish at the
  cutoff and the projections have no bias, so an edge leaving the cutoff stops
  contributing smoothly;
* output (after the embedding and after every interaction, ``num_blocks`` + 1 in all):
  t_i = Σ_j W_rbf e(r_ji) ⊙ m_ji / avg_num_neighbors, then Dense_noBias[out_emb],
  ``num_output_layers`` σ(Dense[out_emb]) and Dense_noBias[1]; the per-atom energy is
  the sum of the blocks' outputs (eV, before jaxmlp's scale, shift and E0).

Departures from the paper, for this framework: the final output layer is initialised
at random (DimeNet++ uses zeros; a zero network gives zero forces at initialisation),
the radial frequencies n π are fixed (DimeNet++ trains them), and neighbour sums are
normalised by ``avg_num_neighbors`` (DimeNet++ does not normalise).

Hyper-parameters (defaults are DimeNet++'s for QM9, except 6 spherical functions
instead of 7): ``emb_size`` 128 (edge message width), ``int_emb_size`` 64 (triplet
width after the down-projection), ``basis_emb_size`` 8 (width of the basis
projections), ``out_emb_size`` 256 (output MLP width), ``num_blocks`` 4 interactions,
``num_spherical`` 6 × ``num_radial`` 6 spherical basis functions and 6 radial ones,
``num_before_skip`` 1, ``num_after_skip`` 2, ``num_output_layers`` 3, and
``max_neighbors`` (None: from r_max, see :mod:`jaxmlp.triplets`), the static capacity
of each atom's list of incoming edges. **An atom with more than max_neighbors
neighbours within r_max makes the energy of its structure NaN** (never a silently
truncated sum; the ASE calculator raises an error naming the atom first).

Shapes: ``inputs.vectors`` [n_edges, 3] Å, ``inputs.extras["triplets"]`` a
:class:`~jaxmlp.triplets.Triplets` with [n_edges, K] tables -> [n_nodes] eV.
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp.edges import EdgeInputs
from jaxmlp.nn.radial import mask_vectors, polynomial_cutoff, safe_norm
from jaxmlp.triplets import Triplets, nan_if_overflow

ENVELOPE_P = 6  # DimeNet's envelope exponent 5, i.e. the polynomial u of degree p + 2
_SERIES_TERMS = 14  # of the power series of j_l at small argument


@functools.lru_cache(maxsize=16)
def bessel_zeros(num_spherical: int, num_radial: int) -> np.ndarray:
    """[num_spherical, num_radial] first positive zeros z_ln of j_l (float64, host).

    The zeros of j_l interlace those of j_{l-1}, starting from j_0's n π."""
    from scipy.optimize import brentq
    from scipy.special import spherical_jn

    count = num_radial + num_spherical
    zeros = [np.pi * np.arange(1, count + 1)]
    for l in range(1, num_spherical):
        previous = zeros[-1]
        zeros.append(
            np.array(
                [
                    brentq(lambda x, l=l: spherical_jn(l, x), a, b, xtol=1e-15)
                    for a, b in zip(previous[:-1], previous[1:])
                ]
            )
        )
    return np.stack([z[:num_radial] for z in zeros])


@functools.lru_cache(maxsize=16)
def bessel_normalizers(num_spherical: int, num_radial: int) -> np.ndarray:
    """[num_spherical, num_radial] sqrt(2) / |j_{l+1}(z_ln)|: unit norm of j_l(z_ln x)
    on [0, 1] with weight x^2."""
    from scipy.special import spherical_jn

    z = bessel_zeros(num_spherical, num_radial)
    l = np.arange(num_spherical)[:, None]
    return np.sqrt(2.0) / np.abs(spherical_jn(l + 1, z))


def spherical_jn(l: int, x):
    """Spherical Bessel function j_l(x) of a static order l >= 0, elementwise, x >= 0.

    Upward recursion j_{m+1} = (2m+1)/x j_m - j_{m-1} from j_0 = sin x / x where x >=
    l/2 (and x >= 1/2), the power series x^l/(2l+1)!! Σ_k (-x^2/2)^k / (k! Π_{i=1..k}
    (2l+2i+1)) below, where the recursion would cancel; NaN-safe gradients at x = 0.
    """
    switch = max(0.5, 0.5 * l)
    small = x < switch
    xs = jnp.where(small, x, 0.0)  # series argument (a polynomial: any x is safe)
    xr = jnp.where(small, switch, x)  # recursion argument, >= switch > 0
    # series, Horner in y = x^2 / 2
    y = 0.5 * xs * xs
    coeffs = [1.0]
    for k in range(1, _SERIES_TERMS):
        coeffs.append(-coeffs[-1] / (k * (2 * l + 2 * k + 1)))
    poly = jnp.full_like(xs, coeffs[-1])
    for c in coeffs[-2::-1]:
        poly = poly * y + c
    double_factorial = float(np.prod(np.arange(2 * l + 1, 0, -2)))
    series = xs**l / double_factorial * poly
    # recursion
    sin, cos = jnp.sin(xr), jnp.cos(xr)
    j_prev, j = sin / xr, sin / (xr * xr) - cos / xr
    if l == 0:
        j = j_prev
    for m in range(1, l):
        j_prev, j = j, (2 * m + 1) / xr * j - j_prev
    return jnp.where(small, series, j)


def legendre(l_max: int, t):
    """[..., l_max + 1] Legendre polynomials P_0..P_l_max at t (Bonnet's recursion)."""
    p = [jnp.ones_like(t), t]
    for l in range(1, l_max):
        p.append(((2 * l + 1) * t * p[l] - l * p[l - 1]) / (l + 1))
    return jnp.stack(p[: l_max + 1], axis=-1)


def radial_basis(r, num_radial: int, r_max: float):
    """[n_edges, num_radial] e_n(r) = u(r/r_max) sin(n π r/r_max) / (r/r_max); r > 0 Å."""
    x = r / r_max
    n = jnp.arange(1, num_radial + 1, dtype=r.dtype)
    envelope = polynomial_cutoff(r, r_max, ENVELOPE_P) / x  # [n_edges]
    return envelope[:, None] * jnp.sin(jnp.pi * n[None, :] * x[:, None])


def spherical_radial(r, num_spherical: int, num_radial: int, r_max: float):
    """[n_edges, num_spherical, num_radial] radial factors of the spherical basis,
    u(x)/x sqrt(2)/|j_{l+1}(z_ln)| j_l(z_ln x), x = r / r_max, r > 0 Å."""
    x = r / r_max
    z = bessel_zeros(num_spherical, num_radial)
    norm = bessel_normalizers(num_spherical, num_radial)
    envelope = polynomial_cutoff(r, r_max, ENVELOPE_P) / x  # [n_edges]
    per_l = [
        spherical_jn(l, x[:, None] * jnp.asarray(z[l], r.dtype)[None, :])
        * jnp.asarray(norm[l], r.dtype)[None, :]
        for l in range(num_spherical)
    ]
    return envelope[:, None, None] * jnp.stack(per_l, axis=1)


def angular_basis(cos_theta, num_spherical: int):
    """[..., num_spherical] Y_l0(θ) = sqrt((2l+1)/4π) P_l(cos θ)."""
    l = np.arange(num_spherical)
    norm = np.sqrt((2 * l + 1) / (4 * np.pi)).reshape((1,) * cos_theta.ndim + (-1,))
    return legendre(num_spherical - 1, cos_theta) * jnp.asarray(norm, cos_theta.dtype)


def spherical_basis(r, cos_theta, num_spherical: int, num_radial: int, r_max: float):
    """[n, num_spherical, num_radial] a_ln(r, θ) for n (distance Å, cos θ) pairs."""
    radial = spherical_radial(r, num_spherical, num_radial, r_max)
    return radial * angular_basis(cos_theta, num_spherical)[:, :, None]


def _unit_uniform(key, shape, dtype=jnp.float32):
    """DimeNet's embedding init: uniform in (-sqrt 3, sqrt 3), unit variance."""
    return jax.random.uniform(key, shape, dtype, -math.sqrt(3.0), math.sqrt(3.0))


class _Residual(nn.Module):
    """h + σ(Dense(σ(Dense(h))))."""

    features: int

    @nn.compact
    def __call__(self, h):
        act = jax.nn.silu
        return h + act(nn.Dense(self.features)(act(nn.Dense(self.features)(h))))


class _Output(nn.Module):
    """Edge messages -> per-atom outputs: Σ_j W e(r_ji) ⊙ m_ji, then an MLP."""

    out_emb_size: int
    num_layers: int
    norm: float

    @nn.compact
    def __call__(self, m, rbf, receivers, n_nodes: int):
        x = nn.Dense(m.shape[-1], use_bias=False, name="rbf")(rbf) * m  # [n_edges, F]
        x = jax.ops.segment_sum(x, receivers, n_nodes) * self.norm  # [n_nodes, F]
        x = nn.Dense(self.out_emb_size, use_bias=False, name="up")(x)
        for t in range(self.num_layers):
            x = jax.nn.silu(nn.Dense(self.out_emb_size, name=f"layer_{t}")(x))
        return nn.Dense(1, use_bias=False, name="energy")(x)[:, 0]  # [n_nodes]


class _Interaction(nn.Module):
    """DimeNet++ interaction: triplet messages through down/up projections."""

    int_emb_size: int
    basis_emb_size: int
    num_before_skip: int
    num_after_skip: int
    norm: float

    @nn.compact
    def __call__(self, m, rbf, sph_radial, sph_angular, triplets: Triplets, kj):
        act = jax.nn.silu
        n_edges, emb = m.shape
        x_ji = act(nn.Dense(emb, name="ji")(m))
        x_kj = act(nn.Dense(emb, name="kj")(m))
        w_rbf = nn.Dense(self.basis_emb_size, use_bias=False, name="rbf_down")(rbf)
        x_kj = x_kj * nn.Dense(emb, use_bias=False, name="rbf_up")(w_rbf)
        x_kj = act(nn.Dense(self.int_emb_size, use_bias=False, name="down")(x_kj))
        # the spherical basis enters linearly: project its radial part per edge, then
        # combine with the angular part per triplet (= a bias-free Dense of a_ln)
        n_sph, n_rad = sph_radial.shape[1:]
        w_sbf = self.param(
            "sbf_down",
            nn.initializers.lecun_normal(),
            (n_sph * n_rad, self.basis_emb_size),
            m.dtype,
        ).reshape(n_sph, n_rad, self.basis_emb_size)
        per_edge = jnp.einsum("eln,lnb->elb", sph_radial, w_sbf)  # [n_edges, L, B]
        sbf = jnp.einsum("etl,etlb->etb", sph_angular, per_edge[kj])  # [n_edges, K, B]
        sbf = sbf * triplets.mask.astype(m.dtype)[:, :, None]
        # Σ_k x_kj ⊙ (W_up sbf_k) = Σ_b W_up[b] ⊙ (Σ_k sbf_kb x_kj): a batched matmul
        # per edge instead of an [n_edges, K, int_emb] elementwise product
        w_up = self.param(
            "sbf_up",
            nn.initializers.lecun_normal(),
            (self.basis_emb_size, self.int_emb_size),
            m.dtype,
        )
        pooled = jnp.einsum("etb,etc->ebc", sbf, x_kj[kj])  # [n_edges, B, I]
        t_ji = jnp.einsum("ebc,bc->ec", pooled, w_up) * self.norm  # [n_edges, I]
        h = x_ji + act(nn.Dense(emb, use_bias=False, name="up")(t_ji))
        for t in range(self.num_before_skip):
            h = _Residual(emb, name=f"before_skip_{t}")(h)
        m = m + act(nn.Dense(emb, name="skip")(h))
        for t in range(self.num_after_skip):
            m = _Residual(emb, name=f"after_skip_{t}")(m)
        return m


class DimeNetPP(nn.Module):
    """DimeNet++ (see the module docstring): EdgeInputs with triplets -> [n_nodes] eV."""

    num_species: int
    r_max: float = 5.0
    avg_num_neighbors: float = 16.0
    emb_size: int = 128
    int_emb_size: int = 64
    basis_emb_size: int = 8
    out_emb_size: int = 256
    num_blocks: int = 4
    num_spherical: int = 6
    num_radial: int = 6
    num_before_skip: int = 1
    num_after_skip: int = 2
    num_output_layers: int = 3
    max_neighbors: int | None = None  # read by jaxmlp.triplets.build_triplets

    @nn.compact
    def __call__(self, inputs: EdgeInputs):
        act = jax.nn.silu
        triplets: Triplets = inputs.extras["triplets"]
        n_nodes, n_edges = inputs.n_nodes, inputs.n_edges
        dtype = inputs.vectors.dtype
        senders, receivers = inputs.senders, inputs.receivers
        norm = 1.0 / float(self.avg_num_neighbors)

        vectors = mask_vectors(inputs.vectors, inputs.edge_mask, self.r_max)
        r = safe_norm(vectors)  # [n_edges] Å, > 0 (padded edges at 2 r_max)
        rbf = radial_basis(r, self.num_radial, self.r_max)  # [n_edges, R], 0 beyond
        sph_radial = spherical_radial(
            r, self.num_spherical, self.num_radial, self.r_max
        )  # [n_edges, L, R]
        kj = jnp.where(triplets.mask, triplets.kj, 0)  # [n_edges, K], safe indices
        cos_theta = jnp.sum(vectors[kj] * vectors[:, None, :], axis=-1) / (
            r[kj] * r[:, None]
        )  # [n_edges, K]: angle between k->j and j->i
        sph_angular = angular_basis(cos_theta, self.num_spherical)  # [n_edges, K, L]

        h = nn.Embed(
            self.num_species,
            self.emb_size,
            embedding_init=_unit_uniform,
            name="species",
        )(inputs.species)  # [n_nodes, emb]
        rbf_h = act(nn.Dense(self.emb_size, name="embed_rbf")(rbf))
        m = act(
            nn.Dense(self.emb_size, name="embed")(
                jnp.concatenate([h[senders], h[receivers], rbf_h], axis=-1)
            )
        )  # [n_edges, emb]

        def output(t, m):
            block = _Output(
                self.out_emb_size, self.num_output_layers, norm, name=f"output_{t}"
            )
            return block(m, rbf, receivers, n_nodes)

        energy = output(0, m)
        for t in range(self.num_blocks):
            m = _Interaction(
                self.int_emb_size,
                self.basis_emb_size,
                self.num_before_skip,
                self.num_after_skip,
                norm,
                name=f"interaction_{t}",
            )(m, rbf, sph_radial, sph_angular, triplets, kj)
            energy = energy + output(t + 1, m)
        assert energy.shape == (n_nodes,) and m.shape == (n_edges, self.emb_size)
        return nan_if_overflow(energy.astype(dtype), triplets)
