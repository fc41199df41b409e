"""Neighbor lists for MD: jax-md Sparse lists, their error bits, rebuild policies and
reallocation.

:func:`make_neighbor_fns` wraps :func:`jax_md.partition.neighbor_list` in the Sparse
format (``idx[0]`` receivers, ``idx[1]`` senders, padding = ``n_atoms``) on fractional
positions (periodic) or Cartesian ones (free space). The list holds every pair within
``r_max + skin``.

Two rebuild policies (an integrator declares which it needs):

- ``"displacement"`` (fixed box): jax-md's own test, rebuild once an atom moved
  ``0.4 skin``; ``0.1 skin`` is left for the step taken before the next check.
- ``"strain"`` (moving box: NPT, cell relaxation): jax-md's test sees displacements,
  not a shrinking box. With ``F = box @ inv(ref_box)`` the deformation since the last
  build and ``d`` the largest atom displacement measured in the current box, a pair
  missing from the list is at least ``min(sigma_min(F), 1) (r_max + skin) - 2 d`` apart;
  the list is rebuilt as soon as that bound falls below ``r_max + 0.2 skin`` (the same
  margin as the fixed-box test, to which it reduces when the box does not move).

Capacities are static. jax-md reports what went wrong in ``nbrs.error.code``
(:data:`NEIGHBOR_LIST_OVERFLOW`, :data:`CELL_LIST_OVERFLOW`,
:data:`CELL_SIZE_TOO_SMALL`; jax-md 0.2.29 sets :data:`MALFORMED_BOX` for boxes that
*are* upper triangular, an inverted test, so that bit is ignored and the host loop
checks the box itself); the host loop
(:mod:`jaxmlp.md.loop`) reads it once per chunk and reallocates (:func:`allocate` with a
larger ``min_capacity``), never past what jax-md's candidate array can hold
(:func:`capacity_limit`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax_md import partition

from jaxmlp.md.system import MDSystem, perpendicular_widths

NEIGHBOR_LIST_OVERFLOW = int(partition.PartitionErrorCode.NEIGHBOR_LIST_OVERFLOW)
CELL_LIST_OVERFLOW = int(partition.PartitionErrorCode.CELL_LIST_OVERFLOW)
CELL_SIZE_TOO_SMALL = int(partition.PartitionErrorCode.CELL_SIZE_TOO_SMALL)
MALFORMED_BOX = int(partition.PartitionErrorCode.MALFORMED_BOX)
#: Errors a fresh, larger list (allocated at the current box) repairs.
REPAIRABLE = NEIGHBOR_LIST_OVERFLOW | CELL_LIST_OVERFLOW | CELL_SIZE_TOO_SMALL
REBUILD_POLICIES = ("displacement", "strain")


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
    dense: bool = False,
) -> NeighborFns:
    """Sparse neighbor-list functions for ``system`` (list radius ``r_max + skin``).

    Args:
        system: the prepared MD system (periodic or free).
        displacement_fn: jax-md displacement on fractional positions (periodic) or
            Cartesian ones (free).
        r_max: model cutoff, Å.
        skin: neighbor skin, Å.
        capacity_multiplier: allocated edges / edges found at allocation.
        dtype: float dtype of positions (the box is cast to it).
        dense: always use the O(N²) candidate search (no cell list), e.g. for boxes
            that do not stay upper triangular (full-cell relaxation).
    """
    # jax-md: list radius r_cutoff + dr_threshold, rebuild at a displacement of
    # dr_threshold / 2 = 0.4 skin
    kwargs = dict(
        r_cutoff=r_max + 0.2 * skin,
        dr_threshold=0.8 * skin,
        capacity_multiplier=capacity_multiplier,
        format=partition.NeighborListFormat.Sparse,
    )
    if system.periodic:
        width = perpendicular_widths(system.cell).min()
        if width < 2 * (r_max + skin):
            raise ValueError(
                f"{system.source}: cell {width:.3g} Å wide, thinner than 2 x (r_max + skin)"
                f" = {2 * (r_max + skin):.3g} Å; prepare_system replicates such cells"
            )
        box = jnp.asarray(system.box, dtype)
        fns = partition.neighbor_list(
            displacement_fn,
            box,
            fractional_coordinates=True,
            disable_cell_list=dense,
            **kwargs,
        )
    else:
        extent = float(np.ptp(system.positions, axis=0).max()) + 1.0
        fns = partition.neighbor_list(
            displacement_fn,
            jnp.asarray(extent, dtype),
            disable_cell_list=True,
            **kwargs,
        )
    return NeighborFns(fns.allocate, fns.update)


def capacity(nbrs) -> int:
    """Static number of edge slots of a Sparse list."""
    return int(nbrs.idx.shape[-1])


def n_edges(nbrs) -> int:
    """Edges actually in use (host sync)."""
    return int(jnp.sum(nbrs.idx[0] < nbrs.reference_position.shape[-2]))


def capacity_limit(nbrs) -> int:
    """The most edge slots an update of ``nbrs`` can fill: jax-md slices its candidate
    array (N x N, or N x 27 x cell capacity with a cell list) to the capacity, so a
    larger capacity would change the array's shape inside ``lax.cond``."""
    n = nbrs.reference_position.shape[-2]
    limit = n * (n - 1)
    if nbrs.cell_list_fn is not None:
        limit = min(limit, n * 27 * int(nbrs.cell_list_capacity))
    return limit


