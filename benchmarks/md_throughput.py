"""MD throughput: jaxmlp NVT (one compiled chunk of K steps per host sync) against ASE's
Langevin driving ``JaxMLPCalculator`` (one host round trip per step) and against jax-md's
own NequIP in a jax-md Langevin loop built the same way (``benchmarks/peers/
jaxmd_nequip_md.py``, run in its own venv ``.peers/jax-md`` from ``setup_peers.sh``), fcc Cu,
all three in the same run.

Reports atom·steps/s for each size, and separately: compile time of the chunk (AOT
``lower().compile()``), host neighbor-list allocation time, and the time of one forced
neighbor rebuild inside jit. Writes JSON and a markdown table.

Usage: python benchmarks/md_throughput.py [--sizes 3 4 5 6 8 10] [--chunk 20]
       [--out benchmarks/results/md_throughput]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from ase import units
from ase.build import bulk
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

import jaxmlp
from jaxmlp import JaxMLPCalculator
from jaxmlp.md import (
    Ensemble,
    Programs,
    advance,
    guards_for,
    make_simulation,
    neighbors,
    start,
)
from jaxmlp.md.chunk import make_observe_fn, make_run_chunk, make_step_fn
from jaxmlp.md.loop import reallocate as reallocate_lists
from jaxmlp.md.simulation import precision

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers"))
from common import time_chunks  # noqa: E402  (the MD timing loop shared with the peers)

MODEL = dict(r_max=4.5, num_layers=2, channels=16, l_max=1, radial_hidden=(32,))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JAXMD_PYTHON = os.path.join(ROOT, ".peers", "jax-md", "bin", "python")


def block(tree):
    return jax.tree.map(
        lambda x: x.block_until_ready() if hasattr(x, "block_until_ready") else x, tree
    )


def bench_jaxmlp(model, atoms, chunk: int, repeats: int):
    ensemble = Ensemble("nvt-langevin", timestep=2.0, temperature=300.0, friction=0.01)
    sim = make_simulation(model, atoms, ensemble, dtype="float32")
    with precision(sim.x64):
        return _bench_jaxmlp(sim, model, chunk, repeats)


def _bench_jaxmlp(sim, model, chunk: int, repeats: int):
    programs = Programs()
    params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float32), model.params)
    n_frames, stride = chunk // 10, 10
    t = time.perf_counter()
    progress = start(sim, programs, params, seed=0)
    block(progress.carry)
    t_start = time.perf_counter() - t
    t = time.perf_counter()
    nbrs = sim.allocate(progress.state.position)
    block(nbrs.idx)
    t_alloc = time.perf_counter() - t
    kT = jnp.asarray(sim.kT, jnp.float32)
    # settle: two chunks through the host loop (reallocates if the list overflows)
    progress = advance(
        sim,
        programs,
        params,
        progress,
        2 * n_frames,
        stride=stride,
        frames_per_chunk=n_frames,
        kT=sim.kT,
        guards=guards_for(sim),
    )
    reallocations = progress.reallocations
    body = make_run_chunk(make_step_fn(sim), make_observe_fn(sim), n_frames, stride)
    t = time.perf_counter()
    compiled = jax.jit(body).lower(params, progress.carry, kT).compile()
    t_compile = time.perf_counter() - t
    # one forced rebuild (positions shifted beyond the skin) vs. a no-op update, through
    # the simulation's declared rebuild policy (positions as the list sees them)
    box = sim.box
    update = jax.jit(lambda p, nb, ref_box: sim.update_fn(p, nb, ref_box, box)[0])
    carry = progress.carry
    positions = sim.list_positions(carry.state.position, box)
    shifted = jnp.mod(positions + 0.37, 1.0)
    block(update(shifted, carry.nbrs, carry.ref_box))
    block(update(positions, carry.nbrs, carry.ref_box))
    t = time.perf_counter()
    for _ in range(5):
        block(update(shifted, carry.nbrs, carry.ref_box).idx)
    t_rebuild = (time.perf_counter() - t) / 5
    t = time.perf_counter()
    for _ in range(5):
        block(update(positions, carry.nbrs, carry.ref_box).idx)
    t_check = (time.perf_counter() - t) / 5

    def reallocate(pair):  # pair: (carry, frames of the last chunk)
        fresh, _ = reallocate_lists(sim, pair[0])
        return (fresh, None), run(jax.jit(body).lower(params, fresh, kT).compile())

    def run(
        program,
    ):  # (carry, frames) -> (carry, frames), the signature time_chunks expects
        return lambda pair: program(params, pair[0], kT)

    elapsed, (carry, _), chunk_reallocations, recompile_s = time_chunks(
        run(compiled),
        (progress.carry, None),
        repeats,
        overflowed=lambda new: bool(int(new[1].error[-1]) & neighbors.REPAIRABLE),
        reallocate=reallocate,
    )
    reallocations += chunk_reallocations
    t_compile += recompile_s
    steps = repeats * chunk
    return {
        "atom_steps_per_s": sim.system.n_atoms * steps / elapsed,
        "ms_per_step": 1000 * elapsed / steps,
        "compile_s": t_compile,
        "init_s": t_start,
        "neighbor_allocate_s": t_alloc,
        "neighbor_rebuild_ms": 1000 * t_rebuild,
        "neighbor_check_ms": 1000 * t_check,
        "capacity": neighbors.capacity(carry.nbrs),
        "edges": neighbors.n_edges(carry.nbrs),
        "cell_list": carry.nbrs.cell_list_fn is not None,
        "steps_timed": steps,
        "reallocations": reallocations,
    }


def bench_ase(model, atoms, steps: int):
    atoms = atoms.copy()
    atoms.calc = JaxMLPCalculator(model, dtype="float32")
    MaxwellBoltzmannDistribution(
        atoms, temperature_K=300.0, rng=np.random.default_rng(0)
    )
    Stationary(atoms)
    dyn = Langevin(
        atoms, timestep=2.0 * units.fs, temperature_K=300.0, friction=0.01 / units.fs
    )
    t = time.perf_counter()
    dyn.run(2)  # compile
    t_compile = time.perf_counter() - t
    for _ in range(3):  # time a window without a recompilation (a new padding bucket)
        compilations = atoms.calc.compilations
        t = time.perf_counter()
        dyn.run(steps)
        elapsed = time.perf_counter() - t
        if atoms.calc.compilations == compilations:
            break
    return {
        "atom_steps_per_s": len(atoms) * steps / elapsed,
        "ms_per_step": 1000 * elapsed / steps,
        "first_steps_s": t_compile,
        "calculator_compilations": atoms.calc.compilations,
        "steps_timed": steps,
    }


def bench_jaxmd(n: int, chunk: int, repeats: int) -> dict:
    """jax-md's NequIP, same model size and MD settings, in its own venv (subprocess)."""
    if not os.path.exists(JAXMD_PYTHON):
        return {"skipped": "peer venv missing: bash benchmarks/setup_peers.sh jax-md"}
    cmd = [
        JAXMD_PYTHON,
        os.path.join(ROOT, "benchmarks", "peers", "jaxmd_nequip_md.py"),
        "--sizes",
        str(n),
        "--chunk",
        str(chunk),
        "--repeats",
        str(repeats),
        "--channels",
        str(MODEL["channels"]),
        "--layers",
        str(MODEL["num_layers"]),
        "--l-max",
        str(MODEL["l_max"]),
        "--r-max",
        str(MODEL["r_max"]),
        "--radial-hidden",
        str(MODEL["radial_hidden"][0]),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    print(proc.stderr[-3000:], file=sys.stderr)
    return {"skipped": f"jax-md worker failed (exit {proc.returncode})"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[3, 4, 5, 6, 8, 10],
        help="cubic repeats n (4 n^3 atoms)",
    )
    parser.add_argument(
        "--chunk", type=int, default=20, help="steps per compiled chunk"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed chunks")
    parser.add_argument("--ase-steps", type=int, default=10)
    parser.add_argument("--out", default="benchmarks/results/md_throughput")
    args = parser.parse_args()
    model = jaxmlp.build_model(
        "nequip", species=("Cu",), seed=0, avg_num_neighbors=40.0, **MODEL
    )
    rows = []
    for n in args.sizes:
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((n, n, n))
        atoms.rattle(0.02, seed=n)
        repeats = max(1, args.repeats if len(atoms) <= 1000 else 1)
        ours = bench_jaxmlp(model, atoms, args.chunk, repeats)
        ase_steps = (
            args.ase_steps if len(atoms) <= 1000 else max(3, args.ase_steps // 3)
        )
        theirs = bench_ase(model, atoms, ase_steps)
        jaxmd = bench_jaxmd(n, args.chunk, repeats)
        row = {"n_atoms": len(atoms), "jaxmlp": ours, "ase": theirs, "jax_md": jaxmd}
        rows.append(row)
        print(json.dumps(row), flush=True)
        write_results(args, rows)


def write_results(args, rows):
    meta = {
        "device": str(jax.devices()[0]),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "jax": jax.__version__,
        "model": {"name": "nequip", **MODEL},
        "dtype": "float32",
        "timestep_fs": 2.0,
        "ensemble": "Langevin NVT 300 K",
        "skin_A": 0.5,
        "capacity_multiplier": 1.2,
        "chunk_steps": args.chunk,
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=2)
    lines = [
        "# MD throughput: jaxmlp NVT vs jax-md's NequIP and ASE Langevin + JaxMLPCalculator (fcc Cu)",
        "",
        f"Device: {meta['device']} ({meta['cpu_count']} CPU cores visible, shared), "
        f"jax {meta['jax']}, float32, NequIP {MODEL}, dt 2 fs, skin 0.5 Å, "
        f"capacity x1.2, {args.chunk} steps per compiled chunk.",
        "",
        "| atoms | jaxmlp atom·steps/s | jax-md NequIP atom·steps/s | vs jax-md | "
        "ASE atom·steps/s | vs ASE | jaxmlp ms/step | "
        "compile s | reallocs | nbr alloc s | nbr rebuild ms | nbr check ms | edges / capacity "
        "| ASE calc compiles | jax-md compile s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        o, a, j = row["jaxmlp"], row["ase"], row.get("jax_md", {"skipped": "not run"})
        if "atom_steps_per_s" in j:
            jax_md = f"{j['atom_steps_per_s']:.3g} | {o['atom_steps_per_s'] / j['atom_steps_per_s']:.1f}x"
            jax_md_compile = f"{j['compile_s']:.1f}"
        else:
            jax_md, jax_md_compile = f"– ({j['skipped']}) | –", "–"
        lines.append(
            f"| {row['n_atoms']} | {o['atom_steps_per_s']:.3g} | {jax_md} | "
            f"{a['atom_steps_per_s']:.3g} | "
            f"{o['atom_steps_per_s'] / a['atom_steps_per_s']:.1f}x | {o['ms_per_step']:.1f} | "
            f"{o['compile_s']:.1f} | {o['reallocations']} | {o['neighbor_allocate_s']:.2f} | "
            f"{o['neighbor_rebuild_ms']:.1f} | {o['neighbor_check_ms']:.2f} | "
            f"{o['edges']} / {o['capacity']} | {a['calculator_compilations']} | "
            f"{jax_md_compile} |"
        )
    lines += [
        "",
        "Throughput excludes compilation ('compile s' includes recompiles after 'reallocs' "
        "neighbor reallocations); 'nbr rebuild' is one forced in-jit rebuild "
        "(cell list where the box has >= 4 cells per side, else dense), 'nbr check' the "
        "no-rebuild displacement test done every step. jax-md: its "
        "`energy.nequip_neighbor_list` with the same hidden irreps, radial MLP, cutoff, skin "
        "and capacity multiplier, `simulate.nvt_langevin`, the same chunked `lax.scan` with "
        "one host sync per chunk (no frames recorded: jaxmlp's chunk also records a frame "
        "every 10 steps). ASE: timed over a window in which the calculator did not recompile "
        "(a window with a new padding bucket is retimed).",
    ]
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
