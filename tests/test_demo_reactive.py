"""``jaxmlp demo`` (quick): the closed loop on O2 + H2 on Cu(111), end to end.

Judges besides the files: the test labels are EMT's own energies and forces, the
final MD's frames carry the committee spread a fresh calculator gives, and the two
campaigns labelled with the same oracle.
"""

import json

import ase.io
import numpy as np
import pytest
from ase.calculators.emt import EMT

import jaxmlp
from jaxmlp.cli import main

pytestmark = pytest.mark.slow  # an end-to-end run (about two minutes)


def test_reactive_demo_quick(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    assert "final test force MAE" in capsys.readouterr().out
    for name in (
        "report.md",
        "learning_curves.png",
        "calibration.png",
        "reactions/species.png",
        "reactions/events.csv",
        "md/trajectory.extxyz",
        "uncertainty/rounds.csv",
        "random/rounds.csv",
        "uncertainty/model.jaxmlp",
    ):
        assert (out / name).is_file(), name
    summary = json.load(open(out / "summary.json"))
    assert set(summary["rounds"]) == {"uncertainty", "random"}
    for rows in summary["rounds"].values():
        assert rows[-1]["stage"] == "final"
        assert np.isfinite(rows[-1]["test_forces_mae_meV_per_A"])
    cal = summary["calibration"]
    assert cal["after"]["uncertainty_scale"] == pytest.approx(cal["scale"])
    # the held-out labels are EMT's
    test = ase.io.read(out / "uncertainty" / "test_labelled.extxyz", ":")
    atoms = test[0].copy()
    atoms.calc = EMT()
    assert test[0].info["REF_energy"] == pytest.approx(atoms.get_potential_energy())
    np.testing.assert_allclose(
        test[0].arrays["REF_forces"], atoms.get_forces(), atol=1e-6
    )
    # the final MD's recorded spread is the committee's (fresh calculator, float32)
    model = jaxmlp.load_model(out / "uncertainty" / "model.jaxmlp")
    frame = ase.io.read(out / "md" / "trajectory.extxyz", index=-1)
    atoms = frame.copy()
    atoms.calc = jaxmlp.JaxMLPCalculator(model)
    atoms.get_forces()
    np.testing.assert_allclose(
        frame.info["forces_std_max"],
        atoms.calc.results["forces_std_max"],
        rtol=2e-3,
        atol=2e-4,
    )
    report = (out / "report.md").read_text()
    assert "uncertainty vs random" in report and "Calibration" in report
