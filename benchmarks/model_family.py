"""The model family, measured: every registered architecture trained and simulated by the
same code on the same data, in one run.

Datasets: (a) the embedded copper set (ASE EMT labels, ``jaxmlp.datasets``); (b) ethanol
labelled with GFN2-xTB (``benchmarks/data/ethanol_gfn2.xyz``, from
``benchmarks/data/make_xtb_ethanol.py``: tblite, Langevin MD at 500 K, every 10 fs).
Each model uses its registry defaults (no tuning), the same optimizer settings and the
same training budget.

Measured per (dataset, model):
* parameters; test energy/force MAE and RMSE after a fixed CPU budget (``--minutes``,
  "equal CPU-minutes"), and the validation force MAE at the largest epoch every model
  reached ("equal epochs");
* data efficiency: test force MAE at ``--sizes`` training structures (fixed optimizer
  steps each, ``--steps``);
* speed: µs per atom of one energy+forces call (CPU time, median of ``--repeats``) at
  three sizes (copper cells of 32 / 108 / 256 atoms; the ethanol molecule, 1 and 8
  copies); MD atom·steps/s (NVE, jaxmlp's compiled chunks);
* MD stability: NVE at 1.5x the training temperature from a test structure, the time
  until |E_tot - E_tot(0)| > 1 meV/atom or a blow-up (up to ``--md-ps``);
* the reference method's own CPU cost per structure next to it.

Pin the run to one core for comparable CPU times:
    taskset -c 1 env XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \\
        python benchmarks/model_family.py [--models bp schnet ...] [--quick]
Writes ``model_family.json``, ``model_family.md`` and ``model_family.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time

import ase.io
import jax
import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT

import jaxmlp
from jaxmlp.architectures import ARCHITECTURES
from jaxmlp.datasets import write_copper_dataset
from jaxmlp.md import Ensemble, MDOptions, run_md
from jaxmlp.testing import predict_jit
from jaxmlp.train.config import config_from_dict
from jaxmlp.train.loop import fit

HERE = os.path.dirname(os.path.abspath(__file__))
ETHANOL = os.path.join(HERE, "data", "ethanol_gfn2.xyz")
ORDER = (
    "lj",
    "eam",
    "morse",
    "bp",
    "schnet",
    "painn",
    "dimenet++",
    "deeppot",
    "nequip",
    "mace",
)
R_MAX = {"copper": 4.5, "ethanol": 5.0}
TRAIN_T = {"copper": 600.0, "ethanol": 500.0}  # K, typical training temperature
TIMESTEP = {"copper": 2.0, "ethanol": 0.5}  # fs
TRAIN = {
    "batch_size": 4,
    "learning_rate": 0.005,
    "warmup_epochs": 2,
    "energy_weight": 100.0,
    "forces_weight": 100.0,
    "stress_weight": 100.0,
    "ema_decay": 0.99,
    "progress": False,
}
PUBLISHED_RMD17_ETHANOL = {  # force MAE meV/Å at 1000 training structures (DFT labels)
    "bp": 13.4,
    "schnet": 17.0,
    "painn": 10.0,
    "dimenet++": 10.0,
    "nequip": 2.8,
    "mace": 2.1,
}


def datasets(work: str, quick: bool) -> dict:
    counts = (
        dict(n_md=6, n_strained=12, n_vacancy=4, n_slab=4, equilibrate_steps=20)
        if quick
        else {}
    )
    t = time.process_time()
    copper = write_copper_dataset(os.path.join(work, "copper"), 0, **counts)
    emt_cost = reference_cost_emt()
    out = {
        "copper": dict(
            copper,
            reference="ASE EMT",
            reference_cpu_s=emt_cost,
            generation_cpu_s=time.process_time() - t,
        )
    }
    frames = ase.io.read(ETHANOL, index=":")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(frames))
    n_test, n_valid = (20, 10) if quick else (200, 50)
    parts = {
        "test": order[:n_test],
        "valid": order[n_test : n_test + n_valid],
        "train": order[n_test + n_valid :],
    }
    paths = {}
    for name, idx in parts.items():
        paths[name] = os.path.join(work, f"ethanol_{name}.xyz")
        ase.io.write(paths[name], [frames[i] for i in idx], format="extxyz")
    with open(os.path.splitext(ETHANOL)[0] + ".json") as f:
        meta = json.load(f)
    out["ethanol"] = dict(
        paths,
        reference="GFN2-xTB (tblite)",
        reference_cpu_s=meta["reference_cpu_s_per_structure_median"],
    )
    return out


def reference_cost_emt(repeats: int = 10) -> float:
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(3)
    times = []
    for i in range(repeats):
        atoms.rattle(0.02, seed=i)
        atoms.calc = EMT()
        t = time.process_time()
        atoms.get_potential_energy(), atoms.get_forces()
        times.append(time.process_time() - t)
    return float(np.median(times))


def train(
    name, data, dataset, work, *, minutes=None, epochs=1000, n_train=None, tag="main"
):
    config = config_from_dict(
        {
            "model": {"name": name, "r_max": R_MAX[dataset]},
            "data": {
                "train_file": data["train"],
                "valid_file": data["valid"],
                "test_file": data["test"],
            }
            | ({"max_train": n_train} if n_train else {}),
            "train": TRAIN
            | {"epochs": epochs, "max_minutes": minutes, "eval_every": 1},
            "output": os.path.join(work, f"run_{dataset}_{name}_{tag}"),
        }
    )
    cpu, wall = time.process_time(), time.perf_counter()
    result = fit(config, overwrite=True)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    jax.clear_caches()
    return result, cpu, wall


def speed(model, structures, repeats):
    """µs per atom of one energy+forces(+stress) call, CPU time, median."""
    rows = []
    for s in structures:
        graph = jaxmlp.batch_graphs([s], model.species, model.r_max)
        jax.block_until_ready(predict_jit(model.apply_fn, model.params, graph))
        times = []
        for _ in range(repeats):
            t = time.process_time()
            jax.block_until_ready(predict_jit(model.apply_fn, model.params, graph))
            times.append(time.process_time() - t)
        rows.append(
            {
                "n_atoms": s.n_atoms,
                "us_per_atom": 1e6 * float(np.median(times)) / s.n_atoms,
            }
        )
    return rows


def md_start(path):
    """The first test structure MD can run: fully periodic or free (no slabs)."""
    for atoms in ase.io.read(path, index=":"):
        if atoms.pbc.all() or not atoms.pbc.any():
            return atoms
    raise ValueError(f"{path}: no fully periodic or free structure for MD")


def md_stability(model, atoms, dataset, work, ps):
    """NVE at 1.5x the training temperature: first time (ps) with |dE| > 1 meV/atom."""
    dt = TIMESTEP[dataset]
    steps = max(10, int(round(ps * 1000 / dt / 10)) * 10)
    result = run_md(
        model,
        atoms,
        Ensemble("nve", timestep=dt, temperature=1.5 * TRAIN_T[dataset]),
        steps=steps,
        out_dir=os.path.join(work, f"md_{dataset}_{model.config.name}"),
        options=MDOptions(stride=10, plots=False, raise_on_blowup=False, seed=0),
    )
    th = result.thermo
    n = result.n_atoms
    drift = np.abs(th["Etot_eV"] - th["Etot_eV"][0]) / n
    bad = np.flatnonzero(~np.isfinite(drift) | (drift > 1e-3))
    completed = result.message == "completed"
    stable_ps = (
        th["time_ps"][bad[0]]
        if len(bad)
        else (th["time_ps"][-1] if completed else float(th["time_ps"][-1]))
    )
    atom_steps = n * result.steps / max(result.wall_time_s, 1e-9)
    return {
        "stable_ps": float(stable_ps),
        "simulated_ps": float(th["time_ps"][-1]),
        "blew_up": not completed,
        "message": result.message,
        "max_drift_meV_per_atom": float(1e3 * np.nanmax(drift))
        if np.isfinite(drift).any()
        else None,
        "md_atom_steps_per_s": atom_steps,
        "md_compilations": result.compilations,
    }


def structures_for_speed(dataset):
    if dataset == "copper":
        cells = [
            bulk("Cu", "fcc", a=3.6, cubic=True).repeat(k)
            for k in ((2, 2, 2), (3, 3, 3), (4, 4, 4))
        ]
    else:
        mol = ase.io.read(ETHANOL, index=0)
        cells = [mol]
        for k in (8, 27):  # well-separated copies in one free cluster
            n = round(k ** (1 / 3))
            copies = [mol.copy() for _ in range(n**3)]
            for c, (i, j, l) in zip(copies, np.ndindex(n, n, n)):
                c.translate(np.array([i, j, l]) * 12.0)
            big = copies[0]
            for c in copies[1:]:
                big += c
            cells.append(big)
    return [jaxmlp.Structure.from_ase(c) for c in cells]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        nargs="+",
        default=None,
        help="default: every registered architecture",
    )
    parser.add_argument("--datasets", nargs="+", default=["copper", "ethanol"])
    parser.add_argument(
        "--minutes", type=float, default=4.0, help="CPU budget per main training run"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[25, 50, 100, 200])
    parser.add_argument(
        "--steps", type=int, default=600, help="optimizer steps per data-efficiency run"
    )
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--md-ps", type=float, default=2.0)
    parser.add_argument(
        "--quick", action="store_true", help="tiny budgets (CI, notebook)"
    )
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument(
        "--render",
        nargs="+",
        metavar="JSON",
        help="no runs: merge the rows of earlier runs' model_family(.partial).json "
        "files (e.g. one per dataset) into one report",
    )
    args = parser.parse_args()
    if args.render:
        render(args.render, args.out)
        return
    if args.quick:
        args.minutes, args.sizes, args.steps, args.repeats, args.md_ps = (
            0.3,
            [25],
            30,
            3,
            0.05,
        )
    names = args.models or [n for n in ORDER if n in ARCHITECTURES] + sorted(
        set(ARCHITECTURES) - set(ORDER)
    )
    work = tempfile.mkdtemp(prefix="jaxmlp-family-")
    data = datasets(work, args.quick)
    rows = []
    for dataset in args.datasets:
        d = data[dataset]
        test_atoms = md_start(d["test"])
        for name in names:
            result, cpu, wall = train(name, d, dataset, work, minutes=args.minutes)
            model, test = result.model, result.metrics["test"]
            row = {
                "dataset": dataset,
                "model": name,
                "params": model.num_params(),
                "epochs": result.metrics["epochs_run"],
                "train_cpu_s": cpu,
                "train_wall_s": wall,
                "test": test,
                "valid_forces_mae_by_epoch": [
                    r.get("valid_forces_mae_meV_per_A") for r in result.history
                ],
                "speed": speed(model, structures_for_speed(dataset), args.repeats),
                "reference_cpu_s_per_structure": d["reference_cpu_s"],
            }
            try:
                row["md"] = md_stability(model, test_atoms, dataset, work, args.md_ps)
            except (
                Exception
            ) as e:  # a model that cannot run MD is a result, not a crash
                row["md"] = {"error": f"{type(e).__name__}: {e}"}
            jax.clear_caches()
            if dataset == "ethanol":
                curve = {}
                for n in args.sizes:
                    epochs = max(
                        3, math.ceil(args.steps / math.ceil(n / TRAIN["batch_size"]))
                    )
                    r, _, _ = train(
                        name, d, dataset, work, epochs=epochs, n_train=n, tag=f"n{n}"
                    )
                    curve[n] = r.metrics["test"]["forces_mae_meV_per_A"]
                row["data_efficiency_forces_mae"] = curve
            rows.append(row)
            write_partial(args, rows)
            print(
                json.dumps(
                    {k: row[k] for k in ("dataset", "model", "params", "epochs")}
                    | {"test_F_mae": test["forces_mae_meV_per_A"]}
                ),
                flush=True,
            )
    report = {
        "args": vars(args),
        "train": TRAIN,
        "r_max": R_MAX,
        "machine": machine_info(),
        "rows": rows,
        "published_rmd17_ethanol_forces_mae": PUBLISHED_RMD17_ETHANOL,
    }
    write_report(report, args.out)


def machine_info() -> dict:
    return {
        "platform": platform.platform(),
        "cpu_affinity": sorted(os.sched_getaffinity(0)),
        "jax": jax.__version__,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "load_average_1_5_15": list(os.getloadavg()),
    }


def write_report(report, out) -> None:
    os.makedirs(out, exist_ok=True)
    stem = os.path.join(out, "model_family")
    with open(stem + ".json", "w") as f:
        json.dump(report, f, indent=2)
    with open(stem + ".md", "w") as f:
        f.write(markdown(report))
    figure(report, stem + ".png")
    print(f"wrote {stem}.json, .md, .png")


def render(paths, out) -> None:
    """One report from the rows of several runs (their args listed per dataset); a
    later run's row replaces an earlier one of the same dataset and model (a rerun)."""
    runs = [json.load(open(p)) for p in paths]
    by_key = {}
    for run in runs:
        for r in run["rows"]:
            by_key[(r["dataset"], r["model"])] = r
    rows = list(by_key.values())
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    args = dict(runs[0]["args"])
    args["datasets"] = datasets
    args["per_dataset"] = {
        d: next(
            run["args"] for run in runs if any(r["dataset"] == d for r in run["rows"])
        )  # the first run of each dataset (a rerun of one model keeps the same args)
        for d in datasets
    }
    report = {
        "args": args,
        "train": TRAIN,
        "r_max": R_MAX,
        "machine": runs[0].get("machine") or machine_info(),
        "rows": rows,
        "published_rmd17_ethanol_forces_mae": PUBLISHED_RMD17_ETHANOL,
        "merged_from": [os.path.abspath(p) for p in paths],
    }
    write_report(report, out)


