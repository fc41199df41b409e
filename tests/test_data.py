"""Datasets: labels and fallbacks, validation errors, splits, batching, statistics."""

import ase
import ase.io
import jax
import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from jaxmlp.data import (
    DatasetError,
    GraphDataset,
    LabelKeys,
    compute_statistics,
    iterate_batches,
    make_batch,
    make_buckets,
    plan_batches,
    random_split,
    read_structures,
)
from jaxmlp.datasets import copper_frames
from jaxmlp.graph import PaddingSizes
from jaxmlp.structure import Structure


def labelled(atoms, stress=True):
    atoms = atoms.copy()
    atoms.calc = EMT()
    e, f = atoms.get_potential_energy(), atoms.get_forces()
    s = atoms.get_stress(voigt=False).reshape(9) if stress else None
    atoms.calc = None
    atoms.info["REF_energy"] = e
    atoms.arrays["REF_forces"] = f
    if s is not None:
        atoms.info["REF_stress"] = s
    return atoms


def cu_cell(seed, repeat=(1, 1, 1), a=3.6):
    atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat(repeat)
    atoms.rattle(0.05, seed=seed)
    return atoms


def write(tmp_path, frames, name="data.xyz"):
    path = str(tmp_path / name)
    ase.io.write(path, frames, format="extxyz")
    return path


def test_reads_labels_and_masks_missing_stress(tmp_path):
    frames = [labelled(cu_cell(0)), labelled(cu_cell(1, (2, 1, 1)), stress=False)]
    path = write(tmp_path, frames)
    s0, s1 = read_structures(path)
    assert s0.energy == pytest.approx(frames[0].info["REF_energy"])
    np.testing.assert_allclose(s0.forces, frames[0].arrays["REF_forces"])
    np.testing.assert_allclose(s0.stress, frames[0].info["REF_stress"].reshape(3, 3))
    assert s1.stress is None and s1.n_atoms == 8
    assert s1.source == f"{path}, frame 1"
    ds = GraphDataset.build([s0, s1], ("Cu",), 3.0)
    batch = make_batch(ds, [0, 1], PaddingSizes(16, 512, 3))
    np.testing.assert_array_equal(batch.labels.stress_mask, [True, False, False])
    np.testing.assert_array_equal(batch.labels.energy_mask, [True, True, False])
    assert batch.labels.forces_mask.sum() == 12
    np.testing.assert_allclose(batch.labels.n_atoms, [4, 8, 1])


def test_falls_back_to_calculator_results(tmp_path):
    atoms = cu_cell(2)
    atoms.calc = EMT()
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    path = write(tmp_path, [atoms])  # written as energy= / forces columns by ASE
    (s,) = read_structures(path)
    assert s.energy == pytest.approx(energy)
    np.testing.assert_allclose(s.forces, forces, atol=1e-6)
    assert s.stress is not None  # EMT stress is written too
    # Custom keys win over the calculator.
    atoms2 = labelled(cu_cell(3))
    atoms2.info["my_E"] = 1.25
    atoms2.calc = SinglePointCalculator(atoms2, energy=-7.0)
    (s2,) = read_structures(
        write(tmp_path, [atoms2], "b.xyz"), LabelKeys(energy_key="my_E")
    )
    assert s2.energy == 1.25


def bad_frames():
    good = labelled(cu_cell(0))
    no_energy = good.copy()
    del no_energy.info["REF_energy"]
    nan_forces = good.copy()
    nan_forces.arrays["REF_forces"] = good.arrays["REF_forces"].copy()
    nan_forces.arrays["REF_forces"][2, 1] = np.nan
    inf_energy = good.copy()
    inf_energy.info["REF_energy"] = np.inf
    close = good.copy()
    close.positions[3] = close.positions[1] + [0.05, 0.0, 0.0]
    bad_stress = good.copy()
    bad_stress.info["REF_stress"] = np.arange(4.0)
    unknown = good.copy()
    unknown.numbers[2] = 0  # 'X', no element
    return good, {
        "missing energy": (
            no_energy,
            r"frame 1: missing energy label: no key 'REF_energy'",
        ),
        "nan forces": (nan_forces, r"frame 1: non-finite forces on atom index 2"),
        "inf energy": (inf_energy, r"frame 1: non-finite energy"),
        "overlap": (close, r"frame 1: atoms (1 and 3|3 and 1) .*0\.050 Å apart"),
        "stress shape": (bad_stress, r"frame 1: stress has shape \(4,\)"),
        "unknown element": (
            unknown,
            r"frame 1: unknown element \(Z=0\) at atom index 2",
        ),
    }


