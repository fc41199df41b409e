"""Initial momenta: Maxwell–Boltzmann with the conserved momenta projected out.

Momenta are in ASE units (amu Å per ASE time unit). The centre-of-mass momentum is
always removed; for a free molecule whose dynamics conserves angular momentum the
rigid rotation is removed too, so the drawn kinetic energy is distributed over exactly
the degrees of freedom of :func:`jaxmlp.md.observables.degrees_of_freedom`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmlp.units import KB


def maxwell_boltzmann(key, masses, temperature: float, dtype=jnp.float32):
    """[n_atoms, 3] momenta at ``temperature`` K with zero total momentum.

    Each component is drawn from N(0, m kT) and the centre-of-mass velocity is removed
    (like ``ase.md.velocitydistribution.Stationary``).
    """
    masses = jnp.asarray(masses, dtype)
    kT = jnp.asarray(KB * temperature, dtype)
    p = (
        jax.random.normal(key, (masses.shape[0], 3), dtype)
        * jnp.sqrt(masses * kT)[:, None]
    )
    return remove_translation(p, masses)


def remove_translation(momenta, masses):
    """Momenta [n, 3] minus the centre-of-mass motion (zero total momentum)."""
    v_com = jnp.sum(momenta, axis=0) / jnp.sum(masses)  # [3]
    return momenta - masses[:, None] * v_com[None, :]


def remove_rotation(positions, momenta, masses):
    """Momenta [n, 3] minus the rigid rotation about the centre of mass (zero angular
    momentum), like ``ase.md.velocitydistribution.ZeroRotation``; linear molecules keep
    the (undefined) rotation about their axis at zero through a pseudo-inverse."""
    com = jnp.sum(masses[:, None] * positions, 0) / jnp.sum(masses)  # [3]
    x = positions - com[None, :]
    angular = jnp.sum(jnp.cross(x, momenta), axis=0)  # [3]
    inertia = jnp.einsum("i,ij,ik->jk", masses, x, x)  # [3, 3] second moment
    inertia = jnp.trace(inertia) * jnp.eye(3, dtype=x.dtype) - inertia
    omega = jnp.linalg.pinv(inertia, rtol=1e-8) @ angular
    return momenta - masses[:, None] * jnp.cross(omega[None, :], x)