def write_partial(args, rows) -> None:
    """Rows so far, rewritten atomically after each model (a long run that dies keeps
    what it measured)."""
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "model_family.partial.json")
    with open(path + ".tmp", "w") as f:
        json.dump(
            {"args": vars(args), "rows": rows, "machine": machine_info()}, f, indent=2
        )
    os.replace(path + ".tmp", path)


def _fmt_mae(value) -> str:
    """A table cell: meV/Å to 0.1, or a dash where the run did not measure it."""
    return "–" if value is None else f"{value:.1f}"


def _equal_epoch(rows):
    """The validation force MAE at the largest epoch every model of the dataset reached."""
    common = min(len(r["valid_forces_mae_by_epoch"]) for r in rows)
    return common, {
        r["model"]: r["valid_forces_mae_by_epoch"][common - 1] for r in rows
    }


def markdown(report) -> str:
    a = report["args"]
    lines = [
        "## The model family, measured (same data, same code, one run)",
        "",
        f"Every registered architecture with its default hyper-parameters, trained with the same "
        f"optimizer settings (`{json.dumps(report['train'])}`) for {a['minutes']} CPU-minutes each "
        f"(early-stopped on validation loss), cutoffs {report['r_max']} Å. CPU times on "
        f"core(s) {report['machine']['cpu_affinity']}, XLA flags `{report['machine']['xla_flags']}`, "
        f"jax {report['machine']['jax']}. Speed: one energy+forces+stress call, CPU time, median of "
        f"{a['repeats']}. MD: NVE at 1.5x the training temperature, stable until |ΔE_tot| > 1 meV/atom "
        f"(at most the time given per dataset; atom·steps/s over the whole run, compilation included).",
        "",
    ]
    for dataset in a["datasets"]:
        rows = [r for r in report["rows"] if r["dataset"] == dataset]
        if not rows:
            continue
        da = a.get("per_dataset", {}).get(dataset, a)  # that dataset's run
        ref = rows[0]["reference_cpu_s_per_structure"]
        common, at_epoch = _equal_epoch(rows)
        sizes = [s["n_atoms"] for s in rows[0]["speed"]]
        lines += [
            f"### {dataset}",
            "",
            f"Reference: {'ASE EMT (108 atoms)' if dataset == 'copper' else 'GFN2-xTB via tblite (9 atoms)'}, "
            f"{1e3 * ref:.2f} ms CPU per structure. Training budget {da['minutes']} CPU-minutes "
            f"per model; NVE at most {da['md_ps']} ps. Equal epochs: validation force MAE at epoch {common}.",
            "",
            "| model | params | epochs | test E MAE meV/atom | test F MAE meV/Å | test F RMSE meV/Å | "
            f"valid F MAE @ epoch {common} | "
            + " | ".join(f"µs/atom @ {n}" for n in sizes)
            + " | MD atom·steps/s | NVE stable ps | speed-up vs reference |",
            "|---|---:|---:|---:|---:|---:|---:|"
            + "---:|" * len(sizes)
            + "---:|---:|---:|",
        ]
        for r in rows:
            t, md = r["test"], r["md"]
            per_call = r["speed"][0]["us_per_atom"] * r["speed"][0]["n_atoms"] * 1e-6
            ref_n = 108 if dataset == "copper" else r["speed"][0]["n_atoms"]
            per_ref = (
                r["speed"][min(1, len(r["speed"]) - 1)]["us_per_atom"] * 1e-6 * ref_n
                if dataset == "copper"
                else per_call
            )
            stable = (
                "error"
                if "error" in md
                else f"{md['stable_ps']:.2f}{' (blow-up)' if md['blew_up'] else ''}"
            )
            atom_steps = "–" if "error" in md else f"{md['md_atom_steps_per_s']:.3g}"
            lines.append(
                f"| {r['model']} | {r['params']} | {r['epochs']} | {t['energy_mae_meV_per_atom']:.2f} | "
                f"{t['forces_mae_meV_per_A']:.1f} | {t['forces_rmse_meV_per_A']:.1f} | "
                f"{at_epoch[r['model']] if at_epoch[r['model']] is None else round(at_epoch[r['model']], 1)} | "
                + " | ".join(f"{s['us_per_atom']:.1f}" for s in r["speed"])
                + f" | {atom_steps} | {stable} | {ref / per_ref:.3g}x |"
            )
        curves = [r for r in rows if "data_efficiency_forces_mae" in r]
        if curves:
            ns = list(curves[0]["data_efficiency_forces_mae"])
            lines += [
                "",
                f"Data efficiency ({dataset}): test force MAE (meV/Å) vs training structures "
                f"({da['steps']} optimizer steps each); published rMD17 ethanol (DFT, 1000 structures) "
                "for orientation.",
                "",
                "| model | "
                + " | ".join(f"n={n}" for n in ns)
                + " | published @1000 |",
                "|---|" + "---:|" * (len(ns) + 1),
            ]
            for r in curves:
                pub = report["published_rmd17_ethanol_forces_mae"].get(r["model"], "–")
                lines.append(
                    f"| {r['model']} | "
                    + " | ".join(
                        _fmt_mae(r["data_efficiency_forces_mae"].get(n)) for n in ns
                    )
                    + f" | {pub} |"
                )
        lines.append("")
    lines.append("![error vs cost](results/model_family.png)")
    return "\n".join(lines) + "\n"


