"""Committees trained together (``model: {ensemble: K}``): one vmapped train step.

Judges: a committee's member 0 is the single model trained alone from the same seed
(float64, with gradient clipping active, so a committee-wide clip norm would couple the
members and fail this); a member whose bootstrap subset excludes a batch is not moved
by it; the spread of a trained committee is larger far from the training data than on
it (fresh calculator evaluations); a committee of one equals the single model.
"""

import dataclasses

import ase.io
import jax
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from test_train import tiny_config, write_dataset

import jaxmlp
from jaxmlp.data import GraphDataset, make_batch, make_buckets
from jaxmlp.train import ConfigError, config_from_dict, fit
from jaxmlp.train.loop import member_subsets
from jaxmlp.train.loss import LossWeights
from jaxmlp.train.optim import make_optimizer
from jaxmlp.train.step import init_state, make_steps


def committee_config(data, output, ensemble, **train):
    config = tiny_config(data, output, dtype="float64", clip_norm=0.05, epochs=3)
    if ensemble is not None:
        config.model["ensemble"] = ensemble
    config.train = dataclasses.replace(config.train, **train)
    return config


def max_difference(a, b):
    return max(
        float(np.abs(x - y).max())
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(str(tmp_path_factory.mktemp("committee")))


@pytest.mark.slow
def test_member_zero_of_a_committee_is_the_single_model(data, tmp_path):
    single = fit(committee_config(data, str(tmp_path / "single"), None))
    three = fit(committee_config(data, str(tmp_path / "three"), 3))
    one = fit(committee_config(data, str(tmp_path / "one"), 1))
    assert three.model.members == 3 and one.model.members == 1
    assert max_difference(three.model.member(0).params, single.model.params) < 1e-10
    assert max_difference(one.model.member(0).params, single.model.params) < 1e-10
    # members really trained apart from each other, and all moved from their init
    assert max_difference(three.model.member(1).params, single.model.params) > 1e-3
    # logged errors are the committee mean's; a committee of one logs the single's
    for a, b in zip(one.history, single.history):
        assert a["valid_loss"] == pytest.approx(b["valid_loss"], rel=1e-9)
    # the saved file is the committee (members axis, config) and predicts the mean
    loaded = jaxmlp.load_model(three.run_dir + "/model.jaxmlp")
    assert loaded.config == three.model.config
    atoms = ase.io.read(data, index=0)
    atoms.calc = jaxmlp.JaxMLPCalculator(loaded, dtype="float64")
    mean = atoms.get_forces()
    members = []
    for k in range(3):
        atoms.calc = jaxmlp.JaxMLPCalculator(loaded.member(k), dtype="float64")
        members.append(atoms.get_forces())
    np.testing.assert_allclose(mean, np.mean(members, axis=0), atol=1e-6)


def test_bootstrap_mask_leaves_an_excluded_member_untouched():
    cu = bulk("Cu", "fcc", a=3.6, cubic=True)
    cu.rattle(0.1, seed=0)
    cu.calc = EMT()
    s = jaxmlp.Structure.from_ase(cu, source="cu")
    s.energy, s.forces = cu.get_potential_energy(), cu.get_forces()
    ds = GraphDataset.build([s], ("Cu",), 3.0)
    model = jaxmlp.build_model(
        "schnet", ("Cu",), 3.0, members=2, features=8, num_interactions=1, num_rbf=4
    )
    optimizer = make_optimizer(0.01, 10, members=True)
    fns = make_steps(
        model.apply_fn,
        optimizer,
        LossWeights(1.0, 100.0, 0.0),
        member_apply_fn=model.member_apply_fn,
    )
    sizes = make_buckets([ds], 1, 1)[0]
    batch = make_batch(ds, [0], sizes)
    mask = np.zeros((2, sizes.n_graphs), bool)
    mask[0, 0] = True  # member 0 sees the structure, member 1 does not
    state = init_state(model.params, optimizer)
    new, _ = jax.jit(fns.train_step)(state, batch, mask)
    moved = [
        max_difference(
            jax.tree.map(lambda p, k=k: p[k], new.params),
            jax.tree.map(lambda p, k=k: p[k], model.params),
        )
        for k in range(2)
    ]
    assert moved[0] > 1e-4 and moved[1] == 0.0


def test_member_subsets_are_seeded_and_sized():
    a = member_subsets(4, 50, 0.6, seed=3)
    assert a.shape == (4, 50) and (a.sum(1) == 30).all()
    np.testing.assert_array_equal(a, member_subsets(4, 50, 0.6, seed=3))
    assert not np.array_equal(a[0], a[1])
    assert member_subsets(None, 50, 0.6, 3) is None
    assert member_subsets(4, 50, None, 3) is None


@pytest.mark.slow
def test_bootstrap_committee_trains_and_spread_grows_off_distribution(data, tmp_path):
    config = committee_config(
        data,
        str(tmp_path / "boot"),
        4,
        bootstrap_fraction=0.7,
        epochs=8,
        clip_norm=10.0,
    )
    result = fit(config)
    calc = jaxmlp.JaxMLPCalculator(result.model, dtype="float64")
    on = []
    for atoms in ase.io.read(data, ":6"):
        atoms.calc = calc
        atoms.get_potential_energy()
        on.append(calc.results["forces_std_max"])
    far = bulk("Cu", "fcc", a=2.9, cubic=True)  # 19 % compressed: off distribution
    far.rattle(0.08, seed=5)
    far.calc = calc
    far.get_potential_energy()
    assert calc.results["forces_std_max"] > 3 * np.median(on) > 0


def test_ensemble_and_bootstrap_keys_are_validated(tmp_path):
    base = {
        "model": {"name": "schnet", "r_max": 3.0},
        "data": {"train_file": "x.xyz"},
        "output": str(tmp_path),
    }
    for bad in (0, True, 2.5, "3"):
        with pytest.raises(ConfigError, match="ensemble"):
            config_from_dict(base | {"model": {"name": "schnet", "ensemble": bad}})
    with pytest.raises(ConfigError, match="needs model.ensemble"):
        config_from_dict(base | {"train": {"bootstrap_fraction": 0.5}})
    with pytest.raises(ConfigError, match=r"\(0, 1\]"):
        config_from_dict(
            base
            | {
                "model": {"name": "schnet", "ensemble": 2},
                "train": {"bootstrap_fraction": 1.5},
            }
        )
    ok = config_from_dict(base | {"model": {"name": "schnet", "ensemble": 4}})
    assert ok.model["ensemble"] == 4 and "ensemble" not in ok.hyper
