"""The physics battery, run for every registered architecture.

Parametrised over ``jaxmlp.architectures.ARCHITECTURES`` at collection time, so an
architecture gets these tests by registering (``SMALL`` only makes the built-in ones
small; an unknown name is built with its defaults). The third-party ``coordination``
model of ``third_party_arch.py`` is registered from the tests, never from jaxmlp, and is
also trained, saved, loaded, run through the ASE calculator and through MD here.

Judges: rotation *with inversion*, translation, permutation; central finite differences
of energy for forces and of a symmetric strain for stress; padding and batching; trace
counts; a dimer across the cutoff; a byte-identical file round trip; each in float64
with a non-vacuity guard.
"""

import ase.io
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import third_party_arch  # noqa: F401  (registers "coordination")
from ase.build import bulk
from conftest import cu_o_molecule, rattled_fcc_cu, triclinic_cu_o

import jaxmlp
from jaxmlp import testing
from jaxmlp.architectures import ARCHITECTURES
from jaxmlp.graph import PaddingSizes, batch_graphs
from jaxmlp.structure import Structure
from jaxmlp.testing import predict_jit

SMALL = {
    "nequip": dict(num_layers=2, channels=8, l_max=2, radial_hidden=(16,)),
    "mace": dict(
        channels=4,
        max_L=1,
        max_ell=2,
        correlation=3,
        num_interactions=2,
        radial_mlp=(8,),
        readout_mlp=8,
    ),
    "morse": dict(),
    "painn": dict(features=8, num_interactions=2, num_rbf=8),
    "lj": dict(sigma=0.5),  # the triclinic cell's 0.36 Å pair: 90 eV, not 1e10
    "eam": dict(),
    "schnet": dict(features=8, num_interactions=2, num_rbf=8),
    "dimenet++": dict(
        emb_size=8,
        int_emb_size=4,
        basis_emb_size=2,
        out_emb_size=8,
        num_blocks=2,
        num_spherical=3,
        num_radial=3,
        num_output_layers=1,
        max_neighbors=64,  # the triclinic cell has 58 neighbours within 4 Å
    ),
    "bp": dict(num_radial=4, num_angular=2, zetas=(1, 4), hidden=(8,)),
    "deeppot": dict(embedding=(4, 8), axis_neurons=4, fitting=(8, 8)),
    "coordination": dict(hidden=6),
}
NAMES = sorted(ARCHITECTURES)
SIZES = PaddingSizes(24, 512, 4)


def small_model(name, seed=0, **extra):
    return jaxmlp.build_model(
        name,
        species=("Cu", "O"),
        r_max=4.0,
        seed=seed,
        atomic_energies=[-3.5, -1.2],
        scale=2.0,
        shift=0.1,
        avg_num_neighbors=8.0,
        **(SMALL.get(name, {}) | extra),
    )


_MODELS = {}


HEAVY = {"mace"}  # compile-heavy: their battery runs in the full suite only (slow)


@pytest.fixture(
    params=[pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in NAMES]
)
def model(request):
    if request.param not in _MODELS:
        _MODELS[request.param] = small_model(request.param)
    return _MODELS[request.param]


@pytest.fixture
def structures():
    return [triclinic_cu_o(), cu_o_molecule(), rattled_fcc_cu()]


def graph64(model, structures, sizes=SIZES):
    return batch_graphs(
        structures, model.species, model.r_max, sizes=sizes, dtype=np.float64
    )


def predict(model, graph):
    return predict_jit(model.apply_fn, model.params, graph)


def test_every_builtin_is_registered_and_covered():
    assert {"nequip", "mace", "morse", "coordination"} <= set(NAMES)


@pytest.mark.parametrize("inversion", [True, False])
def test_rotation_inversion_equivariance(x64, model, structures, inversion):
    g = graph64(model, structures)
    matrix = testing.random_orthogonal(3, inversion=inversion)
    errors = testing.equivariance_errors(model.apply_fn, model.params, g, matrix)
    assert errors["max_force"] > 1e-3 and errors["max_stress"] > 1e-5  # not vacuous
    # relative to the largest value: a hard-core pair potential reaches 1e4 eV on the
    # triclinic cell's short pairs
    scale = max(1.0, errors["max_force"])
    assert errors["energy"] < 1e-10 * scale
    assert errors["forces"] < 1e-10 * scale
    assert errors["stress"] < 1e-10 * scale


