"""Energy -> forces (gradient) -> stress (strain gradient), all by automatic differentiation.

Units: energy eV, forces eV/Å, stress eV/Å³ with ASE's sign convention
``stress = (1/V) dE/d(strain)`` (negative under compression... i.e. positive pressure
means a negative trace).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxmlp.edges import EdgeInputs, make_inputs
from jaxmlp.graph import Graph, edge_vectors


class Predictions(NamedTuple):
    """Outputs of :func:`predict`, one row per graph or node of the batch.

    ``stress`` depends on each graph's ``pbc``: periodic in all three directions,
    ``(1/V) dE/d(strain)``; periodic in none (a molecule, even one with a cell, and the
    padding graphs), exactly 0; partially periodic (slab, wire), ``(1/V) dE/d(strain)``
    with V the volume of the whole cell, vacuum included (ASE's convention, as EMT), so it
    scales with 1/(vacuum thickness).
    """

    energy: jnp.ndarray  # [n_graphs] eV (0 for the padding graph)
    node_energies: jnp.ndarray  # [n_nodes] eV (0 for padding nodes)
    forces: jnp.ndarray  # [n_nodes, 3] eV/Å
    stress: jnp.ndarray  # [n_graphs, 3, 3] eV/Å³ (0 without a periodic direction)


class MemberPredictions(NamedTuple):
    """Committee outputs of :func:`predict_members`: the mean, the spread (standard
    deviation over members, ddof=0) and every member's values."""

    mean: Predictions
    std: Predictions
    members: Predictions  # each field with a leading [members] axis


def graph_inputs(
    graph: Graph, positions, cell, extras: tuple[str, ...] = (), spec=None
) -> EdgeInputs:
    """The model's :class:`~jaxmlp.edges.EdgeInputs` of a padded graph (``spec``: the
    model's ArchitectureSpec, for extra builders that need it)."""
    vectors = edge_vectors(positions, cell, graph)  # [n_edges, 3] Å
    return make_inputs(
        vectors,
        graph.species,
        graph.senders,
        graph.receivers,
        graph.edge_mask,
        graph.node_mask,
        extras,
        spec,
    )


def graph_energy(apply_fn, params, graph: Graph, positions, cell):
    """Per-graph and per-node energies (eV) for given positions and cells."""
    inputs = graph_inputs(
        graph,
        positions,
        cell,
        getattr(apply_fn, "extras", ()),
        getattr(apply_fn, "spec", None),
    )
    node_e = apply_fn(params, inputs)
    node_e = jnp.where(graph.node_mask, node_e, 0.0)
    energy = jax.ops.segment_sum(node_e, graph.node_graph, num_segments=graph.n_graphs)
    return energy, node_e


def predict(
    apply_fn, params, graph: Graph, *, compute_stress: bool = True
) -> Predictions:
    """Energies, forces and stress of every graph in one backward pass.

    Stress is the derivative with respect to a symmetric strain eps applied to positions
    and cell alike (x -> x (1 + eps)), divided by the cell volume, for every graph with a
    periodic direction; 0 for the others (see :class:`Predictions`).
    """

    def total_energy(positions, strain):
        eps = 0.5 * (strain + jnp.swapaxes(strain, -1, -2))  # [n_graphs, 3, 3]
        positions = positions + jnp.einsum(
            "ni,nij->nj", positions, eps[graph.node_graph]
        )
        cell = graph.cell + jnp.einsum("gij,gjk->gik", graph.cell, eps)
        energy, node_e = graph_energy(apply_fn, params, graph, positions, cell)
        return jnp.sum(energy), (energy, node_e)

    strain = jnp.zeros_like(graph.cell)
    argnums = (0, 1) if compute_stress else 0
    (_, (energy, node_e)), grads = jax.value_and_grad(
        total_energy, argnums=argnums, has_aux=True
    )(graph.positions, strain)
    if compute_stress:
        de_dx, de_deps = grads
        # Structure rejects a singular cell with any periodic direction
        periodic = jnp.any(graph.pbc, axis=-1)  # [n_graphs]
        volume = jnp.where(periodic, jnp.abs(jnp.linalg.det(graph.cell)), 1.0)  # Å³
        stress = jnp.where(
            periodic[:, None, None], de_deps / volume[:, None, None], 0.0
        )
    else:
        de_dx, stress = grads, jnp.zeros_like(graph.cell)
    forces = jnp.where(graph.node_mask[:, None], -de_dx, 0.0)
    return Predictions(energy, node_e, forces, stress)


def predict_members(
    member_apply_fn, params, graph: Graph, *, compute_stress: bool = True
) -> MemberPredictions:
    """Every committee member's predictions (one vmapped call over the params' member
    axis, ``member_apply_fn.member_axes``: shared leaves of a shallow committee are not
    mapped), their mean and spread (standard deviation over members, same units)."""
    members = jax.vmap(
        lambda p: predict(member_apply_fn, p, graph, compute_stress=compute_stress),
        in_axes=(getattr(member_apply_fn, "member_axes", 0),),
    )(params)
    mean = jax.tree.map(lambda x: jnp.mean(x, axis=0), members)
    std = jax.tree.map(lambda x: jnp.std(x, axis=0), members)
    return MemberPredictions(mean, std, members)
