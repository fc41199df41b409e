import os

import jax
import numpy as np
import pytest
from conftest import small_nequip, triclinic_cu_o

import jaxmlp
from jaxmlp.graph import batch_graphs
from jaxmlp.model_io import MAGIC, ModelFileError, model_to_bytes
from jaxmlp.testing import predict_jit


def test_round_trip_gives_identical_predictions(tmp_path, model):
    path = tmp_path / "m.jaxmlp"
    jaxmlp.save_model(model, path)
    loaded = jaxmlp.load_model(path)
    assert loaded.config == model.config
    g = batch_graphs([triclinic_cu_o()], model.species, model.r_max)
    a = predict_jit(model.apply_fn, model.params, g)
    b = predict_jit(loaded.apply_fn, loaded.params, g)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert not [
        p for p in os.listdir(tmp_path) if p != "m.jaxmlp"
    ]  # no temp files left


def test_file_contains_no_pickle(model):
    data = model_to_bytes(model)
    assert data.startswith(MAGIC)
    assert b"\x80\x04\x95" not in data and b"cnumpy" not in data


@pytest.mark.parametrize(
    "damage",
    ["truncate", "flip_payload", "flip_header", "foreign", "empty", "future", "pickle"],
)
def test_damaged_files_give_clear_errors(tmp_path, model, damage):
    data = bytearray(model_to_bytes(model))
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip_payload":
        data[-100] ^= 0xFF
    elif damage == "flip_header":
        data[len(MAGIC) + 20] ^= 0xFF
    elif damage == "foreign":
        data = b"PK\x03\x04 this is a zip file, not a model"
    elif damage == "empty":
        data = b""
    elif damage == "future":
        data = bytes(data).replace(b'"version": 1', b'"version": 9')
    elif damage == "pickle":
        import pickle

        data = pickle.dumps({"params": np.zeros(3)})
    path = tmp_path / "bad.jaxmlp"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="bad.jaxmlp"):
        jaxmlp.load_model(path)


def test_params_that_do_not_fit_the_config_are_rejected(tmp_path):
    small, other = small_nequip(channels=8), small_nequip(channels=4)
    forged = small.replace(params=other.params)
    path = tmp_path / "forged.jaxmlp"
    path.write_bytes(model_to_bytes(forged))
    with pytest.raises(ModelFileError, match="shape|match"):
        jaxmlp.load_model(path)


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="no such model file"):
        jaxmlp.load_model(tmp_path / "nope.jaxmlp")


def test_saved_params_are_float32_even_from_float64(tmp_path, model):
    with jax.enable_x64(True):
        params64 = jax.tree.map(lambda p: np.asarray(p, np.float64), model.params)
        jaxmlp.save_model(model.replace(params=params64), tmp_path / "m.jaxmlp")
    loaded = jaxmlp.load_model(tmp_path / "m.jaxmlp")
    assert {np.asarray(p).dtype for p in jax.tree.leaves(loaded.params)} == {
        np.dtype("float32")
    }
