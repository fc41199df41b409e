"""The MD runner: energy conservation, one trace per chunk shape, chunked == stepwise,
neighbor overflow recovery, exact restarts, blow-up detection, thermostats."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase.build import bulk
from conftest import small_nequip

from jaxmlp.md import runner
from jaxmlp.md.integrators import KB, Ensemble
from jaxmlp.md.replicas import run_replicas

N_FRAMES, STRIDE = 10, 10  # chunks of 100 steps


@pytest.fixture(scope="module")
def md_model():
    return small_nequip(r_max=3.0, channels=4, num_layers=1, l_max=1)


def cu_lattice():
    """32 Cu atoms; the second shell (3.61 Å) sits just outside r_max + skin = 3.5 Å."""
    return bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))


def collect(frames_list):
    return lambda frames, first_step: frames_list.append(frames)


@pytest.fixture(scope="module")
def nve(md_model):
    with jax.enable_x64(True):
        sim = runner.make_simulation(
            md_model, cu_lattice(), Ensemble("nve", timestep=2.0, temperature=600.0),
            dtype="float64", capacity_multiplier=2.0,
        )
        status = runner.start(sim, md_model.params, seed=1)
        start = dataclasses.replace(status)
        frames = []
        status = runner.run(
            sim, md_model.params, status, 4 * N_FRAMES * STRIDE, stride=STRIDE,
            frames_per_chunk=N_FRAMES, on_frames=collect(frames),
        )
    return sim, start, status, frames


def test_nve_conserves_energy_and_traces_once(md_model, nve):
    sim, _, status, frames = nve
    assert status.compilations == 1  # four chunks, one trace
    assert status.reallocations == 0
    masses = sim.system.masses
    energy = np.concatenate([f.energy for f in frames])
    kinetic = np.concatenate(
        [0.5 * np.sum(f.momenta**2 / masses[None, :, None], axis=(1, 2)) for f in frames]
    )
    total = energy + kinetic
    time_ps = np.arange(1, len(total) + 1) * STRIDE * 2.0 / 1000.0
    drift = np.polyfit(time_ps, total, 1)[0] / sim.system.n_atoms  # eV/atom/ps
    spread = np.ptp(total) / sim.system.n_atoms
    print(f"\nNVE float64, dt 2 fs, 0.8 ps, 32 Cu: drift {drift:.2e} eV/atom/ps, "
          f"max-min {spread:.2e} eV/atom, kinetic range {np.ptp(kinetic):.3f} eV")
    assert np.ptp(kinetic) > 0.1  # the atoms do move
    assert abs(drift) < 1e-4
    assert spread < 5e-4


def test_chunk_equals_step_by_step(md_model, nve):
    sim, start, _, _ = nve
    with jax.enable_x64(True):
        params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), md_model.params)
        kT = jnp.asarray(sim.ensemble.kT)
        chunk = runner.make_run_chunk(sim, N_FRAMES, STRIDE)
        state_c, _, frames = chunk(params, start.state, start.nbrs, kT)
        step_fn = jax.jit(runner.make_step_fn(sim))
        state, nbrs = start.state, start.nbrs
        for _ in range(N_FRAMES * STRIDE):
            state, nbrs = step_fn(params, state, nbrs, kT)
    np.testing.assert_allclose(state_c.position, state.position, rtol=0, atol=1e-12)
    np.testing.assert_allclose(state_c.momentum, state.momentum, rtol=0, atol=1e-12)
    cart = np.asarray(state.position) @ sim.system.cell
    np.testing.assert_allclose(frames.positions[-1], cart, atol=1e-10)


def test_overflow_recovers_and_matches_roomy_run(md_model, nve):
    sim_ref, _, status_ref, frames_ref = nve
    with jax.enable_x64(True):
        sim = runner.make_simulation(
            md_model, cu_lattice(), sim_ref.ensemble, dtype="float64", capacity_multiplier=1.0
        )
        status = runner.start(sim, md_model.params, seed=1)
        capacity = status.nbrs.idx.shape[-1]
        frames = []
        status = runner.run(
            sim, md_model.params, status, 4 * N_FRAMES * STRIDE, stride=STRIDE,
            frames_per_chunk=N_FRAMES, on_frames=collect(frames),
        )
    assert status.reallocations >= 1  # second-shell pairs entered the exactly-sized list
    assert status.nbrs.idx.shape[-1] > capacity
    assert status.compilations == 1 + status.reallocations
    print(f"\noverflow run: {status.reallocations} reallocation(s), "
          f"{status.compilations} compilations, capacity {capacity} -> "
          f"{status.nbrs.idx.shape[-1]}")
    assert len(frames) == len(frames_ref)
    for f, g in zip(frames, frames_ref):
        np.testing.assert_allclose(f.positions, g.positions, atol=1e-9)
        np.testing.assert_allclose(f.forces, g.forces, atol=1e-8)


def test_overflow_under_compression_matches_roomy_run(md_model):
    """NPT squeezes the box: ever more pairs enter the cutoff, the exactly-sized list
    overflows repeatedly, and every recovered chunk equals a run that never overflowed."""
    atoms = bulk("Cu", "fcc", a=3.9, cubic=True).repeat((3, 3, 3))  # first shell only
    ensemble = Ensemble("npt", timestep=2.0, temperature=300.0, pressure=5.0,
                        tau_t=50.0, tau_p=300.0)
    runs = {}
    for multiplier in (1.0, 5.0):
        with jax.enable_x64(True):
            sim = runner.make_simulation(md_model, atoms, ensemble, dtype="float64",
                                         capacity_multiplier=multiplier)
            status = runner.start(sim, md_model.params, seed=1)
            capacity = status.nbrs.idx.shape[-1]
            frames = []
            status = runner.run(sim, md_model.params, status, 40, stride=2,
                                frames_per_chunk=5, on_frames=collect(frames))
        runs[multiplier] = (status, capacity, frames)
    (tight, capacity, frames), (roomy, _, frames_ref) = runs[1.0], runs[5.0]
    assert roomy.reallocations == 0 and tight.reallocations >= 2
    assert tight.compilations == 1 + tight.reallocations
    assert tight.nbrs.idx.shape[-1] > 1.5 * capacity
    volumes = [abs(np.linalg.det(c)) for f in frames for c in f.cell]
    assert volumes[-1] < 0.7 * atoms.get_volume()
    for f, g in zip(frames, frames_ref, strict=True):
        np.testing.assert_allclose(f.cell, g.cell, atol=1e-10)
        np.testing.assert_allclose(f.positions, g.positions, atol=1e-9)
        np.testing.assert_allclose(f.forces, g.forces, atol=1e-8)


def test_blow_up_stops_with_last_good_state(md_model, nve):
    sim, start, _, _ = nve
    frames = []
    with pytest.raises(runner.MDBlowUpError, match="Å apart") as info:
        runner.run(
            sim, md_model.params, dataclasses.replace(start), 2 * N_FRAMES * STRIDE,
            stride=STRIDE, frames_per_chunk=N_FRAMES, on_frames=collect(frames),
            min_distance=2.2,  # nearest neighbors vibrate around 2.55 Å at 600 K
        )
    status = info.value.status
    n_good = sum(len(f.energy) for f in frames)
    assert 0 < n_good and status.step % (N_FRAMES * STRIDE) == 0
    assert status.step <= n_good * STRIDE
    assert all(f.min_distance.min() >= 2.2 for f in frames)
    bad_params = jax.tree.map(lambda p: p * np.nan, md_model.params)
    with pytest.raises(runner.MDBlowUpError, match="non-finite"):
        runner.run(sim, bad_params, dataclasses.replace(start), N_FRAMES * STRIDE,
                   stride=STRIDE, frames_per_chunk=N_FRAMES)


def test_langevin_restart_continues_exactly(md_model, tmp_path):
    ensemble = Ensemble("nvt-langevin", timestep=2.0, temperature=500.0, friction=0.05)
    with jax.enable_x64(True):
        sim = runner.make_simulation(md_model, cu_lattice(), ensemble, dtype="float64")
        status = runner.start(sim, md_model.params, seed=3)
        kwargs = dict(stride=STRIDE, frames_per_chunk=N_FRAMES)
        first = runner.run(sim, md_model.params, status, N_FRAMES * STRIDE, **kwargs)
        runner.save_restart(tmp_path / "restart.npz", sim, first)
        straight = runner.run(sim, md_model.params, first, N_FRAMES * STRIDE, **kwargs)
        sim2, resumed = runner.load_restart(tmp_path / "restart.npz", md_model)
        assert resumed.step == N_FRAMES * STRIDE
        resumed = runner.run(sim2, md_model.params, resumed, N_FRAMES * STRIDE, **kwargs)
    assert resumed.step == straight.step == 2 * N_FRAMES * STRIDE
    np.testing.assert_array_equal(resumed.state.position, straight.state.position)
    np.testing.assert_array_equal(resumed.state.momentum, straight.state.momentum)
    np.testing.assert_array_equal(resumed.state.rng, straight.state.rng)


def mean_temperature(thermo, skip):
    return np.mean(thermo["T_K"][skip:])


def test_langevin_replicas_reach_their_temperatures(md_model, tmp_path):
    temperatures = [300.0, 700.0, 300.0, 700.0]
    result = run_replicas(
        md_model, cu_lattice(), n_replicas=4, temperatures=temperatures,
        ensemble="nvt-langevin", friction=0.1, timestep=2.0, steps=600, stride=5,
        frames_per_chunk=20, out_dir=tmp_path, plots=False,
    )
    assert result.compilations == 1 + result.reallocations
    means = [mean_temperature(t, skip=20) for t in result.thermo]
    print(f"\nLangevin replicas: targets {temperatures}, means {np.round(means, 1)}")
    for low, high in ((0, 2), (1, 3)):  # pool the replicas at equal temperature
        pooled = 0.5 * (means[low] + means[high])
        assert abs(pooled / temperatures[low] - 1) < 0.05


def test_nose_hoover_reaches_temperature(md_model):
    target = 600.0
    ensemble = Ensemble("nvt", timestep=2.0, temperature=target, tau_t=20.0)
    with jax.enable_x64(True):
        sim = runner.make_simulation(md_model, cu_lattice(), ensemble, dtype="float64")
        status = runner.start(sim, md_model.params, seed=5)
        frames = []
        runner.run(sim, md_model.params, status, 2000, stride=5, frames_per_chunk=100,
                   on_frames=collect(frames))
    masses = sim.system.masses
    p = np.concatenate([f.momenta for f in frames])
    temps = np.sum(p**2 / masses[None, :, None], axis=(1, 2)) / (3 * len(masses) * KB)
    mean = temps[100:].mean()
    conserved = np.concatenate(
        [f.energy + 0.5 * np.sum(f.momenta**2 / masses[None, :, None], axis=(1, 2)) + f.extended
         for f in frames]
    )
    print(f"\nNose-Hoover: target {target} K, mean {mean:.1f} K, "
          f"conserved drift {np.ptp(conserved):.2e} eV")
    assert abs(mean / target - 1) < 0.05
    assert np.ptp(conserved) < 0.05 * np.ptp(temps) * 3 * len(masses) * KB / 2


def test_maxwell_boltzmann_momenta(x64):
    from ase.data import atomic_masses

    from jaxmlp.md.integrators import maxwell_boltzmann, temperature

    masses = jnp.asarray(np.tile(atomic_masses[[29, 8, 1]], 1000), jnp.float64)
    momenta = maxwell_boltzmann(jax.random.PRNGKey(0), masses, 450.0, jnp.float64)
    np.testing.assert_allclose(jnp.sum(momenta, axis=0), 0.0, atol=1e-10)
    assert abs(float(temperature(momenta, masses)) / 450.0 - 1) < 0.03
    # equipartition per species: light and heavy atoms share the same temperature
    for k in range(3):
        sub = slice(k, None, 3)
        t = float(temperature(momenta[sub], masses[sub]))
        assert abs(t / 450.0 - 1) < 0.06
