"""Run a model exported by ``jaxmlp export`` with only jax, numpy and the standard
library (this module imports nothing from jaxmlp; copy it next to an MD engine).

    model = load_exported("cu.jaxmlp-export")
    energy, forces, stress = model(positions, numbers, cell, pbc, senders, receivers, shifts)

``numbers`` are atomic numbers (mapped to the model's species table here) or, with
``species_are_indices=True``, indices into ``model.species``. The neighbor list is the
caller's: every directed pair i -> j within ``model.r_max`` Å (both directions), with
``vector = positions[j] - positions[i] + shifts @ cell`` and ``senders = i``,
``receivers = j``. Units: Å in; eV, eV/Å, eV/Å³ out. One exported program serves every
atom and edge count; each new (n_atoms, n_edges) pair compiles once (pad the edge list
to a few sizes with pairs of far-away dummy atoms if that matters, or keep a fixed
capacity).
"""

from __future__ import annotations

import hashlib
import json
import zipfile

import jax
import numpy as np

_SYMBOLS = (
    "X H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu "
    "Zn Ga Ge As Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba "
    "La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi"
).split()


class ExportedModel:
    """A loaded export: ``metadata`` (dict), ``species``, ``r_max`` and ``__call__``."""

    def __init__(self, metadata: dict, exported):
        self.metadata = metadata
        self.species = tuple(metadata["species"])
        self.r_max = float(metadata["r_max"])
        self.dtype = np.dtype(metadata["dtype"])
        self._exported = exported
        self._call = jax.jit(exported.call)
        self._index = {}
        for i, symbol in enumerate(self.species):
            self._index[_SYMBOLS.index(symbol)] = i

    def species_indices(self, numbers) -> np.ndarray:
        numbers = np.asarray(numbers)
        unknown = sorted({int(z) for z in numbers} - set(self._index))
        if unknown:
            raise ValueError(
                f"atomic numbers {unknown} are not in the model's species {self.species}"
            )
        return np.array([self._index[int(z)] for z in numbers], np.int32)

    def __call__(
        self,
        positions,
        numbers,
        cell,
        pbc,
        senders,
        receivers,
        shifts,
        *,
        species_are_indices: bool = False,
    ):
        """``(energy eV, forces [n, 3] eV/Å, stress [3, 3] eV/Å³)`` as numpy."""
        species = (
            np.asarray(numbers, np.int32)
            if species_are_indices
            else self.species_indices(numbers)
        )
        f = self.dtype
        if f == np.float64 and not jax.config.jax_enable_x64:
            raise RuntimeError(
                "this export computes in float64: call jax.config.update("
                "'jax_enable_x64', True) before loading it"
            )
        out = self._call(
            np.asarray(positions, f),
            species,
            np.asarray(cell, f).reshape(3, 3),
            np.asarray(pbc, bool).reshape(3),
            np.asarray(senders, np.int32),
            np.asarray(receivers, np.int32),
            np.asarray(shifts, f).reshape(-1, 3),
        )
        energy, forces, stress = jax.device_get(out)
        return float(energy), np.asarray(forces), np.asarray(stress)


def load_exported(path: str) -> ExportedModel:
    """Read and verify (format, sha256) an exported model file."""
    with zipfile.ZipFile(path) as archive:
        metadata = json.loads(archive.read("metadata.json"))
        program = archive.read("program.bin")
    if metadata.get("format") != "jaxmlp-export-1":
        raise ValueError(
            f"{path}: not a jaxmlp export (format {metadata.get('format')!r})"
        )
    digest = hashlib.sha256(program).hexdigest()
    if digest != metadata["sha256"]:
        raise ValueError(f"{path}: program checksum {digest} != {metadata['sha256']}")
    return ExportedModel(metadata, jax.export.deserialize(bytearray(program)))
