"""End to end through the CLI: trajectories read back with ASE give the right energies,
forces, momenta (ASE units), kinetic energies, temperatures and pressures; NPT; relax."""

import json

import ase.io
import jax
import numpy as np
import pytest
from ase import units
from ase.build import bulk
from conftest import small_nequip

import jaxmlp
from jaxmlp import JaxMLPCalculator
from jaxmlp.cli import main
from jaxmlp.md import Ensemble, MDOptions, run_md
from jaxmlp.md.analysis import msd, rdf, unwrap, vacf
from jaxmlp.md.trajectory import read_thermo
from jaxmlp.units import KB


@pytest.fixture(scope="module")
def md_model():
    return small_nequip(r_max=3.0, channels=4, num_layers=1, l_max=1)


@pytest.fixture(scope="module")
def files(md_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("md")
    model_path = root / "model.jaxmlp"
    jaxmlp.save_model(md_model, model_path)
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.05, seed=4)
    structure_path = root / "cu.extxyz"
    ase.io.write(structure_path, atoms)
    return root, str(model_path), str(structure_path)


def test_cli_md_trajectory_reads_back_in_ase_units(files, md_model):
    root, model_path, structure_path = files
    out = root / "nve"
    code = main(
        [
            "md",
            model_path,
            structure_path,
            "--ensemble",
            "nve",
            "--temperature",
            "600",
            "--timestep",
            "1.0",
            "--steps",
            "40",
            "--stride",
            "1",
            "--chunk",
            "20",
            "--dtype",
            "float64",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    frames = ase.io.read(out / "trajectory.extxyz", ":")
    thermo = read_thermo(out / "thermo.csv")
    assert len(frames) == len(thermo["step"]) == 41
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["compilations"] == 3 and summary["steps"] == 40
    )  # init, frame 0, chunk
    for name in ("thermo.png", "rdf.png", "msd.png"):
        assert (out / name).stat().st_size > 1000
    np.testing.assert_allclose(
        [a.get_potential_energy() for a in frames], thermo["Epot_eV"], rtol=1e-8
    )
    np.testing.assert_allclose(
        [a.get_kinetic_energy() for a in frames], thermo["Ekin_eV"], rtol=1e-6
    )
    # T uses the 3N - 3 degrees of freedom NVE samples (ASE's get_temperature uses 3N)
    assert summary["dof"] == 3 * len(frames[0]) - 3
    np.testing.assert_allclose(
        [2 * a.get_kinetic_energy() / (summary["dof"] * KB) for a in frames],
        thermo["T_K"],
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        [a.get_temperature() * 3 * len(a) / summary["dof"] for a in frames],
        thermo["T_K"],
        rtol=1e-6,
    )
    assert 200 < thermo["T_K"][0] < 1200  # Maxwell-Boltzmann at 600 K, 32 atoms
    # forces and stress of a frame: recompute with the ASE calculator
    frame = frames[17]
    atoms = frame.copy()
    atoms.calc = JaxMLPCalculator(md_model, dtype="float64")
    assert np.abs(frame.get_forces()).max() > 0.05
    np.testing.assert_allclose(frame.get_forces(), atoms.get_forces(), atol=1e-6)
    np.testing.assert_allclose(frame.get_stress(), atoms.get_stress(), atol=1e-7)
    # pressure column = ASE's pressure including the ideal-gas (kinetic) term
    stress = frame.get_stress(include_ideal_gas=True)
    np.testing.assert_allclose(
        thermo["pressure_GPa"][17], -stress[:3].mean() / units.GPa, rtol=1e-5
    )
    # ASE velocities (momenta / masses, ASE time unit) against positions' central
    # differences in Å/fs: checks the 1 amu Å²/fs² = 103.6427 eV conversion
    positions = unwrap(
        np.stack([a.get_positions() for a in frames]),
        np.stack([a.cell[:] for a in frames]),
    )
    v_fd = (positions[2:] - positions[:-2]) / 2.0  # Å/fs, dt = 1 fs
    v_ase = np.stack([a.get_velocities() for a in frames[1:-1]]) * units.fs  # Å/fs
    assert np.abs(v_ase).max() > 1e-3
    np.testing.assert_allclose(v_fd, v_ase, atol=2e-3 * np.abs(v_ase).max())
    # energy conservation is visible in the log
    assert np.ptp(thermo["Etot_eV"]) < 0.02 * np.ptp(thermo["Ekin_eV"]) + 1e-3


def test_cli_relax(files, md_model):
    root, model_path, structure_path = files
    out = root / "relaxed.extxyz"
    assert (
        main(["relax", model_path, structure_path, "--out", str(out), "--fmax", "0.01"])
        == 0
    )
    relaxed = ase.io.read(out)
    start = ase.io.read(structure_path)
    relaxed.calc = JaxMLPCalculator(md_model, dtype="float64")
    start.calc = JaxMLPCalculator(md_model, dtype="float64")
    assert np.linalg.norm(start.get_forces(), axis=1).max() > 0.05
    assert np.linalg.norm(relaxed.get_forces(), axis=1).max() < 0.011
    assert relaxed.get_potential_energy() < start.get_potential_energy()


@pytest.mark.slow
def test_npt_conserves_its_extended_energy(files, md_model, tmp_path):
    _, _, structure_path = files
    atoms = ase.io.read(structure_path)
    with jax.enable_x64(True):
        result = run_md(
            md_model,
            atoms,
            Ensemble(
                "npt",
                temperature=300.0,
                pressure=2.0,
                timestep=2.0,
                tau_t=50.0,
                tau_p=300.0,
            ),
            steps=60,
            out_dir=tmp_path,
            options=MDOptions(
                dtype="float64", stride=6, frames_per_chunk=10, plots=False
            ),
        )
    thermo = result.thermo
    assert result.message == "completed"
    assert np.ptp(thermo["volume_A3"]) > 0.05  # the box moves
    # Martyna-Tobias-Klein: Epot + Ekin + thermostat + barostat + P V is conserved
    assert np.ptp(thermo["conserved_eV"]) < 0.05 * np.ptp(thermo["Etot_eV"])
    frames = ase.io.read(result.trajectory, ":")
    np.testing.assert_allclose(
        [a.get_volume() for a in frames], thermo["volume_A3"], rtol=1e-6
    )


def test_analysis_on_a_known_lattice():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((3, 3, 3))
    positions = np.stack([atoms.get_positions()] * 2)
    cells = np.stack([atoms.cell[:]] * 2)
    r, g = rdf(positions, cells, r_max=5.0, n_bins=200)
    first_peak = r[np.argmax(g)]
    assert abs(first_peak - 3.61 / np.sqrt(2)) < 0.03
    # 12 neighbors in the first shell
    dr = r[1] - r[0]
    density = (len(atoms) - 1) / atoms.get_volume()  # neighbours per atom: N - 1 others
    shell = (r > 2.3) & (r < 2.8)
    assert abs(np.sum(4 * np.pi * r[shell] ** 2 * g[shell] * dr * density) - 12) < 0.5
    # a drift of 0.3 Å per frame across the cell is unwrapped: MSD = (0.3 t)^2
    drift = np.array([0.3, 0.0, 0.0])
    wrapped = np.stack([atoms.get_positions() + t * drift for t in range(40)])
    frac = np.linalg.solve(atoms.cell[:].T, wrapped.reshape(-1, 3).T).T % 1.0
    wrapped = (frac @ atoms.cell[:]).reshape(wrapped.shape)
    np.testing.assert_allclose(
        msd(wrapped, np.stack([atoms.cell[:]] * 40)),
        (0.3 * np.arange(40)) ** 2,
        atol=1e-9,
    )
    v = np.cos(0.2 * np.arange(50))[:, None, None] * np.ones((50, 4, 3))
    c = vacf(v)
    assert c[0] == 1.0 and c[16] < 0  # cos(0.2 t) changes sign near t = 8