@pytest.mark.parametrize("case", list(bad_frames()[1]))
def test_bad_input_names_file_frame_and_atom(tmp_path, case):
    good, cases = bad_frames()
    frame, message = cases[case]
    path = write(tmp_path, [good, frame])
    with pytest.raises(DatasetError, match=message) as info:
        read_structures(path)
    assert path in str(info.value)


def test_bad_forces_shape_and_species(tmp_path):
    good = labelled(cu_cell(0))
    (s,) = read_structures(write(tmp_path, [good]))
    # Wrong force shape through the energy/forces/stress keys of another array.
    frame = good.copy()
    frame.arrays["F3"] = np.zeros((4, 3))
    frame.info["E_vec"] = np.array([1.0, 2.0])
    path = write(tmp_path, [frame], "c.xyz")
    with pytest.raises(DatasetError, match=r"frame 0: energy 'E_vec' has shape \(2,\)"):
        read_structures(path, LabelKeys(energy_key="E_vec"))
    water = molecule("H2O")
    water.info["REF_energy"] = 0.0
    water.arrays["REF_forces"] = np.zeros((3, 3))
    path = write(tmp_path, [good, water], "d.xyz")
    with pytest.raises(
        DatasetError, match=r"d.xyz, frame 1: element O \(atom index 0\)"
    ):
        read_structures(path, species=("Cu", "H"))
    with pytest.raises(DatasetError, match="no such data file"):
        read_structures(str(tmp_path / "missing.xyz"))


def test_wrong_forces_shape_in_file(tmp_path):
    # extxyz cannot hold a per-atom array of the wrong length, so build the frame in memory.
    from jaxmlp.data.dataset import structure_from_atoms

    atoms = labelled(cu_cell(0))
    atoms.calc = SinglePointCalculator(atoms, energy=1.0, forces=np.zeros((3, 3)))
    del atoms.arrays["REF_forces"]
    with pytest.raises(
        DatasetError,
        match=r"x.xyz, frame 5: forces 'REF_forces' have shape \(3, 3\); expected \(4, 3\)",
    ):
        structure_from_atoms(atoms, "x.xyz, frame 5")


def test_random_split_is_seeded_and_disjoint():
    structures = [
        Structure(np.zeros((1, 3)), [29], np.zeros((3, 3)), False, energy=float(i))
        for i in range(50)
    ]
    train, valid, test = random_split(structures, (0.1, 0.2), seed=3)
    assert (len(train), len(valid), len(test)) == (35, 5, 10)
    ids = [s.energy for s in train + valid + test]
    assert sorted(ids) == list(range(50))
    again = random_split(structures, (0.1, 0.2), seed=3)
    assert [s.energy for s in again[1]] == [s.energy for s in valid]
    other = random_split(structures, (0.1, 0.2), seed=4)
    assert [s.energy for s in other[1]] != [s.energy for s in valid]
    with pytest.raises(DatasetError, match="nothing left"):
        random_split(structures[:2], (0.5, 0.5))


def mixed_structures(n=24):
    out = []
    for i in range(n):
        repeat = [(1, 1, 1), (2, 1, 1), (2, 2, 1)][i % 3]
        atoms = labelled(cu_cell(i, repeat))
        s = Structure.from_ase(atoms, source=f"mixed {i}")
        out.append(
            Structure(
                s.positions,
                s.numbers,
                s.cell,
                s.pbc,
                atoms.info["REF_energy"],
                atoms.arrays["REF_forces"],
                source=s.source,
            )
        )
    return out


