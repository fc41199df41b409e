"""Sampling physics of :mod:`jaxmlp.md`, judged by analytic results (float64).

Every expected value below comes from statistical mechanics, not from the code under
test: the canonical kinetic-energy distribution (a gamma distribution with ``dof/2``
shape), the degrees of freedom each thermostat conserves, the exact energy relaxation
rate of Langevin dynamics in a harmonic solid, the NPT identities ``<P> = P_ext``,
``P_NVT(<V>) = P_ext`` and ``Var(V) = kT / (-dP_NVT/dV)``, and second-order energy
conservation of velocity Verlet. Each test computes its statistical error honestly
(blocking over independent replicas, or a jackknife over replicas), asserts
``|mean - expected| < 4 sigma`` and asserts that ``sigma`` is small enough to reject the
answer a known bug would give (the 3N-dof Nosé–Hoover of before the MD rewrite, a rate
of 2 gamma, a missing kinetic pressure, ...). ``pytest -s`` prints the numbers.

The model: a nearest-neighbour Morse potential (copper's depth and stiffness, r0 =
2.55 Å, so that ideal fcc with a = 2.55 sqrt(2) Å is at zero pressure) whose switch
(2.71 -> 2.95 Å) lies between the first (2.55 Å) and second (3.61 Å) fcc shells. Its
static equation of state is analytic, and the 2x2x2 cubic cell (7.2 Å wide) needs no
replication. A longer cutoff inside the second shell (e.g. r_max = 3.2 Å) is a trap for
NPT: the Morse tail still has ~0.2 eV per pair at the cutoff, which pulls second-shell
pairs in, and at 5 GPa the 32-atom cell slowly transformed (192 -> 217 pairs within
r_max, the volume drifting 8 % in 120 ps), which no fcc equation of state describes.
"""

import time

import numpy as np
import pytest
from ase.build import bulk
from ase.cluster import Icosahedron
from scipy import optimize, stats

import jaxmlp
from jaxmlp.md import (
    Ensemble,
    MDOptions,
    Programs,
    advance,
    guards_for,
    make_simulation,
    run_md,
    start,
)
from jaxmlp.md.observables import THERMO_COLUMNS, kinetic_energy, thermo_rows
from jaxmlp.units import EV_PER_A3_IN_GPA, KB

pytestmark = pytest.mark.slow  # long end-to-end / sampling tests

DEPTH, STIFFNESS, R0 = 0.3429, 1.3588, 2.55  # eV, 1/Å, Å
R_MAX, SWITCH_ON = 2.95, 0.92  # Å; the switch starts at 2.714 Å
A0 = R0 * np.sqrt(
    2.0
)  # Å, zero-pressure fcc lattice constant (nearest neighbours only)
COLUMN = {name: i for i, name in enumerate(THERMO_COLUMNS)}


@pytest.fixture(scope="module")
def morse():
    return jaxmlp.build_model(
        "morse",
        species=("Cu",),
        r_max=R_MAX,
        switch_on=SWITCH_ON,
        distance=R0,
        depth=DEPTH,
        stiffness=STIFFNESS,
    )


def fcc32(a=A0):
    """32 Cu atoms, cubic cell 2a wide (> 2 (r_max + skin) = 6.9 Å: no replication)."""
    return bulk("Cu", "fcc", a=a, cubic=True).repeat((2, 2, 2))


# -- statistics ----------------------------------------------------------------------


def mean_and_error(series, min_blocks: int = 16):
    """Mean and its standard error of ``series`` [n_replicas, n_frames] (or [n_frames]).

    Flyvbjerg–Petersen blocking: neighbouring frames are averaged pairwise, level by
    level; each level's error is the standard deviation of all blocks of all
    (independent) replicas over sqrt(number of blocks). The error grows until blocks are
    longer than the correlation time and then plateaus; the largest over all levels
    with at least ``min_blocks`` blocks per replica is returned (conservative).
    """
    x = np.atleast_2d(np.asarray(series, np.float64))
    mean = float(x.mean())
    errors = []
    while x.shape[1] >= min_blocks:
        blocks = x.ravel()
        errors.append(blocks.std(ddof=1) / np.sqrt(blocks.size))
        n = x.shape[1] // 2 * 2
        x = 0.5 * (x[:, 0:n:2] + x[:, 1:n:2])
    return mean, float(max(errors))


