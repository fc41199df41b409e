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


def emt_labelled(seed):
    from ase.calculators.emt import EMT

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 1, 1))
    atoms.rattle(0.1, seed=seed)
    atoms.calc = EMT()
    s = jaxmlp.Structure.from_ase(atoms)
    s.energy, s.forces = atoms.get_potential_energy(), atoms.get_forces()
    s.stress = atoms.get_stress(voigt=False)
    return s


def test_evaluate_float32_is_the_same_inside_x64_and_float64_outside_is_float64():
    model = jaxmlp.build_model("morse", species=("Cu",), r_max=4.5)
    data = [emt_labelled(seed=s) for s in range(2)]
    f32 = evaluate(model, data, dtype="float32")
    with jax.enable_x64(True):
        assert evaluate(model, data, dtype="float32") == f32  # float32 all the same
        f64_inside = evaluate(model, data, dtype="float64")
    assert not jax.config.jax_enable_x64
    f64 = evaluate(model, data, dtype="float64")
    assert not jax.config.jax_enable_x64  # enabled for the call only
    assert f64 == f64_inside
    key = "forces_mae_meV_per_A"
    assert f64[key] != f32[key]  # really computed in float64 ...
    assert f64[key] == pytest.approx(f32[key], rel=1e-4)  # ... and float32 is close


def test_fit_config_rejects_a_bad_dtype():
    from jaxmlp.train import ConfigError, config_from_dict

    with pytest.raises(ConfigError, match="float32.*float64.*'float6'"):
        config_from_dict(
            {"data": {"train_file": "x.xyz"}, "train": {"dtype": "float6"}}
        )


@pytest.mark.slow  # ~20 s: FIRE and vmapped replicas compile twice each
def test_relax_and_replicas_float32_inside_x64(tmp_path):
    from jaxmlp.md import relax, run_replicas

    model = jaxmlp.build_model("morse", species=("Cu",), r_max=4.5)
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=0)
    outside = relax(model, atoms, dtype="float32", max_steps=50)
    with jax.enable_x64(True):
        inside = relax(model, atoms, dtype="float32", max_steps=50)
        assert jax.config.jax_enable_x64
    assert inside.energy == outside.energy and inside.steps == outside.steps
    relax(model, atoms, dtype="float64", max_steps=10)
    assert not jax.config.jax_enable_x64

    options = MDOptions(stride=5, frames_per_chunk=2, plots=False)
    kwargs = dict(n_replicas=2, steps=20, options=options)
    ensemble = Ensemble("nvt-langevin", timestep=2.0, temperature=300.0)
    a = run_replicas(model, atoms, ensemble, out_dir=tmp_path / "a", **kwargs)
    with jax.enable_x64(True):
        b = run_replicas(model, atoms, ensemble, out_dir=tmp_path / "b", **kwargs)
        assert jax.config.jax_enable_x64
    assert a.compilations == b.compilations
    for ta, tb in zip(a.thermo, b.thermo):
        np.testing.assert_array_equal(ta["Epot_eV"], tb["Epot_eV"])
