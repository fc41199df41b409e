import jax
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress
from conftest import small_nequip

import jaxmlp
from jaxmlp.graph import padding_for
from jaxmlp.structure import Structure
from jaxmlp.testing import predict_jit


@pytest.fixture(scope="module")
def calc_model():
    return small_nequip()


def test_ase_results_match_predict_and_fd(calc_model, x64):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True) * (2, 1, 1)
    atoms[3].symbol = "O"
    atoms.rattle(0.05, seed=0)
    atoms.calc = jaxmlp.JaxMLPCalculator(calc_model, dtype="float64")
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    stress = atoms.get_stress()
    assert atoms.get_potential_energies().sum() == pytest.approx(energy, abs=1e-9)
    g = jaxmlp.batch_graphs(
        [Structure.from_ase(atoms)],
        calc_model.species,
        calc_model.r_max,
        dtype=np.float64,
    )
    ref = predict_jit(calc_model.apply_fn, calc_model.params, g)
    assert energy == pytest.approx(float(ref.energy[0]), abs=1e-10)
    np.testing.assert_allclose(forces, ref.forces[: len(atoms)], atol=1e-10)
    # ASE's own finite differences of the calculator
    np.testing.assert_allclose(
        calculate_numerical_forces(atoms, eps=1e-5), forces, atol=1e-7
    )
    np.testing.assert_allclose(
        calculate_numerical_stress(atoms, eps=1e-6), stress, atol=1e-8
    )
    assert np.abs(stress).max() > 1e-5


def test_changing_atom_count_stays_in_few_compilations(calc_model):
    calc = jaxmlp.JaxMLPCalculator(calc_model)
    base = bulk("Cu", "fcc", a=3.6, cubic=True) * (2, 2, 2)
    buckets = set()
    for n_removed in range(1, 5):
        atoms = base.copy()
        del atoms[list(range(n_removed))]
        atoms.calc = calc
        atoms.get_potential_energy()
        n_pairs = len(
            jaxmlp.neighbor_list(Structure.from_ase(atoms), calc_model.r_max).senders
        )
        buckets.add(padding_for(len(atoms), n_pairs, 1))
        assert calc.compilations == len(buckets)
        before = calc.compilations
        for _ in range(3):  # same size, moved atoms: never a new compilation
            atoms.positions += 0.01
            atoms.get_forces()
        assert calc.compilations == before
    assert len(buckets) < 4  # 28..31 atoms: fewer buckets than sizes


def test_float32_default_and_float64_agree(calc_model):
    atoms = molecule("H2O")
    atoms.symbols = "OCuCu"
    atoms.positions *= 1.8
    e32 = jaxmlp.JaxMLPCalculator(calc_model).get_potential_energy(atoms)
    e64 = jaxmlp.JaxMLPCalculator(calc_model, dtype="float64").get_potential_energy(
        atoms
    )
    assert e32 == pytest.approx(e64, abs=1e-4)
    with pytest.raises(
        PropertyNotImplementedError, match="stress"
    ):  # molecules have none
        jaxmlp.JaxMLPCalculator(calc_model).get_property("stress", atoms)


def test_unknown_element_error_names_element_and_index(calc_model):
    atoms = Atoms("Cu2Fe", positions=[[0, 0, 0], [2.5, 0, 0], [0, 2.5, 0]])
    atoms.calc = jaxmlp.JaxMLPCalculator(calc_model)
    with pytest.raises(ValueError, match=r"Fe \(atom index 2\)"):
        atoms.get_potential_energy()


def test_calculator_loads_from_path(tmp_path, calc_model):
    jaxmlp.save_model(calc_model, tmp_path / "m.jaxmlp")
    atoms = bulk("Cu", "fcc", a=3.6)
    e1 = jaxmlp.JaxMLPCalculator(tmp_path / "m.jaxmlp").get_potential_energy(atoms)
    e2 = jaxmlp.JaxMLPCalculator(calc_model).get_potential_energy(atoms)
    assert e1 == e2


def test_overlapping_atoms_and_nan_positions_are_errors(calc_model):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.positions[2] = atoms.positions[1] + [0.05, 0.0, 0.0]
    atoms.calc = jaxmlp.JaxMLPCalculator(calc_model)
    with pytest.raises(ValueError, match=r"atoms (1 and 2|2 and 1) .*0\.050 Å apart"):
        atoms.get_potential_energy()
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.positions[3, 1] = np.nan
    atoms.calc = jaxmlp.JaxMLPCalculator(calc_model)
    with pytest.raises(ValueError, match="non-finite position of atom index 3"):
        atoms.get_potential_energy()


def test_calculator_precision_is_the_callers(calc_model):
    """dtype strings are validated; float32 inside the caller's x64 stays float32 and
    leaves x64 on; dtype=None follows the caller."""
    with pytest.raises(ValueError, match="float6"):
        jaxmlp.JaxMLPCalculator(calc_model, dtype="float6")
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms.rattle(0.05, seed=4)
    ref = atoms.copy()
    ref.calc = jaxmlp.JaxMLPCalculator(calc_model, dtype="float64")
    f64 = ref.get_forces()
    with jax.enable_x64(True):
        a = atoms.copy()
        a.calc = jaxmlp.JaxMLPCalculator(calc_model, dtype="float32")
        f32 = a.get_forces()
        assert jax.config.jax_enable_x64  # not switched off under the caller
        follow = atoms.copy()
        follow.calc = jaxmlp.JaxMLPCalculator(calc_model, dtype=None)
        np.testing.assert_allclose(follow.get_forces(), f64, atol=1e-12)  # x64 followed
    assert not jax.config.jax_enable_x64
    assert 1e-9 < np.abs(f32 - f64).max() < 1e-4  # really float32, and accurate
    follow = atoms.copy()
    follow.calc = jaxmlp.JaxMLPCalculator(calc_model, dtype=None)
    assert 1e-9 < np.abs(follow.get_forces() - f64).max() < 1e-4  # float32 outside x64
