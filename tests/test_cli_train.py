"""CLI round trip on a tiny config: train -> eval -> load."""

import json

import ase.io
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

import jaxmlp
from jaxmlp.cli import main

pytestmark = pytest.mark.slow  # long end-to-end / sampling tests


def write_frames(path, seeds, stress=True):
    frames = []
    for i in seeds:
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(
            [(1, 1, 1), (2, 1, 1)][i % 2]
        )
        atoms.rattle(0.08, seed=i)
        atoms.calc = EMT()
        atoms.info["REF_energy"] = atoms.get_potential_energy()
        atoms.arrays["REF_forces"] = atoms.get_forces()
        if stress:
            atoms.info["REF_stress"] = atoms.get_stress(voigt=False).reshape(9)
        atoms.calc = None
        frames.append(atoms)
    ase.io.write(path, frames, format="extxyz")
    return path


CONFIG = """
model: {name: nequip, r_max: 3.0, num_layers: 1, channels: 4, l_max: 1, radial_hidden: [8]}
data: {train_file: train.xyz, valid_file: valid.xyz, test_file: test.xyz,
       energy_key: REF_energy, forces_key: REF_forces, stress_key: REF_stress}
train: {epochs: 2, batch_size: 4, learning_rate: 0.005, energy_weight: 1.0,
        forces_weight: 100.0, stress_weight: 10.0, ema_decay: 0.99, seed: 0,
        max_minutes: 20, num_buckets: 1}
output: run
"""


def test_train_eval_load_round_trip(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_frames("train.xyz", range(8))
    write_frames("valid.xyz", range(8, 11))
    write_frames("test.xyz", range(11, 14), stress=False)
    (tmp_path / "config.yaml").write_text(CONFIG)
    assert (
        main(["train", "config.yaml", "--set", "train.epochs=3", "--no-progress"]) == 0
    )
    out = capsys.readouterr().out
    assert "test:" in out and "forces" in out
    log = [json.loads(line) for line in open("run/log.jsonl")]
    assert [r["epoch"] for r in log] == [1, 2, 3]
    for key in (
        "train_forces_mae_meV_per_A",
        "valid_energy_rmse_meV_per_atom",
        "valid_stress_mae_meV_per_A3",
    ):
        assert log[-1][key] > 0
    metrics = json.load(open("run/metrics.json"))
    assert (
        metrics["compiles_train"] <= 1
        and metrics["test"]["stress_mae_meV_per_A3"] is None
    )

    assert main(["eval", "run/model.jaxmlp", "test.xyz", "--json", "m.json"]) == 0
    result = json.load(open("m.json"))
    assert result["n_structures"] == 3
    assert result["stress_mae_meV_per_A3"] is None
    for key in (
        "energy_mae_meV_per_atom",
        "energy_rmse_meV_per_atom",
        "forces_mae_meV_per_A",
        "forces_rmse_meV_per_A",
    ):
        assert result[key] > 0
    assert result["forces_mae_meV_per_A"] == pytest.approx(
        metrics["test"]["forces_mae_meV_per_A"], rel=1e-5
    )

    # The saved model reproduces eval's force MAE through the ASE calculator.
    model = jaxmlp.load_model("run/model.jaxmlp")
    errors = []
    for atoms in ase.io.read("test.xyz", ":"):
        ref = atoms.arrays["REF_forces"]
        atoms.calc = jaxmlp.JaxMLPCalculator(model)
        errors.append(np.abs(atoms.get_forces() - ref).ravel())
    assert 1000 * np.mean(np.concatenate(errors)) == pytest.approx(
        result["forces_mae_meV_per_A"], rel=1e-4
    )
    assert main(["eval", "run/model.jaxmlp", "valid.xyz"]) == 0
    assert "stress" in capsys.readouterr().out


def test_cli_errors_name_the_problem(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text(CONFIG)
    assert main(["train", "config.yaml", "--set", "train.lr=0.1"]) == 2
    assert "train.lr" in capsys.readouterr().err
    assert main(["train", "config.yaml"]) == 2  # data files missing
    assert "train.xyz: no such data file" in capsys.readouterr().err
    assert main(["eval", "nope.jaxmlp", "x.xyz"]) == 2
    assert "nope.jaxmlp" in capsys.readouterr().err


def test_copper_demo_quick_writes_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--copper", "--quick", "--out", str(out)]) == 0
    assert "test force MAE" in capsys.readouterr().out
    for name in (
        "report.md",
        "parity.png",
        "learning_curve.png",
        "md_traces.png",
        "model.jaxmlp",
        "md/trajectory.extxyz",
    ):
        assert (out / name).is_file(), name
    summary = json.load(open(out / "summary.json"))
    assert summary["test"]["n_structures"] == summary["n_test"] > 0
    assert np.isfinite(summary["test"]["forces_mae_meV_per_A"])
    assert summary["compiles_train"] <= summary["n_buckets"]
    report = (out / "report.md").read_text()
    assert (
        f"| forces (meV/Å) | {summary['test']['forces_mae_meV_per_A']:.1f} |" in report
    )
    assert jaxmlp.load_model(out / "model.jaxmlp").config.species == ("Cu",)


MACE_CONFIG = """
model: {name: mace, r_max: 3.0, num_interactions: 2, channels: 4, max_L: 1, max_ell: 2,
        correlation: 3, radial_mlp: [8], readout_mlp: 4}
data: {train_file: train.xyz, valid_file: valid.xyz}
train: {epochs: 2, batch_size: 4, learning_rate: 0.005, seed: 0, num_buckets: 1}
output: run
"""


def test_mace_trains_from_yaml_and_runs_md(tmp_path, monkeypatch):
    """MACE goes through the same YAML -> train -> model file -> `jaxmlp md` path as NequIP."""
    monkeypatch.chdir(tmp_path)
    write_frames("train.xyz", range(8))
    write_frames("valid.xyz", range(8, 10))
    (tmp_path / "config.yaml").write_text(MACE_CONFIG)
    assert main(["train", "config.yaml", "--no-progress"]) == 0
    log = [json.loads(line) for line in open("run/log.jsonl")]
    assert log[-1]["train_loss"] < log[0]["train_loss"]
    model = jaxmlp.load_model("run/model.jaxmlp")
    assert model.config.name == "mace" and dict(model.config.hyper)["correlation"] == 3

    ase.io.write("cu.xyz", bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2)))
    assert (
        main(
            [
                "md",
                "run/model.jaxmlp",
                "cu.xyz",
                "--ensemble",
                "nvt",
                "--temperature",
                "300",
                "--timestep",
                "2",
                "--steps",
                "20",
                "--stride",
                "5",
                "--no-plots",
                "--out",
                "md",
            ]
        )
        == 0
    )
    frames = ase.io.read("md/trajectory.extxyz", ":")
    assert len(frames) == 5
    atoms = frames[-1].copy()
    atoms.calc = jaxmlp.JaxMLPCalculator(model)
    np.testing.assert_allclose(frames[-1].get_forces(), atoms.get_forces(), atol=1e-4)
