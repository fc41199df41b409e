"""Active learning (``jaxmlp learn``) with EMT as the reference.

Judges: EMT itself (the test error of each round against EMT labels must fall), the
failing oracle's own rule (exactly the structures it fails on are reported and none of
them is labelled), an uninterrupted run (a run killed with SIGKILL during labelling
and resumed must end with the same labels), brute force for farthest-point sampling,
and hand-made spreads for the trust levels.
"""

import os
import signal
import subprocess
import sys
import time

import ase.io
import numpy as np
import pytest
import yaml
from ase.build import bulk
from ase.calculators.emt import EMT
from oracles import fails_on

from jaxmlp.active import Oracle, label_one, learn, learn_config_from_dict
from jaxmlp.active.oracle import OracleError, structure_record
from jaxmlp.active.select import (
    Explored,
    classify,
    descriptor,
    farthest_point,
    select,
    thin,
)
from jaxmlp.active.store import LabelStore
from jaxmlp.train.config import ConfigError

TESTS = os.path.dirname(os.path.abspath(__file__))


def cu(seed, rattle):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    atoms.rattle(rattle, seed=seed)
    return atoms


def write_inputs(directory, n_seeds=6, n_test=6):
    seeds = []
    for i in range(n_seeds):
        atoms = cu(i, 0.05)
        atoms.calc = EMT()
        atoms.info["REF_energy"] = atoms.get_potential_energy()
        atoms.arrays["REF_forces"] = atoms.get_forces()
        atoms.calc = None
        seeds.append(atoms)
    ase.io.write(os.path.join(directory, "seeds.xyz"), seeds)
    # unlabelled, hotter: the oracle labels them, and they lie off the seed data
    test = [cu(100 + i, 0.15) for i in range(n_test)]
    ase.io.write(os.path.join(directory, "test.xyz"), test)


def campaign(directory, **changes):
    config = {
        "model": {
            "name": "schnet",
            "r_max": 3.0,
            "ensemble": 3,
            "features": 8,
            "num_interactions": 2,
            "num_rbf": 8,
        },
        "train": {"epochs": 12, "batch_size": 2, "learning_rate": 0.01},
        "data": {
            "initial_file": os.path.join(directory, "seeds.xyz"),
            "test_file": os.path.join(directory, "test.xyz"),
            "valid_fraction": 0.2,
        },
        "oracle": {"calculator": "ase.calculators.emt:EMT", "executor": "serial"},
        "explore": {
            "temperatures": [600, 1200],
            "steps": 200,
            "stride": 10,
            "max_starts": 1,
            "timestep": 2.0,
        },
        "select": {"trust_low": 0.02, "trust_high": 1.0, "per_round": 4},
        "stop": {"max_rounds": 2},
        "output": os.path.join(directory, "out"),
    }
    for key, value in changes.items():
        section, name = key.split("__")
        config[section][name] = value
    return config


@pytest.mark.slow
def test_campaign_improves_the_test_error_and_skips_failed_labels(tmp_path):
    write_inputs(str(tmp_path))
    config = learn_config_from_dict(
        campaign(str(tmp_path), oracle__calculator="oracles:FlakyEMT")
    )
    result = learn(config)
    rows = result.rows
    assert [r["stage"] for r in rows] == ["round", "round", "final"]
    errors = [r["test_forces_mae_meV_per_A"] for r in rows]
    assert errors[-1] < 0.6 * errors[0], errors  # measured against EMT labels
    # the oracle's failures: exactly the structures it fails on, none labelled
    store = LabelStore(result.output)
    failed = {f["id"] for f in store.failures()}
    labelled = {a.info["al_id"] for a in ase.io.read(result.labelled_path, ":")}
    assert not failed & labelled
    for r in (1, 2):
        selected = ase.io.read(
            os.path.join(result.output, f"round_{r:03d}", "selected.extxyz"), ":"
        )
        for atoms in selected:
            uid = atoms.info["al_id"]
            assert (uid in failed) == fails_on(atoms), uid
            assert (uid in labelled) != (uid in failed)
        assert rows[r - 1]["failed_labels"] == sum(fails_on(a) for a in selected)
    test_failed = {u for u in failed if u.startswith("test-")}
    test_frames = ase.io.read(store.test_path, ":")
    assert len(test_frames) + len(test_failed) == 6
    # every label is EMT's energy of its own positions
    for atoms in ase.io.read(result.labelled_path, ":")[-3:]:
        ref = atoms.copy()
        ref.calc = EMT()
        assert atoms.info["REF_energy"] == pytest.approx(ref.get_potential_energy())
    oracle_labelled = [
        a
        for a in ase.io.read(result.labelled_path, ":")
        if not a.info["al_id"].startswith("init-")  # seeds came with their labels
    ]
    assert len(oracle_labelled) >= 4
    assert not any(fails_on(a) for a in oracle_labelled)
    text = open(os.path.join(result.output, "rounds.csv")).read().splitlines()
    assert len(text) == 4 and text[0].startswith("round,stage,labels")
    assert os.path.exists(os.path.join(result.output, "learning_curve.png"))
    assert os.path.exists(result.model_path)
    with pytest.raises(ConfigError, match="--resume"):
        learn(config)


