"""``jaxmlp export``: the exported program runs without jaxmlp.

Judge: a fresh float64 :class:`JaxMLPCalculator` (energy, forces, stress), at three
system sizes (a free molecule-like cluster and two periodic cells, one triclinic) from
ONE export, evaluated in a subprocess in which importing jaxmlp is made impossible.
"""

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from ase.build import bulk

import jaxmlp
from jaxmlp.cli import main as cli_main
from jaxmlp.graph import neighbor_list
from jaxmlp.model_io import save_model
from jaxmlp.structure import Structure

LOADER = os.path.join(os.path.dirname(jaxmlp.__file__), "export_loader.py")

RUNNER = r"""
import importlib.abc, importlib.util, json, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "jaxmlp" or name.startswith("jaxmlp.") or name.startswith("flax"):
            raise ImportError(f"{name} must not be imported by the loader")
sys.meta_path.insert(0, Block())
import jax
jax.config.update("jax_enable_x64", True)
import numpy as np
spec = importlib.util.spec_from_file_location("export_loader", sys.argv[1])
loader = importlib.util.module_from_spec(spec); spec.loader.exec_module(loader)
model = loader.load_exported(sys.argv[2])
data = np.load(sys.argv[3])
out = {}
for k in range(int(data["count"])):
    e, f, s = model(*(data[f"{k}_{name}"] for name in
        ("positions", "numbers", "cell", "pbc", "senders", "receivers", "shifts")))
    out[f"{k}_energy"], out[f"{k}_forces"], out[f"{k}_stress"] = e, f, s
np.savez(sys.argv[4], **out)
print(json.dumps({"modules": sorted(m for m in sys.modules if m.startswith("jaxmlp") or m.startswith("flax"))}))
"""


def systems():
    rng = np.random.default_rng(0)
    cluster = bulk("Cu", "fcc", a=3.6, cubic=True)
    cluster.set_pbc(False)
    cluster.set_cell(np.zeros((3, 3)))
    small = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
    tri = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 1))
    tri.set_cell(tri.cell.array @ (np.eye(3) + 0.05 * rng.normal(size=(3, 3))), True)
    out = []
    for atoms in (cluster, small, tri):
        atoms.rattle(0.05, seed=len(atoms))
        atoms.symbols[::3] = "O"
        out.append(atoms)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", ["nequip", "schnet"])
def test_export_runs_without_jaxmlp_and_equals_the_calculator(name, tmp_path):
    hyper = {
        "nequip": dict(num_layers=2, channels=8, l_max=2, radial_hidden=(16,)),
        "schnet": dict(features=8, num_interactions=2, num_rbf=8),
    }[name]
    model = jaxmlp.build_model(name, ("Cu", "O"), 4.0, seed=3, members=2, **hyper)
    model_file, export_file = str(tmp_path / "m.jaxmlp"), str(tmp_path / "m.export")
    save_model(model, model_file)
    assert cli_main(["export", model_file, export_file, "--dtype", "float64"]) == 0
    with zipfile.ZipFile(export_file) as archive:
        meta = json.loads(archive.read("metadata.json"))
    assert meta["species"] == ["Cu", "O"] and meta["r_max"] == 4.0
    assert meta["platforms"] == ["cpu", "cuda"] and meta["dtype"] == "float64"
    assert meta["units"]["stress"] == "eV/Å³" and len(meta["sha256"]) == 64

    inputs, expected = {}, []
    calc = jaxmlp.JaxMLPCalculator(model, dtype="float64")
    for k, atoms in enumerate(systems()):
        nb = neighbor_list(Structure.from_ase(atoms), model.r_max)
        values = (atoms.positions, atoms.numbers, atoms.cell.array, atoms.pbc)
        values += (nb.senders, nb.receivers, nb.shifts)
        names = (
            "positions",
            "numbers",
            "cell",
            "pbc",
            "senders",
            "receivers",
            "shifts",
        )
        inputs |= {f"{k}_{n}": np.asarray(v) for n, v in zip(names, values)}
        atoms.calc = calc
        periodic = atoms.pbc.any()
        stress = atoms.get_stress(voigt=False) if periodic else np.zeros((3, 3))
        expected.append((atoms.get_potential_energy(), atoms.get_forces(), stress))
    inputs["count"] = np.array(len(expected))
    np.savez(tmp_path / "in.npz", **inputs)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            RUNNER,
            LOADER,
            export_file,
            str(tmp_path / "in.npz"),
            str(tmp_path / "out.npz"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["modules"] == []
    got = np.load(tmp_path / "out.npz")
    for k, (energy, forces, stress) in enumerate(expected):
        assert abs(float(got[f"{k}_energy"]) - energy) < 1e-10 * max(1.0, abs(energy))
        np.testing.assert_allclose(got[f"{k}_forces"], forces, rtol=0, atol=1e-10)
        np.testing.assert_allclose(got[f"{k}_stress"], stress, rtol=0, atol=1e-10)
    assert np.abs(expected[0][1]).max() > 1e-3  # non-vacuous forces
    assert np.all(got["0_stress"] == 0.0)  # no periodic direction, no stress


@pytest.mark.slow
def test_a_tampered_or_foreign_file_is_refused(tmp_path):
    from jaxmlp.export import export_model
    from jaxmlp.export_loader import load_exported

    model = jaxmlp.build_model("schnet", ("Cu",), 3.0, features=4, num_interactions=1)
    path = str(tmp_path / "m.export")
    export_model(model, path, platforms=("cpu",))
    with zipfile.ZipFile(path) as archive:
        meta, program = archive.read("metadata.json"), archive.read("program.bin")
    bad = str(tmp_path / "bad.export")
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("metadata.json", meta)
        archive.writestr("program.bin", program[:-1] + bytes([program[-1] ^ 1]))
    with pytest.raises(ValueError, match="checksum"):
        load_exported(bad)
    # float32 export evaluated without x64, and an unknown element named
    loaded = load_exported(path)
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    nb = neighbor_list(Structure.from_ase(atoms), 3.0)
    args = (atoms.cell.array, atoms.pbc, nb.senders, nb.receivers, nb.shifts)
    energy, forces, _ = loaded(atoms.positions, atoms.numbers, *args)
    atoms.calc = jaxmlp.JaxMLPCalculator(model, dtype="float32")
    assert energy == pytest.approx(atoms.get_potential_energy(), rel=1e-5)
    with pytest.raises(ValueError, match=r"atomic numbers \[8\]"):
        loaded(atoms.positions, [29, 29, 29, 8], *args)
    with pytest.raises(ValueError, match="triplets"):
        export_model(jaxmlp.build_model("dimenet++", ("Cu",), 3.0), path)
    assert cli_main(["export", str(tmp_path / "missing.jaxmlp"), path]) == 2
