"""Memory of large systems: bytes per atom for energy+forces and for an MD step.

For fcc Cu (a = 3.61 Å, r_max = 5 Å: 54 neighbors per atom) of growing size, two
measurements per model (NequIP and MACE with their default hyper-parameters, float32,
i.e. chunked edge pipelines above a few thousand edges; ``*_unchunked``: the same
models with ``edge_chunk=0`` (and MACE ``node_chunk=0``), everything at once):

* ``compiled``: XLA's own memory analysis of the compiled energy+forces program
  (arguments + outputs + temporaries, bytes; nothing runs, so sizes past the machine's
  memory are reported too and marked ``fits = False``);
* ``md_peak_rss``: the peak resident memory (``VmHWM``) of a fresh process that
  builds the system and runs a few NVE steps through ``run_md`` (jax-md neighbor list +
  model + integrator in one compiled chunk), for the sizes that fit.

Writes ``large_systems.json`` and ``large_systems.md`` to ``--out``.

    python benchmarks/large_systems.py --sizes 256 4096 16384 100000 \
        --md-sizes 256 2048 16384 108000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NEIGHBORS = 54  # fcc within 5 Å: 12 + 6 + 24 + 12
MODELS = {  # name -> (architecture, hyper-parameters)
    "nequip": ("nequip", {}),
    "mace": ("mace", {}),
    "nequip_unchunked": ("nequip", {"edge_chunk": 0}),
    "mace_unchunked": ("mace", {"edge_chunk": 0, "node_chunk": 0}),
}


def compiled_bytes(name: str, n_atoms: int) -> dict:
    """XLA memory analysis of energy+forces of ``n_atoms`` with 54 edges each."""
    import jax
    import numpy as np

    import jaxmlp
    from jaxmlp.graph import Graph
    from jaxmlp.potential import predict

    arch, hyper = MODELS[name]
    model = jaxmlp.build_model(arch, ("Cu",), 5.0, **hyper)
    n, e = n_atoms + 1, NEIGHBORS * n_atoms
    f32, i32 = np.float32, np.int32
    S = jax.ShapeDtypeStruct
    graph = Graph(
        positions=S((n, 3), f32),
        species=S((n,), i32),
        node_graph=S((n,), i32),
        senders=S((e,), i32),
        receivers=S((e,), i32),
        shifts=S((e, 3), f32),
        cell=S((2, 3, 3), f32),
        pbc=S((2, 3), bool),
        node_mask=S((n,), bool),
        edge_mask=S((e,), bool),
        graph_mask=S((2,), bool),
    )
    t = time.perf_counter()
    fn = jax.jit(lambda p, g: predict(model.apply_fn, p, g))
    compiled = fn.lower(model.params, graph).compile()
    stats = compiled.memory_analysis()
    total = (
        stats.argument_size_in_bytes
        + stats.output_size_in_bytes
        + stats.temp_size_in_bytes
    )
    return {
        "n_atoms": n_atoms,
        "n_edges": e,
        "argument_bytes": stats.argument_size_in_bytes,
        "temp_bytes": stats.temp_size_in_bytes,
        "total_bytes": total,
        "bytes_per_atom": total / n_atoms,
        "compile_s": time.perf_counter() - t,
    }


def peak_rss_bytes() -> int:
    """Peak resident memory of this process: ``VmHWM`` (Linux; reset by exec, unlike
    ``ru_maxrss``, which a child started by a large parent inherits), else ru_maxrss."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def md_worker(name: str, n_atoms: int) -> None:
    """In a fresh process: a few NVE steps of ``n_atoms``; prints the peak RSS."""
    import numpy as np
    from ase.build import bulk

    import jaxmlp
    from jaxmlp.md import Ensemble, MDOptions, run_md

    reps = max(1, round((n_atoms / 4) ** (1 / 3)))
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((reps, reps, reps))
    atoms.rattle(0.02, seed=0)
    arch, hyper = MODELS[name]
    model = jaxmlp.build_model(arch, ("Cu",), 5.0, **hyper)
    base = peak_rss_bytes()
    t = time.perf_counter()
    out = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"large_{name}_{n_atoms}")
    result = run_md(
        model,
        atoms,
        Ensemble("nve", timestep=0.5, temperature=10.0),
        steps=4,
        out_dir=out,
        options=MDOptions(stride=2, frames_per_chunk=2, plots=False),
    )
    peak = peak_rss_bytes()
    print(
        json.dumps(
            {
                "n_atoms": len(atoms),
                "md_peak_rss_bytes": peak,
                "rss_before_model_bytes": base,
                "md_wall_s": time.perf_counter() - t,
                "message": result.message,
                "finite": bool(np.isfinite(result.thermo["Etot_eV"]).all())
                if "Etot_eV" in result.thermo
                else None,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="*", default=[256, 4096, 16384, 100000]
    )
    parser.add_argument(
        "--md-sizes", type=int, nargs="*", default=[256, 2048, 16384, 108000]
    )
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--md-models", nargs="*", default=["nequip", "mace"])
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the rows of the existing large_systems.json (new rows replace "
        "those of the same model and size)",
    )
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--md-worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.md_worker:
        md_worker(args.md_worker[0], int(args.md_worker[1]))
        return
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    rows = []
    if args.merge:
        with open(os.path.join(args.out, "large_systems.json")) as f:
            rows = json.load(f)["rows"]

    def key(row):
        return row["model"], row.get("n_atoms"), row.get("md_n_atoms")

    def add(row):  # the report is rewritten after every row (MD runs take long)
        old = [i for i, r in enumerate(rows) if key(r) == key(row)]
        if old:
            rows[old[0]] = row
        else:
            rows.append(row)
        print(json.dumps(row), flush=True)
        write_report(args.out, rows, memory)

    for name in args.models:
        for n in args.sizes:
            row = {"model": name} | compiled_bytes(name, n)
            row["fits"] = row["total_bytes"] < 0.9 * memory
            add(row)
    for name in args.md_models:
        for n in args.md_sizes:
            t = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, __file__, "--md-worker", name, str(n)],
                capture_output=True,
                text=True,
            )
            if proc.returncode:
                row = {"model": name, "md_n_atoms": n, "error": proc.stderr[-500:]}
                row["returncode"] = proc.returncode
                row["md_wall_s"] = time.perf_counter() - t
            else:
                data = json.loads(proc.stdout.strip().splitlines()[-1])
                row = {"model": name, "md_n_atoms": data.pop("n_atoms")} | data
            add(row)


