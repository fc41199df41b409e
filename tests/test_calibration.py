"""Calibration of committee spreads (``jaxmlp.calibration``) and the spread plumbing.

Judges: the textbook no-ties Spearman formula and a hand example; synthetic Gaussian
errors of known sigma (coverage within binomial noise, a known miscalibration factor
recovered, the NLL minimal at the fitted scale); a fresh calculator for the spread
``evaluate`` returns; a saved and reloaded model file for the stored scale.
"""

import ase.io
import jax
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

import jaxmlp
from jaxmlp.calibration import (
    IDEAL_COVERAGE,
    calibrate,
    calibration_report,
    committee_errors,
    coverage,
    fit_scale,
    gaussian_nll,
    plot_calibration,
    spearman,
)
from jaxmlp.data.dataset import read_structures
from jaxmlp.evaluate import evaluate
from jaxmlp.model_io import load_model, save_model

SCHNET = dict(features=8, num_interactions=1, num_rbf=8)


def test_spearman_against_the_formula_and_a_hand_example():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks a: 1 2 3 4 5, b: 2 1 4 3 5 -> d^2 = 4 -> 1 - 6*4 / (5*24) = 0.8
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50), rng.normal(size=50)
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    n = len(a)
    expected = 1 - 6 * np.sum((ra - rb) ** 2) / (n * (n * n - 1))
    assert spearman(a, b) == pytest.approx(expected, abs=1e-12)
    # ties get average ranks: equal to Pearson of the average ranks
    t = np.array([1, 1, 2, 3, 3, 3])
    u = np.array([5, 6, 7, 8, 9, 9])
    rt = np.array([1.5, 1.5, 3, 5, 5, 5])
    ru = np.array([1, 2, 3, 4, 5.5, 5.5])
    assert spearman(t, u) == pytest.approx(np.corrcoef(rt, ru)[0, 1])


