"""jax-md spaces of an MD system: ``(displacement_fn, shift_fn)`` in Å.

Periodic systems use :func:`jax_md.space.periodic_general` with the box of the system
(lattice vectors as columns) in fractional or Cartesian coordinates, which one the
integrator declares (see :mod:`jaxmlp.md.integrators`); free systems use
:func:`jax_md.space.free`. Both functions accept ``box=`` (a moving box) and
``perturbation=`` (1 + strain, for stress) keywords in the periodic case.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp
from jax_md import space

from jaxmlp.md.system import MDSystem


class Space(NamedTuple):
    displacement_fn: Callable  # (Ra, Rb, **kw) -> [3] Å, minimum image
    shift_fn: Callable  # (R, dR [Å], **kw) -> R


def make_space(system: MDSystem, dtype, fractional: bool = True) -> Space:
    """jax-md space of ``system``: periodic_general (fractional or Cartesian positions)
    at the system's box, or free space."""
    if system.periodic:
        box = jnp.asarray(system.box, dtype)
        return Space(*space.periodic_general(box, fractional_coordinates=fractional))
    return Space(*space.free())
