"""Training: losses, optimizer pieces, overfitting, resume, compile counts, config."""

import os

import ase.io
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml
from ase.build import bulk
from ase.calculators.emt import EMT

import jaxmlp
from jaxmlp.data import GraphDataset, compute_statistics, make_batch, make_buckets
from jaxmlp.model import ModelConfig, network
from jaxmlp.structure import Structure
from jaxmlp.testing import predict_jit
from jaxmlp.train import ConfigError, config_from_dict, fit, load_config
from jaxmlp.train.checkpoint import CheckpointError
from jaxmlp.train.loss import LossWeights, loss_fn, metrics_from_sums
from jaxmlp.train.optim import (
    ema_update,
    make_optimizer,
    plateau_factor,
    set_plateau_factor,
)
from jaxmlp.train.step import init_state, make_steps


def emt_cu(seed, repeat=(1, 1, 1), rattle=0.1):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(repeat)
    atoms.rattle(rattle, seed=seed)
    atoms.calc = EMT()
    return atoms


def emt_structure(seed, repeat=(1, 1, 1)):
    atoms = emt_cu(seed, repeat)
    s = Structure.from_ase(atoms, source=f"cu {seed}")
    s.energy, s.forces = atoms.get_potential_energy(), atoms.get_forces()
    s.stress = atoms.get_stress(voigt=False)
    return s


@pytest.mark.slow
def test_loss_decreases_and_overfits_four_structures():
    """1500 Adam steps of a tiny NequIP on 4 rattled Cu cells (float32): the loss falls and
    the force error on the training set ends below 5 meV/Å."""
    structures = [emt_structure(i) for i in range(4)]
    ds = GraphDataset.build(structures, ("Cu",), 3.5)
    stats = compute_statistics(structures, ds.neighbors, ("Cu",))
    model = jaxmlp.build_model(
        "nequip",
        ("Cu",),
        3.5,
        0,
        atomic_energies=stats.atomic_energies,
        scale=stats.scale,
        shift=stats.shift,
        avg_num_neighbors=stats.avg_num_neighbors,
        num_layers=2,
        channels=8,
        l_max=1,
        radial_hidden=(16,),
    )
    n_steps = 1500
    optimizer = make_optimizer(0.02, n_steps, warmup_steps=10)
    fns = make_steps(
        model.apply_fn, optimizer, LossWeights(1.0, 100.0, 0.0), ema_decay=0.0
    )
    batch = make_batch(ds, [0, 1, 2, 3], make_buckets([ds], 4, 1)[0])
    train_step = jax.jit(fns.train_step, donate_argnums=0)
    eval_step = jax.jit(fns.eval_step)
    state = init_state(model.params, optimizer)
    history = [jax.device_get(eval_step(state.params, batch))]
    for i in range(n_steps):
        state, _ = train_step(state, batch)
        if i + 1 in (50, n_steps):
            history.append(jax.device_get(eval_step(state.params, batch)))
    losses = [float(h["loss"] / h["loss_n"]) for h in history]
    assert losses[1] < 0.05 * losses[0]
    assert losses[2] < losses[1]
    start = metrics_from_sums(history[0])["forces_mae_meV_per_A"]
    end = metrics_from_sums(history[-1])["forces_mae_meV_per_A"]
    assert start > 100.0  # forces are ~1 eV/Å: the untrained model is far off
    assert end < 5.0


def test_loss_masks_missing_labels():
    s = emt_structure(0)
    s_nostress = emt_structure(1)
    s_nostress.stress = None
    ds = GraphDataset.build([s, s_nostress], ("Cu",), 3.5)
    batch = jax.tree.map(
        jnp.asarray, make_batch(ds, [0, 1], make_buckets([ds], 2, 1)[0])
    )
    model = jaxmlp.build_model(
        "nequip", ("Cu",), 3.5, 0, num_layers=1, channels=4, l_max=1
    )
    pred = predict_jit(model.apply_fn, model.params, batch.graph)
    w = LossWeights(1.0, 10.0, 10.0)
    base = loss_fn(pred, batch.labels, w)
    # Changing the (masked) stress of graph 1 or the padding graph changes nothing.
    poked = batch.labels.replace(stress=batch.labels.stress.at[1:].set(123.0))
    assert float(loss_fn(pred, poked, w)) == float(base)
    poked = batch.labels.replace(stress=batch.labels.stress.at[0].add(0.01))
    assert float(loss_fn(pred, poked, w)) != float(base)
    # Huber equals MSE for small residuals.
    tiny = pred._replace(
        energy=batch.labels.energy + 1e-4,
        forces=batch.labels.forces + 1e-4,
        stress=batch.labels.stress,
    )
    np.testing.assert_allclose(
        loss_fn(tiny, batch.labels, w, "huber", 0.01),
        loss_fn(tiny, batch.labels, w, "mse"),
        rtol=1e-5,
    )


