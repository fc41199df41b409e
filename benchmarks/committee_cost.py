"""What a committee costs: one MD step (and one calculator call with the spread) of a
K-member committee, full or shallow (last-layer), against the single model, same
architecture, same run.

fcc Cu (108 atoms), NVT Langevin, float32; the committee's MD chunk also records every
frame's per-atom force spread (K member force evaluations per frame, ``stride`` steps
apart). CPU time (``time.process_time``) per step, median of ``--repeats`` chunks after
compilation. Pin to one core for comparable numbers:

    taskset -c 0 env XLA_FLAGS="--xla_cpu_multi_thread_eigen=false \\
        intra_op_parallelism_threads=1" python benchmarks/committee_cost.py

Writes ``committee_cost.json`` and ``committee_cost.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import numpy as np
from ase.build import bulk

import jaxmlp
from jaxmlp.md import Ensemble, Programs, advance, guards_for, make_simulation, start

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = {
    "schnet": dict(features=64, num_interactions=3, num_rbf=20),
    "nequip": dict(num_layers=2, channels=16, l_max=1, radial_hidden=(32,)),
}


def md_step_cpu(model, atoms, steps: int, stride: int, repeats: int) -> float:
    """CPU seconds per MD step (median over chunks, compilation excluded)."""
    # untrained models: a short timestep and a low temperature keep the atoms in place
    # (the cost of a step does not depend on either)
    sim = make_simulation(model, atoms, Ensemble("nvt-langevin", 0.05, 10.0))
    programs = Programs()
    progress = start(sim, programs, model.params)
    kw = dict(stride=stride, frames_per_chunk=steps // stride, kT=sim.kT)
    kw["guards"] = guards_for(sim)
    n_frames = steps // stride
    advance(sim, programs, model.params, progress, n_frames, **kw)  # compile
    times = []
    for _ in range(repeats):
        t = time.process_time()
        advance(sim, programs, model.params, progress, n_frames, **kw)
        times.append((time.process_time() - t) / steps)
    return float(np.median(times))


def calculator_cpu(model, atoms, repeats: int) -> float:
    calc = jaxmlp.JaxMLPCalculator(model)
    atoms = atoms.copy()
    atoms.calc = calc
    atoms.get_forces()
    times = []
    for i in range(repeats):
        atoms.positions[0, 0] += 1e-4 * (i + 1)  # a new call each time
        t = time.process_time()
        atoms.get_forces()
        times.append(time.process_time() - t)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--stride", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args()
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((3, 3, 3))
    atoms.rattle(0.05, seed=0)
    rows = []
    for name, hyper in MODELS.items():
        row = {"model": name, "hyper": hyper}
        variants = (
            ("single", None, False),
            ("committee", args.members, False),
            ("shallow", args.members, True),
        )
        for label, members, shallow in variants:
            model = jaxmlp.build_model(
                name, ("Cu",), 4.0, members=members, shallow=shallow, **hyper
            )
            row[f"{label}_md_step_ms"] = 1e3 * md_step_cpu(
                model, atoms, args.steps, args.stride, args.repeats
            )
            row[f"{label}_calculator_ms"] = 1e3 * calculator_cpu(
                model, atoms, args.repeats
            )
            jax.clear_caches()
        row["md_ratio"] = row["committee_md_step_ms"] / row["single_md_step_ms"]
        row["calculator_ratio"] = (
            row["committee_calculator_ms"] / row["single_calculator_ms"]
        )
        row["shallow_md_ratio"] = row["shallow_md_step_ms"] / row["single_md_step_ms"]
        row["shallow_calculator_ratio"] = (
            row["shallow_calculator_ms"] / row["single_calculator_ms"]
        )
        rows.append(row)
        print(json.dumps(row), flush=True)
    report = {
        "args": vars(args),
        "n_atoms": len(atoms),
        "machine": {
            "platform": platform.platform(),
            "cpu_affinity": sorted(os.sched_getaffinity(0)),
            "jax": jax.__version__,
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
        },
        "rows": rows,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "committee_cost.json"), "w") as f:
        json.dump(report, f, indent=2)
    k = args.members
    lines = [
        f"## What a committee costs (K = {k} vs one model)",
        "",
        f"fcc Cu, {len(atoms)} atoms, NVT Langevin (untrained models, 0.05 fs, 10 K), float32, CPU time per step "
        f"(median of {args.repeats} chunks of {args.steps} steps, compilation excluded); "
        f"the committee's chunk also records each frame's force spread every "
        f"{args.stride} steps. Calculator: one energy+forces(+spread) call. "
        f"Cores: {report['machine']['cpu_affinity']}.",
        "",
        "| model | single MD step (ms) | full committee MD step (ms) | ratio | "
        "shallow MD step (ms) | ratio | single calculator (ms) | full committee "
        "calculator (ms) | ratio | shallow calculator (ms) | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['single_md_step_ms']:.3g} | "
            f"{r['committee_md_step_ms']:.3g} | {r['md_ratio']:.2f}x | "
            f"{r['shallow_md_step_ms']:.3g} | {r['shallow_md_ratio']:.2f}x | "
            f"{r['single_calculator_ms']:.3g} | {r['committee_calculator_ms']:.3g} | "
            f"{r['calculator_ratio']:.2f}x | {r['shallow_calculator_ms']:.3g} | "
            f"{r['shallow_calculator_ratio']:.2f}x |"
        )
    lines += [
        "",
        "Full committee: K models that share only the neighbor list and the "
        "integrator. Shallow: the members share everything but the last layer, so the "
        "mean force (the MD force) costs one model; the spread still needs K "
        "gradients through the shared trunk (one batched backward pass).",
    ]
    with open(os.path.join(args.out, "committee_cost.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
