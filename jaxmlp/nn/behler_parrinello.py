"""Behler-Parrinello / ANI-style network: atom-centred symmetry functions and one
feed-forward network per element.

Behler & Parrinello, "Generalized neural-network representation of high-dimensional
potential-energy surfaces" (PRL 98, 146401, 2007); Behler, "Atom-centered symmetry
functions for constructing high-dimensional neural network potentials" (J. Chem. Phys.
134, 074106, 2011); Smith, Isayev & Roitberg, "ANI-1: an extensible neural network
potential with DFT accuracy at force field computational cost" (Chem. Sci. 8, 3192,
2017). The energy is a sum of atomic energies E_i = NN_{Z_i}(G_i) - NN_{Z_i}(0), each a
function of the descriptor G_i of atom i's neighbourhood within ``r_max``; subtracting
NN(0) makes an isolated atom's network energy zero, so jaxmlp's E0 is the isolated-atom
energy.

Descriptor (lengths in Å, angles in radians), with the cosine cutoff
f_c(r) = 0.5 (cos(pi r / r_c) + 1) for r < r_c, else 0 (zero value and slope at r_c, so
energies and forces are continuous as a neighbour crosses the cutoff):

* radial (G2), one channel per neighbour species s and radial shell k::

      G2[s, k](i) = sum_{j in s} exp(-eta_k (r_ij - R_k)^2) f_c(r_ij)

* angular, one channel per unordered neighbour-species pair {s, t}, angular shell k and
  (zeta, lambda)::

      GA[{s,t}, k, zeta, lambda](i) = 2^(1 - zeta)
          sum_{unordered pairs {j, k'}, j != k', {Z_j, Z_k'} = {s, t}}
          (1 + lambda cos theta_jik')^zeta g_k(r_ij) g_k(r_ik')

  with g_k(r) = exp(-eta_k (r - R_k)^2) f_c(r). This is Behler's G5 (no r_jk factor)
  with shifted Gaussians. ANI's radial weight exp(-eta ((r_ij + r_ik)/2 - R_s)^2) does
  not factorise over the two neighbours; ours, exp(-eta (r_ij - R_k)^2) exp(-eta
  (r_ik - R_k)^2), does, and that is what makes the angular sum edge-based.

No triplets: for integer zeta, (1 + lambda c)^zeta = sum_n C(zeta, n) lambda^n c^n and
c^n = (r^_ij . r^_ik)^n, so with the neighbour moment tensors
T_n^s = sum_{j in s} g(r_ij) r^_ij^{(x) n} (segment sums over edges),
sum_{j in s, k in t} c_jk^n g_j g_k = <T_n^s, T_n^t>. The symmetric tensor is stored as
its (n+1)(n+2)/2 monomials x^a y^b z^c with multinomial weights n!/(a! b! c!). For s = t
the j = k terms (c = 1, sum_j g_j^2, also a segment sum) are removed and the ordered sum
halved. Memory is O(n_edges * num_angular * n_monomials), n_monomials =
(zeta_max+1)(zeta_max+2)(zeta_max+3)/6 (165 for zeta_max = 8); the identity is exact
(checked against a loop over triplets to 1e-10 relative in tests/test_arch_bp.py).

Normalisation (no pass over the data at init): each function is divided by its
expected value for an ideal gas of neighbours of uniform density
rho = avg_num_neighbors / (4/3 pi r_max^3), species in equal proportion, directions
independent: E[G2[s, k]] = (rho / S) int_0^r_c 4 pi r^2 g_k(r) dr and
E[GA] = (m_k / S)^2 2^(1-zeta) E_c[(1 + lambda c)^zeta] (halved for s = t), with m_k the
same integral for the angular shell and E_c over c uniform on [-1, 1]. jaxmlp's training
sets ``avg_num_neighbors`` from the training set, so this is the issue's training-set
normalisation in analytic form; features are O(1) in condensed matter.

Hyper-parameters: ``num_radial`` shells with centres R_k evenly spaced on
[r_min, r_max) (ANI's linspace without its end point) and width eta = 1 / spacing^2
(ANI-1x: 16 Å^-2 at 0.27 Å spacing), or explicit ``radial_shifts`` / ``radial_eta``;
``num_angular`` shells likewise on [r_min, angular_r_max); ``zetas`` (non-negative
integers) and ``lambdas``; ``angular_species_pairs`` False sums the angular functions
over all neighbours (one channel instead of S(S+1)/2); ``hidden`` widths and
``activation`` of the per-element networks (evaluated for every element on every atom
and selected by species: S times the cost of one network, no gather of weights).

Shapes: ``inputs.vectors`` [n_edges, 3] Å (receiver minus sender) -> [n_nodes] eV
(before jaxmlp's scale, shift and E0).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp.edges import EdgeInputs
from jaxmlp.nn.element_networks import SpeciesDense, select_species
from jaxmlp.nn.radial import mask_vectors, safe_norm

ACTIVATIONS = {
    "silu": jax.nn.silu,
    "tanh": jnp.tanh,
    "celu": functools.partial(jax.nn.celu, alpha=0.1),  # ANI's CELU(0.1)
    "softplus": jax.nn.softplus,
}


def cosine_cutoff(r, r_c: float):
    """0.5 (cos(pi r / r_c) + 1) inside r_c, 0 outside (C1 at r_c); r in Å."""
    return jnp.where(r < r_c, 0.5 * (jnp.cos(jnp.pi * r / r_c) + 1.0), 0.0)


def shells(num: int, r_min: float, r_c: float, shifts, eta):
    """(centres [num] Å, eta Å^-2): evenly spaced on [r_min, r_c), eta = 1/spacing^2,
    unless given."""
    if shifts is None:
        if num < 1:
            raise ValueError(f"need at least one shell, got {num}")
        if not 0.0 <= r_min < r_c:
            raise ValueError(f"r_min must lie in [0, {r_c}), got {r_min}")
        spacing = (r_c - r_min) / num
        shifts = r_min + spacing * np.arange(num)
    else:
        shifts = np.asarray(shifts, np.float64)
        spacing = (r_c - r_min) / len(shifts)
    eta = 1.0 / spacing**2 if eta is None else float(eta)
    return np.asarray(shifts, np.float64), eta


def monomials(n_max: int):
    """Exponents [M, 3], degrees [M] and multinomial weights [M] of every x^a y^b z^c
    with a + b + c <= n_max: <A, B> of symmetric n-tensors is sum w A_abc B_abc."""
    exps, deg, weight = [], [], []
    for n in range(n_max + 1):
        for a in range(n, -1, -1):
            for b in range(n - a, -1, -1):
                c = n - a - b
                exps.append((a, b, c))
                deg.append(n)
                weight.append(
                    math.factorial(n)
                    / (math.factorial(a) * math.factorial(b) * math.factorial(c))
                )
    return np.array(exps), np.array(deg), np.array(weight, np.float64)


class Tables(NamedTuple):
    """Static (numpy float64) constants of the symmetry functions."""

    num_species: int
    r_c: float  # radial cutoff, Å
    r_c_angular: float  # angular cutoff, Å
    radial_shifts: np.ndarray  # [Kr] Å
    radial_eta: float  # Å^-2
    angular_shifts: np.ndarray  # [Ka] Å
    angular_eta: float  # Å^-2
    exponents: np.ndarray  # [M, 3] int
    degree_weights: (
        np.ndarray
    )  # [M, n_max+1] multinomial weight at the monomial's degree
    coefficients: np.ndarray  # [F_a, n_max+1] 2^(1-zeta) C(zeta, n) lambda^n
    diagonal: np.ndarray  # [F_a] 2^(1-zeta) (1 + lambda)^zeta (the j = k term)
    pairs: np.ndarray  # [P, 2] neighbour-species pairs s <= t (or [[0, 0]])
    radial_scale: np.ndarray  # [Kr] expected G2 per species channel
    angular_scale: np.ndarray  # [P, Ka, F_a] expected angular function
    angular_species: bool

    @property
    def num_features(self) -> int:
        s = self.num_species
        return s * len(self.radial_shifts) + self.angular_scale.size


def _shell_integral(shifts, eta, r_c, rho):
    """rho int_0^r_c 4 pi r^2 exp(-eta (r - R)^2) f_c(r) dr for each R [K]."""
    r = np.linspace(0.0, r_c, 4001)
    fc = 0.5 * (np.cos(np.pi * r / r_c) + 1.0)
    g = np.exp(-eta * (r[None, :] - shifts[:, None]) ** 2) * fc[None, :]
    return rho * np.trapezoid(4 * np.pi * r[None, :] ** 2 * g, r, axis=1)


@functools.lru_cache(maxsize=32)
def make_tables(
    num_species: int,
    r_max: float,
    avg_num_neighbors: float,
    num_radial: int,
    num_angular: int,
    r_min: float,
    radial_shifts,
    radial_eta,
    angular_shifts,
    angular_eta,
    angular_r_max,
    zetas: tuple[int, ...],
    lambdas: tuple[float, ...],
    angular_species_pairs: bool,
) -> Tables:
    """The constants of :class:`BehlerParrinello` (hashable arguments: cached)."""
    r_ca = r_max if angular_r_max is None else min(float(angular_r_max), r_max)
    rs, eta_r = shells(num_radial, r_min, r_max, radial_shifts, radial_eta)
    ra, eta_a = shells(num_angular, r_min, r_ca, angular_shifts, angular_eta)
    zetas = tuple(zetas)
    if not zetas or any(int(z) != z or z < 0 for z in zetas):
        raise ValueError(f"zetas must be non-negative integers, got {zetas}")
    n_max = int(max(zetas))
    exps, deg, weight = monomials(n_max)
    degree_weights = np.zeros((len(deg), n_max + 1))
    degree_weights[np.arange(len(deg)), deg] = weight
    coeffs, diag, mean = [], [], []
    for zeta in zetas:
        zeta = int(zeta)
        for lam in lambdas:
            c = np.zeros(n_max + 1)
            for n in range(zeta + 1):
                c[n] = 2.0 ** (1 - zeta) * math.comb(zeta, n) * float(lam) ** n
            coeffs.append(c)
            diag.append(2.0 ** (1 - zeta) * (1.0 + float(lam)) ** zeta)
            # E[c^n] over c uniform on [-1, 1]: 1/(n+1) for even n, 0 for odd n
            moments = np.array(
                [1.0 / (n + 1) if n % 2 == 0 else 0.0 for n in range(n_max + 1)]
            )
            mean.append(float(c @ moments))
    mean = np.array(mean)
    if np.any(mean <= 0):
        raise ValueError(f"lambdas {lambdas} give angular functions of zero mean")
    s = num_species if angular_species_pairs else 1
    pairs = np.array([(a, b) for a in range(s) for b in range(a, s)])
    rho = avg_num_neighbors / (4.0 / 3.0 * np.pi * r_max**3)
    radial_scale = _shell_integral(rs, eta_r, r_max, rho) / num_species
    m = _shell_integral(ra, eta_a, r_ca, rho) / s  # [Ka] per species
    same = (pairs[:, 0] == pairs[:, 1]).astype(np.float64)
    pair_factor = np.where(same > 0, 0.5, 1.0)  # unordered pairs of one species: half
    angular_scale = (
        pair_factor[:, None, None] * (m**2)[None, :, None] * mean[None, None, :]
    )
    return Tables(
        num_species=num_species,
        r_c=float(r_max),
        r_c_angular=float(r_ca),
        radial_shifts=rs,
        radial_eta=eta_r,
        angular_shifts=ra,
        angular_eta=eta_a,
        exponents=exps,
        degree_weights=degree_weights,
        coefficients=np.array(coeffs),
        diagonal=np.array(diag),
        pairs=pairs,
        radial_scale=radial_scale,
        angular_scale=angular_scale,
        angular_species=bool(angular_species_pairs),
    )


def symmetry_functions(inputs: EdgeInputs, tables: Tables):
    """Raw (unnormalised) symmetry functions, edge-based.

    Returns:
        radial [n_nodes, S, Kr] (G2 per neighbour species and shell) and angular
        [n_nodes, P, Ka, F_a] (per neighbour-species pair, shell and (zeta, lambda) in
        the order ``for zeta in zetas: for lambda in lambdas``), dimensionless.
    """
    dtype = inputs.vectors.dtype
    n_nodes, n_species = inputs.n_nodes, tables.num_species
    vectors = mask_vectors(inputs.vectors, inputs.edge_mask, tables.r_c)
    r = safe_norm(vectors)  # [n_edges] Å; padded edges at 2 r_c, never 0
    unit = vectors / r[:, None]  # [n_edges, 3]
    neighbour = inputs.species[inputs.senders]  # [n_edges]

    def const(x):
        return jnp.asarray(x, dtype)

    # radial: one segment per (receiver, neighbour species)
    fc = jnp.where(inputs.edge_mask, cosine_cutoff(r, tables.r_c), 0.0)
    shifts = const(tables.radial_shifts)[None, :]
    g2 = jnp.exp(-tables.radial_eta * (r[:, None] - shifts) ** 2) * fc[:, None]
    radial = jax.ops.segment_sum(
        g2, inputs.receivers * n_species + neighbour, num_segments=n_nodes * n_species
    ).reshape(n_nodes, n_species, -1)  # [n_nodes, S, Kr]

    # angular: moment tensors T_n^s = sum_j g_j r^_j^(x)n as monomials x^a y^b z^c
    fca = jnp.where(inputs.edge_mask, cosine_cutoff(r, tables.r_c_angular), 0.0)
    shifts = const(tables.angular_shifts)[None, :]
    ga = jnp.exp(-tables.angular_eta * (r[:, None] - shifts) ** 2) * fca[:, None]
    n_max = tables.degree_weights.shape[1] - 1
    powers = [jnp.ones_like(unit)]
    for _ in range(n_max):
        powers.append(powers[-1] * unit)
    powers = jnp.stack(powers, axis=-1)  # [n_edges, 3, n_max+1]
    a, b, c = tables.exponents.T
    mono = powers[:, 0, a] * powers[:, 1, b] * powers[:, 2, c]  # [n_edges, M]
    s = n_species if tables.angular_species else 1
    segment = inputs.receivers * s + (neighbour if tables.angular_species else 0)
    moments = jax.ops.segment_sum(
        ga[:, :, None] * mono[:, None, :], segment, num_segments=n_nodes * s
    ).reshape(n_nodes, s, ga.shape[1], -1)  # [n_nodes, s, Ka, M]
    squares = jax.ops.segment_sum(ga**2, segment, num_segments=n_nodes * s).reshape(
        n_nodes, s, -1
    )  # [n_nodes, s, Ka]: the j = k terms
    first, second = tables.pairs[:, 0], tables.pairs[:, 1]
    same = const(tables.pairs[:, 0] == tables.pairs[:, 1])  # [P]
    inner = jnp.einsum(
        "npkm,md->npkd",
        moments[:, first] * moments[:, second],
        const(tables.degree_weights),
    )  # [n_nodes, P, Ka, n_max+1]: sum_{j in s, k in t} g_j g_k cos^n
    angular = jnp.einsum("npkd,fd->npkf", inner, const(tables.coefficients))
    diagonal = (
        squares[:, first][..., None] * const(tables.diagonal)[None, None, None, :]
    )
    angular = angular - same[None, :, None, None] * diagonal
    half = 1.0 - 0.5 * same  # unordered pairs: the ordered j != k sum over 2 for s = t
    return radial, angular * half[None, :, None, None]


class BehlerParrinello(nn.Module):
    """Behler-Parrinello / ANI-style network (see the module docstring); eV per atom.

    Attributes:
        num_species: size of the species table.
        r_max: cutoff of the radial functions, Å.
        avg_num_neighbors: neighbours within r_max, sets the feature normalisation.
        num_radial: radial shells per neighbour species.
        num_angular: angular shells.
        r_min: first shell centre, Å.
        radial_shifts, angular_shifts: explicit shell centres (Å), or None.
        radial_eta, angular_eta: Gaussian widths (Å^-2), or None for 1/spacing^2.
        angular_r_max: cutoff of the angular functions (Å, at most r_max), None: r_max.
        zetas: non-negative integer exponents of the angular functions.
        lambdas: signs (usually +-1) of the angular functions.
        angular_species_pairs: resolve angular functions by neighbour-species pair.
        hidden: widths of each element's network.
        activation: one of ``ACTIVATIONS``.
    """

    num_species: int
    r_max: float
    avg_num_neighbors: float = 16.0
    num_radial: int = 16
    num_angular: int = 4
    r_min: float = 0.8
    radial_shifts: tuple[float, ...] | None = None
    angular_shifts: tuple[float, ...] | None = None
    radial_eta: float | None = None
    angular_eta: float | None = None
    angular_r_max: float | None = None
    zetas: tuple[int, ...] = (1, 2, 4, 8)
    lambdas: tuple[float, ...] = (1.0, -1.0)
    angular_species_pairs: bool = True
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "silu"

    def tables(self) -> Tables:
        def opt_tuple(x):
            return None if x is None else tuple(float(v) for v in x)

        return make_tables(
            int(self.num_species),
            float(self.r_max),
            float(self.avg_num_neighbors),
            int(self.num_radial),
            int(self.num_angular),
            float(self.r_min),
            opt_tuple(self.radial_shifts),
            self.radial_eta,
            opt_tuple(self.angular_shifts),
            self.angular_eta,
            self.angular_r_max,
            tuple(self.zetas),
            tuple(float(v) for v in self.lambdas),
            bool(self.angular_species_pairs),
        )

    def features(self, inputs: EdgeInputs):
        """[n_nodes, F] normalised descriptor: radial (S*Kr) then angular (P*Ka*F_a)."""
        tables = self.tables()
        dtype = inputs.vectors.dtype
        radial, angular = symmetry_functions(inputs, tables)
        radial = radial / jnp.asarray(tables.radial_scale, dtype)[None, None, :]
        angular = angular / jnp.asarray(tables.angular_scale, dtype)[None]
        n = inputs.n_nodes
        return jnp.concatenate([radial.reshape(n, -1), angular.reshape(n, -1)], axis=1)

    @nn.compact
    def __call__(self, inputs: EdgeInputs):
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {self.activation!r}; known: {sorted(ACTIVATIONS)}"
            )
        act = ACTIVATIONS[self.activation]
        x = self.features(inputs)  # [n_nodes, F]
        self.sow("intermediates", "features", x)
        x = jnp.concatenate([x, jnp.zeros_like(x[:1])], axis=0)  # + an isolated atom
        for t, width in enumerate(self.hidden):
            x = act(SpeciesDense(self.num_species, width, name=f"hidden_{t}")(x))
        y = SpeciesDense(self.num_species, 1, name="readout")(x)[..., 0]  # [n+1, S]
        isolated = jnp.broadcast_to(y[-1:], y[:-1].shape)
        return select_species(y[:-1] - isolated, inputs.species)  # [n_nodes] eV