def figure(report, path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    datasets = [
        d
        for d in report["args"]["datasets"]
        if any(r["dataset"] == d for r in report["rows"])
    ]
    fig = Figure(figsize=(5.5 * len(datasets), 4.2))
    FigureCanvasAgg(fig)
    for k, dataset in enumerate(datasets):
        ax = fig.add_subplot(1, len(datasets), k + 1)
        rows = [r for r in report["rows"] if r["dataset"] == dataset]
        for r in rows:
            cost = (
                r["speed"][0]["us_per_atom"] * r["speed"][0]["n_atoms"] * 1e-3
            )  # ms per call
            ax.loglog(cost, r["test"]["forces_mae_meV_per_A"], "o")
            ax.annotate(
                r["model"],
                (cost, r["test"]["forces_mae_meV_per_A"]),
                fontsize=8,
                xytext=(4, 2),
                textcoords="offset points",
            )
        ref_ms = 1e3 * rows[0]["reference_cpu_s_per_structure"]
        ax.axvline(ref_ms, color="k", ls="--", lw=1)
        ax.annotate(
            "reference",
            (ref_ms, ax.get_ylim()[0]),
            rotation=90,
            fontsize=8,
            xytext=(3, 5),
            textcoords="offset points",
        )
        ax.set_xlabel(
            f"CPU ms per energy+forces call ({rows[0]['speed'][0]['n_atoms']} atoms)"
        )
        ax.set_ylabel("test force MAE (meV/Å)")
        ax.set_title(dataset)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
