"""Labelled datasets: any file ASE reads (extended XYZ first) -> validated ``Structure``s.

Labels come from configurable keys (``energy_key`` in ``atoms.info``, ``forces_key`` in
``atoms.arrays``, ``stress_key`` in ``atoms.info``), falling back to the results of an
attached ASE calculator (e.g. extxyz ``energy=``/``forces``/``stress`` columns). Labels
may be partial: a frame without stress keeps ``stress=None`` and is masked in the loss.
Every problem raises :class:`DatasetError` naming the file, frame and, where it applies,
the atom.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import ase
import ase.io
import numpy as np
from ase.data import chemical_symbols

from jaxmlp.graph import check_min_distance, neighbor_list
from jaxmlp.structure import Structure, species_indices

LABELS = ("energy", "forces", "stress")


class DatasetError(ValueError):
    """Bad input data; the message names the file, frame and (where it applies) atom."""


@dataclasses.dataclass(frozen=True)
class LabelKeys:
    """Where labels live in an ASE frame (``info`` for energy/stress, ``arrays`` for forces)."""

    energy_key: str = "REF_energy"
    forces_key: str = "REF_forces"
    stress_key: str = "REF_stress"


def _calc_result(atoms: ase.Atoms, name: str):
    calc = atoms.calc
    if calc is None:
        return None
    return getattr(calc, "results", {}).get(name)


def _stress_3x3(value, where: str) -> np.ndarray:
    stress = np.asarray(value, dtype=np.float64)
    if stress.shape == (3, 3):
        return stress
    if stress.shape == (9,):
        return stress.reshape(3, 3)
    if stress.shape == (6,):  # Voigt xx yy zz yz xz xy
        xx, yy, zz, yz, xz, xy = stress
        return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    raise DatasetError(
        f"{where}: stress has shape {stress.shape}; expected (3, 3), (9,) or Voigt (6,)"
    )


def _check_finite(
    value: np.ndarray, name: str, where: str, per_atom: bool = False
) -> None:
    bad = ~np.isfinite(value)
    if bad.any():
        if per_atom:
            atom = int(np.flatnonzero(bad.any(axis=1))[0])
            raise DatasetError(f"{where}: non-finite {name} on atom index {atom}")
        raise DatasetError(
            f"{where}: non-finite {name} ({value.ravel()[bad.ravel()][0]})"
        )


def structure_from_atoms(
    atoms: ase.Atoms,
    source: str,
    keys: LabelKeys = LabelKeys(),
    *,
    required: Sequence[str] = ("energy", "forces"),
    species: Sequence[str] | None = None,
    min_distance: float = 0.1,
) -> Structure:
    """One validated, labelled :class:`Structure` from an ``ase.Atoms`` frame.

    Args:
        atoms: the frame.
        source: ``"file.xyz, frame 7"``, used in every error message.
        keys: label keys.
        required: labels every frame must carry (others are optional and masked).
        species: allowed element symbols (None: any real element).
        min_distance: atoms (or periodic images) closer than this (Å) are an error.

    Raises:
        DatasetError: missing required label, non-finite value, unknown element,
            overlapping atoms or a label of the wrong shape.
    """
    unknown = [r for r in required if r not in LABELS]
    if unknown:
        raise ValueError(
            f"unknown required labels {unknown}; choose from {list(LABELS)}"
        )
    numbers = atoms.get_atomic_numbers()
    bad = np.flatnonzero((numbers < 1) | (numbers >= len(chemical_symbols)))
    if bad.size:
        raise DatasetError(
            f"{source}: unknown element (Z={int(numbers[bad[0]])}) at atom index {int(bad[0])}"
        )
    try:
        structure = Structure.from_ase(atoms, source=source)
    except ValueError as e:
        raise DatasetError(str(e)) from None
    if species is not None:
        try:
            species_indices(structure.numbers, tuple(species), source)
        except ValueError as e:
            raise DatasetError(str(e)) from None
    if min_distance > 0:
        try:
            check_min_distance(
                structure, neighbor_list(structure, min_distance), min_distance
            )
        except ValueError as e:
            raise DatasetError(str(e)) from None

    n = structure.n_atoms
    energy = atoms.info.get(keys.energy_key, _calc_result(atoms, "energy"))
    if energy is not None:
        energy_arr = np.asarray(energy, dtype=np.float64)
        if energy_arr.size != 1:
            raise DatasetError(
                f"{source}: energy {keys.energy_key!r} has shape {energy_arr.shape}; expected a scalar"
            )
        energy = float(energy_arr.reshape(()))
        _check_finite(np.asarray(energy), "energy", source)
    forces = atoms.arrays.get(keys.forces_key, _calc_result(atoms, "forces"))
    if forces is not None:
        forces = np.asarray(forces, dtype=np.float64)
        if forces.shape != (n, 3):
            raise DatasetError(
                f"{source}: forces {keys.forces_key!r} have shape {forces.shape}; expected ({n}, 3)"
            )
        _check_finite(forces, "forces", source, per_atom=True)
    stress = atoms.info.get(keys.stress_key, _calc_result(atoms, "stress"))
    if stress is not None:
        stress = _stress_3x3(stress, source)
        _check_finite(stress, "stress", source)
        if not structure.periodic:
            raise DatasetError(
                f"{source}: stress label on a structure that is not periodic in all three "
                f"directions (pbc={structure.pbc.tolist()})"
            )
    labels = {"energy": energy, "forces": forces, "stress": stress}
    key_of = {
        "energy": keys.energy_key,
        "forces": keys.forces_key,
        "stress": keys.stress_key,
    }
    for name in required:
        if labels[name] is None:
            where = "arrays" if name == "forces" else "info"
            available = sorted(atoms.arrays if name == "forces" else atoms.info)
            raise DatasetError(
                f"{source}: missing {name} label: no key {key_of[name]!r} in atoms.{where} "
                f"(found {available}) and no calculator {name}"
            )
    return dataclasses.replace(structure, energy=energy, forces=forces, stress=stress)


def read_structures(
    path: str | os.PathLike,
    keys: LabelKeys = LabelKeys(),
    *,
    index: str | int | slice = ":",
    format: str | None = None,
    required: Sequence[str] = ("energy", "forces"),
    species: Sequence[str] | None = None,
    min_distance: float = 0.1,
) -> list[Structure]:
    """Read every frame of ``path`` (any ASE format) into validated labelled structures.

    Args:
        path: the file (extended XYZ, ASE trajectory, VASP OUTCAR ...).
        keys: label keys (see :class:`LabelKeys`).
        index: ASE frame selection.
        format: ASE format name (guessed from the file name when None).
        required, species, min_distance: see :func:`structure_from_atoms`.

    Raises:
        DatasetError: the file is missing, unreadable or has a bad frame.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DatasetError(f"{path}: no such data file")
    try:
        frames = ase.io.read(path, index=index, format=format)
    except Exception as e:  # ASE raises many types on malformed files
        raise DatasetError(f"{path}: cannot read ({type(e).__name__}: {e})") from None
    if isinstance(frames, ase.Atoms):
        frames = [frames]
    if not frames:
        raise DatasetError(f"{path}: no frames")
    return [
        structure_from_atoms(
            atoms,
            f"{path}, frame {i}",
            keys,
            required=required,
            species=species,
            min_distance=min_distance,
        )
        for i, atoms in enumerate(frames)
    ]


def random_split(
    structures: Sequence[Structure], fractions: Sequence[float], seed: int = 0
) -> list[list[Structure]]:
    """Shuffle (seeded) and cut into parts; ``fractions`` of the later parts, rest first.

    ``random_split(data, (0.1, 0.1), seed)`` returns ``[train, valid, test]`` with 10 %
    each in valid and test (at least one structure each when the fraction is > 0).
    """
    n = len(structures)
    order = np.random.default_rng(seed).permutation(n)
    sizes = [max(1, int(round(f * n))) if f > 0 else 0 for f in fractions]
    if sum(sizes) >= n:
        raise DatasetError(
            f"cannot split {n} structures into fractions {list(fractions)}: nothing left to train on"
        )
    parts, start = [], n - sum(sizes)
    for size in sizes:
        parts.append([structures[i] for i in order[start : start + size]])
        start += size
    return [[structures[i] for i in order[: n - sum(sizes)]]] + parts


def species_of(structures: Sequence[Structure]) -> tuple[str, ...]:
    """Element symbols present, in order of atomic number."""
    numbers = sorted({int(z) for s in structures for z in s.numbers})
    return tuple(chemical_symbols[z] for z in numbers)
