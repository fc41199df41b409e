"""Reaction-event analysis against synthetic trajectories with known answers.

Thresholds are computed here from ASE's covalent radii (H 0.31, C 0.76, O 0.66,
Cu 1.32 Å) and the documented factors, never read back from the code under test.
"""

import csv
import json

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import fcc111, molecule
from ase.data import covalent_radii

from jaxmlp.analysis import analyze_reactions, hill_formula, write_reaction_report
from jaxmlp.cli import main

R_H, R_C, R_O = (covalent_radii[z] for z in (1, 6, 8))


def formula(key):
    return key.split("#")[0]


def counts_by_formula(analysis, frame):
    out = {}
    for key, n in zip(analysis.species, analysis.species_counts[frame]):
        if n:
            out[formula(key)] = out.get(formula(key), 0) + int(n)
    return out


def dimer(symbols, distances, **atoms_kwargs):
    return [
        Atoms(symbols, positions=[[0, 0, 0], [d, 0, 0]], **atoms_kwargs)
        for d in distances
    ]


def approach_co(n_far=5, n_close=8):
    """C fixed, O moving in from 4 Å to 1.13 Å, then staying; times 0.5 fs apart."""
    distances = [4.0] * n_far + [3.0, 2.2, 1.8, 1.5, 1.3] + [1.13] * n_close
    frames = dimer("CO", distances)
    for k, atoms in enumerate(frames):
        atoms.info["time_fs"] = 0.5 * k
    # First frame below f_on (1.15) x (r_C + r_O) = 1.633 Å is the d = 1.5 one.
    return frames, n_far + 3


def test_hill_formula():
    assert hill_formula({"O": 1, "H": 2}) == "H2O"
    assert hill_formula({"O": 1, "H": 6, "C": 2}) == "C2H6O"
    assert hill_formula({"H": 2}) == "H2"
    assert hill_formula({"Cu": 1, "C": 1, "O": 1}) == "CCuO"
    assert hill_formula({"N": 1, "H": 3}) == "H3N"


def test_h2_stretched_breaks_once_at_threshold():
    distances = np.linspace(0.70, 1.50, 41)  # 0.02 Å per frame
    analysis = analyze_reactions(dimer("H2", distances))
    expected = int(np.argmax(distances > 1.35 * 2 * R_H))  # first frame past f_off
    assert [(e.frame, e.kind, e.i, e.j) for e in analysis.events] == [
        (expected, "broken", 0, 1)
    ]
    event = analysis.events[0]
    assert [formula(s) for s in event.species_before] == ["H2"]
    assert [formula(s) for s in event.species_after] == ["H", "H"]
    assert counts_by_formula(analysis, 0) == {"H2": 1}
    assert counts_by_formula(analysis, expected - 1) == {"H2": 1}
    assert counts_by_formula(analysis, expected) == {"H": 2}
    assert counts_by_formula(analysis, -1) == {"H": 2}
    assert analysis.summary["event_counts"] == {"H-H broken": 1}
    assert analysis.bonds.shape == (41, 1)
    assert analysis.bonds[:expected, 0].all() and not analysis.bonds[expected:, 0].any()


def test_oscillation_in_band_and_short_excursions_give_no_events():
    s = R_C + R_O
    below, band, beyond = 1.05 * s, 1.25 * s, 1.45 * s
    # Band vibrations, then beyond f_off for 1-2 frames (< min_lifetime = 3) and back
    # below f_on (the band keeps a broken bond broken, so it must not follow).
    pattern = [below, band, below, band, band, beyond, beyond, below, band]
    distances = pattern * 3 + [band, beyond, below, band, beyond, beyond, below]
    analysis = analyze_reactions(dimer("CO", distances), min_lifetime=3)
    assert analysis.events == ()
    assert analysis.bonds.all()
    assert counts_by_formula(analysis, -1) == {"CO": 1}
    # Unbonded start: band excursions and a 2-frame dip below f_on form nothing.
    far = [2.0 * s, band, band, 1.05 * s, 1.05 * s, 2.0 * s, band] * 2
    assert analyze_reactions(dimer("CO", far)).events == ()
    # min_lifetime = 1 counts every crossing of the thresholds.
    assert len(analyze_reactions(dimer("CO", distances), min_lifetime=1).events) == 10


