"""Shallow (last-layer) ensembles and the NLL loss.

Judges: every member of a shallow committee, taken out as a single model and evaluated
by its own fresh calculator (mean and spread of those K independent evaluations, for
every neural architecture, float64); the NLL against its formula written in numpy; a
trained committee's spread against its actual errors on held-out EMT structures (an
NLL-trained shallow ensemble must be calibrated within a factor ~2, an MSE-trained one
is overconfident by several times); MD-recorded spreads against the calculator.
"""

import ase.io
import jax
import numpy as np
import pytest
from test_architectures import SMALL
from test_md_committee import check_against_calculator, rotated_cu
from test_train import emt_cu, write_dataset

import jaxmlp
from jaxmlp.data.batching import Labels
from jaxmlp.md import Ensemble, MDOptions, run_md
from jaxmlp.model import head_paths, member_axes
from jaxmlp.potential import Predictions
from jaxmlp.train import ConfigError, config_from_dict, fit
from jaxmlp.train.loss import NLL_MIN_STD, LossWeights, nll_fn

NEURAL = ["schnet", "painn", "nequip", "mace", "bp", "deeppot", "dimenet++"]


def shallow(name, members=3, seed=0):
    return jaxmlp.build_model(
        name,
        ("Cu", "O"),
        4.0,
        seed=seed,
        members=members,
        shallow=True,
        **SMALL[name],
    )


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n == "mace" else n for n in NEURAL],
)
def test_members_share_the_trunk_and_match_their_own_calculators(name):
    model = shallow(name)
    single = jaxmlp.build_model(name, ("Cu", "O"), 4.0, seed=0, **SMALL[name])
    heads = head_paths(model.config)
    flat = jax.tree_util.tree_flatten_with_path(model.params)[0]
    assert heads
    for (path, leaf), one in zip(flat, jax.tree.leaves(single.params)):
        key = jax.tree_util.keystr(path)  # only the last layer has the member axis
        expected = (3, *one.shape) if key in heads else one.shape
        assert leaf.shape == expected, key
    n_single = sum(np.size(p) for p in jax.tree.leaves(single.params))
    n_heads = sum(
        np.size(leaf) for path, leaf in flat if jax.tree_util.keystr(path) in heads
    )
    assert model.num_params() == n_single + 2 * n_heads // 3  # trunk once, K heads
    # member 0 is the single model of the same seed
    for a, b in zip(
        jax.tree.leaves(model.member(0).params), jax.tree.leaves(single.params)
    ):
        np.testing.assert_array_equal(a, b)

    atoms = rotated_cu(seed=1)[:12]
    atoms.symbols[::4] = "O"
    calc = jaxmlp.JaxMLPCalculator(model, dtype="float64")
    atoms.calc = calc
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    energies, member_forces = [], []
    for k in range(3):
        other = atoms.copy()
        other.calc = jaxmlp.JaxMLPCalculator(model.member(k), dtype="float64")
        energies.append(other.get_potential_energy())
        member_forces.append(other.get_forces())
    member_forces = np.array(member_forces)
    np.testing.assert_allclose(energy, np.mean(energies), rtol=1e-10)
    np.testing.assert_allclose(forces, member_forces.mean(0), atol=1e-10)
    np.testing.assert_allclose(
        calc.results["forces_std"], member_forces.std(0), atol=1e-10
    )
    np.testing.assert_allclose(calc.results["energy_std"], np.std(energies), atol=1e-10)
    assert calc.results["forces_std_max"] > 1e-4  # the heads really differ


def test_classical_models_cannot_be_shallow_and_keys_are_checked(tmp_path):
    with pytest.raises(ValueError, match="no last-layer parameters"):
        jaxmlp.build_model("lj", ("Cu",), 4.0, members=2, shallow=True)
    with pytest.raises(ValueError, match="needs a committee"):
        jaxmlp.build_model("schnet", ("Cu",), 4.0, shallow=True)
    data = str(tmp_path / "x.xyz")
    base = {"data": {"train_file": data}, "output": str(tmp_path / "run")}
    cases = [
        ({"name": "schnet", "r_max": 3.0, "shallow": True}, {}, "needs model.ensemble"),
        (
            {"name": "lj", "r_max": 3.0, "ensemble": 2, "shallow": True},
            {},
            "last-layer",
        ),
        (
            {"name": "schnet", "r_max": 3.0, "ensemble": 2, "shallow": 1},
            {},
            "true or false",
        ),
        ({"name": "schnet", "r_max": 3.0}, {"loss": "nll"}, "needs a committee"),
        ({"name": "schnet", "r_max": 3.0}, {"loss": "l1"}, "mse, huber or nll"),
    ]
    for model, train, message in cases:
        with pytest.raises(ConfigError, match=message):
            config_from_dict(base | {"model": model, "train": train})


