"""The energy functions jax-md integrators call, from a model's ``apply_fn``.

:func:`make_energy_fn` turns a model into ``energy_fn(params, positions, neighbor, *,
box=None, perturbation=None, kT=None) -> eV``: the jax-md Sparse neighbor list gives
(receivers, senders), the displacement function gives the edge vectors
``positions[receivers] - positions[senders]`` in Å (minimum image), and the model's
``apply_fn`` gives per-atom energies. Gradients with respect to fractional positions are
real-space gradients (jax-md defines the derivative of the fractional-to-Cartesian map
as the identity), so ``-grad`` is the force in eV/Å in both parameterisations.
:func:`stress_fn` is the strain derivative (eV/Å³), :func:`member_results` every
committee member's energy, forces and stress from one gradient each, :func:`forces_std`
a committee's force spread and :func:`min_edge_length` the shortest neighbor distance, a
blow-up indicator.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxmlp.edges import EdgeInputs, make_inputs
from jaxmlp.model import map_members


def make_energy_fn(apply_fn, displacement_fn, species):
    """``energy_fn(params, positions, neighbor, *, box, perturbation, kT) -> eV``.

    Args:
        apply_fn: the model's ``apply_fn(params, inputs: EdgeInputs) -> [n_nodes]`` eV
            (its ``extras`` attribute names the extra inputs to build).
        displacement_fn: jax-md displacement (minimum image), returns Å.
        species: [n_atoms] int species indices.

    The returned function takes a jax-md Sparse neighbor list (``idx[0]`` receivers,
    ``idx[1]`` senders, padding marked by the index ``n_atoms``), an optional ``box``
    (jax-md convention, for NPT) and ``perturbation`` (1 + strain, for stress); ``kT``
    is accepted because jax-md thermostats pass it on, and ignored.
    """
    species = jnp.asarray(species, jnp.int32)
    extras = getattr(apply_fn, "extras", ())
    spec = getattr(apply_fn, "spec", None)  # for extra builders that need it

    def energy_fn(params, positions, neighbor, *, box=None, perturbation=None, kT=None):
        del kT
        inputs = neighbor_inputs(
            displacement_fn,
            positions,
            neighbor,
            species,
            extras,
            box=box,
            perturbation=perturbation,
            spec=spec,
        )
        return jnp.sum(apply_fn(params, inputs))

    energy_fn.member_axes = getattr(apply_fn, "member_axes", 0)
    return energy_fn


def neighbor_inputs(
    displacement_fn,
    positions,
    neighbor,
    species,
    extras=(),
    *,
    box=None,
    perturbation=None,
    spec=None,
) -> EdgeInputs:
    """The model's :class:`~jaxmlp.edges.EdgeInputs` from a jax-md Sparse list
    (``spec``: the model's ArchitectureSpec, for extra builders that need it)."""
    vectors, senders, receivers, edge_mask = neighbor_edges(
        displacement_fn, positions, neighbor, box=box, perturbation=perturbation
    )
    node_mask = jnp.ones(positions.shape[0], bool)
    return make_inputs(
        vectors, species, senders, receivers, edge_mask, node_mask, extras, spec
    )


def neighbor_edges(
    displacement_fn, positions, neighbor, *, box=None, perturbation=None
):
    """Edge vectors [n_edges, 3] Å, senders, receivers and edge_mask of a Sparse list."""
    n_atoms = positions.shape[0]
    receivers, senders = neighbor.idx[0], neighbor.idx[1]
    edge_mask = receivers < n_atoms
    receivers = jnp.where(edge_mask, receivers, 0)
    senders = jnp.where(edge_mask, senders, 0)
    kwargs = {}
    if box is not None:
        kwargs["box"] = box
    if perturbation is not None:
        kwargs["perturbation"] = perturbation
    vectors = jax.vmap(lambda a, b: displacement_fn(a, b, **kwargs))(
        positions[receivers], positions[senders]
    )  # [n_edges, 3]
    return vectors, senders, receivers, edge_mask


def stress_fn(energy_fn, params, positions, neighbor, box):
    """Potential energy (eV) and stress [3, 3] eV/Å³ (ASE sign) by strain derivative.

    The symmetric strain deforms every edge vector, d -> (1 + eps) d (jax-md's
    ``perturbation``), which is the homogeneous deformation of cell and positions.
    """
    eye = jnp.eye(3, dtype=box.dtype)

    def energy_of_strain(strain):
        eps = 0.5 * (strain + strain.T)
        return energy_fn(params, positions, neighbor, box=box, perturbation=eye + eps)

    energy, de_deps = jax.value_and_grad(energy_of_strain)(jnp.zeros_like(box))
    return energy, de_deps / jnp.abs(jnp.linalg.det(box))


class MemberResults(NamedTuple):
    """Every committee member's results at one configuration (leading [K] axis)."""

    energy: jnp.ndarray  # [K] eV
    forces: jnp.ndarray  # [K, n, 3] eV/Å
    stress: jnp.ndarray | None  # [K, 3, 3] eV/Å³ (ASE sign), None without a box


def member_results(
    member_energy_fn,
    params,
    positions,
    neighbor,
    box=None,
    *,
    member_map: str = "vmap",
) -> MemberResults:
    """Energy, forces and (with a ``box``) stress of every member from ONE gradient
    per member (positions and strain together, as :func:`stress_fn`).

    Args:
        member_energy_fn: one member's ``energy_fn``; its ``member_axes`` (0, or a
            shallow committee's pytree) says which params leaves carry the member axis.
        params: committee params (leading member axis).
        box: jax-md box (periodic), or None (free: no stress).
        member_map: ``"vmap"`` (one batched program) or ``"sequential"`` (one member
            at a time), see :func:`jaxmlp.model.map_members`.

    Means over members equal the committee model's energy, forces and stress (mean of
    per-atom energies) up to rounding.
    """
    axes = getattr(member_energy_fn, "member_axes", 0)  # shallow: shared trunk

    if box is None:

        def one(p):
            energy, de_dx = jax.value_and_grad(
                lambda x: member_energy_fn(p, x, neighbor)
            )(positions)
            return energy, -de_dx

        energy, forces = map_members(one, params, axes, member_map)
        return MemberResults(energy, forces, None)

    eye = jnp.eye(3, dtype=box.dtype)
    volume = jnp.abs(jnp.linalg.det(box))

    def one(p):
        def energy_of(x, strain):
            eps = 0.5 * (strain + strain.T)
            return member_energy_fn(p, x, neighbor, box=box, perturbation=eye + eps)

        energy, (de_dx, de_deps) = jax.value_and_grad(energy_of, argnums=(0, 1))(
            positions, jnp.zeros_like(box)
        )
        return energy, -de_dx, de_deps / volume

    return MemberResults(*map_members(one, params, axes, member_map))


def forces_std(
    member_energy_fn,
    params,
    positions,
    neighbor,
    box=None,
    rotation=None,
    *,
    member_map: str = "vmap",
):
    """[n, 3] eV/Å: standard deviation (over members, ddof=0) of a committee's forces,
    per component; ``params`` carry the leading member axis, ``member_energy_fn`` is
    one member's ``energy_fn``. K member force evaluations, mapped by ``member_map``
    (see :func:`jaxmlp.model.map_members`).

    Per-component spreads depend on the frame (their per-atom norm does not):
    ``rotation`` [3, 3] maps the MD frame to the frame to report in
    (``forces_out = forces @ rotation``) before the spread is taken.
    """
    kwargs = {} if box is None else {"box": box}

    def member_forces(p):
        return -jax.grad(lambda x: member_energy_fn(p, x, neighbor, **kwargs))(
            positions
        )

    axes = getattr(member_energy_fn, "member_axes", 0)  # shallow: shared trunk
    forces = map_members(member_forces, params, axes, member_map)  # [K, n, 3]
    return spread_in_frame(forces, rotation)


def spread_in_frame(forces, rotation=None):
    """[n, 3]: per-component standard deviation over the leading member axis of
    ``forces`` [K, n, 3], taken after ``forces @ rotation`` (MD -> reported frame)."""
    if rotation is not None:
        forces = forces @ jnp.asarray(rotation, forces.dtype)
    return jnp.std(forces, axis=0)


def min_edge_length(displacement_fn, positions, neighbor, box=None) -> jnp.ndarray:
    """Shortest neighbor distance, Å (inf when the list is empty)."""
    vectors, _, _, edge_mask = neighbor_edges(
        displacement_fn, positions, neighbor, box=box
    )
    r2 = jnp.where(edge_mask, jnp.sum(vectors * vectors, axis=-1), jnp.inf)
    return jnp.sqrt(jnp.min(r2, initial=jnp.inf))