def test_periodic_bond_across_boundary():
    length = 3.0  # cell smaller than twice the cutoff: images matter
    frames = []
    for k in range(12):
        shift = 0.15 * k  # both atoms drift through the boundary at x = 0 / L
        positions = [[0.2 + shift, 1.0, 1.0], [length - 0.5 + shift, 1.0, 1.0]]
        atoms = Atoms("H2", positions=positions, cell=[length] * 3, pbc=True)
        atoms.wrap()
        frames.append(atoms)
    assert frames[0].get_distance(0, 1, mic=True) == pytest.approx(0.7)
    analysis = analyze_reactions(frames)
    assert analysis.events == ()
    assert analysis.bonds.all()
    assert [counts_by_formula(analysis, t) for t in range(12)] == [{"H2": 1}] * 12
    # Without pbc the same positions are 2.3 Å apart: two atoms.
    for atoms in frames:
        atoms.pbc = False
    assert counts_by_formula(analyze_reactions(frames[:1]), 0) == {"H": 2}


def test_co_formation_and_first_passage():
    frames, formed_at = approach_co()
    analysis = analyze_reactions(frames)
    assert len(analysis.events) == 1
    event = analysis.events[0]
    assert (event.frame, event.kind, event.element_i, event.element_j) == (
        formed_at,
        "formed",
        "C",
        "O",
    )
    assert event.time_fs == pytest.approx(0.5 * formed_at)
    assert sorted(formula(s) for s in event.species_before) == ["C", "O"]
    assert [formula(s) for s in event.species_after] == ["CO"]
    (co_key,) = [k for k in analysis.species if formula(k) == "CO"]
    assert analysis.summary["first_passage_fs"] == {co_key: 0.5 * formed_at}
    assert analysis.summary["event_counts"] == {"C-O formed": 1}
    assert analysis.summary["parameters"]["time_source"] == "info['time_fs']"


def test_isomers_share_formula_not_hash():
    ethanol, ether = molecule("CH3CH2OH"), molecule("CH3OCH3")
    ether.translate([20.0, 0.0, 0.0])
    (a,) = analyze_reactions([ethanol]).species
    (b,) = analyze_reactions([ether]).species
    both = analyze_reactions([ethanol + ether])
    assert formula(a) == formula(b) == "C2H6O"
    assert a != b
    assert sorted(both.species) == sorted([a, b])
    # The hash does not depend on atom order or position.
    shuffled = ethanol[np.random.default_rng(0).permutation(len(ethanol))]
    shuffled.translate([3.0, -1.0, 2.0])
    assert analyze_reactions([shuffled]).species == (a,)


def test_substrate_adsorption():
    slab = fcc111("Cu", size=(2, 2, 2), vacuum=8.0)
    top = int(np.argmax(slab.positions[:, 2]))
    site = slab.positions[top]
    heights = [4.0] * 5 + [3.2, 2.6] + [1.9] * 6  # C above the top Cu atom, Å
    frames = []
    for h in heights:
        co = Atoms("CO", positions=[site + [0, 0, h], site + [0, 0, h + 1.13]])
        frames.append(slab + co)
    # Cu-C: f_on x (1.32 + 0.76) = 2.39 Å, first crossed at h = 1.9 (frame 7).
    analysis = analyze_reactions(frames, substrate={"Cu"})
    assert all("Cu" not in k for k in analysis.species)
    assert counts_by_formula(analysis, 0) == {"CO": 1}
    assert counts_by_formula(analysis, -1) == {"CO*": 1}
    (event,) = analysis.events
    assert (event.frame, event.kind) == (7, "formed")
    assert {event.element_i, event.element_j} == {"C", "Cu"}
    assert {event.i, event.j} == {top, len(slab)}
    assert sorted(event.species_before) == sorted(["*", analysis.species[0]])
    assert [formula(s) for s in event.species_after] == ["CO*"]
    # Without substrate handling the slab is part of one big molecule.
    assert "CCu8O" in {formula(k) for k in analyze_reactions(frames[-1:]).species}


