"""Energy+forces time per call vs number of atoms: jaxmlp MACE vs mace-torch, CPU.

Rattled fcc Cu supercells, r_max 5 Å, the same MACE hyper-parameters on both sides
(mace-torch defaults unless ``--channels`` etc. say otherwise), float32 and float64, in
one run, size by size (mace-torch then jaxmlp, so both see the same machine load).
jaxmlp: ``jax.jit(predict)`` without stress, compilation (first call) reported
separately; mace-torch: ``model(batch, compute_force=True)`` with ``torch.set_num_threads``
= the number of cores, first call reported separately. Times are medians of repeats.

Usage: python benchmarks/mace_speed.py [--sizes 2 3 4] [--channels 128]
Writes ``benchmarks/results/mace_speed.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_PYTHON = os.path.join(ROOT, ".peers", "mace-torch", "bin", "python")
PEER_SCRIPT = os.path.join(ROOT, "benchmarks", "mace_torch_peer.py")


def time_jaxmlp(model, atoms, dtype, seconds, min_repeats, max_repeats):
    from jaxmlp.graph import batch_graphs
    from jaxmlp.potential import predict
    from jaxmlp.structure import Structure

    fn = jax.jit(
        lambda params, graph: predict(
            model.apply_fn, params, graph, compute_stress=False
        )
    )
    with jax.enable_x64(dtype == "float64"):
        np_dtype = np.float64 if dtype == "float64" else np.float32
        graph = batch_graphs(
            [Structure.from_ase(atoms)], model.species, model.r_max, dtype=np_dtype
        )
        graph = jax.device_put(graph)
        params = jax.device_put(
            jax.tree.map(lambda p: np.asarray(p, np_dtype), model.params)
        )
        t0 = time.perf_counter()
        out = fn(params, graph)
        jax.block_until_ready(out)
        first = time.perf_counter() - t0
        times = []
        t_end = time.perf_counter() + seconds
        while len(times) < min_repeats or (
            time.perf_counter() < t_end and len(times) < max_repeats
        ):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(params, graph))
            times.append(time.perf_counter() - t0)
        return {
            "dtype": dtype,
            "n_atoms": len(atoms),
            "n_edges": int(np.asarray(graph.edge_mask).sum()),
            "first_call_s": first,
            "median_s": float(np.median(times)),
            "repeats": len(times),
            "energy": float(out.energy[0]),
        }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[2, 3, 4],
        help="cubic fcc repeats (4 atoms each): 2 -> 32 atoms",
    )
    parser.add_argument("--channels", type=int, default=128)
    parser.add_argument("--max-L", type=int, default=1)
    parser.add_argument("--max-ell", type=int, default=3)
    parser.add_argument("--correlation", type=int, default=3)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--min-repeats", type=int, default=3)
    parser.add_argument("--max-repeats", type=int, default=20)
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    args = parser.parse_args(argv)
    if not os.path.exists(PEER_PYTHON):
        sys.exit("peer venv missing: run benchmarks/setup_mace_torch.sh first")
    import ase.io
    from ase.build import bulk

    import jaxmlp

    hyper = {
        "channels": args.channels,
        "max_L": args.max_L,
        "max_ell": args.max_ell,
        "correlation": args.correlation,
    }
    r_max, avg = 5.0, 40.0
    model = jaxmlp.build_model(
        "mace", species=("Cu",), r_max=r_max, avg_num_neighbors=avg, **hyper
    )
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for rep in args.sizes:
            atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((rep, rep, rep))
            atoms.rattle(0.05, seed=rep)
            path = os.path.join(work, f"cu_{rep}.xyz")
            ase.io.write(path, atoms)
            spec = {
                "hyper": hyper,
                "atomic_numbers": [29],
                "r_max": r_max,
                "avg_num_neighbors": avg,
                "dtypes": args.dtypes,
                "structure_files": [path],
                "seconds": args.seconds,
                "min_repeats": args.min_repeats,
                "max_repeats": args.max_repeats,
                "threads": os.cpu_count(),
            }
            spec_path = os.path.join(work, "spec.json")
            with open(spec_path, "w") as f:
                json.dump(spec, f)
            env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1")
            subprocess.run(
                [PEER_PYTHON, PEER_SCRIPT, "speed", spec_path, work],
                check=True,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            torch_rows = json.load(open(os.path.join(work, "speed.json")))["rows"]
            for t_row in torch_rows:
                j_row = time_jaxmlp(
                    model,
                    atoms,
                    t_row["dtype"],
                    args.seconds,
                    args.min_repeats,
                    args.max_repeats,
                )
                row = {
                    "n_atoms": len(atoms),
                    "n_edges": j_row["n_edges"],
                    "dtype": t_row["dtype"],
                    "jaxmlp_ms": 1e3 * j_row["median_s"],
                    "mace_torch_ms": 1e3 * t_row["median_s"],
                    "speedup": t_row["median_s"] / j_row["median_s"],
                    "jaxmlp_compile_s": j_row["first_call_s"],
                    "mace_torch_first_call_s": t_row["first_call_s"],
                    "n_edges_torch": t_row["n_edges"],
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    machine = {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
    }
    report = {"hyper": hyper, "r_max": r_max, "machine": machine, "rows": rows}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "mace_speed.json"), "w") as f:
        json.dump(report, f, indent=1)
    lines = [
        "## MACE energy+forces speed: jaxmlp vs mace-torch (CPU)",
        "",
        f"Rattled fcc Cu, r_max {r_max} Å, MACE `{json.dumps(hyper)}` (2 layers, radial MLP "
        f"[64, 64, 64]), {os.cpu_count()} CPU cores (shared machine), jax {jax.__version__}, "
        "mace-torch run as a subprocess in its own venv, same run. Median time per "
        "energy+forces call; compilation / first call separate.",
        "",
        "| atoms | edges | dtype | jaxmlp (ms) | mace-torch (ms) | speed-up | jaxmlp compile (s) | mace-torch first call (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n_atoms']} | {r['n_edges']} | {r['dtype']} | {r['jaxmlp_ms']:.0f} | "
            f"{r['mace_torch_ms']:.0f} | {r['speedup']:.1f}x | {r['jaxmlp_compile_s']:.1f} | "
            f"{r['mace_torch_first_call_s']:.1f} |"
        )
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "mace_speed.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
