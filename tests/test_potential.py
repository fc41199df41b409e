"""Physics of the NequIP potential: symmetry, derivatives, periodicity, smoothness."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase.build import bulk
from conftest import cu_o_molecule, small_nequip
from jax.test_util import check_grads

import jaxmlp
from jaxmlp import testing
from jaxmlp.graph import PaddingSizes, batch_graphs
from jaxmlp.potential import graph_energy
from jaxmlp.structure import Structure
from jaxmlp.testing import predict_jit as _predict_jit


def predict(apply_fn, params, graph):
    return _predict_jit(apply_fn, params, graph)


def graph64(model, structures, sizes=None):
    return batch_graphs(
        structures, model.species, model.r_max, sizes=sizes, dtype=np.float64
    )


@pytest.mark.slow
def test_second_derivatives(x64, model):
    g = graph64(model, [cu_o_molecule()])

    def energy(positions):
        return graph_energy(model.apply_fn, model.params, g, positions, g.cell)[0].sum()

    check_grads(
        jax.jit(energy),
        (jnp.asarray(g.positions),),
        order=2,
        modes=["rev"],
        atol=1e-6,
        rtol=1e-6,
    )


@pytest.mark.slow
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
    e_free = (
        predict(
            model.apply_fn,
            model.params,
            graph64(model, [Structure([[0, 0, 0]], [29], np.zeros((3, 3)), False)]),
        ).energy[0]
        + predict(
            model.apply_fn,
            model.params,
            graph64(model, [Structure([[0, 0, 0]], [8], np.zeros((3, 3)), False)]),
        ).energy[0]
    )
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
    fn(
        model.params, g1.replace(positions=g1.positions * 1.01)
    ).energy.block_until_ready()
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
