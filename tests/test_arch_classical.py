"""Lennard-Jones and EAM: judged by jax-md's energy functions and a numpy loop, the fcc
copper equation of state at the defaults, and training from EMT copper then NVE MD.

The physics battery (equivariance, finite differences, padding, cutoff continuity, ...)
runs for ``lj`` and ``eam`` in test_architectures.py.
"""

import jax.numpy as jnp
import numpy as np
import pytest
from arch_checks import cu_frames, train_and_check_md
from ase import Atoms
from ase.build import bulk

import jaxmlp
from jaxmlp.graph import batch_graphs
from jaxmlp.model import init_params
from jaxmlp.structure import Structure
from jaxmlp.testing import predict_jit


def switch(r, r_on, r_off):
    """The C2 switch written out: 1 - 10 x^3 + 15 x^4 - 6 x^5 on [r_on, r_off]."""
    x = jnp.clip((r - r_on) / (r_off - r_on), 0.0, 1.0)
    return 1.0 - 10.0 * x**3 + 15.0 * x**4 - 6.0 * x**5


def random_log_table(rng, value, n, spread=0.2):
    """A stored log-parameter table, deliberately not symmetric, and the symmetric
    values the model must use, exp(0.5 (L + L^T))."""
    table = np.log(value) + spread * rng.uniform(-1, 1, (n, n))
    return table, np.exp(0.5 * (table + table.T))


def rattled_alloy(seed, repeat=3, a=3.7, rattle=0.15):
    """fcc Cu/Ag (cubic box of side 3a), random species, positions wrapped in the box."""
    rng = np.random.default_rng(seed)
    atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat(repeat)
    atoms.numbers = rng.choice([29, 47], len(atoms))
    atoms.rattle(rattle, seed=seed)
    atoms.wrap()
    return atoms


def test_lennard_jones_equals_jax_md(x64):
    from jax_md import energy, smap, space

    r_max, switch_on = 5.0, 0.7
    rng = np.random.default_rng(0)
    model = jaxmlp.build_model(
        "lj", ("Cu", "Ag"), r_max, atomic_energies=[0.0, 0.0], switch_on=switch_on
    )
    log_eps, eps = random_log_table(rng, 0.4, 2)
    log_sigma, sigma = random_log_table(rng, 2.4, 2, spread=0.05)
    model = jaxmlp.Model(model.config, {"log_epsilon": log_eps, "log_sigma": log_sigma})
    atoms = rattled_alloy(1)
    species = jnp.asarray((atoms.numbers == 47).astype(np.int32))
    box = float(atoms.cell[0, 0])
    assert 2 * r_max < box  # minimum image is exact for jax-md's all-pairs sum

    def pair_fn(dr, sigma, epsilon):
        return energy.lennard_jones(dr, sigma, epsilon) * switch(
            dr, switch_on * r_max, r_max
        )

    displacement_fn, _ = space.periodic(box)
    energy_fn = smap.pair(
        pair_fn,
        space.canonicalize_displacement_or_metric(displacement_fn),
        species=species,
        sigma=jnp.asarray(sigma),
        epsilon=jnp.asarray(eps),
    )
    expected = float(energy_fn(jnp.asarray(atoms.positions)))
    atoms.calc = jaxmlp.JaxMLPCalculator(model, dtype="float64")
    assert abs(expected) > 10.0  # not vacuous: 108 atoms, several eV each
    assert atoms.get_potential_energy() == pytest.approx(expected, abs=1e-10)


def test_eam_equals_jax_md_for_copper(x64):
    from jax_md import energy, space

    r_max, rho_0 = 5.0, 0.1
    model = jaxmlp.build_model("eam", ("Cu",), r_max, atomic_energies=[0.0])
    rng = np.random.default_rng(2)
    params = {
        k: np.asarray(v, np.float64) + 0.1 * rng.uniform(-1, 1, np.shape(v))
        for k, v in model.params.items()
    }
    model = jaxmlp.Model(model.config, params)
    p = {k.removeprefix("log_"): float(np.exp(v).ravel()[0]) for k, v in params.items()}
    atoms = bulk("Cu", "fcc", a=3.63, cubic=True).repeat(3)
    atoms.rattle(0.15, seed=3)
    atoms.wrap()
    box = float(atoms.cell[0, 0])

    def density_fn(dr):
        f = p["density_scale"] * jnp.exp(
            -p["density_decay"] * (dr / p["density_distance"] - 1.0)
        )
        return jnp.where(dr > 1e-8, f * switch(dr, 0.8 * r_max, r_max), 0.0)

    def embedding_fn(rho):
        return -p["embedding"] * (jnp.sqrt(rho + rho_0**2) - rho_0)

    def pairwise_fn(dr):
        x = dr / p["repulsion_distance"] - 1.0
        phi = p["repulsion"] * jnp.exp(-p["repulsion_decay"] * x)
        return phi * switch(dr, 0.8 * r_max, r_max)

    displacement_fn, _ = space.periodic(box)
    energy_fn = energy.eam(displacement_fn, density_fn, embedding_fn, pairwise_fn)
    expected = float(energy_fn(jnp.asarray(atoms.positions)))
    atoms.calc = jaxmlp.JaxMLPCalculator(model, dtype="float64")
    assert expected < -100.0  # bound: about -3.4 eV per atom
    assert atoms.get_potential_energy() == pytest.approx(expected, abs=1e-10)