def report(name, value, error, expected, wrong=None, wrong_name="old"):
    """Print one comparison; return (z of the expected value, z of the wrong one)."""
    z = (value - expected) / error
    line = (
        f"{name}: {value:.5g} +- {error:.2g} (expected {expected:.5g}, {z:+.2f} sigma)"
    )
    z_wrong = None
    if wrong is not None:
        z_wrong = (wrong - value) / error
        line += f"; {wrong_name} answer {wrong:.5g} is {abs(z_wrong):.1f} sigma away"
    print(line)
    return z, z_wrong


# -- running -------------------------------------------------------------------------


def sample(
    sim,
    programs,
    params,
    n_frames,
    observe,
    *,
    stride=5,
    seed=0,
    momenta=None,
    frames_per_chunk=1000,
):
    """Run from a fresh start and return ``observe(frames)`` concatenated over frames."""
    out = []
    progress = start(sim, programs, params, seed=seed, momenta=momenta)
    advance(
        sim,
        programs,
        params,
        progress,
        n_frames,
        stride=stride,
        frames_per_chunk=min(frames_per_chunk, n_frames),
        kT=sim.kT,
        guards=guards_for(sim),
        on_frames=lambda frames, first_step: out.append(observe(frames)),
    )
    return np.concatenate(out)


def kinetic_of(sim):
    masses = np.asarray(sim.system.masses, np.float64)
    return lambda frames: kinetic_energy(np.asarray(frames.momenta, np.float64), masses)


def thermo_of(sim, stride):
    """Frames -> thermo rows (the columns run_md writes), first_step irrelevant here."""
    return lambda frames: thermo_rows(
        frames,
        sim.system.masses,
        sim.dof,
        first_step=0,
        stride=stride,
        timestep=sim.dynamics.timestep,
        periodic=sim.system.periodic,
        conserved=sim.method.conserved_energy,
    )


def minimum_image_distances(positions, cells):
    """[F, n(n-1)/2] pair distances, Å, of frames [F, n, 3] in cells [F, 3, 3] (rows)."""
    d = positions[:, :, None, :] - positions[:, None, :, :]  # [F, n, n, 3]
    s = np.einsum("fijk,fkl->fijl", d, np.linalg.inv(cells))
    s -= np.round(s)
    r = np.linalg.norm(np.einsum("fijk,fkl->fijl", s, cells), axis=-1)
    iu = np.triu_indices(positions.shape[1], 1)
    return r[:, iu[0], iu[1]]


def static_pressure_gpa(a):
    """Analytic static pressure, GPa, of nearest-neighbour Morse fcc with lattice
    constant ``a`` (valid while a / sqrt(2) < the switch onset, 2.714 Å)."""
    r = a / np.sqrt(2.0)
    x = np.exp(-STIFFNESS * (r - R0))
    de_dr = 6.0 * DEPTH * 2.0 * (1.0 - x) * STIFFNESS * x  # per atom: 6 bonds, eV/Å
    dv_dr = 3.0 * r**2 / np.sqrt(2.0)  # volume per atom r^3 / sqrt(2), Å^2
    return -de_dr / dv_dr * EV_PER_A3_IN_GPA


# -- 1. Nosé–Hoover NVT, periodic bulk: dof = 3N - 3 ---------------------------------


