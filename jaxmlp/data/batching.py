"""Fixed-shape batches: labelled structures -> padded ``Batch`` (graph + labels).

Neighbor lists are computed once per structure (:class:`GraphDataset`). Batches are
padded to one of a few size buckets (:func:`make_buckets`), so a jitted train step
compiles at most once per bucket however the data is shuffled. Every bucket has the
same number of graphs (``batch_size + 1``: the last graph holds the padding).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import flax.struct
import jax.numpy as jnp
import numpy as np

from jaxmlp.graph import Graph, Neighbors, batch_graphs, neighbor_list
from jaxmlp.padding import PaddingSizes, align
from jaxmlp.structure import Structure, species_indices


@flax.struct.dataclass
class Labels:
    """Reference labels of a padded batch; masks are False for missing labels and padding."""

    energy: jnp.ndarray  # [n_graphs] eV
    energy_mask: jnp.ndarray  # [n_graphs] bool
    forces: jnp.ndarray  # [n_nodes, 3] eV/Å
    forces_mask: jnp.ndarray  # [n_nodes] bool
    stress: jnp.ndarray  # [n_graphs, 3, 3] eV/Å³
    stress_mask: jnp.ndarray  # [n_graphs] bool
    n_atoms: jnp.ndarray  # [n_graphs] float, >= 1 (1 for padding graphs)


@flax.struct.dataclass
class Batch:
    graph: Graph
    labels: Labels


@dataclasses.dataclass
class GraphDataset:
    """Structures with their neighbor lists, computed once for the cutoff ``r_max`` (Å)."""

    structures: list[Structure]
    neighbors: list[Neighbors]
    species: tuple[str, ...]
    r_max: float

    @classmethod
    def build(
        cls, structures: Sequence[Structure], species, r_max: float
    ) -> GraphDataset:
        species = tuple(species)
        for s in structures:  # fail early, naming the structure and atom
            species_indices(s.numbers, species, s.source)
        neighbors = [neighbor_list(s, r_max) for s in structures]
        return cls(list(structures), neighbors, species, float(r_max))

    def __len__(self) -> int:
        return len(self.structures)

    @property
    def n_atoms(self) -> np.ndarray:
        return np.array([s.n_atoms for s in self.structures])

    @property
    def n_edges(self) -> np.ndarray:
        return np.array([len(nb.senders) for nb in self.neighbors])

    def subset(self, indices) -> GraphDataset:
        return GraphDataset(
            [self.structures[i] for i in indices],
            [self.neighbors[i] for i in indices],
            self.species,
            self.r_max,
        )


def make_buckets(
    datasets: Sequence[GraphDataset],
    batch_size: int,
    num_buckets: int = 3,
    seed: int = 0,
) -> list[PaddingSizes]:
    """A few padding sizes that every batch of ``batch_size`` structures fits in.

    The largest bucket holds the ``batch_size`` largest structures (nodes and edges taken
    separately), so nothing can overflow. Smaller buckets sit at quantiles of the edge
    count of simulated random batches (edges dominate the cost).

    Args:
        datasets: the datasets whose batches must fit (e.g. train and valid).
        batch_size: structures per batch.
        num_buckets: at most this many sizes.
        seed: seed of the simulated batches.

    Returns:
        Sizes sorted from small to large; ``n_graphs == batch_size + 1`` in each.
    """
    atoms = np.concatenate([d.n_atoms for d in datasets])
    edges = np.concatenate([d.n_edges for d in datasets])
    b = min(batch_size, len(atoms))
    max_nodes = int(np.sort(atoms)[-b:].sum())
    max_edges = int(np.sort(edges)[-b:].sum())
    largest = PaddingSizes(align(max_nodes + 1), align(max_edges + 1), batch_size + 1)
    if num_buckets <= 1 or len(atoms) <= b:
        return [largest]
    rng = np.random.default_rng(seed)
    picks = np.stack([rng.choice(len(atoms), b, replace=False) for _ in range(256)])
    sim_nodes, sim_edges = atoms[picks].sum(1), edges[picks].sum(1)
    buckets = {largest}
    for q in np.arange(1, num_buckets) / num_buckets:
        e_cap = align(np.quantile(sim_edges, q) + 1)
        fits = sim_edges + 1 <= e_cap
        if not fits.any():
            continue
        n_cap = align(sim_nodes[fits].max() + 1)
        if e_cap < largest.n_edges:
            buckets.add(
                PaddingSizes(min(n_cap, largest.n_nodes), e_cap, batch_size + 1)
            )
    return sorted(buckets, key=lambda s: (s.n_edges, s.n_nodes))


def pick_bucket(
    buckets: Sequence[PaddingSizes], n_atoms: int, n_edges: int
) -> PaddingSizes:
    """The smallest bucket with room for ``n_atoms`` + 1 padding node and ``n_edges``."""
    for sizes in buckets:
        if sizes.n_nodes > n_atoms and sizes.n_edges >= n_edges:
            return sizes
    raise ValueError(
        f"no padding bucket fits {n_atoms} atoms and {n_edges} edges (largest "
        f"{tuple(buckets[-1])}); build buckets from this dataset"
    )


def make_batch(
    dataset: GraphDataset, indices: Sequence[int], sizes: PaddingSizes, dtype=np.float32
) -> Batch:
    """Pad the structures ``indices`` of ``dataset`` to ``sizes``; numpy arrays."""
    structures = [dataset.structures[i] for i in indices]
    graph = batch_graphs(
        structures,
        dataset.species,
        dataset.r_max,
        sizes=sizes,
        neighbors=[dataset.neighbors[i] for i in indices],
        dtype=dtype,
    )
    n_graphs, n_nodes = sizes.n_graphs, sizes.n_nodes
    energy = np.zeros(n_graphs, dtype)
    energy_mask = np.zeros(n_graphs, bool)
    forces = np.zeros((n_nodes, 3), dtype)
    forces_mask = np.zeros(n_nodes, bool)
    stress = np.zeros((n_graphs, 3, 3), dtype)
    stress_mask = np.zeros(n_graphs, bool)
    n_atoms = np.ones(n_graphs, dtype)
    offset = 0
    for g, s in enumerate(structures):
        n_atoms[g] = s.n_atoms
        if s.energy is not None:
            energy[g], energy_mask[g] = s.energy, True
        if s.forces is not None:
            forces[offset : offset + s.n_atoms] = s.forces
            forces_mask[offset : offset + s.n_atoms] = True
        if s.stress is not None:
            stress[g], stress_mask[g] = s.stress, True
        offset += s.n_atoms
    labels = Labels(
        energy, energy_mask, forces, forces_mask, stress, stress_mask, n_atoms
    )
    return Batch(graph, labels)


class BatchInfo(NamedTuple):
    indices: np.ndarray  # structures in the batch
    sizes: PaddingSizes


def plan_batches(
    dataset: GraphDataset,
    batch_size: int,
    buckets: Sequence[PaddingSizes],
    *,
    shuffle_seed=None,
) -> list[BatchInfo]:
    """Split ``dataset`` into batches (shuffled when ``shuffle_seed`` is given).

    The last batch may be smaller; it is padded to a bucket like the others.
    """
    order = np.arange(len(dataset))
    if shuffle_seed is not None:
        order = np.random.default_rng(shuffle_seed).permutation(len(dataset))
    atoms, edges = dataset.n_atoms, dataset.n_edges
    plan = []
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        plan.append(
            BatchInfo(
                idx, pick_bucket(buckets, int(atoms[idx].sum()), int(edges[idx].sum()))
            )
        )
    return plan


def iterate_batches(
    dataset: GraphDataset,
    batch_size: int,
    buckets: Sequence[PaddingSizes],
    *,
    shuffle_seed=None,
    dtype=np.float32,
) -> Iterator[Batch]:
    """Padded batches of ``dataset`` (see :func:`plan_batches`)."""
    for info in plan_batches(dataset, batch_size, buckets, shuffle_seed=shuffle_seed):
        yield make_batch(dataset, info.indices, info.sizes, dtype)
