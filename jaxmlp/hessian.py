"""Second derivatives of the energy by automatic differentiation (never hand-coded).

:func:`hessian` is d²E/dx_i dx_j of one structure, (3N, 3N) eV/Å², forward-over-reverse
(``jax.hessian``), for any registered architecture. Mass-weighted, it gives the harmonic
frequencies of a molecule or the Γ-point phonons of a periodic cell
(:func:`gamma_frequencies`); ASE's ``VibrationsData`` takes it as is.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp import precision
from jaxmlp.graph import batch_graphs, neighbor_list
from jaxmlp.model import Model
from jaxmlp.potential import graph_energy
from jaxmlp.structure import Structure


@functools.partial(jax.jit, static_argnums=(0, 3))
def _hessian(apply_fn, params, graph, n_atoms: int):
    def energy(real_positions):  # [n_atoms, 3] Å; padding nodes stay where they are
        positions = graph.positions.at[:n_atoms].set(real_positions)
        return graph_energy(apply_fn, params, graph, positions, graph.cell)[0][0]

    h = jax.hessian(energy)(graph.positions[:n_atoms])  # [n, 3, n, 3]
    return h.reshape(3 * n_atoms, 3 * n_atoms)


def hessian(model: Model, atoms, *, dtype: str | None = "float64") -> np.ndarray:
    """The (3N, 3N) Hessian in eV/Å² of ``atoms`` (``ase.Atoms`` or Structure).

    Rows and columns run over atoms, then x, y, z (ASE's ``get_hessian_2d`` order). The
    neighbor list is fixed at the given positions, which is exact for the second
    derivative (pairs at the cutoff contribute zero, the envelope being smooth).
    Float64 by default: second derivatives in float32 lose most digits.
    """
    structure = (
        atoms
        if isinstance(atoms, Structure)
        else Structure.from_ase(atoms, source="ase.Atoms")
    )
    neighbors = neighbor_list(structure, model.r_max)
    with precision.scope(dtype) as float_dtype:
        graph = batch_graphs(
            [structure],
            model.species,
            model.r_max,
            neighbors=[neighbors],
            dtype=float_dtype,
        )
        params = jax.tree.map(lambda p: jnp.asarray(p, float_dtype), model.params)
        h = _hessian(model.apply_fn, params, graph, structure.n_atoms)
        return np.asarray(jax.device_get(h), np.float64)


def gamma_frequencies(
    model: Model, atoms, *, dtype: str | None = "float64"
) -> np.ndarray:
    """Harmonic frequencies in cm⁻¹ (imaginary ones negative) from the mass-weighted
    Hessian: a molecule's normal modes, or a periodic cell's Γ-point phonons."""
    from ase.vibrations import VibrationsData

    ase_atoms = atoms.to_ase() if isinstance(atoms, Structure) else atoms
    data = VibrationsData.from_2d(ase_atoms, hessian(model, atoms, dtype=dtype))
    energies = data.get_frequencies()  # complex cm^-1
    return np.where(
        np.abs(energies.imag) > np.abs(energies.real),
        -np.abs(energies.imag),
        energies.real,
    )
