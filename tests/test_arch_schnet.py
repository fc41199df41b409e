"""SchNet: the published equations by hand, and training from a YAML-equivalent config
followed by NVE MD.

The physics battery (invariance, finite differences, padding, cutoff continuity, ...)
runs for ``schnet`` in test_architectures.py.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from arch_checks import train_and_check_md
from test_arch_painn import R_MAX, three_atoms

from jaxmlp.nn.schnet import SchNet, gaussian_rbf, shifted_softplus


def schnet_by_hand(params, positions, species, num_interactions, num_rbf):
    """Schütt et al. 2018 (J. Chem. Phys. 148, 241722), Fig. 2, atom by atom in numpy."""

    def dense(name, x):
        p = params[name]
        return x @ np.asarray(p["kernel"]) + np.asarray(p.get("bias", 0.0))

    def ssp(x):
        return np.log(0.5 * np.exp(x) + 0.5)

    n = len(species)
    spacing = R_MAX / (num_rbf - 1)
    x = np.asarray(params["embedding"]["embedding"])[list(species)]  # [n, F]
    for t in range(num_interactions):
        y = dense(f"interaction_{t}_in2f", x)
        conv = np.zeros_like(x)
        for i in range(n):
            for j in range(n):
                if i == j:
                    continue
                r = np.linalg.norm(positions[i] - positions[j])
                e = np.exp(
                    -((r - spacing * np.arange(num_rbf)) ** 2) / (2 * spacing**2)
                )
                fc = 0.5 * (np.cos(np.pi * r / R_MAX) + 1.0) if r < R_MAX else 0.0
                w = dense(
                    f"interaction_{t}_filter_out",
                    ssp(dense(f"interaction_{t}_filter_in", e)),
                )
                conv[i] += y[j] * w * fc
        v = dense(f"interaction_{t}_f2out", conv / np.sqrt(16.0))
        x = x + dense(f"interaction_{t}_dense", ssp(v))
    return dense("readout", ssp(dense("readout_hidden", x)))[:, 0]


def test_equations_by_hand(x64):
    # the building blocks: ssp(0) = 0 and ssp'(0) = 1/2; a Gaussian at its centre is 1
    assert float(shifted_softplus(jnp.float64(0.0))) == 0.0
    assert float(jax.grad(shifted_softplus)(jnp.float64(0.0))) == pytest.approx(0.5)
    rbf = gaussian_rbf(jnp.array([0.0, 1.0]), 5, R_MAX)
    np.testing.assert_allclose(rbf[1], np.exp(-0.5 * (np.arange(5) - 1.0) ** 2))
    np.testing.assert_allclose(rbf[0, 0], 1.0)
    assert math.isclose(float(np.log(0.5 * np.e + 0.5)), float(shifted_softplus(1.0)))

    # the whole network on a 3-atom geometry (one pair beyond the cutoff)
    positions = np.array([[0.0, 0.0, 0.0], [1.9, 0.3, -0.2], [0.4, 3.8, 0.9]])
    species = (0, 1, 0)
    module = SchNet(
        num_species=2, r_max=R_MAX, features=6, num_interactions=2, num_rbf=7
    )
    inputs = three_atoms(positions, species)
    params = module.init(jax.random.key(3), inputs)["params"]
    params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), params)
    energy = jax.jit(module.apply)({"params": params}, inputs)
    expected = schnet_by_hand(
        jax.tree.map(np.asarray, params), positions, species, 2, 7
    )
    assert np.ptp(expected) > 1e-3  # the atoms see different environments
    np.testing.assert_allclose(energy, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.slow
def test_trains_from_config_and_runs_md_matching_the_calculator(tmp_path):
    train_and_check_md(
        tmp_path,
        {
            "name": "schnet",
            "r_max": R_MAX,
            "features": 8,
            "num_interactions": 2,
            "num_rbf": 8,
        },
    )