def test_nll_equals_its_numpy_formula():
    rng = np.random.default_rng(0)
    k, g, n = 4, 3, 7
    members = Predictions(
        energy=rng.normal(size=(k, g)),
        node_energies=np.zeros((k, n)),
        forces=rng.normal(size=(k, n, 3)),
        stress=rng.normal(size=(k, g, 3, 3)),
    )
    labels = Labels(
        energy=rng.normal(size=g),
        forces=rng.normal(size=(n, 3)),
        stress=rng.normal(size=(g, 3, 3)),
        energy_mask=np.array([True, True, False]),
        forces_mask=np.array([True] * 5 + [False] * 2),
        stress_mask=np.array([True, False, False]),
        n_atoms=np.array([2.0, 5.0, 1.0]),
    )
    weights = LossWeights(1.0, 10.0, 3.0)
    with jax.enable_x64(True):
        got = float(nll_fn(members, labels, weights))

    def nll(pred, label, mask):
        mu, var = pred.mean(0)[mask], pred.var(0)[mask] + NLL_MIN_STD**2
        return np.mean(0.5 * ((mu - label[mask]) ** 2 / var + np.log(var)))

    n_atoms = labels.n_atoms
    expected = (
        1.0 * nll(members.energy / n_atoms, labels.energy / n_atoms, labels.energy_mask)
        + 10.0 * nll(members.forces, labels.forces, labels.forces_mask)
        + 3.0 * nll(members.stress, labels.stress, labels.stress_mask)
    )
    assert got == pytest.approx(expected, rel=1e-10)


def held_out_calibration(model, structures):
    """RMS force error / RMS predicted spread and the force MAE (eV/Å) on
    ``structures`` (EMT labels), from fresh calculator evaluations."""
    calc = jaxmlp.JaxMLPCalculator(model, dtype="float64")
    errors, spreads = [], []
    for atoms in structures:
        reference = atoms.get_forces()
        probe = atoms.copy()
        probe.calc = calc
        errors.append(probe.get_forces() - reference)
        spreads.append(calc.results["forces_std"])
    errors, spreads = np.concatenate(errors), np.concatenate(spreads)
    ratio = np.sqrt(np.mean(errors**2) / np.mean(spreads**2))
    return ratio, float(np.mean(np.abs(errors)))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(str(tmp_path_factory.mktemp("shallow")), n=24)


def shallow_config(data, output, loss, **train):
    return config_from_dict(
        {
            "model": {
                "name": "schnet",
                "r_max": 3.6,
                "features": 16,
                "num_interactions": 2,
                "num_rbf": 8,
                "ensemble": 4,
                "shallow": True,
            },
            "data": {"train_file": data, "valid_fraction": 0.2, "test_fraction": 0.0},
            "train": {
                "epochs": 15,
                "batch_size": 4,
                "learning_rate": 0.01,
                "num_buckets": 2,
                "progress": False,
                "seed": 1,
                "loss": loss,
            }
            | train,
            "output": output,
        }
    )


def test_nll_training_calibrates_a_shallow_ensemble(data, tmp_path):
    held_out = [emt_cu(100 + i, (2, 1, 1), rattle=0.08) for i in range(5)]
    nll = fit(shallow_config(data, str(tmp_path / "nll"), "nll"))
    mse = fit(shallow_config(data, str(tmp_path / "mse"), "mse"))
    nll_ratio, nll_mae = held_out_calibration(nll.model, held_out)
    mse_ratio, mse_mae = held_out_calibration(mse.model, held_out)
    assert 0.4 < nll_ratio < 2.5, nll_ratio  # the spread is the error's size
    assert mse_ratio > 3.0, mse_ratio  # MSE heads collapse onto one another
    assert (
        nll_mae < 1.5 * mse_mae
    )  # the likelihood does not buy calibration with accuracy
    # the saved file is the shallow committee and reloads to the same predictions
    loaded = jaxmlp.load_model(nll.run_dir + "/model.jaxmlp")
    assert loaded.config.shallow and loaded.config.members == 4
    assert held_out_calibration(loaded, held_out)[0] == pytest.approx(
        nll_ratio, rel=1e-9
    )
    # the switch from MSE to NLL inside one compiled step: no recompilation; and the
    # automatic recalibration on the validation set is stored in the saved model
    late = fit(
        shallow_config(
            data,
            str(tmp_path / "late"),
            "nll",
            nll_start_epoch=5,
            epochs=8,
            calibrate=True,
        )
    )
    report = late.metrics["calibration"]
    assert report["after"]["nll"] <= report["before"]["nll"]
    saved = jaxmlp.load_model(late.run_dir + "/model.jaxmlp").config.uncertainty_scale
    assert saved == pytest.approx(report["uncertainty_scale_after"])
    assert saved != 1.0
    # one compilation per padding bucket
    assert late.metrics["compiles_train"] <= len(late.metrics["buckets"])
    assert np.isfinite(late.history[-1]["valid_loss"])


def test_md_spread_of_a_shallow_committee_equals_the_calculator(tmp_path):
    model = jaxmlp.build_model(
        "schnet",
        ("Cu",),
        3.6,
        members=3,
        shallow=True,
        features=8,
        num_interactions=2,
        num_rbf=8,
    )
    result = run_md(
        model,
        rotated_cu(),
        Ensemble("nvt-langevin", timestep=2.0, temperature=600.0),
        steps=30,
        out_dir=tmp_path,
        options=MDOptions(dtype="float64", stride=10, frames_per_chunk=3, plots=False),
    )
    assert result.message == "completed"
    check_against_calculator(model, result.trajectory, min_frames=3)
    last = ase.io.read(result.trajectory, -1)
    assert last.arrays["forces_std"].shape == (len(last), 3)
    axes = member_axes(model.config)
    assert any(a is None for a in jax.tree.leaves(axes, is_leaf=lambda a: a is None))