@pytest.mark.slow
def test_kill_during_labelling_then_resume_gives_the_same_labels(tmp_path):
    """SIGKILL of ``jaxmlp learn`` while round 1's labels arrive; ``--resume``
    ends with exactly the labels (ids, positions, energies) of an uninterrupted run."""
    write_inputs(str(tmp_path), n_seeds=4, n_test=2)
    env = dict(
        os.environ, PYTHONPATH=TESTS + os.pathsep + os.environ.get("PYTHONPATH", "")
    )

    def config_file(name):
        data = campaign(
            str(tmp_path),
            oracle__calculator="oracles:SlowEMT",
            oracle__kwargs={"delay": 1.0},
            oracle__executor="process",
            stop__max_rounds=1,
            train__epochs=6,
        )
        data["output"] = str(tmp_path / name)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        return str(path)

    command = [sys.executable, "-m", "jaxmlp", "learn"]
    full = subprocess.run(
        command + [config_file("full")], env=env, capture_output=True, text=True
    )
    assert full.returncode == 0, full.stderr
    cut_config = config_file("cut")
    process = subprocess.Popen(
        command + [cut_config],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    labels = tmp_path / "cut" / "labels"
    deadline = time.time() + 600
    while time.time() < deadline:
        if labels.is_dir() and any(n.startswith("r001-") for n in os.listdir(labels)):
            break
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    n_before = sum(n.startswith("r001-") for n in os.listdir(labels))
    assert 1 <= n_before < 4
    resumed = subprocess.run(
        command + [cut_config, "--resume"], env=env, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    a = ase.io.read(tmp_path / "full" / "labelled.extxyz", ":")
    b = ase.io.read(tmp_path / "cut" / "labelled.extxyz", ":")
    assert [x.info["al_id"] for x in a] == [x.info["al_id"] for x in b]
    assert sum(x.info["al_id"].startswith("r001-") for x in a) == 4
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.positions, y.positions, atol=1e-6)
        assert x.info["REF_energy"] == pytest.approx(y.info["REF_energy"], abs=1e-9)


def test_trust_levels_thinning_and_farthest_point():
    spread = np.array([0.01, 0.05, 0.2, 0.6, np.nan, 0.1])
    np.testing.assert_array_equal(classify(spread, 0.05, 0.5), [0, 1, 1, 2, 2, 1])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4))
    picked = farthest_point(x, 6, first=3)
    # brute force: each pick maximises the distance to the set chosen so far
    for n in range(1, len(picked)):
        d = np.min(np.linalg.norm(x[:, None] - x[picked[:n]][None], axis=-1), axis=1)
        assert d[picked[n]] == pytest.approx(d.max())
    assert farthest_point(np.zeros((5, 2)), 3) == [0]  # duplicates are not picked
    explored = Explored(
        [None] * 6,
        np.array([0.1, 0.3, 0.2, 0.4, 0.15, 0.25]),
        np.array([0, 0, 0, 1, 1, 1]),
        np.array([1, 2, 5, 1, 2, 3]),
    )
    # per trajectory, the most uncertain of each 3-frame window
    assert thin(range(6), explored, 3) == [3, 1, 2]