def describe_errors(code: int) -> str:
    """Readable names of the error bits in ``code``."""
    names = [
        (NEIGHBOR_LIST_OVERFLOW, "neighbor list overflow"),
        (CELL_LIST_OVERFLOW, "cell list overflow"),
        (CELL_SIZE_TOO_SMALL, "cell-list cells smaller than the cutoff (box shrank)"),
        (MALFORMED_BOX, "box not upper triangular"),
    ]
    return ", ".join(name for bit, name in names if code & bit) or "none"


def pad_capacity(nbrs, target: int):
    """The Sparse list with ``target`` edge slots (extra slots are padding)."""
    extra = target - capacity(nbrs)
    if extra <= 0:
        return nbrs
    n = nbrs.reference_position.shape[-2]
    idx = jnp.pad(nbrs.idx, ((0, 0), (0, extra)), constant_values=n)
    return dataclasses.replace(nbrs, idx=idx, max_occupancy=target)


def allocate(fns: NeighborFns, positions, box=None, *, min_capacity: int = 0):
    """A fresh list (host) with at least ``min_capacity`` slots (clipped to the limit).

    Args:
        positions: [n, 3] in the list's frame (fractional if periodic).
        box: jax-md box at which to build (default: the system's).
        min_capacity: grow the capacity to this (progress after an overflow).
    """
    kwargs = {} if box is None else {"box": box}
    with jax_md_quirks():
        nbrs = fns.allocate(positions, **kwargs)
    if (
        nbrs.cell_size is not None
    ):  # static field: a concrete array breaks pytree equality
        nbrs = dataclasses.replace(nbrs, cell_size=float(nbrs.cell_size))
    return pad_capacity(nbrs, min(min_capacity, capacity_limit(nbrs)))


def make_update_fn(
    fns: NeighborFns, policy: str, r_max: float, skin: float, periodic: bool
):
    """``update(positions, nbrs, ref_box, box) -> (nbrs, ref_box)`` (jittable).

    ``positions`` are in the list's frame (fractional if periodic); ``box`` is the
    current jax-md box (None for free space) and ``ref_box`` the box of the last build.
    """
    if policy not in REBUILD_POLICIES:
        raise ValueError(
            f"unknown rebuild policy {policy!r}; choose from {REBUILD_POLICIES}"
        )

    def displacement(positions, nbrs, ref_box, box):
        with jax_md_quirks():
            if policy == "displacement" or not periodic:
                return fns.update(positions, nbrs), ref_box
            return fns.update(positions, nbrs, box=box), ref_box

    if policy == "displacement" or not periodic:
        return displacement

    def strain(positions, nbrs, ref_box, box):
        deformation = box @ jnp.linalg.inv(ref_box)  # [3, 3]
        sigma_min = jnp.linalg.svd(deformation, compute_uv=False)[-1]
        moved = positions - nbrs.reference_position
        moved = (moved - jnp.round(moved)) @ box.T  # [n, 3] Å in the current box
        largest = jnp.sqrt(jnp.max(jnp.sum(moved**2, axis=-1)))
        closest_missing = jnp.minimum(sigma_min, 1.0) * (r_max + skin) - 2.0 * largest
        need = closest_missing < r_max + 0.2 * skin
        # a reference shifted by half a cell makes jax-md's own test fire
        forced = jnp.where(need, nbrs.reference_position + 0.5, nbrs.reference_position)
        with jax_md_quirks():
            new = fns.update(
                positions, dataclasses.replace(nbrs, reference_position=forced), box=box
            )
        rebuilt = need | jnp.any(new.reference_position != forced)
        return new, jnp.where(rebuilt, box, ref_box)

    return strain


@contextlib.contextmanager
def jax_md_quirks():
    """Tolerate what jax-md's neighbor list does by design (checked harmless).

    Its cell list broadcasts ranks implicitly, and under x64 its sparse pruning scatters
    int64 atom indices (< N) into an int32 array, which JAX flags with a FutureWarning.
    """
    with jax.numpy_rank_promotion("allow"), warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message="scatter inputs have incompatible types: cannot safely cast value "
            "from dtype=int64 to dtype=int32",
            category=FutureWarning,
        )
        yield
