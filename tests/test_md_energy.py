"""The MD energy function: forces and stress equal the ASE calculator's (periodic
triclinic, replicated small cells, cell-list boxes, free boundaries)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase.build import bulk
from conftest import cu_o_molecule, small_nequip, triclinic_cu_o

from jaxmlp import JaxMLPCalculator
from jaxmlp.md.energy import stress_fn
from jaxmlp.md.integrators import Ensemble
from jaxmlp.md.simulation import make_simulation
from jaxmlp.md.system import perpendicular_widths, prepare_system


@pytest.fixture(scope="module")
def md_model():
    return small_nequip(r_max=3.0, channels=4, num_layers=1, l_max=1)


def md_forces_and_stress(model, structure, dtype="float64"):
    """Energy, forces (input frame) and stress via the jax-md path, plus the system."""
    sim = make_simulation(model, structure, Ensemble("nve"), dtype=dtype)
    with jax.enable_x64(dtype == "float64"):
        params = jax.tree.map(lambda p: jnp.asarray(p, sim.dtype), model.params)
        positions = sim.system.initial_positions(sim.dtype)
        nbrs = sim.allocate(positions)
        periodic = sim.system.periodic

        @jax.jit
        def evaluate(params, positions, nbrs):
            energy, grad = jax.value_and_grad(sim.energy_fn, argnums=1)(
                params, positions, nbrs
            )
            if not periodic:
                return energy, grad, None
            return (
                energy,
                grad,
                stress_fn(sim.energy_fn, params, positions, nbrs, sim.box)[1],
            )

        energy, grad, stress = evaluate(params, positions, nbrs)
        if periodic:
            rot = sim.system.rotation
            stress = rot @ np.asarray(stress) @ rot.T
        assert not bool(nbrs.did_buffer_overflow)
    forces = -sim.system.to_input_frame(np.asarray(grad))
    return float(energy), forces, stress, sim.system, nbrs


def ase_reference(model, atoms):
    atoms = atoms.copy()
    atoms.calc = JaxMLPCalculator(model, dtype="float64")
    stress = atoms.get_stress(voigt=False) if atoms.pbc.all() else None
    return atoms.get_potential_energy(), atoms.get_forces(), stress


def test_triclinic_small_cell_is_replicated_and_exact(x64, md_model):
    structure = triclinic_cu_o()  # skewed cell thinner than the cutoff
    energy, forces, stress, system, _ = md_forces_and_stress(md_model, structure)
    assert system.repeat != (1, 1, 1)
    assert perpendicular_widths(system.cell).min() > 2 * (md_model.r_max + 0.5)
    n_copies = int(np.prod(system.repeat))
    e_ref, f_ref, s_ref = ase_reference(md_model, structure.to_ase())
    assert np.abs(f_ref).max() > 0.1  # not a vacuous comparison
    # the supercell is n_copies images of the input cell: extensive energy, tiled forces
    np.testing.assert_allclose(energy, n_copies * e_ref, rtol=1e-10)
    np.testing.assert_allclose(forces, np.tile(f_ref, (n_copies, 1)), atol=1e-9)
    np.testing.assert_allclose(stress, s_ref, atol=1e-10)
    # and the supercell itself agrees with the calculator
    e_sup, f_sup, _ = ase_reference(md_model, system.to_ase())
    np.testing.assert_allclose(energy, e_sup, rtol=1e-10)
    np.testing.assert_allclose(forces, f_sup, atol=1e-9)


def test_cell_list_box_matches_calculator(x64, md_model):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((4, 4, 4))
    atoms.rattle(0.1, seed=3)
    atoms.set_cell(
        atoms.cell[:] + np.array([[0, 0, 0], [0.7, 0, 0], [0.4, -0.3, 0]]),
        scale_atoms=True,
    )
    energy, forces, stress, system, nbrs = md_forces_and_stress(md_model, atoms)
    assert nbrs.cell_list_fn is not None  # the cell-list path, not the dense fallback
    e_ref, f_ref, s_ref = ase_reference(md_model, atoms)
    assert np.abs(f_ref).max() > 0.1
    np.testing.assert_allclose(energy, e_ref, rtol=1e-10)
    np.testing.assert_allclose(forces, f_ref, atol=1e-9)
    np.testing.assert_allclose(stress, s_ref, atol=1e-10)


def test_free_boundaries_match_calculator(x64, md_model):
    structure = cu_o_molecule()
    energy, forces, stress, system, _ = md_forces_and_stress(md_model, structure)
    assert stress is None and not system.periodic
    e_ref, f_ref, _ = ase_reference(md_model, structure.to_ase())
    assert np.abs(f_ref).max() > 0.1
    np.testing.assert_allclose(energy, e_ref, rtol=1e-10)
    np.testing.assert_allclose(forces, f_ref, atol=1e-9)


def test_float32_close_to_float64(md_model):
    structure = cu_o_molecule()
    e32, f32, _, _, _ = md_forces_and_stress(md_model, structure, "float32")
    with jax.enable_x64(True):
        e64, f64, _ = ase_reference(md_model, structure.to_ase())
    np.testing.assert_allclose(e32, e64, rtol=1e-5)
    np.testing.assert_allclose(f32, f64, atol=2e-4 * np.abs(f64).max())


def test_mixed_periodicity_and_unknown_elements_are_rejected(md_model):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms.pbc = [True, True, False]
    with pytest.raises(ValueError, match="pbc"):
        prepare_system(atoms, md_model.species, 3.5)
    atoms = bulk("Fe", "bcc", a=2.87, cubic=True)
    with pytest.raises(ValueError, match="Fe"):
        prepare_system(atoms, md_model.species, 3.5)