def test_select_methods():
    frames = [cu(i, 0.05 + 0.02 * i) for i in range(8)]
    spread = np.array([0.01, 0.1, 0.2, 0.3, 0.05, 0.12, 0.9, 0.15])
    explored = Explored(frames, spread, np.arange(8), np.ones(8, int))
    common = dict(trust_low=0.05, trust_high=0.5, min_separation=1)
    common |= dict(species=("Cu",), r_max=3.0, seed=1)
    picked = select(explored, method="uncertainty", per_round=3, **common)
    assert picked[0] == 3 and len(picked) == 3  # the most uncertain candidate first
    assert not set(picked) & {0, 6}  # neither accurate nor failed frames
    random = select(explored, method="random", per_round=5, **common)
    assert len(random) == 5 and random == select(
        explored, method="random", per_round=5, **common
    )
    with pytest.raises(ValueError, match="method"):
        select(explored, method="entropy", per_round=2, **common)


def test_descriptor_is_invariant():
    atoms = cu(0, 0.1)
    d = descriptor(atoms, ("Cu",), 3.0)
    moved = atoms.copy()
    moved.rotate(37, "x", rotate_cell=True)
    moved.rotate(11, "z", rotate_cell=True)
    moved.positions = -moved.positions  # inversion
    moved.cell = -moved.cell.array
    moved = moved[np.random.default_rng(0).permutation(len(moved))]
    np.testing.assert_allclose(descriptor(moved, ("Cu",), 3.0), d, atol=1e-10)
    assert np.linalg.norm(descriptor(cu(1, 0.3), ("Cu",), 3.0) - d) > 1e-3


def test_oracle_resolution_and_failures():
    with pytest.raises(OracleError, match="module:Class"):
        Oracle.from_dict({"calculator": "EMT"})
    with pytest.raises(OracleError, match="cannot import"):
        Oracle.from_dict({"calculator": "no_such_module:EMT"})
    with pytest.raises(OracleError, match="has no"):
        Oracle.from_dict({"calculator": "ase.calculators.emt:Nope"})
    oracle = Oracle.from_dict({"calculator": "oracles:FlakyEMT"})
    frames = [cu(i, 0.1) for i in range(12)]
    results = [
        label_one(oracle, structure_record(str(i), a)) for i, a in enumerate(frames)
    ]
    assert any(r["ok"] for r in results) and any(not r["ok"] for r in results)
    for atoms, r in zip(frames, results):
        assert r["ok"] != fails_on(atoms)
        if r["ok"]:
            atoms.calc = EMT()
            assert r["energy"] == pytest.approx(atoms.get_potential_energy())
            assert r["stress"].shape == (6,)
        else:
            assert "SCF did not converge" in r["error"]


def test_store_is_one_atomic_file_per_label(tmp_path):
    store = LabelStore(tmp_path)
    oracle = Oracle.from_dict({"calculator": "oracles:FlakyEMT"})
    frames = [cu(i, 0.1) for i in range(8)]
    for i, atoms in enumerate(frames):
        record = structure_record(f"r001-{7 - i:04d}", atoms)
        store.add(record, label_one(oracle, record), 1)
    n_labels, n_failed = store.write_aggregates()
    assert n_labels + n_failed == 8 and len(store.done()) == 8
    ids = [a.info["al_id"] for a in ase.io.read(store.labelled_path, ":")]
    assert ids == sorted(ids)
    assert not [n for n in os.listdir(store.labels_dir) if n.startswith(".tmp")]


def test_campaign_config_is_validated(tmp_path):
    write_inputs(str(tmp_path), n_seeds=2, n_test=1)
    base = campaign(str(tmp_path))
    assert learn_config_from_dict(base).explore.temperatures == (600.0, 1200.0)
    bad = {
        "model__ensemble": (1, "committee"),
        "select__trust_high": (0.01, "trust_low < trust_high"),
        "select__method": ("entropy", "uncertainty or random"),
        "explore__steps": (205, "multiple"),
        "explore__ensemble": ("npt", "explore.ensemble"),
        "explore__temperatures": ([-5], "positive"),
        "oracle__calculator": ("nowhere:Calc", "cannot import"),
        "stop__max_round": (3, "unknown key"),
    }
    for key, (value, message) in bad.items():
        with pytest.raises(ConfigError, match=message):
            learn_config_from_dict(campaign(str(tmp_path), **{key: value}))
