"""Padded, fixed-shape atomic graphs: structures -> neighbor pairs -> ``Graph`` pytree.

Edges carry integer cell shifts, so an edge vector is
``positions[receivers] - positions[senders] + shifts @ cell`` (Å), pointing from the
sender to the receiver. Several structures are batched into one graph; padding sits at
the end of every axis and belongs to one extra padding graph (the last), with padded
edges joining the first padding node to itself. Masks mark what is real, so padding
never changes a result. Each graph keeps its ``pbc``: periodic in all three directions
(bulk), in some (slab, wire) or in none (molecule, whatever its cell; padding graphs too).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import flax.struct
import jax.numpy as jnp
import numpy as np
from ase.neighborlist import primitive_neighbor_list

from jaxmlp.padding import PaddingSizes, padding_for
from jaxmlp.structure import Structure, species_indices

__all__ = [
    "Graph",
    "Neighbors",
    "PaddingSizes",
    "batch_graphs",
    "edge_vectors",
    "neighbor_list",
    "padding_for",
]


@flax.struct.dataclass
class Graph:
    """A batch of atomic graphs, padded to static sizes (n_nodes, n_edges, n_graphs)."""

    positions: jnp.ndarray  # [n_nodes, 3] Å
    species: jnp.ndarray  # [n_nodes] int, index into the model's species table
    node_graph: jnp.ndarray  # [n_nodes] int, graph each node belongs to
    senders: jnp.ndarray  # [n_edges] int
    receivers: jnp.ndarray  # [n_edges] int
    shifts: jnp.ndarray  # [n_edges, 3] integer cell images (stored as float)
    cell: jnp.ndarray  # [n_graphs, 3, 3] Å, rows are lattice vectors
    pbc: jnp.ndarray  # [n_graphs, 3] bool, periodic along each lattice vector
    node_mask: jnp.ndarray  # [n_nodes] bool
    edge_mask: jnp.ndarray  # [n_edges] bool
    graph_mask: jnp.ndarray  # [n_graphs] bool

    @property
    def n_nodes(self) -> int:
        return self.positions.shape[0]

    @property
    def n_edges(self) -> int:
        return self.senders.shape[0]

    @property
    def n_graphs(self) -> int:
        return self.cell.shape[0]


def edge_vectors(positions, cell, graph: Graph):
    """[n_edges, 3] Å: sender -> receiver vectors including periodic images."""
    edge_cell = cell[graph.node_graph[graph.senders]]  # [n_edges, 3, 3]
    offsets = jnp.einsum("ei,eij->ej", graph.shifts, edge_cell)
    return positions[graph.receivers] - positions[graph.senders] + offsets


class Neighbors(NamedTuple):
    """Directed neighbor pairs of one structure (host numpy)."""

    senders: np.ndarray  # [n_pairs] int
    receivers: np.ndarray  # [n_pairs] int
    shifts: np.ndarray  # [n_pairs, 3] int


def neighbor_list(structure: Structure, r_max: float) -> Neighbors:
    """All ordered pairs closer than ``r_max`` (Å), every periodic image included.

    Correct for any triclinic cell, also one smaller than the cutoff (the same atom then
    appears as several neighbors with different shifts), and for molecules.
    """
    cell = structure.cell
    if not structure.pbc.any():
        cell = np.zeros((3, 3))
    i, j, shifts = primitive_neighbor_list(
        "ijS",
        structure.pbc,
        cell,
        structure.positions,
        float(r_max),
        self_interaction=False,
    )
    # ASE: d = positions[j] - positions[i] + S @ cell  -> sender i, receiver j.
    order = np.lexsort((i, j))  # grouped by receiver: better locality for the scatter
    return Neighbors(
        senders=i[order].astype(np.int32),
        receivers=j[order].astype(np.int32),
        shifts=shifts[order].astype(np.int32),
    )


def check_min_distance(
    structure: Structure, neighbors: Neighbors, min_distance: float = 0.1
) -> None:
    """Raise if two atoms (or an atom and a periodic image) are closer than ``min_distance`` Å.

    The error names the source and both atom indices; ``neighbors`` must come from a
    cutoff >= ``min_distance``.
    """
    if len(neighbors.senders) == 0:
        return
    d = (
        structure.positions[neighbors.receivers]
        - structure.positions[neighbors.senders]
        + neighbors.shifts @ structure.cell
    )
    r = np.linalg.norm(d, axis=1)
    k = int(np.argmin(r))
    if r[k] < min_distance:
        i, j = int(neighbors.senders[k]), int(neighbors.receivers[k])
        image = (
            ""
            if not neighbors.shifts[k].any()
            else f" (periodic image {neighbors.shifts[k].tolist()})"
        )
        raise ValueError(
            f"{structure.source}: atoms {i} and {j}{image} are {r[k]:.3f} Å apart, closer "
            f"than {min_distance} Å (overlapping atoms)"
        )


def batch_graphs(
    structures: Sequence[Structure],
    species: Sequence[str],
    r_max: float,
    *,
    sizes: PaddingSizes | None = None,
    neighbors: Sequence[Neighbors] | None = None,
    dtype=np.float32,
) -> Graph:
    """Pad and batch structures into one :class:`Graph` of numpy arrays.

    Args:
        structures: the configurations.
        species: element symbols of the model's species table.
        r_max: cutoff in Å (ignored where ``neighbors`` are given).
        sizes: static sizes; default: buckets from :func:`padding_for`.
        neighbors: precomputed :func:`neighbor_list` results, one per structure.
        dtype: float dtype of positions, shifts and cells.
    """
    if neighbors is None:
        neighbors = [neighbor_list(s, r_max) for s in structures]
    n_atoms = sum(s.n_atoms for s in structures)
    n_pairs = sum(len(nb.senders) for nb in neighbors)
    if sizes is None:
        sizes = padding_for(n_atoms, n_pairs, len(structures))
    if (
        sizes.n_nodes <= n_atoms
        or sizes.n_edges < n_pairs
        or sizes.n_graphs <= len(structures)
    ):
        raise ValueError(
            f"padding sizes {tuple(sizes)} too small for {n_atoms} atoms, {n_pairs} "
            f"edges, {len(structures)} structures (need one padding node and graph)"
        )
    pad_graph = sizes.n_graphs - 1
    positions = np.zeros((sizes.n_nodes, 3), dtype)
    species_idx = np.zeros(sizes.n_nodes, np.int32)
    node_graph = np.full(sizes.n_nodes, pad_graph, np.int32)
    senders = np.full(sizes.n_edges, n_atoms, np.int32)
    receivers = np.full(sizes.n_edges, n_atoms, np.int32)
    shifts = np.zeros((sizes.n_edges, 3), dtype)
    cell = np.zeros((sizes.n_graphs, 3, 3), dtype)
    pbc = np.zeros((sizes.n_graphs, 3), bool)
    species = tuple(species)
    node_offset = edge_offset = 0
    for g, (s, nb) in enumerate(zip(structures, neighbors)):
        n, e = s.n_atoms, len(nb.senders)
        nodes, edges = (
            slice(node_offset, node_offset + n),
            slice(edge_offset, edge_offset + e),
        )
        positions[nodes] = s.positions
        species_idx[nodes] = species_indices(s.numbers, species, s.source)
        node_graph[nodes] = g
        senders[edges] = nb.senders + node_offset
        receivers[edges] = nb.receivers + node_offset
        shifts[edges] = nb.shifts
        cell[g] = s.cell
        pbc[g] = s.pbc
        node_offset += n
        edge_offset += e
    node_mask = np.arange(sizes.n_nodes) < n_atoms
    edge_mask = np.arange(sizes.n_edges) < n_pairs
    graph_mask = np.arange(sizes.n_graphs) < len(structures)
    return Graph(
        positions=positions,
        species=species_idx,
        node_graph=node_graph,
        senders=senders,
        receivers=receivers,
        shifts=shifts,
        cell=cell,
        pbc=pbc,
        node_mask=node_mask,
        edge_mask=edge_mask,
        graph_mask=graph_mask,
    )