def test_plateau_factor_scales_updates_and_ema_warmup():
    params = {"w": jnp.ones(3)}
    grads = {"w": jnp.array([1.0, -2.0, 0.5])}
    opt = make_optimizer(0.1, 100, schedule="plateau", clip_norm=None)
    state = opt.init(params)
    full, _ = opt.update(grads, state, params)
    half_state = set_plateau_factor(state, 0.5)
    assert plateau_factor(half_state) == 0.5
    half, _ = opt.update(grads, half_state, params)
    np.testing.assert_allclose(half["w"], 0.5 * full["w"], rtol=1e-6)
    ema = ema_update({"w": jnp.zeros(1)}, {"w": jnp.ones(1)}, 0.99, 0)
    np.testing.assert_allclose(
        ema["w"], 0.9
    )  # decay (1 + 0) / (10 + 0) = 0.1 at step 0
    ema = ema_update({"w": jnp.zeros(1)}, {"w": jnp.ones(1)}, 0.99, 10_000)
    np.testing.assert_allclose(ema["w"], 0.01, rtol=1e-5)
    with pytest.raises(ValueError, match="amsgrad"):
        make_optimizer(0.1, 10, optimizer="sgd")


def write_dataset(directory, n=12):
    frames = []
    for i in range(n):
        atoms = emt_cu(i, [(1, 1, 1), (2, 1, 1)][i % 2], rattle=0.08)
        atoms.info["REF_energy"] = atoms.get_potential_energy()
        atoms.arrays["REF_forces"] = atoms.get_forces()
        if i % 3:
            atoms.info["REF_stress"] = atoms.get_stress(voigt=False).reshape(9)
        atoms.calc = None
        frames.append(atoms)
    path = os.path.join(directory, "cu.xyz")
    ase.io.write(path, frames, format="extxyz")
    return path


def tiny_config(data_file, output, **train):
    return config_from_dict(
        {
            "model": {
                "name": "nequip",
                "r_max": 3.0,
                "num_layers": 1,
                "channels": 4,
                "l_max": 1,
                "radial_hidden": [8],
            },
            "data": {
                "train_file": data_file,
                "valid_fraction": 0.25,
                "test_fraction": 0.0,
            },
            "train": {
                "epochs": 4,
                "batch_size": 3,
                "learning_rate": 0.01,
                "num_buckets": 2,
                "progress": False,
                "seed": 1,
            }
            | train,
            "output": output,
        }
    )


class Interrupt(Exception):
    pass


@pytest.mark.slow
def test_resume_reproduces_uninterrupted_run(tmp_path):
    data = write_dataset(str(tmp_path))
    full = fit(tiny_config(data, str(tmp_path / "full")))
    # Compilations: at most one per bucket for the train step, none after warm-up.
    assert 1 <= full.metrics["compiles_train"] <= len(full.metrics["buckets"]) <= 2
    assert (
        sum(r["compiles_this_epoch"] for r in full.history)
        == full.metrics["compiles_train"] + full.metrics["compiles_eval"]
    )

    def stop_at_2(epoch, record):
        if epoch == 2:
            raise Interrupt

    config = tiny_config(data, str(tmp_path / "cut"))
    with pytest.raises(Interrupt):
        fit(config, callback=stop_at_2)
    with pytest.raises(ConfigError, match="--resume"):
        fit(config)
    resumed = fit(config, resume=True)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
    for a, b in zip(full.history, resumed.history):
        assert a["valid_loss"] == pytest.approx(b["valid_loss"], rel=1e-6, abs=0)
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6, abs=0)
    leaves_a = jax.tree.leaves(full.model.params)
    leaves_b = jax.tree.leaves(resumed.model.params)
    assert max(float(np.abs(a - b).max()) for a, b in zip(leaves_a, leaves_b)) <= 1e-6
    assert full.history[-1]["valid_loss"] < full.history[0]["valid_loss"]
    # Outputs of the run directory.
    run = tmp_path / "cut"
    for name in (
        "config.yaml",
        "log.jsonl",
        "log.csv",
        "model.jaxmlp",
        "metrics.json",
        "parity.png",
        "learning_curve.png",
        "checkpoints/last.ckpt",
    ):
        assert (run / name).is_file(), name
    loaded = jaxmlp.load_model(run / "model.jaxmlp")
    assert loaded.config == resumed.model.config
    assert loaded.config.avg_num_neighbors > 1 and loaded.config.scale != 1.0