def test_bad_factors_raise():
    frames = dimer("CO", [1.1])
    with pytest.raises(ValueError, match="C-O"):
        analyze_reactions(frames, pairs={("O", "C"): (1.3, 1.3)})
    with pytest.raises(ValueError, match="f_off > f_on"):
        analyze_reactions(frames, f_on=1.3, f_off=1.2)
    with pytest.raises(ValueError, match="element"):
        analyze_reactions(frames, substrate={"Xx"})


def test_pair_factors_change_the_answer():
    s = R_C + R_O
    frames = dimer("CO", [2.0 * s] * 2 + [1.12 * s] * 5)
    assert len(analyze_reactions(frames).events) == 1
    assert analyze_reactions(frames, pairs={("C", "O"): (1.1, 1.3)}).events == ()


def test_min_lifetime_fs_and_timestep(tmp_path):
    s = R_C + R_O
    distances = [2.0 * s] * 3 + [s] * 2 + [2.0 * s] * 5  # 2-frame contact
    frames = dimer("CO", distances)
    assert analyze_reactions(frames, min_lifetime=2).events != ()
    one = analyze_reactions(frames, timestep_fs=0.5, min_lifetime_fs=1.0)
    assert one.summary["parameters"]["min_lifetime_frames"] == 2
    assert len(one.events) == 2 and one.events[0].time_fs == pytest.approx(1.5)
    assert analyze_reactions(frames, timestep_fs=0.5, min_lifetime_fs=1.5).events == ()


def test_report_and_cli(tmp_path):
    frames, formed_at = approach_co()
    path = tmp_path / "traj.extxyz"
    ase.io.write(path, frames, format="extxyz")
    out = tmp_path / "report"
    assert main(["analyze", str(path), "--out", str(out), "--pair", "C-O:1.1:1.3"]) == 0
    for name in ("events.csv", "species.csv", "summary.json", "species.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "species.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(out / "events.csv") as f:
        (row,) = list(csv.DictReader(f))
    # C-O at 1.1 x 1.42 = 1.562 Å: still first crossed at the 1.5 Å frame.
    assert (int(row["frame"]), row["kind"], row["element_i"], row["element_j"]) == (
        formed_at,
        "formed",
        "C",
        "O",
    )
    assert float(row["time_fs"]) == pytest.approx(0.5 * formed_at)
    assert sorted(formula(s) for s in row["species_before"].split(" + ")) == ["C", "O"]
    assert formula(row["species_after"]) == "CO"
    with open(out / "species.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(frames)
    co = row["species_after"]
    assert [int(r[co]) for r in rows] == [0] * formed_at + [1] * (
        len(frames) - formed_at
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_frames"] == len(frames) and summary["n_atoms"] == 2
    assert summary["event_counts"] == {"C-O formed": 1}
    assert summary["first_passage_fs"] == {co: 0.5 * formed_at}
    assert summary["parameters"]["pairs"] == {"C-O": [1.1, 1.3]}
    assert summary["atom_frames_per_s"] > 0
    assert not list(out.glob(".tmp-*"))
    # Bad factors: exit code 2, no traceback.
    bad = ["analyze", str(path), "--out", str(out), "--f-on", "1.4", "--f-off", "1.3"]
    assert main(bad) == 2


def test_write_report_without_events(tmp_path):
    analysis = analyze_reactions(dimer("H2", [0.74] * 4))
    paths = write_reaction_report(analysis, tmp_path / "x", plot=False)
    assert set(paths) == {"events", "species", "summary"}
    assert (tmp_path / "x" / "events.csv").read_text().count("\n") == 1
