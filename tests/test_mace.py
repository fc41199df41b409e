"""Physics of the MACE potential: symmetry, derivatives, padding, compile-once, files.

A tiny MACE (4 channels, L=1, ell=2, correlation 3, 2 layers, 2 species) in float64;
every graph uses the same padding sizes, so predictions compile once per dtype.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmlp
from jaxmlp import testing
from jaxmlp.graph import PaddingSizes, batch_graphs
from jaxmlp.nn.blocks import coupling_basis, symmetric_basis
from jaxmlp.structure import Structure
from jaxmlp.testing import predict_jit

from conftest import cu_o_molecule, rattled_fcc_cu, triclinic_cu_o

SIZES = PaddingSizes(24, 512, 4)
HYPER = dict(
    channels=4, max_L=1, max_ell=2, correlation=3, num_interactions=2,
    radial_mlp=(8,), readout_mlp=8,
)


def small_mace(seed=0, **hyper):
    return jaxmlp.build_model(
        "mace",
        species=("Cu", "O"),
        r_max=4.0,
        seed=seed,
        atomic_energies=[-3.5, -1.2],
        scale=2.0,
        shift=0.1,
        avg_num_neighbors=8.0,
        **(HYPER | hyper),
    )


@pytest.fixture(scope="module")
def mace():
    return small_mace()


@pytest.fixture
def structures():
    return [triclinic_cu_o(), cu_o_molecule(), rattled_fcc_cu()]


def graph64(model, structures, sizes=SIZES):
    return batch_graphs(structures, model.species, model.r_max, sizes=sizes, dtype=np.float64)


def predict(model, graph, params=None):
    return predict_jit(model.apply_fn, model.params if params is None else params, graph)


def test_symmetrised_basis_equals_full_contraction():
    """Sum over sorted monomials with permutation-summed U == the full U contraction."""
    ls = (0, 1, 2)
    x = np.random.default_rng(0).normal(size=9)
    for l_out, nu in itertools.product((0, 1, 2), (1, 2, 3)):
        u = coupling_basis(ls, l_out, nu)  # [2l+1, 9, ..., 9, K]
        full = u
        for _ in range(nu):
            full = np.tensordot(full, x, axes=([1], [0]))  # contracts the first input slot
        monomials, u_sym = symmetric_basis(ls, l_out, nu)
        products = np.prod(x[monomials], axis=1)  # [Q]
        np.testing.assert_allclose(np.einsum("mqk,q->mk", u_sym, products), full, atol=1e-12)
        assert np.abs(full).max() > 1e-3  # not vacuous


def _wigner_d(l, rotation):
    """D_l(R) in e3nn's basis, fitted from Y_l(R v) = D_l(R) Y_l(v) (parity included)."""
    import e3nn_jax as e3nn

    v = np.random.default_rng(l).normal(size=(3 * (2 * l + 1), 3))
    irreps = e3nn.Irreps(f"{l}{'e' if l % 2 == 0 else 'o'}")
    y = np.asarray(e3nn.spherical_harmonics(irreps, v, normalize=True).array)
    y_rot = np.asarray(e3nn.spherical_harmonics(irreps, v @ rotation.T, normalize=True).array)
    return np.linalg.lstsq(y, y_rot, rcond=None)[0].T  # natural parity: Y_l(-v) = (-1)^l Y_l(v)


def test_coupling_basis_is_equivariant(x64):
    """U maps nu copies of D(R) x to D_out(R) applied to the output (R with inversion)."""
    ls = (0, 1, 2)
    rotation = testing.random_orthogonal(3, inversion=True)
    d_in = np.zeros((9, 9))
    for l, start in zip(ls, (0, 1, 4)):
        d_in[start : start + 2 * l + 1, start : start + 2 * l + 1] = _wigner_d(l, rotation)
    x = np.random.default_rng(1).normal(size=9)
    for l_out, nu in ((1, 2), (2, 3), (0, 3), (1, 3)):
        u = coupling_basis(ls, l_out, nu)

        def apply(v):
            out = u
            for _ in range(nu):
                out = np.tensordot(out, v, axes=([1], [0]))
            return out  # [2l+1, K]

        assert np.abs(apply(x)).max() > 1e-3
        np.testing.assert_allclose(apply(d_in @ x), _wigner_d(l_out, rotation) @ apply(x), atol=1e-12)