@pytest.mark.slow
def test_checkpoint_write_is_atomic_and_checked(tmp_path, monkeypatch):
    data = write_dataset(str(tmp_path))
    config = tiny_config(data, str(tmp_path / "run"))

    def crash_at_3(epoch, record):
        if epoch == 2:

            def broken_fsync(fd):
                raise OSError("disk pulled")

            monkeypatch.setattr(os, "fsync", broken_fsync)

    with pytest.raises(OSError, match="disk pulled"):
        fit(config, callback=crash_at_3)  # dies while writing the epoch-3 checkpoint
    monkeypatch.undo()
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert not [p for p in os.listdir(ckpt.parent) if p.endswith(".part")]
    resumed = fit(config, resume=True)  # the epoch-2 checkpoint is intact
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
    ckpt.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt|not a jaxmlp"):
        fit(config, resume=True)
    other = tiny_config(data, str(tmp_path / "empty"))
    with pytest.raises(CheckpointError, match="no checkpoint"):
        fit(other, resume=True)


ISSUE_YAML = """
model: {name: nequip, r_max: 5.0, num_layers: 3, channels: 32, l_max: 2}
data: {train_file: train.xyz, valid_file: valid.xyz, test_file: test.xyz,
       energy_key: REF_energy, forces_key: REF_forces, stress_key: REF_stress}
train: {epochs: 200, batch_size: 4, learning_rate: 0.005, energy_weight: 1.0,
        forces_weight: 100.0, stress_weight: 10.0, ema_decay: 0.99, seed: 0,
        max_minutes: 20}
output: runs/copper
"""


def test_issue_config_parses_and_rejects_unknown_keys(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(ISSUE_YAML)
    config = load_config(path)
    assert config.hyper == {"num_layers": 3, "channels": 32, "l_max": 2}
    assert config.train.epochs == 200 and config.train.max_minutes == 20.0
    assert config.data.train_file == str(tmp_path / "train.xyz")
    assert config.output == "runs/copper"
    module = network(
        ModelConfig(
            config.model["name"],
            ("Cu",),
            config.model["r_max"],
            tuple(config.hyper.items()),
        )
    ).module
    assert (module.num_layers, module.channels, module.l_max, module.r_max) == (
        3,
        32,
        2,
        5.0,
    )
    over = load_config(
        path,
        [
            "train.epochs=7",
            "model.channels=8",
            "train.max_minutes=null",
            "output=runs/x",
        ],
    )
    assert (
        over.train.epochs,
        over.hyper["channels"],
        over.train.max_minutes,
        over.output,
    ) == (7, 8, None, "runs/x")
    data = yaml.safe_load(ISSUE_YAML)
    for section, key, message in (
        ("train", "epoch", "train.epoch"),
        ("data", "train_files", "data.train_files"),
        ("model", "chanels", "chanels"),
    ):
        bad = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
        bad[section][key] = 1
        with pytest.raises(ConfigError, match=message):
            config_from_dict(bad)
    with pytest.raises(ConfigError, match="unknown top-level"):
        config_from_dict(data | {"outptu": "x"})
    with pytest.raises(ConfigError, match="train.batch_size must be an integer"):
        load_config(path, ["train.batch_size=four"])
    with pytest.raises(ConfigError, match="unknown model"):
        load_config(path, ["model.name=no_such_net"])  # schnet is registered now
    with pytest.raises(ConfigError, match="key=value"):
        load_config(path, ["train.epochs"])
