"""Train jaxmlp MACE and mace-torch side by side on the embedded copper data.

Same training/validation/test split (``jaxmlp.datasets.write_copper_dataset``; the
training set cut to ``--n-train`` structures and written once for both), same
architecture (channels, max_L, max_ell, correlation, radial basis/MLP, readout MLP),
same batch size, epochs, peak learning rate, AMSGrad, EMA decay, gradient clip, loss
weights (energy 1, forces 100, no stress) and float32. mace-torch is trained with its own
``mace_run_train`` CLI in the peer venv (``benchmarks/setup_mace_torch.sh``), its test
predictions made with ``mace_eval_configs``; jaxmlp with ``jaxmlp.train.loop.fit``.
Both test MAEs are computed here by the same code from the predictions.

Not identical: mace-torch's learning-rate schedule is ReduceLROnPlateau (factor 0.8,
patience 50, i.e. constant in a run this short) and jaxmlp's a plateau schedule with the
same settings; mace fits E0s by least squares ("average") and scales by the RMS force,
jaxmlp computes its own statistics of the same kinds.

Usage: python benchmarks/compare_mace_torch.py [--n-train 200] [--epochs 40]
Writes ``benchmarks/results/compare_mace_torch.{json,md}``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

import ase.io
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_BIN = os.path.join(ROOT, ".peers", "mace-torch", "bin")

MODEL = {
    "r_max": 4.0,
    "channels": 16,
    "max_L": 1,
    "max_ell": 2,
    "correlation": 3,
    "num_interactions": 2,
    "num_bessel": 8,
    "num_poly_cutoff": 5,
    "radial_mlp": [32, 32],
    "readout_mlp": 16,
}


def mae(pred_path, ref_atoms, energy_key, forces_key):
    pred = ase.io.read(pred_path, index=":")
    de, df = [], []
    for p, r in zip(pred, ref_atoms):
        n = len(r)
        de.append(abs(p.info[energy_key] - r.info["REF_energy"]) / n)
        df.append(
            np.abs(np.asarray(p.arrays[forces_key]) - r.arrays["REF_forces"]).ravel()
        )
    return 1e3 * float(np.mean(de)), 1e3 * float(np.mean(np.concatenate(df)))


def train_mace_torch(args, paths, work):
    os.makedirs(work, exist_ok=True)
    cmd = [
        os.path.join(PEER_BIN, "mace_run_train"),
        "--name",
        "mace_cu",
        "--work_dir",
        work,
        "--seed",
        str(args.seed),
        "--train_file",
        paths["train"],
        "--valid_file",
        paths["valid"],
        "--test_file",
        paths["test"],
        "--energy_key",
        "REF_energy",
        "--forces_key",
        "REF_forces",
        "--stress_key",
        "REF_stress",
        "--E0s",
        "average",
        "--model",
        "MACE",
        "--num_channels",
        str(MODEL["channels"]),
        "--max_L",
        str(MODEL["max_L"]),
        "--max_ell",
        str(MODEL["max_ell"]),
        "--correlation",
        str(MODEL["correlation"]),
        "--num_interactions",
        str(MODEL["num_interactions"]),
        "--r_max",
        str(MODEL["r_max"]),
        "--num_radial_basis",
        str(MODEL["num_bessel"]),
        "--num_cutoff_basis",
        str(MODEL["num_poly_cutoff"]),
        "--radial_MLP",
        json.dumps(MODEL["radial_mlp"]),
        "--MLP_irreps",
        f"{MODEL['readout_mlp']}x0e",
        "--batch_size",
        str(args.batch_size),
        "--valid_batch_size",
        "8",
        "--max_num_epochs",
        str(args.epochs),
        "--lr",
        str(args.lr),
        "--ema",
        "--ema_decay",
        "0.99",
        "--amsgrad",
        "--clip_grad",
        "10.0",
        "--loss",
        "weighted",
        "--energy_weight",
        "1.0",
        "--forces_weight",
        "100.0",
        "--weight_decay",
        "0.0",
        "--eval_interval",
        str(max(1, args.epochs // 2)),
        "--device",
        "cpu",
        "--default_dtype",
        "float32",
        "--num_workers",
        "0",
    ]
    env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1", OMP_NUM_THREADS="2")
    t = time.perf_counter()
    with open(os.path.join(work, "mace_train.log"), "w") as log:
        subprocess.run(
            cmd, check=True, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work
        )
    wall = time.perf_counter() - t
    model_path = sorted(glob.glob(os.path.join(work, "*.model")))
    model_path = [
        p for p in model_path if "compiled" not in p and "stagetwo" not in p
    ] or model_path
    out = os.path.join(work, "mace_test_pred.xyz")
    subprocess.run(
        [
            os.path.join(PEER_BIN, "mace_eval_configs"),
            "--configs",
            paths["test"],
            "--model",
            model_path[0],
            "--output",
            out,
            "--default_dtype",
            "float32",
            "--device",
            "cpu",
        ],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=work,
    )
    return wall, out


def train_jaxmlp(args, paths, work):
    from jaxmlp.calculator import JaxMLPCalculator
    from jaxmlp.train.config import config_from_dict
    from jaxmlp.train.loop import fit

    config = config_from_dict(
        {
            "model": {"name": "mace"} | MODEL,
            "data": {
                "train_file": paths["train"],
                "valid_file": paths["valid"],
                "test_file": paths["test"],
            },
            "train": {
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "learning_rate": args.lr,
                "optimizer": "amsgrad",
                "schedule": "plateau",
                "plateau_factor": 0.8,
                "plateau_patience": 50,
                "warmup_epochs": 0.0,
                "clip_norm": 10.0,
                "energy_weight": 1.0,
                "forces_weight": 100.0,
                "stress_weight": 0.0,
                "ema_decay": 0.99,
                "seed": args.seed,
                "eval_every": max(1, args.epochs // 2),
                "dtype": "float32",
                "progress": False,
            },
            "output": os.path.join(work, "jaxmlp_run"),
        }
    )
    t = time.perf_counter()
    result = fit(config, overwrite=True)
    wall = time.perf_counter() - t
    calc = JaxMLPCalculator(result.model, dtype="float64")
    out = os.path.join(work, "jaxmlp_test_pred.xyz")
    preds = []
    for atoms in ase.io.read(paths["test"], index=":"):
        atoms = atoms.copy()
        atoms.calc = calc
        e, f = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = None
        atoms.info["JAXMLP_energy"] = e
        atoms.arrays["JAXMLP_forces"] = f
        preds.append(atoms)
    ase.io.write(out, preds)
    return wall, out, result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    parser.add_argument("--work", default=None, help="keep run files here")
    args = parser.parse_args(argv)
    if not os.path.exists(os.path.join(PEER_BIN, "mace_run_train")):
        sys.exit("peer venv missing: run benchmarks/setup_mace_torch.sh first")
    from jaxmlp.datasets import write_copper_dataset

    work = args.work or tempfile.mkdtemp(prefix="jaxmlp-mace-cmp-")
    paths = write_copper_dataset(os.path.join(work, "data"), args.seed)
    train = ase.io.read(paths["train"], index=":")
    order = np.random.default_rng(args.seed).permutation(len(train))[: args.n_train]
    paths = dict(paths, train=os.path.join(work, "data", f"train_{args.n_train}.xyz"))
    ase.io.write(paths["train"], [train[i] for i in sorted(order)])
    test = ase.io.read(paths["test"], index=":")

    j_wall, j_pred, result = train_jaxmlp(args, paths, work)
    j_mae = mae(j_pred, test, "JAXMLP_energy", "JAXMLP_forces")
    print("jaxmlp", j_wall, j_mae, flush=True)
    t_wall, t_pred = train_mace_torch(args, paths, os.path.join(work, "mace"))
    t_mae = mae(t_pred, test, "MACE_energy", "MACE_forces")
    print("mace-torch", t_wall, t_mae, flush=True)

    report = {
        "model": MODEL,
        "n_train": len(order),
        "n_test": len(test),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "jaxmlp": {
            "wall_s": j_wall,
            "test_energy_mae_meV_per_atom": j_mae[0],
            "test_forces_mae_meV_per_A": j_mae[1],
            "num_params": int(result.model.num_params()),
        },
        "mace_torch": {
            "wall_s": t_wall,
            "test_energy_mae_meV_per_atom": t_mae[0],
            "test_forces_mae_meV_per_A": t_mae[1],
        },
        "cpu_count": os.cpu_count(),
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "compare_mace_torch.json"), "w") as f:
        json.dump(report, f, indent=1)
    lines = [
        "## MACE: jaxmlp vs mace-torch, trained side by side (copper, EMT labels)",
        "",
        f"{report['n_train']} training structures, {report['n_test']} test structures, "
        f"{args.epochs} epochs, batch {args.batch_size}, lr {args.lr} (AMSGrad, EMA 0.99), "
        f"float32 on CPU ({os.cpu_count()} cores, shared). Model: `{json.dumps(MODEL)}`. "
        "Wall-clock includes data statistics, compilation and evaluation.",
        "",
        "| code | test E MAE (meV/atom) | test F MAE (meV/Å) | training wall-clock (s) |",
        "|---|---|---|---|",
        f"| jaxmlp MACE | {j_mae[0]:.2f} | {j_mae[1]:.1f} | {j_wall:.0f} |",
        f"| mace-torch {MODEL['channels']}ch | {t_mae[0]:.2f} | {t_mae[1]:.1f} | {t_wall:.0f} |",
    ]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "compare_mace_torch.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