def test_nose_hoover_bulk_kinetic_energy_is_canonical(x64, morse):
    """<Ekin> = (3N-3) kT / 2, Var(Ekin) = (3N-3) kT^2 / 2 and the gamma quantiles."""
    t0 = time.perf_counter()
    sim = make_simulation(
        morse,
        fcc32(),
        Ensemble("nvt", timestep=2.0, temperature=600.0, tau_t=50.0),
        dtype="float64",
    )
    n = sim.system.n_atoms
    assert sim.system.repeat == (1, 1, 1) and n == 32 and sim.dof == 3 * n - 3
    programs = Programs()
    # 4 independent replicas (seeds) x 8000 frames of 10 fs; the first 2 ps discarded
    x = (
        np.stack(
            [
                sample(sim, programs, morse.params, 8000, kinetic_of(sim), seed=seed)[
                    200:
                ]
                for seed in range(4)
            ]
        )
        / sim.kT
    )  # Ekin in units of kT
    shape = sim.dof / 2  # canonical Ekin / kT ~ Gamma(dof / 2)

    mean, err = mean_and_error(x)
    z, z_old = report("NH bulk <Ekin>/kT", mean, err, shape, 3 * n / 2, "3N-dof (old)")
    assert abs(z) < 4
    # measured: 46.57 +- 0.08 vs 46.5; the old 48 (+3.2 %) is 18 sigma away
    assert abs(z_old) > 6

    var, var_err = mean_and_error((x - mean) ** 2)
    z, z_nve = report(
        "NH bulk Var(Ekin)/kT^2",
        var,
        var_err,
        shape,
        shape / 2,
        "microcanonical (harmonic)",
    )
    assert abs(z) < 4
    # a non-canonical (e.g. microcanonical) Ekin fluctuates about half as much
    assert abs(z_nve) > 6

    for q in (0.1, 0.5, 0.9):
        below = (x < stats.gamma.ppf(q, shape)).astype(np.float64)
        frac, frac_err = mean_and_error(below)
        z, _ = report(f"NH bulk P(Ekin < gamma {q:.0%} quantile)", frac, frac_err, q)
        assert abs(z) < 4 and frac_err < 0.02
    print(f"  ({time.perf_counter() - t0:.1f} s)")


# -- 2. Nosé–Hoover NVT, free cluster: dof = 3N - 6, P = L = 0 ----------------------


def test_nose_hoover_cluster_kinetic_energy_and_conserved_momenta(x64, morse):
    """A free 13-atom icosahedron: <Ekin> = (3N-6) kT / 2; P and L stay zero."""
    t0 = time.perf_counter()
    atoms = Icosahedron("Cu", noshells=2, latticeconstant=A0)  # bonds 2.55 and 2.68 Å
    atoms.pbc = False
    sim = make_simulation(
        morse,
        atoms,
        Ensemble("nvt", timestep=2.0, temperature=300.0, tau_t=50.0),
        dtype="float64",
    )
    n = sim.system.n_atoms
    assert not sim.system.periodic and n == 13 and sim.dof == 3 * n - 6
    masses = np.asarray(sim.system.masses, np.float64)

    def observe(frames):
        p = np.asarray(frames.momenta, np.float64)  # [F, n, 3]
        x = np.asarray(frames.positions, np.float64)
        x = x - np.einsum("i,fij->fj", masses, x)[:, None, :] / masses.sum()
        total = np.abs(p.sum(1)).max(1)  # [F] amu Å / ASE time
        angular = np.abs(np.cross(x, p).sum(1)).max(1)
        single = np.linalg.norm(np.cross(x, p), axis=-1).max(1)  # one atom's L
        radius = np.linalg.norm(x, axis=-1).max(1)
        return np.stack([kinetic_energy(p, masses), total, angular, single, radius], 1)

    programs = Programs()
    runs = np.stack(
        [
            sample(sim, programs, morse.params, 5000, observe, seed=seed)
            for seed in range(4)
        ]
    )  # [4, F, 5]
    x = runs[:, 200:, 0] / sim.kT
    mean, err = mean_and_error(x)
    z, z_old = report(
        "NH cluster <Ekin>/kT", mean, err, sim.dof / 2, 3 * n / 2, "3N-dof (old)"
    )
    assert abs(z) < 4
    # measured 16.48 +- 0.06 vs 16.5; the old 19.5 (x 39/33) is 53 sigma away
    assert abs(z_old) > 6
    var, var_err = mean_and_error((x - mean) ** 2)
    z, _ = report("NH cluster Var(Ekin)/kT^2", var, var_err, sim.dof / 2)
    assert abs(z) < 4

    max_p, max_l, typical_l = (
        runs[..., 1].max(),
        runs[..., 2].max(),
        runs[..., 3].mean(),
    )
    print(
        f"NH cluster: max |P_total| {max_p:.2g}, max |L_total| {max_l:.2g} "
        f"(one atom's |L| ~ {typical_l:.2g}); max radius {runs[..., 4].max():.2f} Å"
    )
    assert (
        typical_l > 1.0
    )  # the atoms do move and rotate: the bound below means something
    assert max_p < 1e-8 and max_l < 1e-8
    assert runs[..., 4].max() < 4.0  # still one bound cluster
    print(f"  ({time.perf_counter() - t0:.1f} s)")