def write_report(out: str, rows: list[dict], memory: int) -> None:
    """``large_systems.json`` and ``large_systems.md`` in ``out``."""
    import jax

    report = {
        "machine": {
            "platform": platform.platform(),
            "memory_bytes": memory,
            "jax": jax.__version__,
            "backend": jax.default_backend(),
        },
        "rows": rows,
    }
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "large_systems.json"), "w") as f:
        json.dump(report, f, indent=2)
    gib = 2.0**30
    lines = [
        "## Large systems: memory per atom (fcc Cu, r_max 5 Å, 54 neighbors/atom, float32)",
        "",
        f"Machine memory {memory / gib:.1f} GiB, backend {jax.default_backend()}. "
        "`compiled`: XLA's memory analysis of the energy+forces program (arguments + "
        "outputs + temporaries; nothing runs). `MD peak RSS`: the peak resident memory "
        "(VmHWM) of a fresh process running 4 NVE steps with `run_md` (includes "
        "Python, jax, compilation and the host copies). "
        "`nequip`, `mace`: default hyper-parameters (edge chunking, MACE also node "
        "chunking); `*_unchunked`: `edge_chunk=0` (MACE also `node_chunk=0`).",
        "",
        "| model | atoms | edges | compiled energy+forces (GiB) | bytes/atom | fits |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if "total_bytes" in r:
            lines.append(
                f"| {r['model']} | {r['n_atoms']} | {r['n_edges']} | "
                f"{r['total_bytes'] / gib:.3g} | {r['bytes_per_atom']:.3g} | "
                f"{'yes' if r['fits'] else 'no'} |"
            )
    lines += [
        "",
        "| model | atoms | MD peak RSS (GiB) | bytes/atom | wall (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "md_peak_rss_bytes" in r:
            lines.append(
                f"| {r['model']} | {r['md_n_atoms']} | "
                f"{r['md_peak_rss_bytes'] / gib:.3g} | "
                f"{r['md_peak_rss_bytes'] / r['md_n_atoms']:.3g} | "
                f"{r['md_wall_s']:.1f} |"
            )
        elif "md_n_atoms" in r:
            lines.append(
                f"| {r['model']} | {r['md_n_atoms']} | failed (exit "
                f"{r.get('returncode')}) | | {r.get('md_wall_s', 0):.1f} |"
            )
    with open(os.path.join(out, "large_systems.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