def test_translation_and_permutation(x64, model):
    s = cu_o_molecule()
    ref = predict(model, graph64(model, [s]))
    moved = Structure(
        s.positions + np.array([0.37, -1.9, 4.2]), s.numbers, s.cell, s.pbc
    )
    out = predict(model, graph64(model, [moved]))
    np.testing.assert_allclose(out.energy, ref.energy, rtol=0, atol=1e-10)
    np.testing.assert_allclose(out.forces, ref.forces, atol=1e-10)
    perm = np.random.default_rng(0).permutation(s.n_atoms)
    p = Structure(s.positions[perm], s.numbers[perm], s.cell, s.pbc)
    out = predict(model, graph64(model, [p]))
    np.testing.assert_allclose(out.energy[0], ref.energy[0], atol=1e-10)
    np.testing.assert_allclose(out.forces[: s.n_atoms], ref.forces[perm], atol=1e-10)


def test_padding_and_batching_change_nothing(x64, model, structures):
    together = predict(model, graph64(model, structures))
    padded = predict(model, graph64(model, structures, PaddingSizes(40, 900, 6)))
    n = sum(s.n_atoms for s in structures)
    np.testing.assert_allclose(padded.energy[:3], together.energy[:3], atol=1e-10)
    np.testing.assert_allclose(padded.forces[:n], together.forces[:n], atol=1e-10)
    assert np.all(padded.energy[3:] == 0) and np.all(padded.forces[n:] == 0)
    offset = 0
    for i, s in enumerate(structures):
        alone = predict(model, graph64(model, [s]))
        np.testing.assert_allclose(alone.energy[0], together.energy[i], atol=1e-10)
        np.testing.assert_allclose(alone.stress[0], together.stress[i], atol=1e-12)
        np.testing.assert_allclose(
            alone.forces[: s.n_atoms],
            together.forces[offset : offset + s.n_atoms],
            atol=1e-10,
        )
        offset += s.n_atoms


def test_forces_match_finite_differences_and_sum_to_zero(x64, model, structures):
    g = graph64(model, structures)
    out = predict(model, g)
    atoms = [(0, 0), (2, 1), (4, 2), (7, 0), (9, 2), (12, 1)]
    fd = testing.finite_difference_forces(
        model.apply_fn, model.params, g, atoms, delta=1e-5
    )
    analytic = np.array([out.forces[n, d] for n, d in atoms])
    assert np.abs(analytic).max() > 1e-3
    # central differences lose eps |E| / delta to rounding: 1e-2 eV/Å for a hard-core
    # pair potential's 1e8 eV on the triclinic cell's short pairs, 1e-10 for the networks
    rounding = 10 * np.finfo(np.float64).eps * float(np.abs(out.energy).max()) / 1e-5
    np.testing.assert_allclose(analytic, fd, atol=1e-7 + rounding, rtol=1e-6)
    offset = 0
    for s in structures:
        total = np.asarray(out.forces[offset : offset + s.n_atoms]).sum(0)
        np.testing.assert_allclose(
            total, 0.0, atol=1e-10 * max(1.0, float(np.abs(out.forces).max()))
        )
        offset += s.n_atoms


@pytest.mark.parametrize("index", [0, 2])
def test_stress_matches_finite_strain(x64, model, structures, index):
    g = graph64(model, structures)
    out = predict(model, g)
    fd = testing.finite_difference_stress(model.apply_fn, model.params, g, index=index)
    assert np.abs(fd).max() > 1e-5
    np.testing.assert_allclose(np.asarray(out.stress[index]), fd, atol=1e-9, rtol=1e-6)
    np.testing.assert_allclose(out.stress[index], out.stress[index].T, atol=1e-12)
    assert np.all(out.stress[1] == 0)  # the molecule has no stress