# -- 3. Langevin: energy relaxation rate gamma; dof = 3N ----------------------------


@pytest.mark.parametrize("friction", [0.002, 0.005])
def test_langevin_energy_relaxes_at_the_friction_rate(x64, morse, friction):
    """From rest at the energy minimum, <E_int>(t) = E_eq - (3N-3) kT exp(-gamma t).

    Why gamma (not 2 gamma): Itô on dp = F dt - gamma p dt + sqrt(2 gamma m kT) dW gives,
    for any potential, d<E>/dt = -gamma (2<Ekin> - 3N kT). For a harmonic mode the
    second moments obey a linear ODE whose eigenvalues are -2 l1, -2 l2, -(l1 + l2) with
    l1,2 = gamma/2 +- i sqrt(w^2 - gamma^2/4): every one has real part -gamma, so each
    underdamped mode's energy approaches kT as exp(-gamma t) times (1 + oscillations of
    relative size ~gamma/w, which dephase over modes). BAOAB keeps this exactly: its
    one-step map has determinant exp(-gamma dt) (A and B are symplectic), so the
    non-oscillating second moments shrink by exactly exp(-gamma dt) per step. The three
    centre-of-mass modes are free particles whose kinetic energy relaxes at 2 gamma, so
    E_int = Epot + Ekin - |P|^2 / 2M is fitted. T = 150 K keeps the solid harmonic.
    """
    t0 = time.perf_counter()
    temperature, timestep, stride, n_replicas = 150.0, 2.0, 5, 40
    sim = make_simulation(
        morse,
        fcc32(),
        Ensemble(
            "nvt-langevin",
            timestep=timestep,
            temperature=temperature,
            friction=friction,
        ),
        dtype="float64",
    )
    n, kT = sim.system.n_atoms, sim.kT
    masses = np.asarray(sim.system.masses, np.float64)

    def observe(frames):
        p = np.asarray(frames.momenta, np.float64)
        k_com = (p.sum(1) ** 2).sum(-1) / (2 * masses.sum())
        return np.asarray(frames.energy, np.float64) + kinetic_energy(p, masses) - k_com

    n_frames = int(6.0 / friction / timestep) // stride  # six relaxation times
    programs = Programs()
    energy = np.stack(
        [
            sample(
                sim,
                programs,
                morse.params,
                n_frames,
                observe,
                stride=stride,
                seed=seed,
                momenta=np.zeros((n, 3)),
                frames_per_chunk=n_frames,
            )
            for seed in range(n_replicas)
        ]
    )  # [R, F] eV
    t = timestep * stride * np.arange(1, n_frames + 1)  # fs

    def relaxation(t, e_eq, amplitude, rate):
        return e_eq - amplitude * np.exp(-rate * t)

    def fit(mean_energy):
        p0 = (mean_energy[-1], (3 * n - 3) * kT, friction)
        return optimize.curve_fit(relaxation, t, mean_energy, p0=p0)[0]

    best = fit(energy.mean(0))
    jack = np.array([fit(np.delete(energy, i, 0).mean(0)) for i in range(n_replicas)])
    error = np.sqrt((n_replicas - 1) / n_replicas * ((jack - jack.mean(0)) ** 2).sum(0))
    z, z_two = report(
        f"Langevin rate (gamma {friction} 1/fs)",
        best[2],
        error[2],
        friction,
        2 * friction,
        "kinetic-only 2 gamma",
    )
    assert abs(z) < 4
    # measured: sigma 4.5 / 6 % of gamma; 2 gamma is 23 / 18 sigma away, and a friction taken
    # in 1/(ASE time) instead of 1/fs (x 10.18) would be off the scale
    assert abs(z_two) > 6
    amplitude = best[1] / ((3 * n - 3) * kT)
    print(
        f"  amplitude {amplitude:.3f} +- {error[1] / ((3 * n - 3) * kT):.3f} of (3N-3) kT"
        f" (harmonic equipartition); ({time.perf_counter() - t0:.1f} s)"
    )
    assert abs(amplitude - 1.0) < 0.1  # anharmonicity at 150 K: a few per cent


