"""MACE-specific physics: coupling bases, every layer matters, edge chunking (the shared
battery is tests/test_architectures.py).

A tiny MACE (4 channels, L=1, ell=2, correlation 3, 2 layers, 2 species) in float64;
every graph uses the same padding sizes, so predictions compile once per dtype.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import cu_o_molecule, rattled_fcc_cu, triclinic_cu_o

import jaxmlp
from jaxmlp import testing
from jaxmlp.graph import PaddingSizes, batch_graphs
from jaxmlp.nn.blocks import coupling_basis, symmetric_basis
from jaxmlp.structure import Structure
from jaxmlp.testing import predict_jit

SIZES = PaddingSizes(24, 512, 4)
HYPER = dict(
    channels=4,
    max_L=1,
    max_ell=2,
    correlation=3,
    num_interactions=2,
    radial_mlp=(8,),
    readout_mlp=8,
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
    return batch_graphs(
        structures, model.species, model.r_max, sizes=sizes, dtype=np.float64
    )


def predict(model, graph, params=None):
    return predict_jit(
        model.apply_fn, model.params if params is None else params, graph
    )


def test_symmetrised_basis_equals_full_contraction():
    """Sum over sorted monomials with permutation-summed U == the full U contraction."""
    ls = (0, 1, 2)
    x = np.random.default_rng(0).normal(size=9)
    for l_out, nu in itertools.product((0, 1, 2), (1, 2, 3)):
        u = coupling_basis(ls, l_out, nu)  # [2l+1, 9, ..., 9, K]
        full = u
        for _ in range(nu):
            full = np.tensordot(
                full, x, axes=([1], [0])
            )  # contracts the first input slot
        monomials, u_sym = symmetric_basis(ls, l_out, nu)
        products = np.prod(x[monomials], axis=1)  # [Q]
        np.testing.assert_allclose(
            np.einsum("mqk,q->mk", u_sym, products), full, atol=1e-12
        )
        assert np.abs(full).max() > 1e-3  # not vacuous


def _wigner_d(l, rotation):
    """D_l(R) in e3nn's basis, fitted from Y_l(R v) = D_l(R) Y_l(v) (parity included)."""
    import e3nn_jax as e3nn

    v = np.random.default_rng(l).normal(size=(3 * (2 * l + 1), 3))
    irreps = e3nn.Irreps(f"{l}{'e' if l % 2 == 0 else 'o'}")
    y = np.asarray(e3nn.spherical_harmonics(irreps, v, normalize=True).array)
    y_rot = np.asarray(
        e3nn.spherical_harmonics(irreps, v @ rotation.T, normalize=True).array
    )
    return np.linalg.lstsq(y, y_rot, rcond=None)[
        0
    ].T  # natural parity: Y_l(-v) = (-1)^l Y_l(v)


def test_coupling_basis_is_equivariant(x64):
    """U maps nu copies of D(R) x to D_out(R) applied to the output (R with inversion)."""
    ls = (0, 1, 2)
    rotation = testing.random_orthogonal(3, inversion=True)
    d_in = np.zeros((9, 9))
    for l, start in zip(ls, (0, 1, 4)):
        d_in[start : start + 2 * l + 1, start : start + 2 * l + 1] = _wigner_d(
            l, rotation
        )
    x = np.random.default_rng(1).normal(size=9)
    for l_out, nu in ((1, 2), (2, 3), (0, 3), (1, 3)):
        u = coupling_basis(ls, l_out, nu)

        def apply(v, u=u, nu=nu):
            out = u
            for _ in range(nu):
                out = np.tensordot(out, v, axes=([1], [0]))
            return out  # [2l+1, K]

        assert np.abs(apply(x)).max() > 1e-3
        np.testing.assert_allclose(
            apply(d_in @ x), _wigner_d(l_out, rotation) @ apply(x), atol=1e-12
        )


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
