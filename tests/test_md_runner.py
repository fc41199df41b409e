"""The MD host loop: energy conservation, one trace per chunk shape, chunked ==
stepwise, neighbor overflow recovery, exact restarts, blow-up detection, replicas."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase.build import bulk
from conftest import small_nequip

import jaxmlp
from jaxmlp.md import (
    Ensemble,
    MDBlowUpError,
    MDOptions,
    Programs,
    advance,
    guards_for,
    load_restart,
    make_simulation,
    run_replicas,
    save_restart,
    start,
)
from jaxmlp.md.chunk import make_observe_fn, make_run_chunk, make_step_fn
from jaxmlp.md.observables import kinetic_energy

N_FRAMES, STRIDE = 10, 10  # chunks of 100 steps


@pytest.fixture(scope="module")
def md_model():
    return small_nequip(r_max=3.0, channels=4, num_layers=1, l_max=1)


def cu_lattice():
    """32 Cu atoms; the second shell (3.61 Å) sits just outside r_max + skin = 3.5 Å."""
    return bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))


def collect(frames_list):
    return lambda frames, first_step: frames_list.append(frames)


def run(
    sim,
    params,
    progress,
    n_steps,
    programs=None,
    stride=STRIDE,
    n_frames=N_FRAMES,
    **kw,
):
    """advance() with this file's defaults; returns (progress, programs)."""
    programs = programs or Programs()
    progress = advance(
        sim,
        programs,
        params,
        progress,
        n_steps // stride,
        stride=stride,
        frames_per_chunk=n_frames,
        kT=sim.kT,
        guards=kw.pop("guards", guards_for(sim)),
        **kw,
    )
    return progress, programs


@pytest.fixture(scope="module")
def nve(md_model):
    with jax.enable_x64(True):
        sim = make_simulation(
            md_model,
            cu_lattice(),
            Ensemble("nve", timestep=2.0, temperature=600.0),
            dtype="float64",
            capacity_multiplier=2.0,
        )
        programs = Programs()
        progress = start(sim, programs, md_model.params, seed=1)
        first = dataclasses.replace(progress)
        frames = []
        progress, _ = run(
            sim,
            md_model.params,
            progress,
            4 * N_FRAMES * STRIDE,
            programs,
            on_frames=collect(frames),
        )
    return sim, first, progress, frames


def test_nve_conserves_energy_and_traces_once(md_model, nve):
    sim, _, progress, frames = nve
    assert progress.compilations == 2  # init, then four chunks of one shape: one trace
    assert progress.reallocations == 0
    energy = np.concatenate([f.energy for f in frames])
    kinetic = np.concatenate(
        [kinetic_energy(f.momenta, sim.system.masses) for f in frames]
    )
    total = energy + kinetic
    time_ps = np.arange(1, len(total) + 1) * STRIDE * 2.0 / 1000.0
    drift = np.polyfit(time_ps, total, 1)[0] / sim.system.n_atoms  # eV/atom/ps
    spread = np.ptp(total) / sim.system.n_atoms
    print(
        f"\nNVE float64, dt 2 fs, 0.8 ps, 32 Cu: drift {drift:.2e} eV/atom/ps, "
        f"max-min {spread:.2e} eV/atom, kinetic range {np.ptp(kinetic):.3f} eV"
    )
    assert np.ptp(kinetic) > 0.1  # the atoms do move
    assert abs(drift) < 1e-4
    assert spread < 5e-4


