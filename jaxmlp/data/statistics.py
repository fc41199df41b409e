"""Dataset statistics that set a model's output normalisation.

E_i = scale * net_i + shift + E0[species_i]: E0 by least squares on the element counts,
shift the mean remaining energy per atom, scale the RMS of the force components (so the
network's outputs and their gradients are of order one), and the average number of
neighbors within ``r_max`` (message-sum normalisation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from jaxmlp.graph import Neighbors
from jaxmlp.structure import Structure, species_indices


class Statistics(NamedTuple):
    atomic_energies: tuple[float, ...]  # E0 per species, eV
    shift: float  # eV/atom
    scale: float  # eV/Å (force RMS), used as eV energy scale
    avg_num_neighbors: float


def element_counts(
    structures: Sequence[Structure], species: Sequence[str]
) -> np.ndarray:
    """[n_structures, n_species] number of atoms of each species."""
    counts = np.zeros((len(structures), len(species)))
    for k, s in enumerate(structures):
        idx = species_indices(s.numbers, tuple(species), s.source)
        counts[k] = np.bincount(idx, minlength=len(species))
    return counts


def fit_atomic_energies(
    structures: Sequence[Structure], species: Sequence[str]
) -> tuple[float, ...]:
    """Per-species reference energies E0 (eV) minimising sum (E - counts @ E0)^2.

    Structures without an energy label are skipped. With a single composition ratio the
    problem is rank deficient; the minimum-norm solution is returned.
    """
    labelled = [s for s in structures if s.energy is not None]
    if not labelled:
        return (0.0,) * len(species)
    counts = element_counts(labelled, species)
    energies = np.array([s.energy for s in labelled])
    e0, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return tuple(float(e) for e in e0)


def compute_statistics(
    structures: Sequence[Structure],
    neighbors: Sequence[Neighbors],
    species: Sequence[str],
    atomic_energies: Sequence[float] | None = None,
) -> Statistics:
    """All statistics of a training set.

    Args:
        structures: labelled training structures.
        neighbors: their neighbor lists at the model cutoff.
        species: the model's species table.
        atomic_energies: given E0 per species (eV); fitted by least squares when None.
    """
    if atomic_energies is None:
        atomic_energies = fit_atomic_energies(structures, species)
    e0 = np.asarray(atomic_energies, dtype=np.float64)
    labelled = [s for s in structures if s.energy is not None]
    if labelled:
        counts = element_counts(labelled, species)
        residual = np.array([s.energy for s in labelled]) - counts @ e0
        shift = float(np.sum(residual) / np.sum(counts))
    else:
        shift = 0.0
    forces = [s.forces for s in structures if s.forces is not None]
    scale = float(np.sqrt(np.mean(np.concatenate(forces) ** 2))) if forces else 1.0
    if not np.isfinite(scale) or scale < 1e-6:
        scale = 1.0
    n_atoms = sum(s.n_atoms for s in structures)
    n_edges = sum(len(nb.senders) for nb in neighbors)
    avg = float(n_edges / max(n_atoms, 1))
    return Statistics(tuple(float(e) for e in e0), shift, scale, max(avg, 1.0))