def test_langevin_kinetic_energy_has_3n_degrees_of_freedom(x64, morse, tmp_path):
    """Through run_md: <Ekin> = 3N kT / 2 (noise acts on the centre of mass too) and the
    thermo T_K column, 2 Ekin / (3N kB), averages to the target."""
    t0 = time.perf_counter()
    temperature, stride = 600.0, 10
    ensemble = Ensemble(
        "nvt-langevin", timestep=2.0, temperature=temperature, friction=0.02
    )
    means = []
    for seed in range(2):
        result = run_md(
            morse,
            fcc32(),
            ensemble,
            steps=30000,
            out_dir=tmp_path / f"seed{seed}",
            options=MDOptions(
                dtype="float64",
                stride=stride,
                frames_per_chunk=500,
                plots=False,
                seed=seed,
            ),
        )
        means.append(result.thermo)
    n = result.n_atoms
    assert result.dof == 3 * n
    kT = KB * temperature
    x = np.stack([th["Ekin_eV"][100:] for th in means]) / kT
    mean, err = mean_and_error(x)
    z, z_wrong = report(
        "Langevin <Ekin>/kT",
        mean,
        err,
        1.5 * n,
        (3 * n - 3) / 2,
        "momentum-conserving (3N-3)",
    )
    assert abs(z) < 4
    # measured 48.03 +- 0.16; 46.5 (-3 %) would be 10 sigma away
    assert abs(z_wrong) > 6
    temps = np.stack([th["T_K"][100:] for th in means])
    t_mean, t_err = mean_and_error(temps)
    z, _ = report("Langevin <T_K>", t_mean, t_err, temperature)
    assert abs(z) < 4
    var, var_err = mean_and_error((x - mean) ** 2)
    z, _ = report("Langevin Var(Ekin)/kT^2", var, var_err, 1.5 * n)
    assert abs(z) < 4
    print(f"  ({time.perf_counter() - t0:.1f} s)")


# -- 4. NPT: <P> = P_ext, V consistent with the NVT equation of state ---------------