def test_chunk_equals_step_by_step(md_model, nve):
    sim, first, _, _ = nve
    with jax.enable_x64(True):
        params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), md_model.params)
        kT = jnp.asarray(sim.kT)
        step_fn = make_step_fn(sim)
        chunk = jax.jit(make_run_chunk(step_fn, make_observe_fn(sim), N_FRAMES, STRIDE))
        carry_c, frames = chunk(params, first.carry, kT)
        step = jax.jit(step_fn)
        carry = first.carry
        for _ in range(N_FRAMES * STRIDE):
            carry = step(params, carry, kT)
    np.testing.assert_allclose(
        carry_c.state.position, carry.state.position, rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(
        carry_c.state.momentum, carry.state.momentum, rtol=0, atol=1e-12
    )
    cart = np.asarray(carry.state.position) @ sim.system.cell
    np.testing.assert_allclose(frames.positions[-1], cart, atol=1e-10)


def test_overflow_recovers_and_matches_roomy_run(md_model, nve):
    sim_ref, _, _, frames_ref = nve
    with jax.enable_x64(True):
        sim = make_simulation(
            md_model,
            cu_lattice(),
            sim_ref.dynamics,
            dtype="float64",
            capacity_multiplier=1.0,
        )
        progress = start(sim, Programs(), md_model.params, seed=1)
        capacity = progress.nbrs.idx.shape[-1]
        frames = []
        progress, _ = run(
            sim,
            md_model.params,
            progress,
            4 * N_FRAMES * STRIDE,
            on_frames=collect(frames),
        )
    assert (
        progress.reallocations >= 1
    )  # second-shell pairs entered the exactly-sized list
    assert progress.nbrs.idx.shape[-1] > capacity
    assert progress.compilations == 1 + progress.reallocations
    print(
        f"\noverflow run: {progress.reallocations} reallocation(s), capacity {capacity} -> "
        f"{progress.nbrs.idx.shape[-1]}"
    )
    assert len(frames) == len(frames_ref)
    for f, g in zip(frames, frames_ref):
        np.testing.assert_allclose(f.positions, g.positions, atol=1e-9)
        np.testing.assert_allclose(f.forces, g.forces, atol=1e-8)


@pytest.mark.slow
def test_overflow_under_compression_matches_roomy_run(md_model):
    """NPT squeezes the box: ever more pairs enter the cutoff, the exactly-sized list
    overflows repeatedly, and every recovered chunk equals a run that never overflowed."""
    atoms = bulk("Cu", "fcc", a=3.9, cubic=True).repeat((3, 3, 3))  # first shell only
    ensemble = Ensemble(
        "npt", timestep=2.0, temperature=300.0, pressure=5.0, tau_t=50.0, tau_p=300.0
    )
    runs = {}
    for multiplier in (1.0, 5.0):
        with jax.enable_x64(True):
            sim = make_simulation(
                md_model,
                atoms,
                ensemble,
                dtype="float64",
                capacity_multiplier=multiplier,
            )
            progress = start(sim, Programs(), md_model.params, seed=1)
            capacity = progress.nbrs.idx.shape[-1]
            frames = []
            progress, _ = run(
                sim,
                md_model.params,
                progress,
                40,
                stride=2,
                n_frames=5,
                on_frames=collect(frames),
            )
        runs[multiplier] = (progress, capacity, frames)
    (tight, capacity, frames), (roomy, _, frames_ref) = runs[1.0], runs[5.0]
    assert roomy.reallocations == 0 and tight.reallocations >= 2
    assert tight.compilations == 1 + tight.reallocations  # one chunk trace per list
    assert tight.nbrs.idx.shape[-1] > 1.5 * capacity
    volumes = [abs(np.linalg.det(c)) for f in frames for c in f.cell]
    assert volumes[-1] < 0.7 * atoms.get_volume()
    for f, g in zip(frames, frames_ref, strict=True):
        np.testing.assert_allclose(f.cell, g.cell, atol=1e-10)
        np.testing.assert_allclose(f.positions, g.positions, atol=1e-9)
        np.testing.assert_allclose(f.forces, g.forces, atol=1e-8)


def test_blow_up_stops_with_last_good_state(md_model, nve):
    sim, first, _, _ = nve
    frames = []
    guards = dataclasses.replace(
        guards_for(sim), min_distance=2.2
    )  # NN ~2.55 Å at 600 K
    with jax.enable_x64(True), pytest.raises(MDBlowUpError, match="Å apart") as info:
        run(
            sim,
            md_model.params,
            dataclasses.replace(first),
            2 * N_FRAMES * STRIDE,
            guards=guards,
            on_frames=collect(frames),
        )
    progress = info.value.status
    n_good = sum(len(f.energy) for f in frames)
    assert 0 < n_good and progress.step % (N_FRAMES * STRIDE) == 0
    assert progress.step <= n_good * STRIDE
    assert all(f.min_distance.min() >= 2.2 for f in frames)
    bad_params = jax.tree.map(lambda p: p * np.nan, md_model.params)
    with jax.enable_x64(True), pytest.raises(MDBlowUpError, match="non-finite"):
        run(sim, bad_params, dataclasses.replace(first), N_FRAMES * STRIDE)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["nvt-langevin", "nvt", "npt"])
