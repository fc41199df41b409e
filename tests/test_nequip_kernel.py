"""The fused edge tensor product against e3nn-jax's reference tensor product (float64)."""

import e3nn_jax as e3nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmlp.nn.tensor_product import (
    edge_tensor_product,
    gather_paths,
    irrep_name,
    make_plan,
)


def _irreps(l_max, parity):
    out = []
    for l in range(l_max + 1):
        out.append((l, (-1) ** l))
        if parity:
            out.append((l, -((-1) ** l)))
    return tuple(out)


@pytest.mark.parametrize("l_max, parity", [(2, False), (1, True), (3, False)])
def test_edge_tensor_product_matches_e3nn_per_path(x64, l_max, parity):
    n_edges, channels = 7, 3
    irreps = _irreps(l_max, parity)
    plan = make_plan(irreps, l_max, irreps, channels)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(n_edges, 3))
    sh = e3nn.spherical_harmonics(
        e3nn.Irreps.spherical_harmonics(l_max), jnp.asarray(vectors), True, "component"
    )
    h = {ir: rng.normal(size=(n_edges, 2 * ir[0] + 1, channels)) for ir in irreps}
    weights = rng.normal(size=(n_edges, plan.num_paths, channels))
    h_senders = {ir: jnp.asarray(x) for ir, x in h.items()}
    out = edge_tensor_product(
        plan, h_senders, sh.array, [weights[:, p] for p in range(plan.num_paths)]
    )

    expected_paths = 0
    for ir_in in irreps:
        for l2 in range(l_max + 1):
            for ir_out in irreps:
                if (
                    ir_out[1] != ir_in[1] * (-1) ** l2
                    or not abs(ir_in[0] - l2) <= ir_out[0] <= ir_in[0] + l2
                ):
                    continue
                expected_paths += 1
    assert plan.num_paths == expected_paths

    for p, path in enumerate(plan.paths):
        x1 = e3nn.IrrepsArray(
            f"{channels}x{irrep_name(path.ir_in)}",
            jnp.asarray(np.swapaxes(h[path.ir_in], 1, 2).reshape(n_edges, -1)),
        )
        x2 = sh.filter(keep=[f"{path.l2}{'e' if path.l2 % 2 == 0 else 'o'}"])
        ref = e3nn.tensor_product(x1, x2, filter_ir_out=[irrep_name(path.ir_out)])
        ref = (
            ref.array.reshape(n_edges, channels, -1) * weights[:, p, :, None]
        )  # [E, C, d3]
        got = out[p]  # [E, d3, C]
        assert np.abs(ref).max() > 1e-2
        np.testing.assert_allclose(np.swapaxes(np.asarray(got), 1, 2), ref, atol=1e-12)

    # gather_paths concatenates the paths into one output irrep along channels
    for ir_out in irreps:
        blocks = gather_paths(plan, out, ir_out)
        paths = plan.paths_to(ir_out)
        assert blocks.shape == (n_edges, 2 * ir_out[0] + 1, len(paths) * channels)


def test_tensor_product_is_equivariant_under_rotation_with_inversion(x64):
    """Messages of rotated inputs are the rotated messages (Wigner D per output irrep)."""
    l_max, channels, n_edges = 2, 2, 5
    irreps = _irreps(l_max, True)
    plan = make_plan(irreps, l_max, irreps, channels)
    rng = np.random.default_rng(1)
    rotation = -e3nn.rand_matrix(jax.random.key(3), (), dtype=jnp.float64)  # det -1
    vectors = jnp.asarray(rng.normal(size=(n_edges, 3)))
    h = {
        ir: jnp.asarray(rng.normal(size=(n_edges, 2 * ir[0] + 1, channels)))
        for ir in irreps
    }
    weights = rng.normal(size=(n_edges, plan.num_paths, channels))
    weights = [jnp.asarray(weights[:, p]) for p in range(plan.num_paths)]

    def run(vectors, h):
        sh = e3nn.spherical_harmonics(
            e3nn.Irreps.spherical_harmonics(l_max), vectors, True, "component"
        ).array
        return edge_tensor_product(plan, h, sh, weights)

    def rotate(ir, x):  # x [n, 2l+1, C]
        d = e3nn.Irrep(irrep_name(ir)).D_from_matrix(rotation)
        return jnp.einsum("ij,njc->nic", d, x)

    out = run(vectors, h)
    out_rot = run(vectors @ rotation.T, {ir: rotate(ir, x) for ir, x in h.items()})
    for path, a, b in zip(plan.paths, out, out_rot):
        np.testing.assert_allclose(b, rotate(path.ir_out, a), atol=1e-11)


def test_path_product_vjp_matches_autodiff_and_finite_differences(x64):
    """The hand-written VJP of the fused product equals autodiff of the plain formula."""
    from jax.test_util import check_grads

    from jaxmlp.nn.tensor_product import path_product

    rng = np.random.default_rng(2)
    coupling = jnp.asarray(rng.normal(size=(6, 5, 3)))
    h = jnp.asarray(rng.normal(size=(6, 3, 4)))
    w = jnp.asarray(rng.normal(size=(6, 4)))
    g = jnp.asarray(rng.normal(size=(6, 5, 4)))

    def plain(coupling, h, w):
        return w[:, None, :] * jnp.einsum("eri,eic->erc", coupling, h)

    np.testing.assert_allclose(
        path_product(coupling, h, w), plain(coupling, h, w), atol=1e-13
    )
    _, vjp = jax.vjp(path_product, coupling, h, w)
    _, vjp_ref = jax.vjp(plain, coupling, h, w)
    for got, ref in zip(vjp(g), vjp_ref(g)):
        assert np.abs(ref).max() > 1e-2
        np.testing.assert_allclose(got, ref, atol=1e-12)
    check_grads(path_product, (coupling, h, w), order=1, modes=["rev"])


@pytest.mark.parametrize("hyper", [{"parity": True}, {"l_max": 3, "num_layers": 1}])
def test_nequip_variants_are_equivariant(x64, hyper):
    """Both parities (0o, 1e, 2o unreachable in layer 0) and l_max 3 stay E(3)-equivariant."""
    from conftest import small_nequip, triclinic_cu_o

    from jaxmlp.graph import batch_graphs
    from jaxmlp.testing import equivariance_errors, random_orthogonal

    model = small_nequip(channels=4, **hyper)
    graph = batch_graphs(
        [triclinic_cu_o()], model.species, model.r_max, dtype=np.float64
    )
    params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), model.params)
    errors = equivariance_errors(model.apply_fn, params, graph, random_orthogonal(4))
    assert errors["max_force"] > 1e-2
    assert (
        errors["energy"] < 1e-10
        and errors["forces"] < 1e-10
        and errors["stress"] < 1e-10
    )
