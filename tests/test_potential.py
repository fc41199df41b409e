"""Physics of the NequIP potential: symmetry, derivatives, periodicity, smoothness."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase.build import bulk
from jax.test_util import check_grads

import jaxmlp
from jaxmlp import testing
from jaxmlp.graph import PaddingSizes, batch_graphs
from jaxmlp.potential import graph_energy
from jaxmlp.testing import predict_jit as _predict_jit


def predict(apply_fn, params, graph):
    return _predict_jit(apply_fn, params, graph)

from jaxmlp.structure import Structure

from conftest import cu_o_molecule, small_nequip


def graph64(model, structures, sizes=None):
    return batch_graphs(structures, model.species, model.r_max, sizes=sizes, dtype=np.float64)


@pytest.mark.parametrize("seed", [0, 1])
def test_rotation_inversion_equivariance(x64, model, structures, seed):
    g = graph64(model, structures)
    matrix = testing.random_orthogonal(seed, inversion=bool(seed == 0))
    errors = testing.equivariance_errors(model.apply_fn, model.params, g, matrix)
    assert errors["max_force"] > 1e-3 and errors["max_stress"] > 1e-5  # not vacuous
    assert errors["energy"] < 1e-10
    assert errors["forces"] < 1e-10
    assert errors["stress"] < 1e-10


def test_reflection_changes_nothing_but_orientation(x64, model, structures):
    g = graph64(model, structures)
    mirror = np.diag([1.0, -1.0, 1.0])
    errors = testing.equivariance_errors(model.apply_fn, model.params, g, mirror)
    assert errors["energy"] < 1e-10 and errors["forces"] < 1e-10 and errors["stress"] < 1e-10


def test_translation_invariance(x64, model, structures):
    g = graph64(model, structures)
    ref = predict(model.apply_fn, model.params, g)
    moved = g.replace(positions=g.positions + jnp.array([[0.37, -1.9, 4.2]]))
    out = predict(model.apply_fn, model.params, moved)
    np.testing.assert_allclose(out.energy, ref.energy, rtol=0, atol=1e-10)
    np.testing.assert_allclose(out.forces, ref.forces, atol=1e-10)


def test_permutation_equivariance(x64, model):
    s = cu_o_molecule()
    perm = np.random.default_rng(0).permutation(s.n_atoms)
    p = Structure(s.positions[perm], s.numbers[perm], s.cell, s.pbc)
    ref = predict(model.apply_fn, model.params, graph64(model, [s]))
    out = predict(model.apply_fn, model.params, graph64(model, [p]))
    np.testing.assert_allclose(out.energy[0], ref.energy[0], atol=1e-10)
    np.testing.assert_allclose(out.forces[: s.n_atoms], ref.forces[perm], atol=1e-10)
    np.testing.assert_allclose(out.node_energies[: s.n_atoms], ref.node_energies[perm], atol=1e-10)


def test_padding_and_batching_change_nothing(x64, model, structures):
    together = predict(model.apply_fn, model.params, graph64(model, structures))
    bigger = graph64(model, structures, PaddingSizes(200, 3000, 7))
    padded = predict(model.apply_fn, model.params, bigger)
    n = sum(s.n_atoms for s in structures)
    np.testing.assert_allclose(padded.energy[:3], together.energy[:3], atol=1e-10)
    np.testing.assert_allclose(padded.forces[:n], together.forces[:n], atol=1e-10)
    assert np.all(padded.energy[3:] == 0) and np.all(padded.forces[n:] == 0)
    offset = 0
    for i, s in enumerate(structures):  # one at a time
        alone = predict(model.apply_fn, model.params, graph64(model, [s]))
        np.testing.assert_allclose(alone.energy[0], together.energy[i], atol=1e-10)
        np.testing.assert_allclose(alone.stress[0], together.stress[i], atol=1e-12)
        np.testing.assert_allclose(
            alone.forces[: s.n_atoms], together.forces[offset : offset + s.n_atoms], atol=1e-10
        )
        offset += s.n_atoms


def test_forces_match_finite_differences_and_sum_to_zero(x64, model, structures):
    g = graph64(model, structures)
    out = predict(model.apply_fn, model.params, g)
    atoms = [(0, 0), (2, 1), (4, 2), (7, 0), (9, 2), (12, 1)]
    fd = testing.finite_difference_forces(model.apply_fn, model.params, g, atoms, delta=1e-5)
    analytic = np.array([out.forces[n, d] for n, d in atoms])
    assert np.abs(analytic).max() > 1e-3
    np.testing.assert_allclose(analytic, fd, atol=1e-7, rtol=1e-6)
    offset = 0
    for s in structures:  # momentum conservation, per structure
        total = np.asarray(out.forces[offset : offset + s.n_atoms]).sum(0)
        np.testing.assert_allclose(total, 0.0, atol=1e-10)
        offset += s.n_atoms


@pytest.mark.parametrize("index", [0, 2])
def test_stress_matches_finite_strain(x64, model, structures, index):
    g = graph64(model, structures)
    out = predict(model.apply_fn, model.params, g)
    fd = testing.finite_difference_stress(model.apply_fn, model.params, g, index=index)
    assert np.abs(fd).max() > 1e-5
    np.testing.assert_allclose(np.asarray(out.stress[index]), fd, atol=1e-9, rtol=1e-6)
    np.testing.assert_allclose(out.stress[index], out.stress[index].T, atol=1e-12)
    assert np.all(out.stress[1] == 0)  # the molecule has no stress


def test_second_derivatives(x64, model):
    g = graph64(model, [cu_o_molecule()])

    def energy(positions):
        return graph_energy(model.apply_fn, model.params, g, positions, g.cell)[0].sum()

    check_grads(jax.jit(energy), (jnp.asarray(g.positions),), order=2, modes=["rev"], atol=1e-6, rtol=1e-6)


def test_primitive_conventional_and_supercell_agree(x64, model):
    primitive = bulk("Cu", "fcc", a=3.61)
    cells = [primitive, bulk("Cu", "fcc", a=3.61, cubic=True), primitive.repeat(3)]
    per_atom, stresses = [], []
    for atoms in cells:
        s = Structure.from_ase(atoms)
        out = predict(model.apply_fn, model.params, graph64(model, [s]))
        per_atom.append(float(out.energy[0]) / len(atoms))
        stresses.append(np.asarray(out.stress[0]))
        np.testing.assert_allclose(out.forces[: len(atoms)], 0.0, atol=1e-10)
    np.testing.assert_allclose(per_atom, per_atom[0], rtol=0, atol=1e-10)
    np.testing.assert_allclose(stresses[1], stresses[0], atol=1e-12)
    np.testing.assert_allclose(stresses[2], stresses[0], atol=1e-12)
    assert abs(stresses[0][0, 0]) > 1e-6  # a strained lattice feels stress


def test_energy_and_force_continuous_across_cutoff(x64, model):
    r_max = model.r_max

    def dimer(r):
        s = Structure([[0, 0, 0], [r, 0, 0]], [29, 8], np.zeros((3, 3)), False)
        out = predict(model.apply_fn, model.params, graph64(model, [s]))
        return float(out.energy[0]), float(out.forces[1, 0])

    isolated = sum(model.config.atomic_energies) + 2 * model.config.shift
    isolated_net = dimer(r_max + 0.5)
    for dr in (1e-2, 1e-3, 1e-4):
        inside, outside = dimer(r_max - dr), dimer(r_max + dr)
        assert abs(inside[0] - outside[0]) < 20 * dr**3 + 1e-12
        assert abs(inside[1] - outside[1]) < 20 * dr**2 + 1e-12
    assert outside[1] == 0.0 and isolated_net[1] == 0.0
    assert abs(dimer(r_max - 1.0)[1]) > 1e-4  # there is an interaction inside
    # beyond the cutoff the atoms are isolated: the energy is that of free atoms
    e_free = predict(
        model.apply_fn,
        model.params,
        graph64(model, [Structure([[0, 0, 0]], [29], np.zeros((3, 3)), False)]),
    ).energy[0] + predict(
        model.apply_fn,
        model.params,
        graph64(model, [Structure([[0, 0, 0]], [8], np.zeros((3, 3)), False)]),
    ).energy[0]
    np.testing.assert_allclose(isolated_net[0], e_free, atol=1e-12)
    assert np.isfinite(isolated)


def test_float32_close_to_float64(model, structures):
    g32 = batch_graphs(structures, model.species, model.r_max)
    out32 = predict(model.apply_fn, model.params, g32)
    assert out32.forces.dtype == jnp.float32
    with jax.enable_x64(True):
        out64 = predict(model.apply_fn, model.params, graph64(model, structures))
        assert out64.forces.dtype == jnp.float64
    np.testing.assert_allclose(out32.energy, out64.energy, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(out32.forces, out64.forces, atol=1e-4)


def test_jit_does_not_retrace_for_same_shapes(model, structures):
    fn, counter = testing.count_traces(lambda p, g: predict(model.apply_fn, p, g))
    sizes = PaddingSizes(64, 2048, 4)
    g1 = batch_graphs(structures, model.species, model.r_max, sizes=sizes)
    g2 = batch_graphs(structures[::-1], model.species, model.r_max, sizes=sizes)
    fn(model.params, g1).energy.block_until_ready()
    fn(model.params, g2).energy.block_until_ready()
    fn(model.params, g1.replace(positions=g1.positions * 1.01)).energy.block_until_ready()
    assert counter["traces"] == 1


def test_build_model_rejects_bad_hyper_parameters():
    with pytest.raises(ValueError, match="unknown hyper-parameters.*chanels"):
        jaxmlp.build_model("nequip", species=["Cu"], chanels=4)
    with pytest.raises(ValueError, match="unknown model"):
        jaxmlp.build_model("nequipp", species=["Cu"])
    with pytest.raises(ValueError, match="unknown element symbol 'Xx'"):
        jaxmlp.build_model("nequip", species=["Xx"])


def test_different_seeds_give_different_models():
    a, b = small_nequip(seed=0), small_nequip(seed=1)
    g = batch_graphs([cu_o_molecule()], a.species, a.r_max)
    ea = predict(a.apply_fn, a.params, g).energy[0]
    eb = predict(b.apply_fn, b.params, g).energy[0]  # same config: one compilation
    assert abs(float(ea - eb)) > 1e-4
