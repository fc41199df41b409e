"""Morse pair potential: the fitted classical baseline, as a jaxmlp architecture.

``E_i = 1/2 sum_j D [(1 - exp(-a (r_ij - r0)))^2 - 1] S(r_ij)`` with per-species-pair
(symmetric) ``D`` (eV), ``a`` (1/Å) and ``r0`` (Å) as trainable params and ``S`` a
smooth switch (value, first and second derivative continuous) from 1 at ``r_on`` to 0 at
``r_max``. Defaults are Girifalco & Weizer's copper (Phys. Rev. 114, 687, 1959):
D = 0.3429 eV, a = 1.3588 1/Å, r0 = 2.866 Å. Same signature as every architecture:
``(vectors, species, senders, receivers, edge_mask) -> [n_nodes]``; fast to compile and
run, with a physical equation of state, which makes it the test oracle of choice for
MD, relaxation and thermostat tests.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxmlp.nn.radial import mask_vectors, safe_norm


def smooth_switch(r, r_on: float, r_off: float):
    """1 below ``r_on``, 0 beyond ``r_off``, C2 in between (quintic smoothstep)."""
    x = jnp.clip((r - r_on) / (r_off - r_on), 0.0, 1.0)
    return 1.0 - x**3 * (10.0 - 15.0 * x + 6.0 * x**2)


class Morse(nn.Module):
    """Morse pair potential (see the module docstring); energies in eV."""

    num_species: int
    r_max: float
    avg_num_neighbors: float = 1.0  # unused; part of the architecture signature
    depth: float = 0.3429  # eV
    stiffness: float = 1.3588  # 1/Å
    distance: float = 2.866  # Å
    switch_on: float = 0.8  # r_on / r_max

    @nn.compact
    def __call__(self, vectors, species, senders, receivers, edge_mask):
        n_nodes = species.shape[0]
        s = self.num_species

        def pair_param(name, value):
            p = self.param(name, lambda key: jnp.full((s, s), value, jnp.float32))
            return 0.5 * (p + p.T)  # symmetric in the two species

        depth = pair_param("depth", self.depth)
        stiffness = pair_param("stiffness", self.stiffness)
        distance = pair_param("distance", self.distance)
        r = safe_norm(mask_vectors(vectors, edge_mask, self.r_max))  # [n_edges] Å
        pair = species[senders], species[receivers]
        d, a, r0 = (
            depth[pair].astype(r.dtype),
            stiffness[pair].astype(r.dtype),
            distance[pair],
        )
        morse = d * ((1.0 - jnp.exp(-a * (r - r0.astype(r.dtype)))) ** 2 - 1.0)
        e = 0.5 * morse * smooth_switch(r, self.switch_on * self.r_max, self.r_max)
        e = jnp.where(edge_mask, e, 0.0)
        return jax.ops.segment_sum(e, receivers, num_segments=n_nodes)