def test_npt_pressure_volume_and_kinetic_energy(x64, morse):
    """MTK NPT at 5 GPa, 300 K on 32 atoms.

    Judged by: <P_thermo> = P_ext (exact in the NPT ensemble); <Ekin> = (3N-3) kT/2;
    <V> above the static volume at P_ext (thermal expansion, < 3 %); independent NVT
    runs of the same system at V = <V> and <V>(1 +- 1 %) give P_NVT(<V>) = P_ext -
    P''(V) Var(V) / 2 (from <P_NVT(V)>_NPT = P_ext, expanded to second order) and
    Var(V) = kT / (-dP_NVT/dV) (the NPT volume distribution is exp(-beta int (P_ext -
    P_NVT) dV) exactly, Gaussian to leading order).
    """
    t0 = time.perf_counter()
    pressure, temperature, stride = 5.0, 300.0, 5
    a_static = optimize.brentq(lambda a: static_pressure_gpa(a) - pressure, 3.3, A0)
    # the analytic EOS is the model's (independent calculator path)
    probe = bulk("Cu", "fcc", a=a_static, cubic=True)
    probe.calc = jaxmlp.JaxMLPCalculator(morse, dtype="float64")
    assert -probe.get_stress()[:3].mean() * EV_PER_A3_IN_GPA == pytest.approx(
        pressure, abs=1e-3
    )
    v_static = 8 * a_static**3  # Å^3 of 32 atoms

    ensemble = Ensemble(
        "npt",
        timestep=2.0,
        temperature=temperature,
        pressure=pressure,
        tau_t=50.0,
        tau_p=250.0,
    )
    sim = make_simulation(morse, fcc32(a_static), ensemble, dtype="float64")
    n, kT = sim.system.n_atoms, sim.kT
    assert sim.dof == 3 * n - 3
    thermo = thermo_of(sim, stride)
    last = {}

    def observe(frames):
        last["positions"], last["cell"] = frames.positions[-1:], frames.cell[-1:]
        return thermo(frames)

    rows = sample(sim, Programs(), morse.params, 12000, observe, stride=stride)[400:]
    p_npt, v_npt = rows[:, COLUMN["pressure_GPa"]], rows[:, COLUMN["volume_A3"]]
    ideal_gpa = (n - 1) * kT / v_npt.mean() * EV_PER_A3_IN_GPA  # kinetic pressure

    mean, err = mean_and_error(p_npt)
    z, z_kin = report(
        "NPT <P> GPa", mean, err, pressure, pressure - ideal_gpa, "no kinetic term"
    )
    assert abs(z) < 4
    # the barostat pins the time integral of P - P_ext, so the mean converges fast
    # (measured 5.000 +- 0.012 GPa): a missing (or doubled) kinetic pressure, 0.36 GPa,
    # is ~30 sigma away
    assert abs(z_kin) > 6

    x = rows[:, COLUMN["Ekin_eV"]] / kT
    mean, err = mean_and_error(x)
    z, z_old = report("NPT <Ekin>/kT", mean, err, sim.dof / 2, 1.5 * n, "3N-dof (old)")
    assert abs(z) < 4
    assert abs(z_old) > 6  # measured 46.57 +- 0.13: the old 48 is 11 sigma away

    v_mean, v_err = mean_and_error(v_npt)
    v_var, v_var_err = mean_and_error((v_npt - v_mean) ** 2)
    expansion = v_mean / v_static - 1
    print(
        f"NPT <V> {v_mean:.3f} +- {v_err:.2g} Å^3; static V(5 GPa) {v_static:.3f}: "
        f"thermal expansion {100 * expansion:.2f} %"
    )
    assert 4 * v_err < v_mean - v_static and expansion < 0.03
    r = minimum_image_distances(last["positions"], last["cell"])
    assert (r < R_MAX).sum() == 6 * n  # still fcc: 12 neighbours each

    # independent NVT runs at fixed volumes around <V>
    programs = Programs()
    p_nvt = {}
    for scale in (1.0, 0.99, 1.01):
        a = (scale * v_mean / 8) ** (1 / 3)
        nvt = make_simulation(
            morse,
            fcc32(a),
            Ensemble("nvt", timestep=2.0, temperature=temperature, tau_t=50.0),
            dtype="float64",
        )
        p_nvt[scale] = mean_and_error(
            np.stack(
                [
                    sample(
                        nvt,
                        programs,
                        morse.params,
                        4000,
                        thermo_of(nvt, stride),
                        seed=seed,
                    )[200:, COLUMN["pressure_GPa"]]
                    for seed in range(2)
                ]
            )
        )
    h = 1e-4 * a_static  # curvature of the static EOS, GPa / Å^6 (thermal part ~1 %)
    a_mean = (v_mean / 8) ** (1 / 3)
    dp_da2 = (
        static_pressure_gpa(a_mean + h)
        - 2 * static_pressure_gpa(a_mean)
        + static_pressure_gpa(a_mean - h)
    ) / h**2
    dp_da = (static_pressure_gpa(a_mean + h) - static_pressure_gpa(a_mean - h)) / (
        2 * h
    )
    dv_da = 24 * a_mean**2
    p2 = (dp_da2 - dp_da * 48 * a_mean / dv_da) / dv_da**2  # d2P/dV2 by the chain rule
    expected = pressure - 0.5 * p2 * v_var
    slope = (p_nvt[1.01][0] - p_nvt[0.99][0]) / (0.02 * v_mean)  # GPa / Å^3
    combined = np.hypot(p_nvt[1.0][1], abs(slope) * v_err)
    z, z_kin = report(
        "NVT P(<V>_NPT) GPa",
        p_nvt[1.0][0],
        combined,
        expected,
        expected - ideal_gpa,
        "no kinetic term",
    )
    print(f"  (second-order correction {-0.5 * p2 * v_var:+.3f} GPa)")
    assert abs(z) < 4 and abs(z_kin) > 6

    slope_err = np.hypot(p_nvt[1.01][1], p_nvt[0.99][1]) / (0.02 * v_mean)
    expected_var = kT * EV_PER_A3_IN_GPA / -slope  # Å^6
    var_err = np.hypot(v_var_err, expected_var * slope_err / abs(slope))
    bulk_modulus = -slope * v_mean
    z, _ = report(
        "NPT Var(V) Å^6",
        v_var,
        var_err,
        expected_var,
        1.25 * expected_var,
        "25 % too wide",
    )
    print(
        f"  (NVT bulk modulus {bulk_modulus:.1f} GPa); ({time.perf_counter() - t0:.1f} s)"
    )
    # a volume distribution 25 % too wide or too narrow is > 4 sigma away
    assert abs(z) < 4 and var_err < expected_var / 16