@pytest.mark.parametrize("inversion", [True, False])
def test_rotation_inversion_equivariance(x64, mace, structures, inversion):
    g = graph64(mace, structures)
    matrix = testing.random_orthogonal(int(inversion), inversion=inversion)
    errors = testing.equivariance_errors(mace.apply_fn, mace.params, g, matrix)
    assert errors["max_force"] > 1e-3 and errors["max_stress"] > 1e-5  # not vacuous
    assert errors["energy"] < 1e-10
    assert errors["forces"] < 1e-10
    assert errors["stress"] < 1e-10


def test_translation_and_permutation_invariance(x64, mace, structures):
    g = graph64(mace, structures)
    ref = predict(mace, g)
    moved = predict(mace, g.replace(positions=g.positions + jnp.array([[0.37, -1.9, 4.2]])))
    np.testing.assert_allclose(moved.energy, ref.energy, rtol=0, atol=1e-10)
    np.testing.assert_allclose(moved.forces, ref.forces, atol=1e-10)
    s = cu_o_molecule()
    perm = np.random.default_rng(0).permutation(s.n_atoms)
    p = Structure(s.positions[perm], s.numbers[perm], s.cell, s.pbc)
    a, b = predict(mace, graph64(mace, [s])), predict(mace, graph64(mace, [p]))
    assert abs(float(a.energy[0]) - float(ref.energy[1])) < 1e-10
    np.testing.assert_allclose(b.forces[: s.n_atoms], a.forces[perm], atol=1e-10)
    np.testing.assert_allclose(b.node_energies[: s.n_atoms], a.node_energies[perm], atol=1e-10)


def test_padding_and_batching_change_nothing(x64, mace, structures):
    together = predict(mace, graph64(mace, structures))
    tight = predict(mace, graph64(mace, structures, sizes=None))  # default buckets
    n = sum(s.n_atoms for s in structures)
    np.testing.assert_allclose(tight.energy[:3], together.energy[:3], atol=1e-10)
    np.testing.assert_allclose(tight.forces[:n], together.forces[:n], atol=1e-10)
    np.testing.assert_allclose(tight.stress[:3], together.stress[:3], atol=1e-12)
    assert np.all(together.energy[3:] == 0) and np.all(together.forces[n:] == 0)
    assert np.all(np.isfinite(together.forces))
    offset = 0
    for i, s in enumerate(structures):  # one at a time, same padding sizes
        alone = predict(mace, graph64(mace, [s]))
        np.testing.assert_allclose(alone.energy[0], together.energy[i], atol=1e-10)
        np.testing.assert_allclose(
            alone.forces[: s.n_atoms], together.forces[offset : offset + s.n_atoms], atol=1e-10
        )
        offset += s.n_atoms


def test_forces_match_finite_differences_and_sum_to_zero(x64, mace, structures):
    g = graph64(mace, structures)
    out = predict(mace, g)
    atoms = [(0, 0), (2, 1), (7, 2), (9, 0), (13, 1)]
    fd = testing.finite_difference_forces(mace.apply_fn, mace.params, g, atoms, delta=1e-5)
    analytic = np.array([out.forces[n, d] for n, d in atoms])
    assert np.abs(analytic).max() > 1e-3
    np.testing.assert_allclose(analytic, fd, atol=1e-7, rtol=1e-6)
    offset = 0
    for s in structures:
        total = np.asarray(out.forces[offset : offset + s.n_atoms]).sum(0)
        np.testing.assert_allclose(total, 0.0, atol=1e-10)
        offset += s.n_atoms


def test_stress_matches_finite_strain(x64, mace, structures):
    g = graph64(mace, structures)
    out = predict(mace, g)
    fd = testing.finite_difference_stress(mace.apply_fn, mace.params, g, index=0)
    assert np.abs(fd).max() > 1e-5
    np.testing.assert_allclose(np.asarray(out.stress[0]), fd, atol=1e-9, rtol=1e-6)
    assert np.all(out.stress[1] == 0)  # the molecule has no stress