def test_buckets_fit_every_batch_and_compile_once_each():
    ds = GraphDataset.build(mixed_structures(), ("Cu",), 3.0)
    buckets = make_buckets([ds], batch_size=3, num_buckets=3)
    assert 2 <= len(buckets) <= 3
    assert all(b.n_graphs == 4 for b in buckets)
    traces = {"n": 0}

    @jax.jit
    def total(batch):
        traces["n"] += 1
        return (
            batch.graph.positions * batch.graph.node_mask[:, None]
        ).sum() + batch.labels.forces.sum()

    used = set()
    for epoch in range(6):
        for info in plan_batches(ds, 3, buckets, shuffle_seed=[0, epoch]):
            used.add(info.sizes)
            total(make_batch(ds, info.indices, info.sizes))
    assert traces["n"] == len(used) <= len(buckets)
    # Every structure appears exactly once per epoch.
    seen = np.concatenate(
        [i.indices for i in plan_batches(ds, 3, buckets, shuffle_seed=[0, 1])]
    )
    assert sorted(seen) == list(range(len(ds)))
    n_real = sum(
        b.graph.node_mask.sum() for b in iterate_batches(ds, 5, make_buckets([ds], 5))
    )
    assert n_real == ds.n_atoms.sum()


def test_statistics_recover_reference_energies():
    rng = np.random.default_rng(0)
    e0 = {"Cu": -3.7, "O": -1.9}
    structures = []
    for _ in range(12):
        n_cu, n_o = rng.integers(1, 6), rng.integers(0, 4)
        numbers = [29] * n_cu + [8] * n_o
        positions = rng.uniform(0, 4, (len(numbers), 3))
        energy = n_cu * e0["Cu"] + n_o * e0["O"] + 0.05 * len(numbers)
        forces = rng.normal(scale=0.3, size=(len(numbers), 3))
        structures.append(
            Structure(positions, numbers, np.zeros((3, 3)), False, energy, forces)
        )
    ds = GraphDataset.build(structures, ("O", "Cu"), 4.0)
    stats = compute_statistics(structures, ds.neighbors, ("O", "Cu"))
    # The constant 0.05 eV/atom is indistinguishable from E0; the totals must match.
    counts = np.array(
        [[np.sum(s.numbers == 8), np.sum(s.numbers == 29)] for s in structures]
    )
    energies = np.array([s.energy for s in structures])
    np.testing.assert_allclose(
        counts @ np.array(stats.atomic_energies), energies, atol=1e-9
    )
    np.testing.assert_allclose(stats.atomic_energies, [-1.85, -3.65], atol=1e-9)
    assert abs(stats.shift) < 1e-9
    all_f = np.concatenate([s.forces for s in structures])
    assert stats.scale == pytest.approx(np.sqrt(np.mean(all_f**2)))
    assert stats.avg_num_neighbors == pytest.approx(ds.n_edges.sum() / ds.n_atoms.sum())
    given = compute_statistics(
        structures, ds.neighbors, ("O", "Cu"), atomic_energies=[-1.9, -3.7]
    )
    assert given.shift == pytest.approx(0.05)


def test_copper_data_is_deterministic_and_labelled():
    counts = dict(
        n_md=1,
        n_strained=2,
        n_vacancy=1,
        n_slab=1,
        temperatures_K=(300.0, 900.0),
        equilibrate_steps=5,
    )
    a = copper_frames(7, **counts)
    b = copper_frames(7, **counts)
    c = copper_frames(8, **counts)
    assert len(a) == 2 + 2 + 2 + 2
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.positions, y.positions)
        assert x.info["REF_energy"] == y.info["REF_energy"]
    assert not np.allclose(a[0].positions, c[0].positions)
    kinds = [f.info["config_type"] for f in a]
    assert kinds[-1].startswith("slab") and "REF_stress" not in a[-1].info
    assert all("REF_stress" in f.info for f in a[:-2])
    atoms = a[2].copy()  # a strained cell: labels agree with EMT
    atoms.calc = EMT()
    np.testing.assert_allclose(
        atoms.get_forces(), a[2].arrays["REF_forces"], atol=1e-10
    )
    np.testing.assert_allclose(
        atoms.get_stress(voigt=False).reshape(9), a[2].info["REF_stress"], atol=1e-10
    )
    assert np.abs(a[2].info["REF_stress"]).max() > 1e-3
