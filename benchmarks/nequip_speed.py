"""NequIP energy+forces speed: jaxmlp vs jax-md's NequIP vs InstaDeep mlip, same run.

Each code runs as a subprocess in its own environment (jaxmlp: this interpreter; peers:
.peers/<name>/bin/python, made by benchmarks/setup_peers.sh) on fcc Cu supercells of
4 n^3 atoms (a = 3.61 Å, rattled 0.05 Å), r_max 5 Å, 3 layers, 32 channels, l <= 2.
A call is energy + forces for a fixed graph / neighbor list (building it is not timed).
Reported: compile time (lower + compile), median wall time of the timed calls after one
warm-up call, median process CPU time (steadier on a shared machine), XLA's FLOP count
(compiled cost analysis) and the FLOP rate it implies, next to the dense-matmul rate of
the same core and thread setting.

Thread settings: "1" pins the process to CPU 0 (taskset) and sets XLA_FLAGS
``--xla_cpu_multi_thread_eigen=false``; "2" leaves the process on both cores with
``--xla_cpu_multi_thread_eigen=true`` (XLA's default thread pool, one thread per core).

Usage:
    bash benchmarks/setup_peers.sh            # once: .peers/jax-md and .peers/mlip
    python benchmarks/nequip_speed.py         # writes benchmarks/results/nequip_speed.{json,md}
    python benchmarks/nequip_speed.py --cells 2,4 --threads 1 --peers jax-md   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEERS = {
    "jax-md": ("jax-md", "jaxmd_nequip.py"),
    "mlip": ("mlip", "mlip_nequip.py"),
}


def thread_env(threads: int):
    """(command prefix, environment) for an XLA thread setting."""
    env = dict(os.environ)
    if threads == 1:
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false"
        prefix = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    else:
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=true"
        cpus = ",".join(str(c) for c in range(threads))
        prefix = ["taskset", "-c", cpus] if shutil.which("taskset") else []
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONWARNINGS"] = "ignore"
    return prefix, env


def run_worker(python, script, threads, extra, timeout=1800):
    prefix, env = thread_env(threads)
    cmd = prefix + [python, os.path.join(HERE, "peers", script)] + extra
    print("$", " ".join(cmd), f"[threads={threads}]", flush=True)
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    results = []
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            row = json.loads(line[len("RESULT ") :])
            row["threads"] = threads
            results.append(row)
            print(
                "  ",
                {k: v for k, v in row.items() if k not in ("times_s", "cpu_s")},
                flush=True,
            )
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        results.append(
            {"code": script, "threads": threads, "error": proc.stderr[-500:]}
        )
    return results


def markdown(rows, peak, meta):
    lines = [
        "# NequIP energy + forces: jaxmlp vs jax-md vs mlip (CPU)",
        "",
        f"{meta['date']}, {meta['cpu']}; fcc Cu (a = 3.61 Å, rattled), r_max 5 Å, "
        "3 layers, 32 channels, l ≤ 2, radial MLP 8 → 64 → 64, one species. "
        "Times per energy+forces call on a fixed graph (median after a warm-up call); "
        "CPU = process CPU time (the machine is shared, so CPU time is the steadier "
        "number); compile = lower + compile, s. GFLOP/s = XLA's FLOP count / wall time.",
        "",
    ]
    for threads in sorted({r["threads"] for r in rows}):
        mm = {
            p["dtype"]: p["gflops"]
            for p in peak
            if p["threads"] == threads and "gflops" in p
        }
        lines.append(
            f"## {threads} thread{'s' if threads > 1 else ''} "
            f"(dense matmul peak here: {mm.get('float32', 0):.0f} GFLOP/s f32, "
            f"{mm.get('float64', 0):.0f} GFLOP/s f64)"
        )
        lines.append("")
        lines.append(
            "| atoms | edges | code | dtype | wall ms | CPU ms | compile s | GFLOP/call | GFLOP/s "
            "| padded edges | vs jaxmlp f32 (CPU) |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
        sel = [r for r in rows if r["threads"] == threads and "median_s" in r]
        base = {
            r["n_atoms"]: r["median_cpu_s"]
            for r in sel
            if r["code"] == "jaxmlp" and r["dtype"] == "float32"
        }
        for r in sorted(sel, key=lambda r: (r["n_atoms"], r["code"], r["dtype"])):
            flops = r.get("flops")
            gf = f"{flops / 1e9:.2f}" if flops else "–"
            rate = f"{flops / 1e9 / r['median_s']:.1f}" if flops else "–"
            ratio = (
                f"{r['median_cpu_s'] / base[r['n_atoms']]:.2f}x"
                if r["n_atoms"] in base
                else "–"
            )
            lines.append(
                f"| {r['n_atoms']} | {r.get('n_edges', '')} | {r['code']} | {r['dtype']} "
                f"| {1e3 * r['median_s']:.1f} | {1e3 * r['median_cpu_s']:.1f} "
                f"| {r['compile_s']:.1f} | {gf} | {rate} | {r.get('padded_edges', '')} | {ratio} |"
            )
        skipped = [r for r in rows if r["threads"] == threads and "skipped" in r]
        for r in skipped:
            lines.append(
                f"\n{r['code']} at {r['n_atoms']} atoms skipped: {r['skipped']}."
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cells", default="2,3,4,6,8", help="n of the n x n x n cubic cells"
    )
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--peers", default="jax-md,mlip")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget-s", type=float, default=15.0)
    parser.add_argument("--no-float64", action="store_true")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "nequip_speed"))
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep rows of other thread settings from an existing --out JSON",
    )
    args = parser.parse_args()
    common = [
        "--cells",
        args.cells,
        "--repeats",
        str(args.repeats),
        "--budget-s",
        str(args.budget_s),
    ]
    thread_list = [int(t) for t in args.threads.split(",") if t]
    rows, peak = [], []
    if args.merge and os.path.exists(args.out + ".json"):
        with open(args.out + ".json") as f:
            old = json.load(f)
        rows = [r for r in old["results"] if r["threads"] not in thread_list]
        peak = [r for r in old["matmul_peak"] if r["threads"] not in thread_list]
    for threads in thread_list:
        peak += run_worker(sys.executable, "matmul_peak.py", threads, [])
        rows += run_worker(
            sys.executable, "jaxmlp_nequip.py", threads, common + ["--dtype", "float32"]
        )
        if not args.no_float64:
            rows += run_worker(
                sys.executable,
                "jaxmlp_nequip.py",
                threads,
                common + ["--dtype", "float64"],
            )
        for peer in [p for p in args.peers.split(",") if p]:
            venv, script = PEERS[peer]
            python = os.path.join(ROOT, ".peers", venv, "bin", "python")
            if not os.path.exists(python):
                print(f"peer {peer} missing: run bash benchmarks/setup_peers.sh {peer}")
                continue
            rows += run_worker(python, script, threads, common + ["--dtype", "float32"])
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": platform.processor() or platform.machine(),
        "load_average": os.getloadavg(),
        "args": vars(args),
    }
    try:
        with open("/proc/cpuinfo") as f:
            names = [
                ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")
            ]
        meta["cpu"] = f"{names[0]} ({len(names)} cores)" if names else meta["cpu"]
    except OSError:
        pass
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump({"meta": meta, "matmul_peak": peak, "results": rows}, f, indent=1)
    text = markdown(rows, peak, meta)
    with open(args.out + ".md", "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
