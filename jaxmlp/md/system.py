"""Structures prepared for MD: rotated, wrapped and, when too thin, replicated.

An :class:`MDSystem` is a structure in the form jax-md needs. Fully periodic cells are
rotated to jax-md's standard orientation (lattice matrix lower triangular, i.e. jax-md's
``box = cell.T`` upper triangular) and, when a cell is thinner than twice the neighbor
cutoff, replicated until the minimum image of :func:`jax_md.space.periodic_general` is
exact; molecules (no periodicity) use free space and are centred. Host numpy, float64.
"""

from __future__ import annotations

import dataclasses
import math

import ase
import jax.numpy as jnp
import numpy as np
from ase.data import atomic_masses

from jaxmlp.structure import Structure, species_indices


@dataclasses.dataclass(frozen=True, eq=False)
class MDSystem:
    """A structure prepared for MD (host numpy, float64).

    Attributes:
        positions: [n_atoms, 3] Cartesian positions in the MD frame, Å.
        numbers: [n_atoms] atomic numbers Z.
        species: [n_atoms] indices into the model's species table.
        masses: [n_atoms] masses, amu.
        cell: [3, 3] lattice vectors as rows in the MD frame, Å (lower triangular;
            zeros for free boundaries).
        periodic: True for a fully periodic cell, False for free boundaries.
        rotation: [3, 3] orthogonal; ``md_frame = input_frame @ rotation``.
        repeat: how often the input cell was replicated along each lattice vector.
        source: name of the input, for messages.
    """

    positions: np.ndarray
    numbers: np.ndarray
    species: np.ndarray
    masses: np.ndarray
    cell: np.ndarray
    periodic: bool
    rotation: np.ndarray
    repeat: tuple[int, int, int] = (1, 1, 1)
    source: str = "<structure>"

    @property
    def n_atoms(self) -> int:
        return int(self.numbers.shape[0])

    @property
    def box(self) -> np.ndarray:
        """jax-md's box: lattice vectors as columns (``cell.T``), Å."""
        return self.cell.T

    @property
    def volume(self) -> float:
        return float(abs(np.linalg.det(self.cell))) if self.periodic else 0.0

    def fractional(self) -> np.ndarray:
        """[n_atoms, 3] fractional coordinates wrapped into [0, 1)."""
        frac = np.linalg.solve(self.cell.T, self.positions.T).T
        return np.mod(frac, 1.0)

    def initial_positions(self, dtype, fractional: bool = True) -> jnp.ndarray:
        """Positions in an integrator's frame: fractional if periodic and
        ``fractional``, else Cartesian (wrapped into the cell when periodic)."""
        if not self.periodic:
            return jnp.asarray(self.positions, dtype)
        x = self.fractional()
        return jnp.asarray(x if fractional else x @ self.cell, dtype)

    def to_input_frame(self, vectors: np.ndarray) -> np.ndarray:
        """Rotate [..., 3] Cartesian vectors (positions, velocities, forces) back."""
        return np.asarray(vectors) @ self.rotation.T

    def to_ase(self) -> ase.Atoms:
        """The prepared system as ``ase.Atoms`` in the input orientation."""
        return ase.Atoms(
            numbers=self.numbers,
            positions=self.to_input_frame(self.positions),
            cell=self.to_input_frame(self.cell) if self.periodic else None,
            pbc=self.periodic,
            masses=self.masses,
        )

    def to_structure(self) -> Structure:
        """The prepared system as a :class:`Structure` (MD frame)."""
        return Structure(
            self.positions, self.numbers, self.cell, self.periodic, source=self.source
        )


def perpendicular_widths(cell: np.ndarray) -> np.ndarray:
    """[3] distances between opposite faces of the cell (rows = lattice vectors), Å."""
    cell = np.asarray(cell, np.float64)
    volume = abs(np.linalg.det(cell))
    areas = np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    return volume / areas


def replication_for(cell: np.ndarray, cutoff: float) -> tuple[int, int, int]:
    """Smallest repeat making every perpendicular width exceed ``2 * cutoff``."""
    widths = perpendicular_widths(cell)
    return tuple(int(max(1, math.floor(2.0 * cutoff / w) + 1)) for w in widths)


def standard_rotation(cell: np.ndarray) -> np.ndarray:
    """Orthogonal Q with ``cell @ Q`` lower triangular with positive diagonal."""
    q, r = np.linalg.qr(np.asarray(cell, np.float64).T)
    signs = np.where(np.diag(r) < 0, -1.0, 1.0)
    return q * signs[None, :]


def prepare_system(
    structure: Structure | ase.Atoms,
    species: tuple[str, ...],
    cutoff: float,
    masses: np.ndarray | None = None,
) -> MDSystem:
    """Rotate, wrap and (if needed) replicate a structure for MD.

    Args:
        structure: a :class:`Structure` or ``ase.Atoms``; all three directions periodic
            or none.
        species: the model's species table.
        cutoff: neighbor-list cutoff including the skin, Å. Periodic cells thinner than
            ``2 * cutoff`` are replicated (the minimum image is then exact).
        masses: [n_atoms] amu of the input structure (default: those set on
            ``ase.Atoms``, else ASE's standard atomic masses).

    Raises:
        ValueError: for mixed periodicity or elements the model does not know.
    """
    if isinstance(structure, ase.Atoms):
        if masses is None and structure.has("masses"):
            masses = structure.get_masses()
        structure = Structure.from_ase(structure)
    if structure.pbc.any() and not structure.pbc.all():
        raise ValueError(
            f"{structure.source}: pbc={structure.pbc.tolist()}; MD supports fully "
            "periodic cells or free boundaries (pbc all False)"
        )
    numbers = structure.numbers
    masses = (
        atomic_masses[numbers] if masses is None else np.asarray(masses, np.float64)
    )
    positions = structure.positions
    if not structure.periodic:
        return MDSystem(
            positions=positions - positions.mean(axis=0),
            numbers=numbers,
            species=species_indices(numbers, species, structure.source),
            masses=masses,
            cell=np.zeros((3, 3)),
            periodic=False,
            rotation=np.eye(3),
            source=structure.source,
        )
    repeat = replication_for(structure.cell, cutoff)
    cell = structure.cell
    if repeat != (1, 1, 1):
        grid = np.stack(np.meshgrid(*[np.arange(n) for n in repeat], indexing="ij"), -1)
        offsets = grid.reshape(-1, 3) @ cell  # [n_images, 3]
        positions = (offsets[:, None, :] + positions[None, :, :]).reshape(-1, 3)
        numbers = np.tile(numbers, len(offsets))
        masses = np.tile(masses, len(offsets))
        cell = cell * np.asarray(repeat, np.float64)[:, None]
    rotation = standard_rotation(cell)
    cell = np.tril(cell @ rotation)
    positions = positions @ rotation
    frac = np.mod(np.linalg.solve(cell.T, positions.T).T, 1.0)
    return MDSystem(
        positions=frac @ cell,
        numbers=numbers,
        species=species_indices(numbers, species, structure.source),
        masses=masses,
        cell=cell,
        periodic=True,
        rotation=rotation,
        repeat=repeat,
        source=structure.source,
    )
