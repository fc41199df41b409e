"""Fitted classical potentials: Lennard-Jones and the embedded-atom method (EAM).

The baseline of the comparison: a handful of trainable parameters in a fixed physical
functional form, fast to compile and run, with no chemistry beyond that form. Both are
ordinary jaxmlp architectures (``model: {name: lj}`` / ``{name: eam}``), fitted by the
same training loop as the networks, with the same signature
``(inputs: EdgeInputs) -> [n_nodes]`` per-atom energies (eV).

Every radial term is multiplied by a switch ``S(r)``: 1 below ``r_on = switch_on *
r_max``, 0 beyond ``r_max``, the quintic smoothstep in between (value, first and second
derivatives continuous), so energies and forces are continuous as a neighbour crosses
the cutoff. Per-species-pair parameters are stored as full ``[n, n]`` tables and
symmetrised, ``0.5 (p + p^T)``; positive quantities are stored as logarithms (the
symmetrised log, exponentiated), so training can never flip a sign. jaxmlp multiplies
the output by the data's ``scale`` and adds ``shift`` and E0 (:mod:`jaxmlp.model`); for
these models that only rescales the energy parameters, and the equilibrium geometry at
initialisation is that of the defaults.

* :class:`LennardJones` (Lennard-Jones 1924):
  ``E_i = 1/2 sum_j 4 eps_ij [(sigma_ij/r_ij)^12 - (sigma_ij/r_ij)^6] S(r_ij)``,
  eps (eV) and sigma (Å) per species pair. Defaults: Halicioglu & Pound's copper
  (Phys. Status Solidi A 30, 619, 1975), eps = 0.4093 eV, sigma = 2.338 Å, whose fcc
  minimum is near a = 3.6 Å.
* :class:`EAM` (Daw & Baskes, Phys. Rev. B 29, 6443, 1984):
  ``E_i = F_{s_i}(rho_i) + 1/2 sum_j phi_{s_i s_j}(r_ij)``,
  ``rho_i = sum_j f_{s_j}(r_ij)``, in the second-moment (Finnis & Sinclair 1984;
  Rosato, Guillopé & Legrand 1989) forms

  - density of neighbour species b: ``f_b(r) = c_b exp(-beta_b (r / d_b - 1)) S(r)``
    (dimensionless),
  - pair repulsion: ``phi_ab(r) = A_ab exp(-alpha_ab (r / r0_ab - 1)) S(r)`` (eV),
  - embedding: ``F_a(rho) = -xi_a (sqrt(rho + rho_0^2) - rho_0)`` (eV), the square
    root of the tight-binding second moment, regularised by the hyper-parameter
    ``rho_0`` so that F is smooth (and its gradient finite) at rho = 0, an isolated
    atom, where F(0) = 0.

  Defaults: Cleri & Rosato's copper (Phys. Rev. B 48, 22, 1993): xi = 1.224 eV,
  beta = 2q = 4.556, d = r0 = 2.556 Å (the fcc nearest-neighbour distance),
  alpha = p = 10.96, A = 2 x 0.0855 eV (their repulsion is summed over j without the
  1/2), c = 1. Bound fcc copper with its minimum near a = 3.6 Å at initialisation.

Shapes: ``vectors`` [n_edges, 3] Å, ``species`` [n_nodes], output [n_nodes] eV. Padded
edges (``edge_mask`` False) contribute nothing, in value or gradient.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxmlp.edges import EdgeInputs
from jaxmlp.nn.radial import mask_vectors, safe_norm


def switch_fn(r, r_on: float, r_off: float):
    """1 for r <= r_on, 0 for r >= r_off, C2 quintic smoothstep in between; r in Å."""
    x = jnp.clip((r - r_on) / (r_off - r_on), 0.0, 1.0)
    return 1.0 - x**3 * (10.0 - 15.0 * x + 6.0 * x**2)


def _positive(module: nn.Module, name: str, value: float, shape: tuple[int, ...]):
    """A positive parameter of ``shape`` stored as its log, initialised to ``value``;
    ``[n, n]`` tables are symmetrised (in the log) before exponentiation."""
    log = module.param(name, lambda key: jnp.full(shape, math.log(value), jnp.float32))
    if len(shape) == 2:
        log = 0.5 * (log + log.T)
    return jnp.exp(log)


def _distances(inputs: EdgeInputs, r_max: float, switch_on: float):
    """Edge lengths r [n_edges] Å (padded edges moved beyond the cutoff) and switch
    S(r) [n_edges] (0 on padded edges)."""
    r = safe_norm(mask_vectors(inputs.vectors, inputs.edge_mask, r_max))
    switch = switch_fn(r, switch_on * r_max, r_max)
    return r, jnp.where(inputs.edge_mask, switch, 0.0)


class LennardJones(nn.Module):
    """Lennard-Jones 12-6 with trainable eps (eV) and sigma (Å) per species pair.

    Attributes:
        num_species: size of the species table.
        r_max: cutoff, Å.
        epsilon: initial well depth, eV (every pair).
        sigma: initial zero-crossing distance, Å (every pair).
        switch_on: r_on / r_max, where the switch to zero starts.
    """

    num_species: int
    r_max: float
    epsilon: float = 0.4093  # eV
    sigma: float = 2.338  # Å
    switch_on: float = 0.8

    @nn.compact
    def __call__(self, inputs: EdgeInputs):
        n = self.num_species
        epsilon = _positive(self, "log_epsilon", self.epsilon, (n, n))  # eV
        sigma = _positive(self, "log_sigma", self.sigma, (n, n))  # Å
        r, switch = _distances(inputs, self.r_max, self.switch_on)
        dtype = r.dtype
        pair = inputs.species[inputs.senders], inputs.species[inputs.receivers]
        sr6 = (sigma[pair].astype(dtype) / r) ** 6  # [n_edges]
        e = 4.0 * epsilon[pair].astype(dtype) * (sr6 * sr6 - sr6) * switch
        e = jnp.where(inputs.edge_mask, e, 0.0)
        return 0.5 * jax.ops.segment_sum(e, inputs.receivers, inputs.n_nodes)


class EAM(nn.Module):
    """Embedded-atom method, second-moment forms, trainable per species and pair.

    Attributes:
        num_species: size of the species table.
        r_max: cutoff, Å.
        embedding: xi, initial embedding strength, eV (per species).
        density_decay: beta, initial density decay (per neighbour species).
        density_distance: d, initial density reference distance, Å (per neighbour
            species); the density is ``c`` there (c is initialised to 1).
        repulsion: A, initial pair repulsion at r0, eV (per pair).
        repulsion_decay: alpha, initial repulsion decay (per pair).
        repulsion_distance: r0, initial repulsion reference distance, Å (per pair).
        rho_0: regularisation of sqrt(rho) at rho = 0 (fixed, dimensionless).
        switch_on: r_on / r_max, where the switch to zero starts.
    """

    num_species: int
    r_max: float
    embedding: float = 1.224  # eV
    density_decay: float = 4.556
    density_distance: float = 2.556  # Å
    repulsion: float = 0.171  # eV
    repulsion_decay: float = 10.96
    repulsion_distance: float = 2.556  # Å
    rho_0: float = 0.1
    switch_on: float = 0.8

    @nn.compact
    def __call__(self, inputs: EdgeInputs):
        n = self.num_species
        xi = _positive(self, "log_embedding", self.embedding, (n,))
        c = _positive(self, "log_density_scale", 1.0, (n,))
        beta = _positive(self, "log_density_decay", self.density_decay, (n,))
        d = _positive(self, "log_density_distance", self.density_distance, (n,))
        a = _positive(self, "log_repulsion", self.repulsion, (n, n))
        alpha = _positive(self, "log_repulsion_decay", self.repulsion_decay, (n, n))
        r0 = _positive(self, "log_repulsion_distance", self.repulsion_distance, (n, n))
        r, switch = _distances(inputs, self.r_max, self.switch_on)
        dtype = r.dtype
        s_j = inputs.species[inputs.senders]  # neighbour
        s_i = inputs.species[inputs.receivers]  # centre

        def cast(p):
            return p.astype(dtype)

        f = cast(c[s_j]) * jnp.exp(-cast(beta[s_j]) * (r / cast(d[s_j]) - 1.0))
        f = jnp.where(inputs.edge_mask, f * switch, 0.0)  # [n_edges]
        rho = jax.ops.segment_sum(f, inputs.receivers, inputs.n_nodes)  # [n_nodes]
        rho_0 = jnp.asarray(self.rho_0, dtype)
        embed = -cast(xi[inputs.species]) * (jnp.sqrt(rho + rho_0**2) - rho_0)
        x = r / cast(r0[s_i, s_j]) - 1.0
        phi = cast(a[s_i, s_j]) * jnp.exp(-cast(alpha[s_i, s_j]) * x)
        phi = jnp.where(inputs.edge_mask, phi * switch, 0.0)  # [n_edges] eV
        return embed + 0.5 * jax.ops.segment_sum(phi, inputs.receivers, inputs.n_nodes)
