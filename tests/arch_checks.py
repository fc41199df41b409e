"""The end-to-end check every architecture's test file runs: train from a YAML-style
config on EMT copper, save and load the model file, run float64 NVE MD, and judge every
frame with a fresh ``JaxMLPCalculator``."""

import ase.io
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

import jaxmlp


def cu_frames(n=8):
    """``n`` rattled fcc Cu cells (4 and 8 atoms) labelled with ASE's EMT."""
    frames = []
    for i in range(n):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((1 + i % 2, 1, 1))
        atoms.rattle(0.08, seed=i)
        atoms.calc = EMT()
        atoms.info["REF_energy"] = atoms.get_potential_energy()
        atoms.arrays["REF_forces"] = atoms.get_forces()
        atoms.calc = None
        frames.append(atoms)
    return frames


def train_and_check_md(tmp_path, model_section: dict, frames=None):
    """Train 3 epochs, reload from the file, run 40 NVE steps; returns (fit result,
    reloaded model). Asserts a finite, decreasing training loss and that every frame's
    energy equals a fresh float64 calculator on the written positions."""
    from jaxmlp.md import Ensemble, MDOptions, run_md
    from jaxmlp.train import config_from_dict, fit

    name = model_section["name"]
    data = tmp_path / "cu.xyz"
    ase.io.write(data, cu_frames() if frames is None else frames, format="extxyz")
    config = config_from_dict(
        {
            "model": model_section,
            "data": {
                "train_file": str(data),
                "valid_fraction": 0.25,
                "test_fraction": 0.0,
            },
            "train": {
                "epochs": 3,
                "batch_size": 2,
                "learning_rate": 0.01,
                "num_buckets": 1,
                "progress": False,
            },
            "output": str(tmp_path / "run"),
        }
    )
    result = fit(config)
    assert result.model.config.name == name and len(result.history) == 3
    losses = [h["train_loss"] for h in result.history]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    path = tmp_path / "model.jaxmlp"
    jaxmlp.save_model(result.model, path)
    model = jaxmlp.load_model(path)

    out = run_md(
        model,
        bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2),
        Ensemble("nve", timestep=2.0, temperature=600.0),
        steps=40,
        out_dir=tmp_path / "md",
        options=MDOptions(stride=10, dtype="float64", seed=0, plots=False),
    )
    assert out.message == "completed"
    trajectory = ase.io.read(out.trajectory, index=":")
    assert len(trajectory) >= 4
    for frame, e_pot in zip(trajectory[1:], out.thermo["Epot_eV"][1:]):
        stored = frame.get_potential_energy()  # the trajectory's full-precision value
        assert stored == pytest.approx(e_pot, rel=1e-9)  # the CSV keeps 10 digits
        frame.calc = jaxmlp.JaxMLPCalculator(model, dtype="float64")
        # extxyz keeps positions to 1e-8 Å: the recomputed energy may move by up to
        # sum |F| * 5e-9 eV on top of 1e-8
        rounding = 5e-9 * np.abs(frame.get_forces()).sum()
        assert frame.get_potential_energy() == pytest.approx(
            stored, abs=1e-8 + rounding
        )
    assert np.ptp(out.thermo["Epot_eV"]) > 1e-4  # the atoms moved on a non-flat surface
    return result, model
