"""``jaxmlp.hessian`` (forward-over-reverse autodiff) judged by ASE's finite differences.

ASE's ``Vibrations`` displaces each atom by ±delta and differentiates the calculator's
forces: an independent route to the same (3N, 3N) matrix. Done for a free molecule and
for a periodic fcc Cu cell (its Γ-point phonons: three acoustic modes at zero), for
every built-in architecture, in float64.
"""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.vibrations import Vibrations
from conftest import small_nequip

import jaxmlp

pytestmark = pytest.mark.slow  # long end-to-end / sampling tests

SMALL = {
    "nequip": lambda: small_nequip(),
    "mace": lambda: jaxmlp.build_model(
        "mace",
        species=("Cu", "O"),
        r_max=4.0,
        atomic_energies=[-3.5, -1.2],
        scale=2.0,
        avg_num_neighbors=8.0,
        channels=4,
        max_L=1,
        max_ell=2,
        correlation=2,
        num_interactions=2,
        radial_mlp=(8,),
        readout_mlp=8,
    ),
    "morse": lambda: jaxmlp.build_model("morse", species=("Cu", "O"), r_max=4.0),
}


def ase_fd_hessian(model, atoms, tmp_path, delta=1e-4):
    atoms = atoms.copy()
    atoms.calc = jaxmlp.JaxMLPCalculator(model, dtype="float64")
    vib = Vibrations(atoms, delta=delta, nfree=4, name=str(tmp_path / "vib"))
    vib.run()
    return vib.get_vibrations().get_hessian_2d()


@pytest.mark.parametrize("name", sorted(SMALL))
def test_molecule_hessian_matches_ase_finite_differences(tmp_path, name):
    model = SMALL[name]()
    rng = np.random.default_rng(0)
    atoms = Atoms(
        "CuO2Cu",
        positions=rng.normal(scale=1.1, size=(4, 3))
        + np.arange(4)[:, None] * [1.2, 0, 0],
    )
    h = jaxmlp.hessian(model, atoms)
    fd = ase_fd_hessian(model, atoms, tmp_path)
    assert h.shape == (12, 12) and np.abs(h).max() > 1e-2  # not vacuous
    np.testing.assert_allclose(h, h.T, atol=1e-10 * np.abs(h).max())
    np.testing.assert_allclose(h, fd, atol=1e-6 * np.abs(h).max())
    # translations are zero modes of a free molecule: H @ t = 0
    for axis in range(3):
        t = np.zeros((4, 3))
        t[:, axis] = 1.0
        np.testing.assert_allclose(h @ t.ravel(), 0.0, atol=1e-9 * np.abs(h).max())


@pytest.mark.parametrize("name", sorted(SMALL))
def test_gamma_phonons_of_fcc_cu_match_ase(tmp_path, name):
    model = SMALL[name]()
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms.rattle(0.02, seed=3)  # off equilibrium: no accidental zeros
    h = jaxmlp.hessian(model, atoms)
    fd = ase_fd_hessian(model, atoms, tmp_path)
    np.testing.assert_allclose(h, fd, atol=1e-6 * np.abs(h).max())
    freqs = np.sort(np.abs(jaxmlp.gamma_frequencies(model, atoms)))
    from ase.vibrations import VibrationsData

    ref = np.sort(np.abs(VibrationsData.from_2d(atoms, fd).get_frequencies()))
    assert freqs[3:].min() > 1.0  # cm^-1: optical modes are real
    np.testing.assert_allclose(freqs[:3], 0.0, atol=1e-3)  # acoustic sum rule at Γ
    np.testing.assert_allclose(freqs[3:], ref[3:], rtol=1e-5)


@pytest.mark.parametrize("name", ["nequip"])  # MACE has no custom rule; Hessians above
def test_forward_and_reverse_mode_agree(x64, name):
    """jvp (forward mode) of the energy equals the vjp-based gradient along a direction,
    and jacfwd of the forces equals jacrev: the fused NequIP kernel has both modes."""
    import jax
    import jax.numpy as jnp
    from conftest import triclinic_cu_o

    from jaxmlp.potential import graph_energy

    model = SMALL[name]()
    s = triclinic_cu_o()
    g = jaxmlp.batch_graphs([s], model.species, model.r_max, dtype=np.float64)
    params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), model.params)
    energy = lambda x: graph_energy(model.apply_fn, params, g, x, g.cell)[0][0]
    x = jnp.asarray(g.positions)
    direction = jnp.asarray(np.random.default_rng(0).normal(size=x.shape))
    _, forward = jax.jvp(energy, (x,), (direction,))
    reverse = jnp.vdot(jax.grad(energy)(x), direction)
    assert abs(float(reverse)) > 1e-3
    np.testing.assert_allclose(forward, reverse, rtol=1e-10)
    grad = jax.grad(
        energy
    )  # Hessian-vector products: forward-over-reverse vs reverse-over-reverse
    hvp_forward = jax.jvp(grad, (x,), (direction,))[1]
    hvp_reverse = jax.grad(lambda y: jnp.vdot(grad(y), direction))(x)
    assert np.abs(hvp_reverse).max() > 1e-3
    np.testing.assert_allclose(hvp_forward, hvp_reverse, atol=1e-10)