def test_every_layer_and_species_matter(x64, mace, structures):
    """Zeroing a readout or a species' product weights changes the energy."""
    g = graph64(mace, structures)
    ref = predict(mace, g).energy[:3]
    for path in (("readout_0",), ("product_0", "w_1_3"), ("product_1", "w_0_2")):
        params = jax.tree.map(lambda x: x, mace.params)
        node = params
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = jnp.zeros_like(node[path[-1]])
        changed = predict(mace, g, params).energy[:3]
        assert np.abs(np.asarray(changed - ref)).max() > 1e-6, path
    cu_only = Structure([[0, 0, 0], [1.9, 0.3, 0.1]], [29, 29], np.zeros((3, 3)), False)
    cu_o = Structure([[0, 0, 0], [1.9, 0.3, 0.1]], [29, 8], np.zeros((3, 3)), False)
    e = [float(predict(mace, graph64(mace, [s])).energy[0]) for s in (cu_only, cu_o)]
    e0 = mace.config.atomic_energies
    assert abs((e[0] - 2 * e0[0]) - (e[1] - e0[0] - e0[1])) > 1e-6


def test_no_recompilation_and_float32_agrees(x64, mace, structures):
    fn, counter = testing.count_traces(
        lambda params, graph: jaxmlp.predict(mace.apply_fn, params, graph)
    )
    g1 = graph64(mace, structures)
    g2 = graph64(mace, [rattled_fcc_cu(seed=5), triclinic_cu_o(seed=3)])
    out64 = fn(mace.params, g1)
    fn(mace.params, g2)
    fn(mace.params, g1)
    assert counter["traces"] == 1
    g32 = jax.tree.map(lambda x: x.astype(np.float32) if x.dtype == np.float64 else x, g1)
    out32 = fn(mace.params, g32)
    assert out32.forces.dtype == jnp.float32 and counter["traces"] == 2
    np.testing.assert_allclose(out32.energy, out64.energy, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(out32.forces, out64.forces, atol=1e-4)


def test_energy_and_force_continuous_across_cutoff(x64, mace):
    def dimer(r):
        s = Structure([[0, 0, 0], [r, 0, 0]], [29, 8], np.zeros((3, 3)), False)
        out = predict(mace, graph64(mace, [s]))
        return float(out.energy[0]), float(out.forces[1, 0])

    for dr in (1e-2, 1e-3):
        inside, outside = dimer(mace.r_max - dr), dimer(mace.r_max + dr)
        assert abs(inside[0] - outside[0]) < 50 * dr**3 + 1e-12
        assert abs(inside[1] - outside[1]) < 50 * dr**2 + 1e-12
    assert abs(dimer(2.0)[1]) > 1e-4  # the pair does interact


def test_save_load_round_trip(x64, tmp_path, mace, structures):
    path = tmp_path / "mace.jaxmlp"
    jaxmlp.save_model(mace, path)
    loaded = jaxmlp.load_model(path)
    assert loaded.config == mace.config and loaded.config.name == "mace"
    g = graph64(mace, structures)
    a, b = predict(mace, g), predict(loaded, g)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_bad_hyper_parameters_are_named():
    with pytest.raises(ValueError, match="num_layers"):
        jaxmlp.build_model("mace", species=("Cu",), num_layers=2)
    with pytest.raises(ValueError, match="correlation"):
        jaxmlp.build_model("mace", species=("Cu",), channels=2, correlation=0)


def test_edge_chunking_changes_nothing(x64, mace, structures):
    g = graph64(mace, structures)
    ref = predict(mace, g)  # default edge_chunk 256: the 512 padded edges in 2 chunks
    hyper = dict(mace.config.hyper) | {"edge_chunk": 0}
    whole = jaxmlp.Model(mace.config.replace(hyper=tuple(hyper.items())), mace.params)
    out = predict(whole, g)
    np.testing.assert_allclose(out.energy, ref.energy, rtol=0, atol=1e-11)
    np.testing.assert_allclose(out.forces, ref.forces, atol=1e-11)
    np.testing.assert_allclose(out.stress, ref.stress, atol=1e-12)
