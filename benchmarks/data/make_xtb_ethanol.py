"""Generate the ethanol reference set: GFN2-xTB (tblite) Langevin MD at 500 K.

Level of theory: GFN2-xTB (Bannwarth, Ehlert, Grimme 2019) through tblite's ASE
calculator, default accuracy, no solvent. Sampling mirrors rMD17: one trajectory of the
molecule in vacuum, decorrelated snapshots. 1 ps of equilibration, then one structure
every 10 fs. Labels: REF_energy (eV), REF_forces (eV/Å). The generator is deterministic
for a given seed and tblite version (recorded in each frame's info).

Needs `pip install tblite ase` (in its own venv: tblite is not a jaxmlp dependency).
Usage: python benchmarks/data/make_xtb_ethanol.py [--n 700] [--out benchmarks/data/ethanol_gfn2.xyz]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import ase.io
import numpy as np
from ase import units
from ase.build import molecule
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import (
    MaxwellBoltzmannDistribution,
    Stationary,
    ZeroRotation,
)
from tblite.ase import TBLite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=700, help="structures to write")
    parser.add_argument("--temperature", type=float, default=500.0, help="K")
    parser.add_argument(
        "--every", type=int, default=20, help="MD steps (0.5 fs) between samples"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", default=os.path.join(os.path.dirname(__file__), "ethanol_gfn2.xyz")
    )
    args = parser.parse_args()

    from importlib.metadata import version

    tblite_version = version("tblite")
    atoms = molecule("CH3CH2OH")
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    rng = np.random.default_rng(args.seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=args.temperature, rng=rng)
    Stationary(atoms)
    ZeroRotation(atoms)
    dyn = Langevin(
        atoms,
        0.5 * units.fs,
        temperature_K=args.temperature,
        friction=0.01 / units.fs,
        rng=rng,
    )
    dyn.run(2000)  # 1 ps equilibration
    frames, cost = [], []
    for i in range(args.n):
        dyn.run(args.every)
        frame = atoms.copy()
        del frame.arrays["momenta"]
        frame.calc = TBLite(method="GFN2-xTB", verbosity=0)
        t0 = time.process_time()
        energy = frame.get_potential_energy()
        forces = frame.get_forces()
        cost.append(time.process_time() - t0)
        frame.calc = None
        frame.info.update(
            REF_energy=float(energy), level="GFN2-xTB", tblite=tblite_version, sample=i
        )
        frame.arrays["REF_forces"] = forces
        frames.append(frame)
    tmp = args.out + ".tmp"
    ase.io.write(tmp, frames, format="extxyz")
    os.replace(tmp, args.out)
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump(
            {
                "level": "GFN2-xTB",
                "tblite": tblite_version,
                "n": len(frames),
                "temperature_K": args.temperature,
                "sample_every_fs": 0.5 * args.every,
                "reference_cpu_s_per_structure_median": float(np.median(cost)),
            },
            f,
            indent=2,
        )
    print(
        f"wrote {len(frames)} structures to {args.out}; GFN2-xTB energy+forces "
        f"{1e3 * np.median(cost):.2f} ms CPU per structure (median)"
    )


if __name__ == "__main__":
    main()