def eam_by_hand(params, positions, species, r_max, rho_0=0.1, switch_on=0.8):
    """Daw & Baskes's E = sum_i F_i(sum_j f_j(r_ij)) + 1/2 sum_ij phi_ij(r_ij), atom by
    atom in numpy, from the stored (log, unsymmetrised) parameters."""

    def positive(name):
        v = np.asarray(params[name], np.float64)
        return np.exp(0.5 * (v + v.T)) if v.ndim == 2 else np.exp(v)

    xi, c = positive("log_embedding"), positive("log_density_scale")
    beta, d = positive("log_density_decay"), positive("log_density_distance")
    a, alpha = positive("log_repulsion"), positive("log_repulsion_decay")
    r0 = positive("log_repulsion_distance")
    r_on = switch_on * r_max
    total = 0.0
    for i, si in enumerate(species):
        rho, pair = 0.0, 0.0
        for j, sj in enumerate(species):
            r = np.linalg.norm(positions[i] - positions[j])
            if i == j or r >= r_max:
                continue
            x = min(max((r - r_on) / (r_max - r_on), 0.0), 1.0)
            s = 1.0 - 10.0 * x**3 + 15.0 * x**4 - 6.0 * x**5
            rho += c[sj] * np.exp(-beta[sj] * (r / d[sj] - 1.0)) * s
            pair += a[si, sj] * np.exp(-alpha[si, sj] * (r / r0[si, sj] - 1.0)) * s
        total += -xi[si] * (np.sqrt(rho + rho_0**2) - rho_0) + 0.5 * pair
    return total


def test_eam_two_species_equals_the_formula_by_hand(x64):
    r_max = 4.5
    model = jaxmlp.build_model("eam", ("Cu", "Ag"), r_max, atomic_energies=[0.0, 0.0])
    rng = np.random.default_rng(4)
    params = {  # per-species and per-pair values all different, tables not symmetric
        k: np.asarray(v, np.float64) + 0.15 * rng.uniform(-1, 1, np.shape(v))
        for k, v in model.params.items()
    }
    model = jaxmlp.Model(model.config, params)
    cluster = bulk("Cu", "fcc", a=3.7, cubic=True).repeat((2, 1, 1))[:7]
    positions = cluster.positions + rng.normal(scale=0.15, size=(7, 3))  # free cluster
    species = [0, 1, 1, 0, 1, 0, 0]
    atoms = Atoms(numbers=[[29, 47][s] for s in species], positions=positions)
    atoms.calc = jaxmlp.JaxMLPCalculator(model, dtype="float64")
    expected = eam_by_hand(params, positions, species, r_max)
    assert expected < -1.0
    assert atoms.get_potential_energy() == pytest.approx(expected, abs=1e-10)

    # an isolated atom: zero energy, finite (zero) force, no NaN from sqrt(rho) at 0
    atoms.positions[6] += [30.0, 0.0, 0.0]
    forces = atoms.get_forces()
    assert np.all(np.isfinite(forces)) and np.all(forces[6] == 0.0)
    expected = eam_by_hand(params, atoms.positions, species, r_max)
    assert atoms.get_potential_energy() == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize("name", ["lj", "eam"])
@pytest.mark.parametrize("r_max", [4.0, 5.0])
def test_fcc_copper_is_bound_near_3_6_angstrom_at_the_defaults(x64, name, r_max):
    model = jaxmlp.build_model(name, ("Cu",), r_max, atomic_energies=[0.0])
    lattice = np.arange(3.2, 4.2, 0.01)
    cells = [Structure.from_ase(bulk("Cu", "fcc", a=a)) for a in lattice]
    graph = batch_graphs(cells, model.species, r_max, dtype=np.float64)
    energies = predict_jit(model.apply_fn, model.params, graph).energy[: len(cells)]
    best = int(np.argmin(energies))
    assert 3.4 < lattice[best] < 3.9 and 0 < best < len(lattice) - 1
    assert -4.0 < energies[best] < -2.0  # eV/atom; copper's cohesive energy is 3.5 eV


def forces_mae(model, frames):
    """Mean absolute force error against the frames' EMT labels, eV/Å (one batch)."""
    structures = [Structure.from_ase(atoms) for atoms in frames]
    graph = batch_graphs(structures, model.species, model.r_max)
    out = predict_jit(model.apply_fn, model.params, graph)
    reference = np.concatenate([atoms.arrays["REF_forces"] for atoms in frames])
    return float(np.abs(out.forces[: len(reference)] - reference).mean())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lj", "eam"])
def test_trains_from_config_and_runs_md_matching_the_calculator(tmp_path, name):
    frames = cu_frames()
    result, _ = train_and_check_md(tmp_path, {"name": name, "r_max": 4.0}, frames)
    start = jaxmlp.Model(result.model.config, init_params(result.model.config, 0))
    before, after = forces_mae(start, frames), forces_mae(result.model, frames)
    print(f"{name}: force MAE {1e3 * before:.1f} -> {1e3 * after:.1f} meV/Å")
    assert after < before
