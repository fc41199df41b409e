"""GPU readiness: the physics battery's core, speed tables and the largest system, in
one script that needs only jax (with CUDA), flax, optax, e3nn-jax, jax-md, ase and
jaxmlp, and finishes in under 8 minutes.

On a machine where ``jax.devices()`` shows a GPU it runs there; ``--cpu`` is a dry run
on CPU with small sizes (what CI and a laptop can afford). Sections:

1. physics (float64, NequIP and MACE): energy invariance and force equivariance under a
   rotation *with inversion*, forces against central finite differences, the energies an
   MD run records against a fresh calculator on every frame, NVE drift;
2. speed (float32 and float64): energy+forces per call and MD atom·steps/s vs atoms;
3. the largest fcc Cu system whose energy+forces run (doubling until out of memory or
   out of the time budget).

Writes ``gpu_check.json`` and ``gpu_check.md`` to ``--out``.

    python benchmarks/gpu_check.py [--cpu] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import jax
import numpy as np
from ase.build import bulk

HERE = os.path.dirname(os.path.abspath(__file__))
SMALL = {
    "nequip": dict(num_layers=2, channels=8, l_max=2, radial_hidden=(16,)),
    "mace": dict(channels=8, max_L=1, correlation=2, num_interactions=2),
}
DEFAULT = {"nequip": {}, "mace": {}}


def cu(reps: int, rattle: float = 0.05, seed: int = 0):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((reps, reps, reps))
    atoms.rattle(rattle, seed=seed)
    return atoms


def physics(name: str, md_steps: int) -> dict:
    import jaxmlp
    from jaxmlp.md import Ensemble, MDOptions, run_md

    out = {"model": name}
    model = jaxmlp.build_model(name, ("Cu",), 4.0, seed=1, **SMALL[name])
    calc = jaxmlp.JaxMLPCalculator(model, dtype="float64")
    atoms = cu(2, 0.1)
    atoms.calc = calc
    e0, f0 = atoms.get_potential_energy(), atoms.get_forces()
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q = -q if np.linalg.det(q) > 0 else q  # a rotation with inversion (det = -1)
    moved = atoms.copy()
    moved.set_cell(atoms.cell.array @ q.T, scale_atoms=False)
    moved.positions = atoms.positions @ q.T
    moved.calc = calc
    out["equivariance_energy_abs"] = abs(moved.get_potential_energy() - e0)
    out["equivariance_forces_abs"] = float(np.abs(moved.get_forces() - f0 @ q.T).max())
    h, worst = 1e-4, 0.0
    for i, k in ((0, 0), (5, 1), (17, 2)):
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, k] += h
        minus.positions[i, k] -= h
        plus.calc = minus.calc = calc
        fd = -(plus.get_potential_energy() - minus.get_potential_energy()) / (2 * h)
        worst = max(worst, abs(fd - f0[i, k]))
    out["fd_forces_abs"] = worst
    with tempfile.TemporaryDirectory() as tmp:
        result = run_md(
            model,
            cu(2, 0.02),
            Ensemble("nve", timestep=1.0, temperature=300.0),
            steps=md_steps,
            out_dir=tmp,
            options=MDOptions(
                dtype="float64", stride=10, frames_per_chunk=5, plots=False
            ),
        )
        import ase.io

        frames = ase.io.read(result.trajectory, ":")
        gap = 0.0
        for frame, epot in zip(frames, result.thermo["Epot_eV"]):
            probe = frame.copy()
            probe.calc = calc
            gap = max(gap, abs(probe.get_potential_energy() - epot))
        etot = np.asarray(result.thermo["Etot_eV"])
    out["md_energy_vs_calculator_abs"] = gap
    out["md_frames"] = len(frames)
    out["nve_drift_eV_per_atom"] = float(np.abs(etot - etot[0]).max() / len(frames[0]))
    out["md_message"] = result.message
    return out


def speed(name: str, dtype: str, sizes, md_steps: int, repeats: int) -> list:
    import jaxmlp
    from jaxmlp.md import (
        Ensemble,
        Programs,
        advance,
        guards_for,
        make_simulation,
        start,
    )

    rows = []
    model = jaxmlp.build_model(name, ("Cu",), 5.0, **DEFAULT[name])
    for reps in sizes:
        atoms = cu(reps)
        calc = jaxmlp.JaxMLPCalculator(model, dtype=dtype)
        atoms.calc = calc
        atoms.get_forces()  # compile
        times = []
        for _ in range(repeats):
            atoms.positions[0, 0] += 1e-4
            t = time.perf_counter()
            atoms.get_forces()
            times.append(time.perf_counter() - t)
        sim = make_simulation(model, atoms, Ensemble("nve", 0.5, 10.0), dtype=dtype)
        programs = Programs()
        progress = start(sim, programs, model.params)
        kw = dict(
            stride=md_steps, frames_per_chunk=1, kT=sim.kT, guards=guards_for(sim)
        )
        t = time.perf_counter()
        progress = advance(sim, programs, model.params, progress, 1, **kw)
        compile_s = time.perf_counter() - t
        t = time.perf_counter()
        progress = advance(sim, programs, model.params, progress, 1, **kw)
        step_s = (time.perf_counter() - t) / md_steps
        rows.append(
            {
                "model": name,
                "dtype": dtype,
                "n_atoms": len(atoms),
                "energy_forces_ms": 1e3 * float(np.median(times)),
                # a cell narrower than the cutoff is replicated for MD: count its atoms
                "md_atoms": sim.system.n_atoms,
                "md_atom_steps_per_s": sim.system.n_atoms / step_s,
                "md_chunk_compile_s": compile_s,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def largest(name: str, start_reps: int, budget_s: float) -> dict:
    import jaxmlp

    model = jaxmlp.build_model(name, ("Cu",), 5.0, **DEFAULT[name])
    best, t0, reps = None, time.perf_counter(), start_reps
    while time.perf_counter() - t0 < budget_s:
        atoms = cu(reps)
        atoms.calc = jaxmlp.JaxMLPCalculator(model)
        try:
            t = time.perf_counter()
            forces = atoms.get_forces()
            ok = bool(np.isfinite(forces).all())
        except Exception as error:  # out of memory: the previous size is the answer
            return {
                "model": name,
                "largest_atoms": best,
                "failed_at": len(atoms),
                "error": type(error).__name__ + ": " + str(error)[:200],
            }
        if not ok:
            break
        best = {"n_atoms": len(atoms), "first_call_s": time.perf_counter() - t}
        reps = int(round(reps * 2 ** (1 / 3))) + 1  # about twice the atoms
    return {"model": name, "largest_atoms": best, "stopped": "time budget"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cpu", action="store_true", help="dry run on CPU, small sizes"
    )
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args()
    t0 = time.perf_counter()
    backend = jax.default_backend()
    if not args.cpu and backend != "gpu":
        raise SystemExit(f"no GPU (jax backend {backend!r}); pass --cpu for a dry run")
    sizes = (2, 3) if args.cpu else (4, 8, 14)  # 12 MD compilations on the GPU
    md_steps, repeats = (10, 3) if args.cpu else (50, 10)
    report = {
        "mode": "cpu dry run" if args.cpu else "gpu",
        "machine": {
            "platform": platform.platform(),
            "devices": [str(d) for d in jax.devices()],
            "jax": jax.__version__,
        },
        "physics": [],
        "speed": [],
        "largest": [],
    }
    with jax.enable_x64(True):
        for name in SMALL:
            report["physics"].append(physics(name, 20 if args.cpu else 100))
            print(json.dumps(report["physics"][-1]), flush=True)
    for name in DEFAULT:
        for dtype in ("float32", "float64"):
            with jax.enable_x64(dtype == "float64"):
                report["speed"] += speed(name, dtype, sizes, md_steps, repeats)
    for name in DEFAULT:
        budget = 20.0 if args.cpu else 60.0
        report["largest"].append(largest(name, sizes[-1], budget))
        print(json.dumps(report["largest"][-1]), flush=True)
    report["wall_s"] = time.perf_counter() - t0
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "gpu_check.json"), "w") as f:
        json.dump(report, f, indent=2)
    lines = [
        f"## GPU check ({report['mode']}; {report['machine']['devices'][0]}; "
        f"jax {jax.__version__}; {report['wall_s']:.0f} s)",
        "",
        "| model | rotation+inversion ΔE (eV) | ΔF (eV/Å) | FD forces (eV/Å) | "
        "MD Epot vs calculator (eV) | NVE drift (eV/atom) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in report["physics"]:
        lines.append(
            f"| {r['model']} | {r['equivariance_energy_abs']:.1e} | "
            f"{r['equivariance_forces_abs']:.1e} | {r['fd_forces_abs']:.1e} | "
            f"{r['md_energy_vs_calculator_abs']:.1e} | {r['nve_drift_eV_per_atom']:.1e} |"
        )
    lines += [
        "",
        "| model | dtype | atoms | energy+forces (ms) | MD atoms | MD atom·steps/s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in report["speed"]:
        lines.append(
            f"| {r['model']} | {r['dtype']} | {r['n_atoms']} | "
            f"{r['energy_forces_ms']:.3g} | {r.get('md_atoms', '-')} | "
            f"{r['md_atom_steps_per_s']:.3g} |"
        )
    lines += ["", "| model | largest system run (atoms) |", "|---|---:|"]
    for r in report["largest"]:
        best = r["largest_atoms"]
        lines.append(f"| {r['model']} | {best['n_atoms'] if best else '-'} |")
    with open(os.path.join(args.out, "gpu_check.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
