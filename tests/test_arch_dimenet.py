"""DimeNet++: the spherical Fourier-Bessel basis by its published formula, triplets
carried through the calculator (supercell invariance, the overflow error) and MD, and
training from a YAML-equivalent config.

The physics battery (equivariance, finite differences, padding, cutoff continuity, ...)
runs for ``dimenet++`` in test_architectures.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from arch_checks import train_and_check_md
from ase.build import bulk
from scipy.special import eval_legendre
from scipy.special import spherical_jn as scipy_jn

import jaxmlp
from jaxmlp.nn import dimenet

R_MAX = 4.0
SMALL = dict(
    emb_size=8,
    int_emb_size=4,
    basis_emb_size=2,
    out_emb_size=8,
    num_blocks=2,
    num_spherical=3,
    num_radial=3,
    num_output_layers=1,
)


def test_spherical_basis_is_the_published_formula(x64):
    """a_ln(r, θ) = u(x)/x sqrt(2)/|j_{l+1}(z_ln)| j_l(z_ln x) sqrt((2l+1)/4π) P_l(cos θ),
    x = r / r_max, z_ln the zeros of j_l, u DimeNet's envelope (p = 6); l = 0..2."""
    r = np.array([0.05, 0.7, 1.9, 2.6, 3.95])  # Å, small x exercises the power series
    cos_theta = np.array([0.93, -0.41, 0.0, 0.27, -1.0])
    got = np.asarray(
        dimenet.spherical_basis(jnp.asarray(r), jnp.asarray(cos_theta), 3, 4, R_MAX)
    )
    zeros = dimenet.bessel_zeros(3, 4)
    np.testing.assert_allclose(zeros[0], np.pi * np.arange(1, 5), rtol=1e-14)
    np.testing.assert_allclose(zeros[1, :2], [4.493409457909064, 7.725251836937707])
    x = r / R_MAX
    u = 1 - 28 * x**6 + 48 * x**7 - 21 * x**8
    for l in range(3):
        y = np.sqrt((2 * l + 1) / (4 * np.pi)) * eval_legendre(l, cos_theta)
        for n in range(4):
            z = zeros[l, n]
            assert abs(scipy_jn(l, z)) < 1e-13
            norm = np.sqrt(2.0) / abs(scipy_jn(l + 1, z))
            expected = u / x * norm * scipy_jn(l, z * x) * y
            np.testing.assert_allclose(got[:, l, n], expected, rtol=1e-12, atol=1e-13)
    # j_l in float32 stays accurate where the upward recursion alone would cancel
    x32 = np.array([0.02, 0.3, 1.1, 2.4, 2.6, 9.0], np.float32)
    for l in range(6):
        j = np.asarray(dimenet.spherical_jn(l, jnp.asarray(x32)))
        np.testing.assert_allclose(j, scipy_jn(l, x32.astype(np.float64)), atol=1e-6)


@pytest.mark.slow
def test_supercell_invariance_and_the_overflow_error(x64):
    """A one-atom primitive cell (every neighbour an image of the atom itself, so k = i
    by index for most triplets) has the per-atom energy of its cubic supercell; an
    atom with more neighbours than max_neighbors raises, naming it and K."""
    model = jaxmlp.build_model("dimenet++", species=("Cu",), r_max=R_MAX, **SMALL)
    primitive = bulk("Cu", "fcc", a=3.61)
    cubic = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 1, 1))
    energies = []
    for atoms in (primitive, cubic):
        atoms.calc = jaxmlp.JaxMLPCalculator(model, dtype="float64")
        energies.append(atoms.get_potential_energy() / len(atoms))
    assert energies[0] == pytest.approx(energies[1], abs=1e-10)
    assert abs(energies[0] - model.config.shift) > 1e-3  # the network contributes

    tight = jaxmlp.build_model(
        "dimenet++", species=("Cu",), r_max=R_MAX, max_neighbors=12, **SMALL
    )
    cubic.calc = jaxmlp.JaxMLPCalculator(tight, dtype="float64")
    with pytest.raises(ValueError, match=r"atom 0 \(Cu\) has 18 .*max_neighbors=12"):
        cubic.get_potential_energy()
    # the network itself turns overflow into NaN (never a truncated sum)
    from jaxmlp.graph import batch_graphs
    from jaxmlp.structure import Structure

    g = batch_graphs(
        [Structure.from_ase(cubic)], tight.species, R_MAX, dtype=np.float64
    )
    with jax.debug_nans(False):
        out = jaxmlp.predict(tight.apply_fn, tight.params, g)
    assert np.isnan(out.energy[0]) and np.isnan(out.forces[:8]).all()


@pytest.mark.slow
def test_trains_from_config_and_runs_md_matching_the_calculator(tmp_path):
    """Triplets built in training (padded batches), in the calculator and in MD (jax-md
    neighbor lists): every MD frame's energy equals a fresh calculator's."""
    train_and_check_md(tmp_path, {"name": "dimenet++", "r_max": R_MAX, **SMALL})