def test_restart_continues_exactly(md_model, tmp_path, name):
    """Straight run == run, save, load, run; bit for bit (thermostat, barostat, RNG and
    neighbor list restored), also after a reallocation in the first half (NPT's tight
    list)."""
    ensemble = Ensemble(
        name,
        timestep=2.0,
        temperature=1200.0,
        friction=0.05,
        pressure=5.0,
        tau_t=50.0,
        tau_p=300.0,
    )
    model = jaxmlp.build_model(
        "morse", species=("Cu",), r_max=3.0
    )  # repulsive: no collapse
    # second shell (3.55 Å) just outside the list radius (3.5 Å): it enters soon
    atoms = bulk("Cu", "fcc", a=3.55, cubic=True).repeat((2, 2, 2))
    with jax.enable_x64(True):
        sim = make_simulation(
            model, atoms, ensemble, dtype="float64", capacity_multiplier=1.0
        )
        progress = start(sim, Programs(), model.params, seed=3)
        first, _ = run(sim, model.params, progress, N_FRAMES * STRIDE)
        save_restart(tmp_path / "restart.npz", sim, first)
        straight, _ = run(
            sim, model.params, dataclasses.replace(first), N_FRAMES * STRIDE
        )
        sim2, resumed = load_restart(tmp_path / "restart.npz", model)
        assert resumed.step == N_FRAMES * STRIDE
        resumed, _ = run(sim2, model.params, resumed, N_FRAMES * STRIDE)
    assert first.reallocations >= 1  # the exactly-sized list grew before the restart
    assert resumed.step == straight.step == 2 * N_FRAMES * STRIDE
    for a, b in zip(
        jax.tree.leaves(resumed.carry.state), jax.tree.leaves(straight.carry.state)
    ):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(resumed.nbrs.idx, straight.nbrs.idx)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["nvt-langevin", "nvt"])
def test_replicas_reach_their_own_temperatures(md_model, tmp_path, name):
    """Each replica's thermostat (Langevin, or a Nosé–Hoover chain whose masses follow
    its kT) targets its own temperature, in one compiled program."""
    temperatures = [300.0, 700.0, 300.0, 700.0]
    ensemble = Ensemble(name, timestep=2.0, friction=0.1, tau_t=20.0)
    result = run_replicas(
        md_model,
        cu_lattice(),
        ensemble,
        n_replicas=4,
        temperatures=temperatures,
        steps=600,
        out_dir=tmp_path,
        options=MDOptions(stride=5, frames_per_chunk=20, plots=False),
    )
    assert result.compilations == 3 + result.reallocations  # init, first frame, chunk
    means = [np.mean(t["T_K"][20:]) for t in result.thermo]
    print(f"\n{name} replicas: targets {temperatures}, means {np.round(means, 1)}")
    for low, high in ((0, 2), (1, 3)):  # pool the replicas at equal temperature
        pooled = 0.5 * (means[low] + means[high])
        assert abs(pooled / temperatures[low] - 1) < 0.06


def test_maxwell_boltzmann_momenta(x64):
    from ase.data import atomic_masses

    from jaxmlp.md.momenta import maxwell_boltzmann, remove_rotation
    from jaxmlp.md.observables import temperature

    masses = jnp.asarray(np.tile(atomic_masses[[29, 8, 1]], 1000), jnp.float64)
    momenta = maxwell_boltzmann(jax.random.PRNGKey(0), masses, 450.0, jnp.float64)
    np.testing.assert_allclose(jnp.sum(momenta, axis=0), 0.0, atol=1e-10)
    dof = 3 * len(masses) - 3
    assert (
        abs(float(temperature(kinetic_energy(momenta, masses), dof)) / 450.0 - 1) < 0.03
    )
    # equipartition per species: light and heavy atoms share the same temperature
    for k in range(3):
        sub = slice(k, None, 3)
        t = float(temperature(kinetic_energy(momenta[sub], masses[sub]), 3 * 1000))
        assert abs(t / 450.0 - 1) < 0.06
    # a molecule: the rigid rotation is removed, the internal motion is kept
    positions = jax.random.normal(jax.random.PRNGKey(1), (7, 3), jnp.float64)
    p = maxwell_boltzmann(jax.random.PRNGKey(2), masses[:7], 300.0, jnp.float64)
    q = remove_rotation(positions, p, masses[:7])
    x = (
        positions
        - (jnp.sum(masses[:7, None] * positions, 0) / jnp.sum(masses[:7]))[None]
    )
    assert np.abs(jnp.sum(jnp.cross(x, p), 0)).max() > 1e-3
    np.testing.assert_allclose(jnp.sum(jnp.cross(x, q), 0), 0.0, atol=1e-10)
    np.testing.assert_allclose(jnp.sum(q, 0), 0.0, atol=1e-10)