def test_compiles_once_and_float32_agrees(x64, model, structures):
    fn, counter = testing.count_traces(
        lambda params, graph: jaxmlp.predict(model.apply_fn, params, graph)
    )
    g1 = graph64(model, structures)
    g2 = graph64(model, [rattled_fcc_cu(seed=5), triclinic_cu_o(seed=3)])
    out64 = fn(model.params, g1)
    fn(model.params, g2)
    fn(model.params, g1)
    assert counter["traces"] == 1
    g32 = jax.tree.map(
        lambda x: x.astype(np.float32) if x.dtype == np.float64 else x, g1
    )
    out32 = fn(model.params, g32)
    assert out32.forces.dtype == jnp.float32 and counter["traces"] == 2
    scale = max(
        1.0, float(np.abs(out64.forces).max())
    )  # Morse's short pairs reach 1e3 eV/Å
    np.testing.assert_allclose(out32.energy, out64.energy, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(out32.forces, out64.forces, atol=1e-5 * scale + 1e-4)


def test_energy_and_force_continuous_across_cutoff(x64, model):
    def dimer(r):
        s = Structure([[0, 0, 0], [r, 0, 0]], [29, 8], np.zeros((3, 3)), False)
        out = predict(model, graph64(model, [s]))
        return float(out.energy[0]), float(out.forces[1, 0])

    for dr in (1e-2, 1e-3):
        inside, outside = dimer(model.r_max - dr), dimer(model.r_max + dr)
        assert abs(inside[0] - outside[0]) < 50 * dr**2 + 1e-12
        assert abs(inside[1] - outside[1]) < 50 * dr + 1e-12
    assert abs(dimer(2.0)[1]) > 1e-4  # the pair does interact


def test_save_load_round_trip(x64, tmp_path, model, structures):
    path = tmp_path / "model.jaxmlp"
    jaxmlp.save_model(model, path)
    loaded = jaxmlp.load_model(path)
    assert loaded.config == model.config
    g = graph64(model, structures)
    for x, y in zip(predict(model, g), predict(loaded, g)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_calculator_names_an_unknown_element(model):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms.numbers[2] = 26
    atoms.calc = jaxmlp.JaxMLPCalculator(model)
    with pytest.raises(ValueError, match=r"Fe.*2|2.*Fe"):
        atoms.get_potential_energy()


@pytest.mark.slow
def test_committee_of_one_and_of_three(x64, structures):
    """A committee evaluates every member in one vmapped call: member k of a K-committee
    equals a single model with member k's params; the mean is the mean."""
    committee = small_model("nequip", members=3, num_layers=1, channels=4, l_max=1)
    g = graph64(committee, structures)
    out = jaxmlp.predict_members(committee.member_apply_fn, committee.params, g)
    singles = [predict(committee.member(k), g) for k in range(3)]
    for k, single in enumerate(singles):
        np.testing.assert_allclose(out.members.forces[k], single.forces, atol=1e-12)
        np.testing.assert_allclose(out.members.energy[k], single.energy, atol=1e-12)
    mean_forces = np.mean([s.forces for s in singles], axis=0)
    np.testing.assert_allclose(out.mean.forces, mean_forces, atol=1e-12)
    np.testing.assert_allclose(
        out.std.forces, np.std([s.forces for s in singles], axis=0), atol=1e-12
    )
    assert np.abs(out.std.forces).max() > 1e-3  # members differ (independent inits)
    mean = predict(committee, g)  # apply_fn of a committee is the mean
    np.testing.assert_allclose(mean.forces, mean_forces, atol=1e-12)
    np.testing.assert_allclose(mean.stress, out.mean.stress, atol=1e-12)

    # the calculator's spread, against single-member calculators (a small model with
    # random initial params, so the members differ)
    committee = small_model("coordination", members=3)
    atoms = rattled_fcc_cu().to_ase()
    atoms.calc = jaxmlp.JaxMLPCalculator(committee, dtype="float64")
    forces = atoms.get_forces()
    spread = atoms.calc.results["forces_std"]
    members = []
    for k in range(3):
        a = atoms.copy()
        a.calc = jaxmlp.JaxMLPCalculator(committee.member(k), dtype="float64")
        members.append(a.get_forces())
    assert np.abs(spread).max() > 1e-4
    np.testing.assert_allclose(forces, np.mean(members, axis=0), atol=1e-10)
    np.testing.assert_allclose(spread, np.std(members, axis=0), atol=1e-10)
    expected_max = np.linalg.norm(np.std(members, axis=0), axis=1).max()
    assert atoms.calc.results["forces_std_max"] == pytest.approx(
        expected_max, abs=1e-10
    )


def test_committee_file_round_trip(tmp_path):
    committee = small_model("morse", members=2)
    path = tmp_path / "committee.jaxmlp"
    jaxmlp.save_model(committee, path)
    loaded = jaxmlp.load_model(path)
    assert loaded.members == 2
    for a, b in zip(jax.tree.leaves(committee.params), jax.tree.leaves(loaded.params)):
        assert np.shape(a)[0] == 2
        np.testing.assert_array_equal(a, b)


def test_registry_errors_are_clear():
    with pytest.raises(
        ValueError, match="unknown model 'no-such'.*register_architecture"
    ):
        jaxmlp.build_model("no-such", species=("Cu",))
    with pytest.raises(ValueError, match="already registered"):
        jaxmlp.register_architecture("nequip", lambda spec: None)
    with pytest.raises(ValueError, match="hidden_size"):
        jaxmlp.build_model("coordination", species=("Cu",), hidden_size=3)
    with pytest.raises(ValueError, match="members"):
        jaxmlp.build_model("morse", species=("Cu",), members=0)


@pytest.mark.slow
def test_third_party_model_trains_runs_md_and_matches_the_calculator(tmp_path):
    """The ``coordination`` model, registered outside jaxmlp, through YAML training, the
    model file, the ASE calculator and MD (every frame judged by a fresh calculator)."""
    from ase.calculators.emt import EMT

    from jaxmlp.md import Ensemble, MDOptions, run_md
    from jaxmlp.train import config_from_dict, fit

    frames = []
    for i in range(8):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((1 + i % 2, 1, 1))
        atoms.rattle(0.08, seed=i)
        atoms.calc = EMT()
        atoms.info["REF_energy"] = atoms.get_potential_energy()
        atoms.arrays["REF_forces"] = atoms.get_forces()
        atoms.calc = None
        frames.append(atoms)
    data = tmp_path / "cu.xyz"
    ase.io.write(data, frames, format="extxyz")
    config = config_from_dict(
        {
            "model": {"name": "coordination", "r_max": 4.0, "hidden": 4},
            "data": {
                "train_file": str(data),
                "valid_fraction": 0.25,
                "test_fraction": 0.0,
            },
            "train": {
                "epochs": 3,
                "batch_size": 2,
                "learning_rate": 0.01,
                "num_buckets": 1,
                "progress": False,
            },
            "output": str(tmp_path / "run"),
        }
    )
    result = fit(config)
    model = result.model
    assert model.config.name == "coordination" and len(result.history) == 3
    assert result.metrics["valid"]["forces_mae_meV_per_A"] < 1e4
    path = tmp_path / "coordination.jaxmlp"
    jaxmlp.save_model(model, path)
    model = jaxmlp.load_model(path)

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    out = run_md(
        model,
        atoms,
        Ensemble("nve", timestep=2.0, temperature=600.0),
        steps=40,
        out_dir=tmp_path / "md",
        options=MDOptions(stride=10, dtype="float64", seed=0, plots=False),
    )
    assert out.message == "completed"
    trajectory = ase.io.read(out.trajectory, index=":")
    assert len(trajectory) >= 4
    for frame, e_pot in zip(trajectory[1:], out.thermo["Epot_eV"][1:]):
        calc = jaxmlp.JaxMLPCalculator(model, dtype="float64")
        frame.calc = calc
        assert frame.get_potential_energy() == pytest.approx(e_pot, abs=1e-8)
    assert np.ptp(out.thermo["Epot_eV"]) > 1e-4  # the atoms moved on a non-flat surface


def test_readme_architecture_example_runs(tmp_path):
    """The README's 20-line example, executed as written, then used by the calculator."""
    import pathlib
    import re

    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    code = re.search(r"```python\n(import flax.linen.*?)```", readme, re.S).group(1)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    model = namespace["model"]
    assert model.config.name == "pairnet"
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms.rattle(0.05, seed=1)
    atoms.calc = jaxmlp.JaxMLPCalculator(model, dtype="float64")
    forces = atoms.get_forces()
    assert np.abs(forces).max() > 1e-4 and np.isfinite(atoms.get_stress()).all()
    jaxmlp.save_model(model, tmp_path / "pairnet.jaxmlp")
    assert jaxmlp.load_model(tmp_path / "pairnet.jaxmlp").config == model.config
