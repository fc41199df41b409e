"""Learning curves and training throughput on the embedded copper data (EMT labels).

For n_train in 25, 50, 100, 200, 400 structures, train the demo NequIP and a MACE of
similar size (same data, same training settings, same number of optimizer steps with a
cosine schedule), one after the other in the same run, and report the test-set force and
energy MAE (52 held-out structures). Throughput is structures per second of the jitted
train step (second-order: forces in the loss), compilation excluded (median over epochs).

Usage: python benchmarks/train_accuracy.py [--steps 2500] [--models nequip mace]
       [--out benchmarks/results]
Writes train_accuracy.json and train_accuracy.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time

import jax
import numpy as np

from jaxmlp.datasets import write_copper_dataset
from jaxmlp.train.config import config_from_dict
from jaxmlp.train.loop import fit
from jaxmlp.workflows import DEMO_MODEL, DEMO_TRAIN

SIZES = (25, 50, 100, 200, 400)
# MACE at the scale of the demo NequIP: 2 layers, 16 channels, L <= 1 hidden features,
# spherical harmonics to l = 2, correlation 3 (body order 4).
MACE_MODEL = {
    "name": "mace",
    "r_max": 4.0,
    "num_interactions": 2,
    "channels": 16,
    "max_L": 1,
    "max_ell": 2,
    "correlation": 3,
    "radial_mlp": [32, 32],
    "readout_mlp": 16,
}
MODELS = {"nequip": DEMO_MODEL, "mace": MACE_MODEL}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", type=int, default=2500, help="optimizer steps per training run"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument(
        "--models", nargs="+", default=list(MODELS), choices=list(MODELS)
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", default=os.path.join(os.path.dirname(__file__), "results")
    )
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="jaxmlp-bench-")
    t0 = time.perf_counter()
    paths = write_copper_dataset(os.path.join(work, "data"), args.seed)
    data_time = time.perf_counter() - t0
    batch_size = DEMO_TRAIN["batch_size"]
    rows = []
    for name, n in ((name, n) for name in args.models for n in args.sizes):
        steps_per_epoch = math.ceil(n / batch_size)
        epochs = max(10, round(args.steps / steps_per_epoch))
        config = config_from_dict(
            {
                "model": MODELS[name],
                "data": {
                    "train_file": paths["train"],
                    "valid_file": paths["valid"],
                    "test_file": paths["test"],
                    "max_train": n,
                },
                "train": DEMO_TRAIN
                | {
                    "epochs": epochs,
                    "max_minutes": None,
                    "eval_every": max(1, epochs // 25),
                    "seed": args.seed,
                    "progress": False,
                },
                "output": os.path.join(work, f"run_{name}_{n}"),
            }
        )
        t = time.perf_counter()
        result = fit(config, overwrite=True)
        wall = time.perf_counter() - t
        # Free the compiled programs of this run: each holds thousands of memory
        # mappings, and ten runs' worth exceed vm.max_map_count (jaxmlp.compile_guard).
        jax.clear_caches()
        history = result.history
        throughput = float(np.median([r["structures_per_s"] for r in history[1:]]))
        test = result.metrics["test"]
        row = {
            "model": name,
            "params": result.model.num_params(),
            "n_train": result.metrics["n_train"],
            "epochs": result.metrics["epochs_run"],
            "steps": history[-1]["step"],
            "test_forces_mae_meV_per_A": test["forces_mae_meV_per_A"],
            "test_forces_rmse_meV_per_A": test["forces_rmse_meV_per_A"],
            "test_energy_mae_meV_per_atom": test["energy_mae_meV_per_atom"],
            "test_stress_mae_meV_per_A3": test["stress_mae_meV_per_A3"],
            "structures_per_s": throughput,
            "first_epoch_s": history[0]["train_time_s"],
            "compiles_train": result.metrics["compiles_train"],
            "buckets": len(result.metrics["buckets"]),
            "train_compiles_after_first_epoch": history[-1]["compiles_train"]
            - history[0]["compiles_train"],
            "wall_s": wall,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)

    machine = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "load_average_1_5_15": list(os.getloadavg()),
    }
    report = {
        "models": {name: MODELS[name] for name in args.models},
        "train": DEMO_TRAIN | {"steps": args.steps},
        "data_generation_s": data_time,
        "machine": machine,
        "rows": rows,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "train_accuracy.json"), "w") as f:
        json.dump(report, f, indent=2)
    models = ", ".join(f"{name} `{json.dumps(MODELS[name])}`" for name in args.models)
    lines = [
        "## Training: learning curves and throughput (copper, EMT labels)",
        "",
        f"Models, trained one after the other in the same run with the same data and "
        f"settings: {models}. float32, batch {batch_size}, about {args.steps} Adam steps "
        f"per run (cosine), test set of 52 structures; {machine['backend']} on "
        f"{machine['cpu_count']} cores, jax {machine['jax']}. Throughput: structures/s of the "
        "jitted train step (forces in the loss), compilation excluded. Load average at the "
        f"end: {machine['load_average_1_5_15'][1]:.1f} (5 min): a shared machine slows throughput.",
        "",
        "| model | params | n_train | epochs | test F MAE (meV/Å) | test F RMSE (meV/Å) | test E MAE (meV/atom) | test S MAE (meV/Å³) | structures/s | train-step compiles (buckets) | wall (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['params']} | {r['n_train']} | {r['epochs']} | "
            f"{r['test_forces_mae_meV_per_A']:.1f} | "
            f"{r['test_forces_rmse_meV_per_A']:.1f} | {r['test_energy_mae_meV_per_atom']:.2f} | "
            f"{r['test_stress_mae_meV_per_A3']:.2f} | {r['structures_per_s']:.0f} | "
            f"{r['compiles_train']} ({r['buckets']}) | {r['wall_s']:.0f} |"
        )
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "train_accuracy.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
