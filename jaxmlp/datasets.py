"""Embedded reference data: labelled copper configurations from ASE's EMT calculator.

No download: everything is computed here, deterministically from a seed, in seconds.
EMT (effective medium theory, Jacobsen et al. 1996) is a cheap many-body potential; it
stands in for DFT so that the whole loop "reference data -> train -> validate -> MD" runs
anywhere. Labels are written as extended XYZ with the keys ``REF_energy`` (eV),
``REF_forces`` (eV/Å) and, for fully periodic cells, ``REF_stress`` (3x3, eV/Å³, ASE
sign convention). The Cu(111) slab has no stress label: partial labels are masked.

Contents (for the default counts):
    * bulk fcc Cu, 2x2x2 cubic cell (32 atoms), Langevin MD snapshots at 300, 600, 900
      and 1200 K;
    * strained (up to +-4 % random symmetric strain) and rattled 32-atom cells;
    * 31-atom cells with one vacancy, MD snapshots at 600 and 1000 K;
    * a 2x2x4 Cu(111) slab (16 atoms, 8 Å vacuum), MD snapshots at 300 and 700 K.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import ase
import ase.io
import numpy as np
from ase.build import bulk, fcc111
from ase.calculators.emt import EMT
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import thermalize_momenta

from jaxmlp.units import FS

A_EMT = 3.59  # Å, EMT's equilibrium fcc lattice constant for Cu


def _labelled(atoms: ase.Atoms, kind: str, with_stress: bool) -> ase.Atoms:
    """A copy of ``atoms`` with EMT labels under the REF_* keys (no calculator attached)."""
    calc = EMT()
    out = ase.Atoms(
        numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc
    )
    out.calc = calc
    energy = out.get_potential_energy()
    forces = out.get_forces()
    stress = out.get_stress(voigt=False) if with_stress else None
    out.calc = None
    out.info["REF_energy"] = float(energy)
    out.info["config_type"] = kind
    out.arrays["REF_forces"] = np.asarray(forces)
    if stress is not None:
        out.info["REF_stress"] = np.asarray(stress).reshape(9)
    return out


def _md_snapshots(
    atoms: ase.Atoms,
    temperature_K: float,
    n_snapshots: int,
    rng: np.random.Generator,
    *,
    kind: str,
    with_stress: bool,
    every: int = 10,
    equilibrate: int = 60,
    timestep_fs: float = 5.0,
) -> list[ase.Atoms]:
    """Langevin MD with EMT; a labelled snapshot every ``every`` steps after equilibration."""
    atoms = atoms.copy()
    atoms.calc = EMT()
    thermalize_momenta(atoms, temperature_K=temperature_K, rng=rng)
    dyn = Langevin(
        atoms,
        timestep_fs * FS,
        temperature_K=temperature_K,
        friction=0.02 / FS,
        fixcm=False,
        rng=rng,
    )
    dyn.run(equilibrate)
    frames = []
    for _ in range(n_snapshots):
        dyn.run(every)
        frames.append(_labelled(atoms, f"{kind}_{int(temperature_K)}K", with_stress))
    return frames


def copper_frames(
    seed: int = 0,
    *,
    n_md: int = 60,
    n_strained: int = 120,
    n_vacancy: int = 40,
    n_slab: int = 40,
    temperatures_K: Sequence[float] = (300.0, 600.0, 900.0, 1200.0),
    equilibrate_steps: int = 60,
    log: Callable[[str], None] | None = None,
) -> list[ase.Atoms]:
    """Labelled copper frames (``ase.Atoms`` with REF_* info/arrays), deterministic in seed.

    Args:
        seed: seed of every random choice (velocities, thermostat noise, strains).
        n_md: bulk MD snapshots per temperature.
        n_strained: strained and rattled bulk cells.
        n_vacancy: vacancy snapshots per temperature (600 and 1000 K).
        n_slab: slab snapshots per temperature (300 and 700 K).
        temperatures_K: temperatures of the bulk MD, K.
        equilibrate_steps: Langevin steps (5 fs) before the first snapshot of each run.
        log: progress callback, called with a short message after each kind of frame.

    Returns:
        ``len(temperatures_K) * n_md + n_strained + 2 * n_vacancy + 2 * n_slab`` frames.
    """
    log = log or (lambda message: None)
    rng = np.random.default_rng(seed)
    cubic = bulk("Cu", "fcc", a=A_EMT, cubic=True)
    supercell = cubic.repeat((2, 2, 2))  # 32 atoms, 7.18 Å
    frames: list[ase.Atoms] = []
    for temperature in temperatures_K:
        frames += _md_snapshots(
            supercell,
            temperature,
            n_md,
            rng,
            kind="bulk_md",
            with_stress=True,
            equilibrate=equilibrate_steps,
        )
        log(f"bulk MD at {temperature:.0f} K: {len(frames)} frames")
    for _ in range(n_strained):
        atoms = supercell.copy()
        strain = rng.uniform(-0.04, 0.04, (3, 3))
        strain = 0.5 * (strain + strain.T)
        atoms.set_cell(atoms.cell[:] @ (np.eye(3) + strain), scale_atoms=True)
        atoms.positions += rng.normal(
            scale=rng.uniform(0.02, 0.12), size=atoms.positions.shape
        )
        frames.append(_labelled(atoms, "strained", with_stress=True))
    log(f"strained cells: {len(frames)} frames")
    vacancy = supercell.copy()
    del vacancy[0]
    for temperature in (600.0, 1000.0):
        frames += _md_snapshots(
            vacancy,
            temperature,
            n_vacancy,
            rng,
            kind="vacancy",
            with_stress=True,
            equilibrate=equilibrate_steps,
        )
    log(f"vacancies: {len(frames)} frames")
    slab = fcc111("Cu", size=(2, 2, 4), a=A_EMT, vacuum=4.0, periodic=False)
    slab.pbc = (True, True, False)
    for temperature in (300.0, 700.0):
        frames += _md_snapshots(
            slab,
            temperature,
            n_slab,
            rng,
            kind="slab",
            with_stress=False,
            equilibrate=equilibrate_steps,
        )
    log(f"Cu(111) slab: {len(frames)} frames")
    return frames


def write_copper_dataset(
    directory: str | os.PathLike,
    seed: int = 0,
    *,
    fractions: tuple[float, float] = (0.1, 0.1),
    **counts,
) -> dict[str, str]:
    """Generate the copper data and write ``train.xyz``, ``valid.xyz``, ``test.xyz``.

    The frames are shuffled (seeded) before the split, so every file mixes all kinds.

    Args:
        directory: output folder (created).
        seed: random seed of generation and split.
        fractions: (valid, test) fractions.
        **counts: forwarded to :func:`copper_frames` (``n_md``, ``n_strained``, ``log`` ...).

    Returns:
        ``{"train": path, "valid": path, "test": path}``.
    """
    frames = copper_frames(seed, **counts)
    order = np.random.default_rng([seed, 1]).permutation(len(frames))
    n_valid = max(1, int(round(fractions[0] * len(frames))))
    n_test = max(1, int(round(fractions[1] * len(frames))))
    parts = {
        "valid": order[:n_valid],
        "test": order[n_valid : n_valid + n_test],
        "train": order[n_valid + n_test :],
    }
    os.makedirs(directory, exist_ok=True)
    paths = {}
    for name in ("train", "valid", "test"):
        path = os.path.join(os.fspath(directory), f"{name}.xyz")
        ase.io.write(path, [frames[i] for i in parts[name]], format="extxyz")
        paths[name] = path
    return paths
