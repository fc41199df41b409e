"""Neighbor lists for MD: jax-md Sparse lists that never fail silently.

:func:`make_neighbor_fns` wraps :func:`jax_md.partition.neighbor_list` in the Sparse
format (``idx[0]`` receivers, ``idx[1]`` senders, padding = ``n_atoms``) with cutoff
``r_max + skin``: ``update`` rebuilds only once an atom moved more than ``skin / 2``.
The capacity is static; when it overflows, jax-md sets an error bit that the MD runner
reads once per chunk, after which it discards the chunk and calls ``allocate`` again
(one recompilation). Boxes too small for jax-md's cell list (fewer than 4 cells per
side) use the dense O(N^2) candidate search automatically; boxes thinner than twice
the cutoff never get here, :func:`jaxmlp.md.energy.prepare_system` replicates them.
Free boundaries always use the dense search.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax.numpy as jnp
import numpy as np
from jax_md import partition

from jaxmlp.md.energy import MDSystem, perpendicular_widths


class NeighborFns(NamedTuple):
    allocate: Callable  # (positions, **kw) -> NeighborList (host, not jittable)
    update: Callable  # (positions, nbrs, **kw) -> NeighborList (jittable)


def make_neighbor_fns(
    system: MDSystem,
    displacement_fn,
    r_max: float,
    skin: float,
    capacity_multiplier: float = 1.2,
    dtype=jnp.float32,
) -> NeighborFns:
    """Sparse neighbor-list functions for ``system``.

    Args:
        system: the prepared MD system (periodic or free).
        displacement_fn: its jax-md displacement function.
        r_max: model cutoff, Å.
        skin: extra shell, Å; the list is rebuilt when an atom moved ``skin / 2``.
        capacity_multiplier: allocated edges / edges found at allocation.
        dtype: float dtype of positions (the box is cast to it).
    """
    cutoff = r_max + skin
    if system.periodic:
        if perpendicular_widths(system.cell).min() < 2 * cutoff:
            raise ValueError(
                f"{system.source}: cell thinner than 2 x (r_max + skin) = {2 * cutoff:.3g} Å;"
                " prepare_system replicates such cells"
            )
        box = jnp.asarray(system.box, dtype)
        fns = partition.neighbor_list(
            displacement_fn,
            box,
            r_max,
            dr_threshold=skin,
            capacity_multiplier=capacity_multiplier,
            fractional_coordinates=True,
            format=partition.NeighborListFormat.Sparse,
        )
    else:
        extent = float(np.ptp(system.positions, axis=0).max()) + 1.0
        fns = partition.neighbor_list(
            displacement_fn,
            jnp.asarray(extent, dtype),
            r_max,
            dr_threshold=skin,
            capacity_multiplier=capacity_multiplier,
            disable_cell_list=True,
            format=partition.NeighborListFormat.Sparse,
        )
    return NeighborFns(fns.allocate, fns.update)


def capacity(nbrs) -> int:
    """Static number of edge slots of a Sparse list."""
    return int(nbrs.idx.shape[-1])


def n_edges(nbrs) -> int:
    """Edges actually in use (host sync)."""
    return int(jnp.sum(nbrs.idx[0] < nbrs.reference_position.shape[0]))