def test_gaussian_errors_of_known_sigma():
    rng = np.random.default_rng(1)
    n = 60_000
    sigma = np.exp(rng.normal(size=(n // 3, 3)))  # heteroscedastic, eV/Å
    errors = sigma * rng.normal(size=sigma.shape)
    for k in (1, 2):
        p = IDEAL_COVERAGE[k]
        assert abs(coverage(errors, sigma, k) - p) < 4 * np.sqrt(p * (1 - p) / n)
    # a committee 3x over-confident: the fitted scale recovers 3
    s = fit_scale(errors, sigma / 3.0)
    assert s == pytest.approx(3.0, rel=0.02)
    nll = lambda f: gaussian_nll(errors, f * sigma / 3.0)  # noqa: E731
    assert nll(s) < nll(0.9 * s) and nll(s) < nll(1.1 * s)
    report = calibration_report(errors, sigma / 3.0, scale=s)
    assert report["coverage_1sigma"] == pytest.approx(IDEAL_COVERAGE[1], abs=0.01)
    assert report["nll"] == pytest.approx(nll(s))
    # spread that tracks the error ranks high; random spread does not
    assert report["spearman_atom_force_spread_vs_error"] > 0.3
    shuffled = rng.permutation(sigma.reshape(-1)).reshape(sigma.shape)
    assert (
        abs(calibration_report(errors, shuffled)["spearman_atom_force_spread_vs_error"])
        < 0.05
    )


def labelled_cu(n, tmp_path):
    frames = []
    for i in range(n):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
        atoms.rattle(0.1, seed=i)
        atoms.calc = EMT()
        atoms.info["REF_energy"] = atoms.get_potential_energy()
        atoms.arrays["REF_forces"] = atoms.get_forces()
        atoms.calc = None
        frames.append(atoms)
    path = tmp_path / "cu.xyz"
    ase.io.write(path, frames)
    return str(path)


def test_evaluate_spread_equals_the_calculator_and_the_scale_round_trips(x64, tmp_path):
    path = labelled_cu(4, tmp_path)
    structures = read_structures(path)
    model = jaxmlp.build_model("schnet", ("Cu",), 3.5, members=4, **SCHNET)
    _, parity = evaluate(model, structures, dtype="float64", return_predictions=True)
    calc = jaxmlp.JaxMLPCalculator(model, dtype="float64")
    expected = []
    for atoms in ase.io.read(path, ":"):
        atoms.calc = calc
        atoms.get_forces()
        expected.append(calc.results["forces_std"])
    np.testing.assert_allclose(
        parity["forces_std"], np.concatenate(expected), atol=1e-10
    )
    assert np.abs(parity["forces_std"]).max() > 1e-3
    # the stored scale multiplies every spread, and survives the model file
    scaled = model.replace(config=model.config.replace(uncertainty_scale=2.5))
    save_model(scaled, tmp_path / "m.jaxmlp")
    loaded = load_model(tmp_path / "m.jaxmlp")
    assert loaded.config.uncertainty_scale == 2.5
    _, p2 = evaluate(loaded, structures, dtype="float64", return_predictions=True)
    np.testing.assert_allclose(p2["forces_std"], 2.5 * parity["forces_std"], rtol=1e-6)
    atoms = ase.io.read(path, index=0)
    atoms.calc = jaxmlp.JaxMLPCalculator(loaded, dtype="float64")
    atoms.get_forces()
    np.testing.assert_allclose(
        atoms.calc.results["forces_std"], 2.5 * expected[0], rtol=1e-6
    )
    # calibrate: the fitted model is the closed-form NLL optimum on that data
    calibrated, report = calibrate(model, structures, dtype="float64")
    e = committee_errors(model, structures, dtype="float64")
    s = np.sqrt(np.mean(e.errors**2 / np.maximum(e.sigma, 1e-8) ** 2))
    assert calibrated.config.uncertainty_scale == pytest.approx(s, rel=1e-6)
    assert report["after"]["nll"] < report["before"]["nll"]
    after = committee_errors(calibrated, structures, dtype="float64")
    plot_calibration({"before": e, "after": after}, tmp_path / "cal.png")
    assert (tmp_path / "cal.png").stat().st_size > 5_000


def test_identical_members_have_zero_spread_and_single_models_none(x64, tmp_path):
    path = labelled_cu(2, tmp_path)
    structures = read_structures(path)
    single = jaxmlp.build_model("schnet", ("Cu",), 3.5, **SCHNET)
    stacked = jax.tree.map(lambda p: np.stack([p, p, p]), single.params)
    same = jaxmlp.Model(single.config.replace(members=3), stacked)
    m1, p1 = evaluate(same, structures, dtype="float64", return_predictions=True)
    m2, p2 = evaluate(single, structures, dtype="float64", return_predictions=True)
    np.testing.assert_allclose(p1["forces_std"], 0.0, atol=1e-12)
    np.testing.assert_allclose(p1["forces_pred"], p2["forces_pred"], atol=1e-12)
    assert m1["forces_mae_meV_per_A"] == pytest.approx(m2["forces_mae_meV_per_A"])
    assert "forces_std" not in p2
    with pytest.raises(ValueError, match="committee"):
        committee_errors(single, structures)
    with pytest.raises(ValueError):
        jaxmlp.ModelConfig("schnet", ("Cu",), 3.5, uncertainty_scale=0.0)


def test_cli_eval_calibrates_a_committee(tmp_path, capsys):
    import json

    from jaxmlp.cli import main

    data = labelled_cu(4, tmp_path)
    committee = tmp_path / "committee.jaxmlp"
    save_model(
        jaxmlp.build_model("schnet", ("Cu",), 3.5, members=3, **SCHNET), committee
    )
    out, fixed = tmp_path / "metrics.json", tmp_path / "calibrated.jaxmlp"
    command = ["eval", str(committee), data, "--json", str(out)]
    command += ["--calibrate", data, "--save-calibrated", str(fixed)]
    assert main(command + ["--plot", str(tmp_path / "cal.png")]) == 0
    assert "spread vs error" in capsys.readouterr().out
    block = json.load(open(out))["calibration"]
    assert block["after"]["nll"] < block["before"]["nll"]
    scale = load_model(fixed).config.uncertainty_scale
    assert scale == pytest.approx(block["fit"]["factor"]) and scale != 1.0
    assert (tmp_path / "cal.png").stat().st_size > 5_000
    single = tmp_path / "single.jaxmlp"
    save_model(jaxmlp.build_model("schnet", ("Cu",), 3.5, **SCHNET), single)
    assert main(["eval", str(single), data, "--calibrate", data]) == 2
    assert "committee" in capsys.readouterr().err
