"""Stress by periodicity: bulk (1/V) dE/deps, slab the same with V including the vacuum
(ASE's convention, as EMT), a molecule exactly 0 even when it carries a cell."""

import jax
import numpy as np
import pytest
from ase.build import fcc111
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.fd import calculate_numerical_stress
from conftest import cu_o_molecule, rattled_fcc_cu

import jaxmlp
from jaxmlp import testing
from jaxmlp.calculator import full_3x3_to_voigt
from jaxmlp.graph import PaddingSizes, batch_graphs
from jaxmlp.structure import Structure
from jaxmlp.testing import predict_jit


def boxed_molecule() -> Structure:
    """The 5-atom molecule in a 10 Å cell, not periodic (an ASE molecule with a cell)."""
    s = cu_o_molecule()
    return Structure(
        s.positions + 5.0, s.numbers, 10.0 * np.eye(3), False, source="boxed"
    )


def cu_slab():
    """A rattled 12-atom Cu(111) slab with one O, 5 Å of vacuum on each side."""
    atoms = fcc111("Cu", size=(2, 2, 3), a=3.61, vacuum=5.0)
    atoms[5].symbol = "O"
    atoms.rattle(0.05, seed=0)
    assert atoms.pbc.tolist() == [True, True, False]
    return atoms


def graph64(model, structures):
    return batch_graphs(structures, model.species, model.r_max, dtype=np.float64)


def test_molecule_with_a_cell_has_exactly_zero_stress(x64, model):
    s = boxed_molecule()
    out = predict_jit(model.apply_fn, model.params, graph64(model, [s]))
    assert np.abs(out.forces[: s.n_atoms]).max() > 1e-3  # a nonzero virial to hide
    assert np.all(np.asarray(out.stress) == 0.0)


def test_slab_stress_matches_ase_finite_differences(x64, model):
    atoms = cu_slab()
    atoms.calc = jaxmlp.JaxMLPCalculator(model, dtype="float64")
    stress = atoms.get_stress()  # Voigt, eV/Å³
    assert np.abs(stress).max() > 1e-4
    np.testing.assert_allclose(
        calculate_numerical_stress(atoms, eps=1e-6), stress, atol=1e-8
    )
    out = predict_jit(
        model.apply_fn, model.params, graph64(model, [Structure.from_ase(atoms)])
    )
    np.testing.assert_allclose(full_3x3_to_voigt(out.stress[0]), stress)


def test_calculator_has_no_stress_for_a_molecule_with_a_cell(model):
    atoms = boxed_molecule().to_ase()
    atoms.calc = jaxmlp.JaxMLPCalculator(model)
    atoms.get_potential_energy()
    with pytest.raises(PropertyNotImplementedError, match="stress"):
        atoms.get_stress()


@pytest.mark.slow
def test_mixed_batch_gives_each_graph_its_stress(x64, model):
    slab = Structure.from_ase(cu_slab())
    structures = [rattled_fcc_cu(), boxed_molecule(), slab]
    n_atoms = sum(s.n_atoms for s in structures)
    g = batch_graphs(
        structures,
        model.species,
        model.r_max,
        sizes=PaddingSizes(n_atoms + 3, 1024, 5),
        dtype=np.float64,
    )
    out = jax.device_get(predict_jit(model.apply_fn, model.params, g))
    for index in (0, 2):  # bulk and slab: finite strain of energy over the cell volume
        fd = testing.finite_difference_stress(
            model.apply_fn, model.params, g, index=index
        )
        assert np.abs(fd).max() > 1e-4
        np.testing.assert_allclose(out.stress[index], fd, atol=1e-9, rtol=1e-6)
    assert np.all(out.stress[1] == 0.0) and np.all(out.stress[3:] == 0.0)
    calc = jaxmlp.JaxMLPCalculator(model, dtype="float64")
    for index, s in ((0, structures[0]), (2, slab)):  # each alone through ASE
        atoms = s.to_ase()
        atoms.calc = calc
        np.testing.assert_allclose(
            full_3x3_to_voigt(out.stress[index]), atoms.get_stress(), atol=1e-12
        )
    expected_pbc = [
        [True] * 3,
        [False] * 3,
        [True, True, False],
        [False] * 3,
        [False] * 3,
    ]
    assert np.asarray(g.pbc).tolist() == expected_pbc  # padding graphs are free
