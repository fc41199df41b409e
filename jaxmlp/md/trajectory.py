"""MD output: extended XYZ trajectories and a thermo CSV, flushed every chunk.

Frames are written in ASE's conventions so that ``ase.io.read(path, ":")`` gives atoms
whose ``get_potential_energy()`` / ``get_forces()`` / ``get_stress()`` come from a
SinglePointCalculator (eV, eV/Å, eV/Å³) and whose ``get_momenta()`` are ASE momenta
(amu Å per ASE time unit), so ``get_kinetic_energy()`` (eV) and ``get_temperature()``
(K) are right. A committee's frames also carry ``atoms.arrays["forces_std"]`` ([n, 3]
eV/Å, the members' force spread per component) and ``atoms.info["forces_std_max"]``
(eV/Å, its largest per-atom norm). Each write is flushed and fsynced: a killed run keeps its frames.
"""

from __future__ import annotations

import csv
import os

import ase
import ase.io
import numpy as np
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import atomic_masses

from jaxmlp.calculator import full_3x3_to_voigt
from jaxmlp.md.observables import THERMO_COLUMNS, max_atom_spread


def frame_atoms(
    numbers,
    masses,
    positions,
    momenta,
    forces,
    energy,
    cell=None,
    stress=None,
    info=None,
    forces_std=None,
) -> ase.Atoms:
    """One frame as ``ase.Atoms`` with a SinglePointCalculator.

    Args:
        numbers: [n] Z. masses: [n] amu. positions: [n, 3] Å. momenta: [n, 3] ASE units.
        forces: [n, 3] eV/Å. energy: eV. cell: [3, 3] Å or None (free boundaries).
        stress: [3, 3] eV/Å³ or None. info: extra ``atoms.info`` entries (e.g. step).
        forces_std: [n, 3] eV/Å committee force spread, or None (a single model).
    """
    periodic = cell is not None
    atoms = ase.Atoms(numbers=numbers, positions=positions, cell=cell, pbc=periodic)
    if not np.allclose(masses, atomic_masses[np.asarray(numbers)]):
        atoms.set_masses(masses)
    atoms.set_momenta(momenta)
    results = {"energy": float(energy), "free_energy": float(energy), "forces": forces}
    if stress is not None and periodic:
        results["stress"] = full_3x3_to_voigt(np.asarray(stress))
    atoms.calc = SinglePointCalculator(atoms, **results)
    atoms.info.update(info or {})
    if forces_std is not None:
        forces_std = np.asarray(forces_std, np.float64)
        atoms.arrays["forces_std"] = forces_std
        atoms.info["forces_std_max"] = float(max_atom_spread(forces_std))
    return atoms


class TrajectoryWriter:
    """Appends frames to an extended XYZ file; every ``write`` is flushed to disk."""

    def __init__(self, path: str | os.PathLike, append: bool = False):
        self.path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self._file = open(self.path, "a" if append else "w")

    def write(self, frames: list[ase.Atoms]) -> None:
        if frames:
            ase.io.write(self._file, frames, format="extxyz")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


class ThermoWriter:
    """Appends rows of :data:`THERMO_COLUMNS` to a CSV file, flushed every write."""

    def __init__(self, path: str | os.PathLike, append: bool = False):
        self.path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        exists = append and os.path.exists(self.path) and os.path.getsize(self.path) > 0
        self._file = open(self.path, "a" if append else "w", newline="")
        self._csv = csv.writer(self._file)
        if not exists:
            self._csv.writerow(THERMO_COLUMNS)

    def write(self, rows) -> None:
        for row in rows:
            self._csv.writerow([int(row[0])] + [f"{float(x):.10g}" for x in row[1:]])
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def read_thermo(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The thermo CSV as a dict of column arrays."""
    data = np.genfromtxt(path, delimiter=",", names=True, ndmin=1)
    return {name: np.asarray(data[name]) for name in data.dtype.names}
