"""The caller owns precision: evaluate, fit's settings and MD never turn x64 off, and
a mistyped dtype is an error, not a silent float32 run."""

import jax
import numpy as np
import pytest
from ase.build import bulk
from conftest import rattled_fcc_cu

import jaxmlp
from jaxmlp import precision
from jaxmlp.evaluate import evaluate
from jaxmlp.md import Ensemble, MDOptions, run_md


def test_dtype_strings_are_validated():
    assert precision.resolve("float32") == np.float32
    assert precision.resolve("float64") == np.float64
    for bad in ("float6", "fp32", "double", 32):
        with pytest.raises(ValueError, match="float32"):
            precision.resolve(bad)


def test_scope_never_turns_x64_off():
    assert not jax.config.jax_enable_x64
    with precision.scope("float64") as dtype:
        assert dtype == np.float64 and jax.config.jax_enable_x64
    assert not jax.config.jax_enable_x64  # restored
    with jax.enable_x64(True):
        with precision.scope("float32") as dtype:
            assert dtype == np.float32 and jax.config.jax_enable_x64
        assert precision.resolve(None) == np.float64  # None follows the caller
    assert precision.resolve(None) == np.float32


def test_evaluate_validates_and_keeps_the_callers_x64():
    model = jaxmlp.build_model("morse", species=("Cu",), r_max=4.5)
    data = [rattled_fcc_cu(seed=s) for s in range(2)]
    with pytest.raises(ValueError, match="float6"):
        evaluate(model, data, dtype="float6")
    with jax.enable_x64(True):
        evaluate(model, data, dtype="float32")
        assert jax.config.jax_enable_x64


def test_md_float32_inside_x64_is_float32_and_leaves_x64_on(tmp_path):
    model = jaxmlp.build_model("morse", species=("Cu",), r_max=4.5)
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    options = MDOptions(stride=10, plots=False)
    outside = run_md(
        model,
        atoms,
        Ensemble("nvt", timestep=2.0),
        steps=30,
        out_dir=tmp_path / "a",
        options=options,
    )
    with jax.enable_x64(True):
        inside = run_md(
            model,
            atoms,
            Ensemble("nvt", timestep=2.0),
            steps=30,
            out_dir=tmp_path / "b",
            options=options,
        )
        assert jax.config.jax_enable_x64
    assert inside.compilations == outside.compilations  # no retrace per chunk
    np.testing.assert_array_equal(inside.thermo["Epot_eV"], outside.thermo["Epot_eV"])
    with pytest.raises(ValueError, match="float6"):
        run_md(
            model,
            atoms,
            steps=10,
            out_dir=tmp_path / "c",
            options=MDOptions(stride=10, dtype="float6"),
        )
    run_md(
        model,
        atoms,
        steps=10,
        out_dir=tmp_path / "d",
        options=MDOptions(stride=10, dtype="float64", plots=False),
    )
    assert (
        not jax.config.jax_enable_x64
    )  # float64 asked for; the caller's setting restored
