"""Host-side atomic structures (numpy): the entry point of the data flow.

A :class:`Structure` holds one configuration in ASE's conventions: positions in Å,
cell rows are lattice vectors in Å, ``pbc`` per lattice direction, and optional
reference labels (energy in eV, forces in eV/Å, stress as a 3x3 tensor in eV/Å³ with
ASE's sign convention: ``stress = (1/V) dE/d(strain)``).
"""

from __future__ import annotations

import dataclasses

import ase
import numpy as np
from ase.data import atomic_numbers as _Z_OF_SYMBOL
from ase.data import chemical_symbols


@dataclasses.dataclass
class Structure:
    """One atomic configuration with optional reference labels.

    Attributes:
        positions: [n_atoms, 3] Cartesian positions, Å.
        numbers: [n_atoms] atomic numbers Z.
        cell: [3, 3] lattice vectors as rows, Å (zeros for a molecule).
        pbc: [3] periodicity per lattice direction.
        energy: total energy, eV (None if unlabelled).
        forces: [n_atoms, 3] forces, eV/Å (None if unlabelled).
        stress: [3, 3] stress, eV/Å³ (None if unlabelled).
        source: where it came from, e.g. ``"train.xyz, frame 3"``, used in error messages.
    """

    positions: np.ndarray
    numbers: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    energy: float | None = None
    forces: np.ndarray | None = None
    stress: np.ndarray | None = None
    source: str = "<structure>"

    def __post_init__(self):
        self.positions = np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)
        self.numbers = np.asarray(self.numbers, dtype=np.int64).reshape(-1)
        self.cell = np.asarray(self.cell, dtype=np.float64).reshape(3, 3)
        self.pbc = np.broadcast_to(np.asarray(self.pbc, dtype=bool), (3,)).copy()
        if self.positions.shape[0] != self.numbers.shape[0]:
            raise ValueError(
                f"{self.source}: {self.positions.shape[0]} positions but "
                f"{self.numbers.shape[0]} atomic numbers"
            )
        bad = np.flatnonzero(~np.isfinite(self.positions).all(axis=1))
        if bad.size:
            raise ValueError(
                f"{self.source}: non-finite position of atom index {bad[0]}"
            )
        if not np.isfinite(self.cell).all():
            raise ValueError(f"{self.source}: non-finite cell")
        if self.pbc.any() and abs(np.linalg.det(self.cell)) < 1e-9:
            raise ValueError(f"{self.source}: periodic structure with a singular cell")

    @property
    def n_atoms(self) -> int:
        return int(self.numbers.shape[0])

    @property
    def periodic(self) -> bool:
        """True when all three directions are periodic (stress labels are accepted)."""
        return bool(self.pbc.all())

    @property
    def volume(self) -> float:
        """Cell volume in Å³ (0 without a cell)."""
        return float(abs(np.linalg.det(self.cell)))

    @property
    def symbols(self) -> list[str]:
        return [chemical_symbols[z] for z in self.numbers]

    @classmethod
    def from_ase(cls, atoms: ase.Atoms, source: str = "<ase.Atoms>") -> Structure:
        """Geometry only; labels are read by :mod:`jaxmlp.data`."""
        return cls(
            positions=atoms.get_positions(),
            numbers=atoms.get_atomic_numbers(),
            cell=np.asarray(atoms.get_cell()),
            pbc=atoms.get_pbc(),
            source=source,
        )

    def to_ase(self) -> ase.Atoms:
        """An ``ase.Atoms`` with the same geometry (labels are not attached)."""
        return ase.Atoms(
            numbers=self.numbers, positions=self.positions, cell=self.cell, pbc=self.pbc
        )


def atomic_number(symbol: str) -> int:
    """Z of an element symbol, with a clear error for anything else."""
    try:
        return _Z_OF_SYMBOL[symbol]
    except KeyError:
        raise ValueError(f"unknown element symbol {symbol!r}") from None


def species_indices(
    numbers: np.ndarray, species: tuple[str, ...], source: str = "<structure>"
) -> np.ndarray:
    """Map atomic numbers to indices into the model's ``species`` table.

    Raises:
        ValueError: naming the first element the model does not know and its atom index.
    """
    table = np.full(max(119, int(numbers.max(initial=0)) + 1), -1, dtype=np.int32)
    for i, symbol in enumerate(species):
        table[atomic_number(symbol)] = i
    index = table[numbers]
    unknown = np.flatnonzero(index < 0)
    if unknown.size:
        atom = int(unknown[0])
        z = int(numbers[atom])
        name = chemical_symbols[z] if 0 <= z < len(chemical_symbols) else f"Z={z}"
        raise ValueError(
            f"{source}: element {name} (atom index {atom}) is not one of the model's "
            f"species {list(species)}"
        )
    return index
