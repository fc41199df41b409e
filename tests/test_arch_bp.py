"""Behler-Parrinello: the edge-based symmetry functions against a direct loop over
neighbour triplets, the normalisation against a sampled ideal gas, and training from a
YAML-equivalent config followed by NVE MD.

The physics battery (invariance with inversion, finite differences, padding, cutoff
continuity, ...) runs for ``bp`` in test_architectures.py.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from arch_checks import train_and_check_md

from jaxmlp.edges import make_inputs
from jaxmlp.nn.behler_parrinello import BehlerParrinello, symmetry_functions

R_MAX = 4.0


def cluster_inputs(positions, species, n_pad=3):
    """EdgeInputs of every ordered pair of a cluster plus ``n_pad`` padded edges."""
    positions = np.asarray(positions, np.float64)
    n = len(positions)
    pairs = [(j, i) for i in range(n) for j in range(n) if i != j]
    pairs += [(n - 1, n - 1)] * n_pad
    senders = np.array([j for j, _ in pairs])
    receivers = np.array([i for _, i in pairs])
    vectors = positions[receivers] - positions[senders]
    mask = np.arange(len(pairs)) < len(pairs) - n_pad
    return make_inputs(
        jnp.asarray(vectors), tuple(species), senders, receivers, mask, np.ones(n, bool)
    )


def symmetry_functions_by_triplets(positions, species, tables, zetas, lambdas):
    """Behler's G2 and (shifted-Gaussian) G5 by explicit loops over j and pairs j<k."""
    fc = lambda r, rc: 0.5 * (math.cos(math.pi * r / rc) + 1.0) if r < rc else 0.0  # noqa: E731
    n, n_species = len(species), tables.num_species
    pair_index = {tuple(p): q for q, p in enumerate(tables.pairs.tolist())}
    radial = np.zeros((n, n_species, len(tables.radial_shifts)))
    angular = np.zeros((n,) + tables.angular_scale.shape)
    zl = [(zeta, lam) for zeta in zetas for lam in lambdas]
    for i in range(n):
        neighbours = [j for j in range(n) if j != i]
        for j in neighbours:
            r = np.linalg.norm(positions[j] - positions[i])
            g = np.exp(-tables.radial_eta * (r - tables.radial_shifts) ** 2)
            radial[i, species[j]] += g * fc(r, tables.r_c)
        for a, j in enumerate(neighbours):
            for k in neighbours[a + 1 :]:
                u, v = positions[j] - positions[i], positions[k] - positions[i]
                rj, rk = np.linalg.norm(u), np.linalg.norm(v)
                cos = u @ v / (rj * rk)
                gj = np.exp(-tables.angular_eta * (rj - tables.angular_shifts) ** 2)
                gk = np.exp(-tables.angular_eta * (rk - tables.angular_shifts) ** 2)
                w = gj * gk * fc(rj, tables.r_c_angular) * fc(rk, tables.r_c_angular)
                key = tuple(sorted((species[j], species[k])))
                if not tables.angular_species:
                    key = (0, 0)
                for f, (zeta, lam) in enumerate(zl):
                    value = 2.0 ** (1 - zeta) * (1 + lam * cos) ** zeta
                    angular[i, pair_index[key], :, f] += w * value
    return radial, angular


def test_symmetry_functions_equal_the_triplet_loop(x64):
    rng = np.random.default_rng(0)
    positions = rng.uniform(-1.6, 1.6, (6, 3))
    positions[5] = [3.5, 3.0, 0.0]  # partly outside the cutoff of the others
    species = (0, 1, 0, 1, 0, 1)
    for pairs in (True, False):
        module = BehlerParrinello(
            num_species=2,
            r_max=R_MAX,
            num_radial=5,
            num_angular=3,
            zetas=(1, 2, 5),
            lambdas=(1.0, -1.0),
            angular_species_pairs=pairs,
            angular_r_max=3.5,
        )
        tables = module.tables()
        radial, angular = symmetry_functions(cluster_inputs(positions, species), tables)
        expected_r, expected_a = symmetry_functions_by_triplets(
            positions, species, tables, module.zetas, module.lambdas
        )
        assert np.abs(expected_a).max() > 1e-2 and np.abs(expected_r).max() > 1e-2
        np.testing.assert_allclose(radial, expected_r, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(angular, expected_a, rtol=1e-10, atol=1e-12)


def test_the_tables_polynomials_are_behlers_angular_term():
    module = BehlerParrinello(num_species=1, r_max=R_MAX, zetas=(1, 3, 8))
    tables = module.tables()
    cos = np.linspace(-1.0, 1.0, 7)
    for f, (zeta, lam) in enumerate((z, l) for z in (1, 3, 8) for l in (1.0, -1.0)):
        powers = cos[:, None] ** np.arange(tables.coefficients.shape[1])
        np.testing.assert_allclose(
            powers @ tables.coefficients[f],
            2.0 ** (1 - zeta) * (1 + lam * cos) ** zeta,
            rtol=1e-12,
            atol=1e-14,
        )
        assert tables.diagonal[f] == 2.0 ** (1 - zeta) * (1 + lam) ** zeta


def test_normalisation_makes_an_ideal_gas_order_one(x64):
    # neighbours uniform in the ball with the declared density: features average ~1
    rng = np.random.default_rng(1)
    n_nb = 30
    module = BehlerParrinello(
        num_species=1, r_max=R_MAX, avg_num_neighbors=n_nb, num_radial=6, zetas=(1, 2)
    )
    means = []
    for _ in range(40):
        direction = rng.normal(size=(n_nb, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        radius = R_MAX * rng.uniform(size=n_nb) ** (1 / 3)
        positions = np.vstack([np.zeros(3), direction * radius[:, None]])
        n = len(positions)
        senders = np.arange(1, n)
        inputs = make_inputs(
            jnp.asarray(positions[0] - positions[senders]),
            (0,) * n,
            senders,
            np.zeros(n - 1, int),
            np.ones(n - 1, bool),
            np.ones(n, bool),
        )
        features = module.features(inputs)[0]
        means.append(np.asarray(features))
    mean = np.mean(means, axis=0)
    # shells near r = 0 hold few neighbours: judge those with r >= 1 Å
    radial = mean[:6][module.tables().radial_shifts >= 1.0]
    assert np.all(np.abs(radial - 1.0) < 0.15), radial
    assert np.all(np.abs(mean[6:] - 1.0) < 0.35), mean[6:]


def test_an_isolated_atom_has_zero_network_energy(x64):
    module = BehlerParrinello(num_species=2, r_max=R_MAX, hidden=(8,))
    inputs = cluster_inputs(np.array([[0.0, 0, 0], [9.0, 0, 0]]), (0, 1))
    params = module.init(jax.random.key(0), inputs)
    energy = module.apply(params, inputs)
    np.testing.assert_allclose(energy, 0.0, atol=1e-14)


@pytest.mark.slow
def test_trains_from_config_and_runs_md_matching_the_calculator(tmp_path):
    train_and_check_md(
        tmp_path,
        {
            "name": "bp",
            "r_max": R_MAX,
            "num_radial": 6,
            "num_angular": 2,
            "zetas": [1, 4],
            "hidden": [16],
        },
    )
