"""DeepPot-SE (se_e2_a): the published descriptor and fitting network by hand, the
switch's smoothness, and training from a YAML-equivalent config followed by NVE MD.

The physics battery (invariance with inversion, finite differences, padding, cutoff
continuity, ...) runs for ``deeppot`` in test_architectures.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from arch_checks import train_and_check_md
from test_arch_bp import cluster_inputs

from jaxmlp.nn.deeppot import DeepPotSE, reference_weight, smooth_switch

R_MAX = 4.0


def deeppot_by_hand(params, positions, species, module):
    """Zhang et al. 2018 with DeePMD-kit's switch and residual layers, atom by atom in
    numpy: R (n_i x 4), G (n_i x M1), D = (R^T G)^T (R^T G_<) / N^2."""

    def switch(r):
        u = np.clip((r - module.r_smooth) / (module.r_max - module.r_smooth), 0, 1)
        return u**3 * (-6 * u**2 + 15 * u - 10) + 1

    def stack(p, x, s, widths):
        for t, width in enumerate(widths):
            layer = p[f"layer_{t}"]
            y = np.tanh(
                x @ np.asarray(layer["kernel"][s]) + np.asarray(layer["bias"][s])
            )
            if x.shape[-1] == width and t > 0:
                y = y + x
            elif 2 * x.shape[-1] == width and t > 0:
                y = y + np.concatenate([x, x], axis=-1)
            x = y
        return x

    def fit(x, s):
        h = stack(params["fit"], x, s, module.fitting)
        readout = params["readout"]
        return float(h @ np.asarray(readout["kernel"][s])[:, 0] + readout["bias"][s][0])

    s_ref = reference_weight(module.r_smooth, module.r_max)
    m1, m2 = module.embedding[-1], module.axis_neurons
    energies = []
    for i in range(len(species)):
        rows, g = [], []
        for j in range(len(species)):
            if j == i:
                continue
            rij = positions[j] - positions[i]  # DeePMD-kit's convention
            r = np.linalg.norm(rij)
            s = switch(r) / r / s_ref
            rows.append(s * np.array([1.0, *(rij / r)]))
            g.append(
                stack(params["embed"], np.array([s]), species[j], module.embedding)
            )
        weight = 1.0 + sum(row[0] for row in rows)  # 1 + sum of s_hat
        t = np.array(rows).T @ np.array(g) / weight  # [4, M1]
        d = (t.T @ t[:, :m2]).reshape(m1 * m2)
        energies.append(fit(d, species[i]) - fit(np.zeros(m1 * m2), species[i]))
    return np.array(energies)


def test_equations_by_hand(x64):
    rng = np.random.default_rng(2)
    positions = rng.uniform(-1.5, 1.5, (5, 3))
    positions[4] = [3.6, 2.5, 0.5]  # partly outside the cutoff
    species = (0, 1, 1, 0, 1)
    module = DeepPotSE(
        num_species=2,
        r_max=R_MAX,
        r_smooth=1.0,
        embedding=(3, 6, 12),
        axis_neurons=4,
        fitting=(10, 10),
    )
    inputs = cluster_inputs(positions, species)
    params = module.init(jax.random.key(1), inputs)["params"]
    params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), params)
    energy = jax.jit(module.apply)({"params": params}, inputs)
    expected = deeppot_by_hand(
        jax.tree.map(np.asarray, params), positions, species, module
    )
    assert np.ptp(expected) > 1e-3  # the atoms see different environments
    np.testing.assert_allclose(energy, expected, rtol=1e-11, atol=1e-12)


def test_switch_is_c2_and_the_reference_weight_is_an_rms(x64):
    r_s, r_c = 0.5, 4.0
    sw = lambda r: smooth_switch(r, r_s, r_c)  # noqa: E731
    d1, d2 = jax.grad(sw), jax.grad(jax.grad(sw))
    assert float(sw(0.3)) == 1.0 and float(sw(r_c)) == 0.0 and float(sw(5.0)) == 0.0
    for r in (r_s + 1e-9, r_c - 1e-9):
        assert abs(float(d1(r))) < 1e-7 and abs(float(d2(r))) < 1e-5
    assert float(d1(2.0)) < 0.0  # monotone in between
    # Monte Carlo over the ball
    rng = np.random.default_rng(0)
    r = r_c * rng.uniform(size=400_000) ** (1 / 3)
    rms = np.sqrt(np.mean((np.asarray(sw(jnp.asarray(r))) / r) ** 2))
    assert abs(rms / reference_weight(r_s, r_c) - 1.0) < 0.02


def test_an_isolated_atom_has_zero_network_energy(x64):
    module = DeepPotSE(
        num_species=2, r_max=R_MAX, embedding=(4, 8), axis_neurons=4, fitting=(8,)
    )
    inputs = cluster_inputs(np.array([[0.0, 0, 0], [9.0, 0, 0]]), (0, 1))
    params = module.init(jax.random.key(0), inputs)
    np.testing.assert_allclose(module.apply(params, inputs), 0.0, atol=1e-14)


@pytest.mark.slow
def test_trains_from_config_and_runs_md_matching_the_calculator(tmp_path):
    train_and_check_md(
        tmp_path,
        {
            "name": "deeppot",
            "r_max": R_MAX,
            "embedding": [4, 8, 16],
            "axis_neurons": 4,
            "fitting": [16, 16],
        },
    )