# -- 5. NVE: energy conservation with pairs crossing the cutoff ---------------------


def nve_run(model, timestep, n_frames, temperature=3500.0):
    """NVE from fcc32 with seed-0 momenta at ``temperature``: frames every 5 fs as
    {"E": total energy eV, "K": kinetic eV, "x": positions Å, "cell": rows Å}."""
    sim = make_simulation(
        model,
        fcc32(),
        Ensemble("nve", timestep=timestep, temperature=temperature),
        dtype="float64",
    )
    masses = np.asarray(sim.system.masses, np.float64)

    def observe(frames):
        p = np.asarray(frames.momenta, np.float64)
        k = kinetic_energy(p, masses)
        return np.concatenate(
            [
                (np.asarray(frames.energy, np.float64) + k)[:, None],
                k[:, None],
                np.asarray(frames.positions, np.float64).reshape(len(k), -1),
                np.asarray(frames.cell, np.float64).reshape(len(k), -1),
            ],
            1,
        )

    out = sample(
        sim, Programs(), model.params, n_frames, observe, stride=round(5.0 / timestep)
    )
    n = sim.system.n_atoms
    return {
        "E": out[:, 0],
        "K": out[:, 1],
        "x": out[:, 2 : 2 + 3 * n].reshape(-1, n, 3),
        "cell": out[:, 2 + 3 * n :].reshape(-1, 3, 3),
    }


def test_nve_conserves_energy_while_pairs_cross_the_cutoff(x64, morse):
    """Hot (~2000 K) 32-atom Morse copper, dt = 1 fs: > 1000 pair crossings of r_max
    (between the neighbour shells, and counted only between 5-fs frames, a lower bound),
    no drift, fluctuations tiny and scaling as dt^2 (a missed pair or a non-smooth
    cutoff would not scale)."""
    t0 = time.perf_counter()
    # the same initial momenta (seed 0); frames every 5 fs
    runs = {1.0: nve_run(morse, 1.0, 4000), 0.5: nve_run(morse, 0.5, 800)}
    n = 32
    run = runs[1.0]
    inside = minimum_image_distances(run["x"], run["cell"]) < R_MAX  # [F, pairs]
    crossings = int((inside[1:] != inside[:-1]).sum())
    t_ps = 5e-3 * np.arange(1, len(run["E"]) + 1)
    slope, intercept = np.polyfit(t_ps, run["E"], 1)
    rms = np.std(run["E"] - (slope * t_ps + intercept))
    temperature = 2 * run["K"].mean() / ((3 * n - 3) * KB)
    print(
        f"NVE: {crossings} crossings of r_max in {t_ps[-1]:.0f} ps at {temperature:.0f} K;"
        f" drift {slope / n:.2e} eV/atom/ps; rms {rms:.2e} eV vs std(Ekin) "
        f"{run['K'].std():.3f} eV"
    )
    assert crossings > 1000
    assert abs(slope / n) < 1e-4
    # measured: 2227 crossings, drift 7e-6 eV/atom/ps, rms 0.2 % of std(Ekin), ratio 4.2;
    # a steeper switch (r_on = 0.97 r_max) fails here at 1.5 %, 0.99 r_max drifts
    assert rms < 5e-3 * run["K"].std()

    def fluctuation(r, frames):  # the same 4 ps of each run
        e = r["E"][:frames]
        return np.std(
            e - np.polyval(np.polyfit(np.arange(frames), e, 1), np.arange(frames))
        )

    ratio = fluctuation(runs[1.0], 800) / fluctuation(runs[0.5], 800)
    print(
        f"  rms(dt = 1 fs) / rms(dt = 0.5 fs) = {ratio:.2f} (dt^2: 4); "
        f"({time.perf_counter() - t0:.1f} s)"
    )
    assert 3.0 < ratio < 5.5
