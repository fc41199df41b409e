"""PaiNN: the published equations by hand, NaN-safe vector norms, equivariant vector
features, and training from a YAML-equivalent config followed by NVE MD.

The physics battery (equivariance, finite differences, padding, cutoff continuity, ...)
runs for ``painn`` in test_architectures.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from arch_checks import train_and_check_md

from jaxmlp import testing
from jaxmlp.edges import make_inputs
from jaxmlp.nn.painn import PaiNN

R_MAX = 4.0


def three_atoms(positions, species=(0, 1, 0)):
    """EdgeInputs of every ordered pair of 3 atoms (6 edges) plus 2 padded edges."""
    positions = np.asarray(positions, np.float64)
    pairs = [(j, i) for i in range(3) for j in range(3) if i != j] + [(2, 2), (2, 2)]
    senders = np.array([j for j, _ in pairs])
    receivers = np.array([i for _, i in pairs])
    vectors = positions[receivers] - positions[senders]
    mask = np.arange(len(pairs)) < 6
    return make_inputs(
        jnp.asarray(vectors), species, senders, receivers, mask, np.ones(3, bool)
    )


def painn_by_hand(params, positions, species, f, num_interactions, num_rbf):
    """Schütt et al. 2021, eqs. 7-11, atom by atom in numpy (float64)."""

    def dense(name, x):
        p = params[name]
        return x @ np.asarray(p["kernel"]) + np.asarray(p.get("bias", 0.0))

    def silu(x):
        return x / (1.0 + np.exp(-x))

    n = len(species)
    s = np.asarray(params["embedding"]["embedding"])[list(species)]  # [n, F]
    v = np.zeros((n, 3, f))
    for t in range(num_interactions):
        phi = dense(f"message_{t}_phi_out", silu(dense(f"message_{t}_phi_in", s)))
        ds, dv = np.zeros_like(s), np.zeros_like(v)
        for i in range(n):
            for j in range(n):
                if i == j:
                    continue
                rij = positions[i] - positions[j]
                r = np.linalg.norm(rij)
                rbf = np.sin(np.arange(1, num_rbf + 1) * np.pi * r / R_MAX) / r
                fc = 0.5 * (np.cos(np.pi * r / R_MAX) + 1.0) if r < R_MAX else 0.0
                x = phi[j] * dense(f"message_{t}_filter", rbf) * fc
                ds[i] += x[f : 2 * f]
                dv[i] += x[:f] * v[j] + np.outer(rij / r, x[2 * f :])
        s, v = s + ds / np.sqrt(16.0), v + dv / np.sqrt(16.0)
        uv = v @ np.asarray(params[f"update_{t}_U"]["kernel"])
        vv = v @ np.asarray(params[f"update_{t}_V"]["kernel"])
        norm = np.sqrt((vv**2).sum(1) + 1e-8)
        a = dense(
            f"update_{t}_out",
            silu(dense(f"update_{t}_in", np.concatenate([s, norm], -1))),
        )
        v = v + a[:, None, :f] * uv
        s = s + a[:, f : 2 * f] * (uv * vv).sum(1) + a[:, 2 * f :]
    return dense("readout", silu(dense("readout_hidden", s)))[:, 0], v


def test_equations_by_hand_and_equivariant_vector_features(x64):
    positions = np.array([[0.0, 0.0, 0.0], [1.9, 0.3, -0.2], [0.4, 2.2, 0.9]])
    species = (0, 1, 0)
    module = PaiNN(
        num_species=2, r_max=R_MAX, features=6, num_interactions=2, num_rbf=5
    )
    inputs = three_atoms(positions, species)
    params = module.init(jax.random.key(3), inputs)["params"]
    params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), params)
    energy, state = module.apply({"params": params}, inputs, mutable=["intermediates"])
    vectors = state["intermediates"]["vectors"][0]
    expected_energy, expected_vectors = painn_by_hand(
        jax.tree.map(np.asarray, params), positions, species, 6, 2, 5
    )
    assert np.abs(expected_vectors).max() > 1e-2  # vector channels are populated
    np.testing.assert_allclose(energy, expected_energy, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(vectors, expected_vectors, rtol=1e-12, atol=1e-12)

    # vector features rotate (and invert) with the structure; scalars do not change
    matrix = testing.random_orthogonal(7, inversion=True)
    rotated = three_atoms(positions @ matrix.T, species)
    energy_r, state_r = module.apply(
        {"params": params}, rotated, mutable=["intermediates"]
    )
    vectors_r = state_r["intermediates"]["vectors"][0]
    np.testing.assert_allclose(energy_r, energy, atol=1e-12)
    np.testing.assert_allclose(
        vectors_r, np.einsum("ij,njf->nif", matrix, vectors), atol=1e-12
    )


def test_zero_vector_features_have_finite_gradients(x64):
    """Atoms without neighbours keep v = 0: ||V v|| and its gradient must be finite,
    for params (training) and for positions (forces, Hessian)."""
    module = PaiNN(
        num_species=2, r_max=R_MAX, features=4, num_interactions=2, num_rbf=4
    )
    far = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [20.0, 0.0, 0.0]])  # atom 2 alone
    inputs = three_atoms(far)
    params = module.init(jax.random.key(0), inputs)["params"]
    params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), params)

    def energy(params, vectors):
        return module.apply({"params": params}, inputs._replace(vectors=vectors)).sum()

    grads = jax.jit(jax.grad(energy, argnums=(0, 1)))(params, inputs.vectors)
    hessian = jax.jit(jax.hessian(energy, argnums=1))(params, inputs.vectors)
    for leaf in jax.tree.leaves((grads, hessian)):
        assert np.all(np.isfinite(leaf))
    # the lone atom's edges lie beyond the cutoff: no force flows through them
    np.testing.assert_array_equal(grads[1][np.array([1, 3, 4, 5, 6, 7])], 0.0)
    assert np.abs(grads[1][np.array([0, 2])]).max() > 1e-4


@pytest.mark.slow
def test_trains_from_config_and_runs_md_matching_the_calculator(tmp_path):
    train_and_check_md(
        tmp_path,
        {
            "name": "painn",
            "r_max": R_MAX,
            "features": 8,
            "num_interactions": 2,
            "num_rbf": 8,
        },
    )
