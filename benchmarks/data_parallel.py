"""Data-parallel training throughput: structures/s vs device count.

Each device count runs in its own process (the count is fixed when jax is imported;
on CPU the devices are faked with ``--xla_force_host_platform_device_count``), training
the same small NequIP on the same EMT copper data. On fake CPU devices all "devices"
share the same cores, so this measures the overhead of the sharded program, not a
speed-up. Median structures/s over the epochs after the first (compilation excluded).

    python benchmarks/data_parallel.py [--devices 1 2 4] [--epochs 6]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def worker(devices: int, epochs: int, directory: str) -> None:
    import jax
    import numpy as np

    sys.path.insert(0, os.path.join(HERE, "..", "tests"))
    from test_train import tiny_config, write_dataset

    from jaxmlp.train import fit

    data = write_dataset(directory, n=32)
    config = tiny_config(
        data,
        os.path.join(directory, "run"),
        epochs=epochs,
        batch_size=8,
        devices=devices,
    )
    result = fit(config)
    rates = [h["structures_per_s"] for h in result.history[1:]]
    print(
        json.dumps(
            {
                "devices": devices,
                "backend": jax.default_backend(),
                "structures_per_s": float(np.median(rates)),
                "epochs_timed": len(rates),
                "buckets": result.metrics["buckets"],
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.epochs, args.dir)
        return
    rows = []
    for n in args.devices:
        env = dict(os.environ)
        env["XLA_FLAGS"] = (
            env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={n}"
        ).strip()
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                str(n),
                "--dir",
                tmp,
                "--epochs",
                str(args.epochs),
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode:
            raise SystemExit(proc.stderr[-2000:])
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "data_parallel.json"), "w") as f:
        json.dump(
            {
                "args": vars(args),
                "cpu_affinity": sorted(os.sched_getaffinity(0)),
                "rows": rows,
            },
            f,
            indent=2,
        )
    base = rows[0]["structures_per_s"]
    lines = [
        "## Data-parallel training: structures/s vs device count",
        "",
        f"Tiny NequIP, 32 EMT Cu structures, batch 8, median over {args.epochs - 1} "
        f"epochs after the first, backend {rows[0]['backend']}, cores "
        f"{sorted(os.sched_getaffinity(0))}. These are *fake* CPU devices sharing the "
        "same cores: the table shows the overhead of the sharded program (collectives, "
        "padding to a multiple of the device count), not a speed-up.",
        "",
        "| devices | structures/s | vs 1 device |",
        "|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['devices']} | {r['structures_per_s']:.3g} | "
            f"{r['structures_per_s'] / base:.2f}x |"
        )
    with open(os.path.join(args.out, "data_parallel.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
