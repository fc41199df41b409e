"""ASE calculator: jaxmlp models inside any ASE workflow (MD, relaxations, NEB ...)."""

from __future__ import annotations

import os
from typing import ClassVar

import jax
import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from jaxmlp import precision, triplets
from jaxmlp.compile_guard import check_mapping_headroom
from jaxmlp.graph import batch_graphs, check_min_distance, neighbor_list, padding_for
from jaxmlp.model import Model
from jaxmlp.model_io import load_model
from jaxmlp.potential import predict, predict_members
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

    A committee model (``members=K``) predicts the committee mean and adds
    ``energy_std`` (eV), ``forces_std`` ((N, 3) eV/Å, per component) and
    ``forces_std_max`` (eV/Å, the largest per-atom norm of the force spread) to
    ``results``, from one vmapped call. Each spread is multiplied by the model's
    ``config.uncertainty_scale`` (1 unless recalibrated, see :mod:`jaxmlp.calibration`).

    Atom and edge counts are padded to size buckets, so a changing number of atoms or
    neighbors recompiles only when it crosses a bucket (``self.compilations`` counts).

    Args:
        model: a :class:`~jaxmlp.model.Model` or the path of a saved model file.
        dtype: ``"float32"`` (default) or ``"float64"``; ``None`` follows the caller's
            ``jax.enable_x64`` setting at each call. The calculator never turns x64 off
            (see :mod:`jaxmlp.precision`).
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
        if dtype is not None:
            dtype = precision.name(dtype)  # validates
        self.model = model
        self.dtype = dtype
        self.min_distance = float(min_distance)
        self.compilations = 0
        member_fn = model.member_apply_fn
        committee = model.members is not None

        def _predict(params, graph):
            self.compilations += 1  # runs only while tracing
            check_mapping_headroom("JaxMLPCalculator")
            if committee:
                return predict_members(member_fn, params, graph)
            return predict(member_fn, params, graph), None

        self._predict = jax.jit(_predict)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        structure = Structure.from_ase(self.atoms, source="ase.Atoms")
        neighbors = neighbor_list(structure, self.model.r_max)
        check_min_distance(structure, neighbors, self.min_distance)
        if "triplets" in self.model.config.extras:  # overflow would give NaN: say why
            triplets.check_capacity(
                neighbors.receivers,
                structure.n_atoms,
                triplets.spec_capacity(self.model.config.spec()),
                self.atoms.get_chemical_symbols(),
            )
        sizes = padding_for(structure.n_atoms, len(neighbors.senders), 1)
        with precision.scope(self.dtype) as float_dtype:
            graph = batch_graphs(
                [structure],
                self.model.species,
                self.model.r_max,
                sizes=sizes,
                neighbors=[neighbors],
                dtype=float_dtype,
            )
            params = jax.tree.map(
                lambda p: np.asarray(p, float_dtype), self.model.params
            )
            out = jax.device_get(self._predict(params, graph))
        spread = None
        if self.model.members is not None:
            out, spread = out.mean, out.std
        else:
            out = out[0]
        n = structure.n_atoms
        energy = float(out.energy[0])
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "energies": np.asarray(out.node_energies[:n], np.float64),
            "forces": np.asarray(out.forces[:n], np.float64),
        }
        if structure.pbc.any():
            self.results["stress"] = full_3x3_to_voigt(
                np.asarray(out.stress[0], np.float64)
            )
        if spread is not None:
            scale = self.model.config.uncertainty_scale
            forces_std = scale * np.asarray(spread.forces[:n], np.float64)
            self.results["energy_std"] = scale * float(spread.energy[0])
            self.results["forces_std"] = forces_std
            self.results["forces_std_max"] = float(
                np.linalg.norm(forces_std, axis=1).max(initial=0.0)
            )
