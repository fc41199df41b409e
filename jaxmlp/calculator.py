"""ASE calculator: jaxmlp models inside any ASE workflow (MD, relaxations, NEB ...)."""

from __future__ import annotations

import os
from typing import ClassVar

import jax
import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from jaxmlp.compile_guard import check_mapping_headroom
from jaxmlp.graph import batch_graphs, check_min_distance, neighbor_list, padding_for
from jaxmlp.model import Model
from jaxmlp.model_io import load_model
from jaxmlp.potential import predict
from jaxmlp.structure import Structure

_VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


def full_3x3_to_voigt(stress: np.ndarray) -> np.ndarray:
    return np.array([stress[i, j] for i, j in _VOIGT])


class JaxMLPCalculator(Calculator):
    """ASE ``Calculator`` for a jaxmlp model.

    Properties: ``energy`` and ``free_energy`` (eV), ``energies`` (per atom, eV),
    ``forces`` (eV/Å) and, for cells with a periodic direction, ``stress`` (Voigt, eV/Å³;
    for a slab or wire over the whole cell volume, vacuum included, as ASE's EMT). A
    molecule has no stress, whatever its cell: ``get_stress`` raises
    ``PropertyNotImplementedError``.

    Atom and edge counts are padded to size buckets, so a changing number of atoms or
    neighbors recompiles only when it crosses a bucket (``self.compilations`` counts).

    Args:
        model: a :class:`~jaxmlp.model.Model` or the path of a saved model file.
        dtype: ``"float32"`` (default) or ``"float64"``.
        min_distance: atoms closer than this (Å) raise an error instead of giving
            meaningless energies.
    """

    implemented_properties: ClassVar[list[str]] = [
        "energy",
        "free_energy",
        "energies",
        "forces",
        "stress",
    ]

    def __init__(
        self,
        model: Model | str | os.PathLike,
        dtype: str = "float32",
        min_distance: float = 0.1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(model, Model):
            model = load_model(model)
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        self.model = model
        self.dtype = dtype
        self.min_distance = float(min_distance)
        self.compilations = 0
        apply_fn = model.apply_fn

        def _predict(params, graph):
            self.compilations += 1  # runs only while tracing
            check_mapping_headroom("JaxMLPCalculator")
            return predict(apply_fn, params, graph)

        self._predict = jax.jit(_predict)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        structure = Structure.from_ase(self.atoms, source="ase.Atoms")
        neighbors = neighbor_list(structure, self.model.r_max)
        check_min_distance(structure, neighbors, self.min_distance)
        sizes = padding_for(structure.n_atoms, len(neighbors.senders), 1)
        float_dtype = np.float64 if self.dtype == "float64" else np.float32
        graph = batch_graphs(
            [structure],
            self.model.species,
            self.model.r_max,
            sizes=sizes,
            neighbors=[neighbors],
            dtype=float_dtype,
        )
        with jax.enable_x64(self.dtype == "float64"):
            out = jax.device_get(self._predict(self.model.params, graph))
        n = structure.n_atoms
        energy = float(out.energy[0])
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "energies": np.asarray(out.node_energies[:n], np.float64),
            "forces": np.asarray(out.forces[:n], np.float64),
        }
        if structure.pbc.any():
            self.results["stress"] = full_3x3_to_voigt(np.asarray(out.stress[0], np.float64))
