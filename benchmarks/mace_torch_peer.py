"""mace-torch side of the MACE comparisons; runs ONLY in the peer venv .peers/mace-torch.

Never imported by jaxmlp: benchmarks/mace_torch_check.py, mace_speed.py and
compare_mace_torch.py run it as a subprocess
(``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 .peers/mace-torch/bin/python``) and exchange
files: a JSON spec in, ``.npz`` arrays and a JSON result out.

Sub-commands:
  check SPEC OUT    build a ScaleShiftMACE (seeded random weights), dump its state_dict,
                    U-matrices, e3nn's silu normalisation constant and parameter count,
                    and predict energy/forces/stress on the structures of SPEC (float64).
  speed SPEC OUT    time energy+forces per call on the structures of SPEC.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

import ase.io  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from e3nn import o3  # noqa: E402
from e3nn.math import normalize2mom  # noqa: E402
from mace import data, modules, tools  # noqa: E402
from mace.tools import torch_geometric  # noqa: E402


def build_model(spec):
    """ScaleShiftMACE exactly as ``mace_run_train --model MACE`` builds it."""
    h = spec["hyper"]
    torch.manual_seed(spec.get("seed", 0))
    channels = h.get("channels", 128)
    hidden = (
        (channels * o3.Irreps.spherical_harmonics(h.get("max_L", 1)))
        .sort()[0]
        .simplify()
    )
    zs = spec["atomic_numbers"]
    energies = spec.get("atomic_energies") or [0.0] * len(zs)
    return modules.ScaleShiftMACE(
        r_max=spec["r_max"],
        num_bessel=h.get("num_bessel", 8),
        num_polynomial_cutoff=h.get("num_poly_cutoff", 5),
        max_ell=h.get("max_ell", 3),
        interaction_cls=modules.interaction_classes[
            "RealAgnosticResidualInteractionBlock"
        ],
        interaction_cls_first=modules.interaction_classes[
            "RealAgnosticInteractionBlock"
        ],
        num_interactions=h.get("num_interactions", 2),
        num_elements=len(zs),
        hidden_irreps=hidden,
        MLP_irreps=o3.Irreps(f"{h.get('readout_mlp', 16)}x0e"),
        atomic_energies=np.asarray(energies, float),
        avg_num_neighbors=spec.get("avg_num_neighbors", 16.0),
        atomic_numbers=zs,
        correlation=h.get("correlation", 3),
        gate=torch.nn.functional.silu,
        radial_MLP=list(h.get("radial_mlp", (64, 64, 64))),
        atomic_inter_scale=spec.get("scale", 1.0),
        atomic_inter_shift=spec.get("shift", 0.0),
    )


def batches(spec, atoms_list, batch_size=1):
    z_table = tools.AtomicNumberTable(spec["atomic_numbers"])
    items = [
        data.AtomicData.from_config(
            data.config_from_atoms(a), z_table=z_table, cutoff=spec["r_max"]
        )
        for a in atoms_list
    ]
    loader = torch_geometric.dataloader.DataLoader(
        items, batch_size=batch_size, shuffle=False
    )
    return [b.to_dict() for b in loader]


def set_dtype(name):
    dtype = {"float64": torch.float64, "float32": torch.float32}[name]
    torch.set_default_dtype(dtype)
    return dtype


def check(spec_path, out_dir):
    spec = json.load(open(spec_path))
    set_dtype("float64")
    model = build_model(spec)
    state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    np.savez(os.path.join(out_dir, "state.npz"), **state)
    atoms_list = ase.io.read(spec["structures"], index=":")
    results = []
    for batch in batches(spec, atoms_list):
        out = model(batch, training=False, compute_force=True, compute_stress=True)
        results.append(
            {
                "energy": float(out["energy"][0]),
                "forces": out["forces"].detach().numpy().tolist(),
                "stress": out["stress"][0].detach().numpy().tolist(),
                "n_edges": int(batch["edge_index"].shape[1]),
            }
        )
    summary = {
        "num_params": int(sum(p.numel() for p in model.parameters())),
        "silu_cst": float(normalize2mom(torch.nn.functional.silu).cst),
        "results": results,
        "torch": torch.__version__,
        "mace": getattr(__import__("mace"), "__version__", "?"),
    }
    json.dump(summary, open(os.path.join(out_dir, "results.json"), "w"))


def speed(spec_path, out_dir):
    spec = json.load(open(spec_path))
    torch.set_num_threads(spec.get("threads", 2))
    rows = []
    for dtype_name in spec["dtypes"]:
        set_dtype(dtype_name)
        model = build_model(spec)
        for path in spec["structure_files"]:
            atoms = ase.io.read(path)
            (batch,) = batches(spec, [atoms])
            t0 = time.perf_counter()
            out = model(batch, training=False, compute_force=True)
            out["forces"].sum().item()
            first = time.perf_counter() - t0
            times = []
            t_end = time.perf_counter() + spec.get("seconds", 3.0)
            while len(times) < spec.get("min_repeats", 3) or (
                time.perf_counter() < t_end and len(times) < spec.get("max_repeats", 50)
            ):
                t0 = time.perf_counter()
                out = model(batch, training=False, compute_force=True)
                out["forces"].sum().item()
                times.append(time.perf_counter() - t0)
            rows.append(
                {
                    "dtype": dtype_name,
                    "n_atoms": len(atoms),
                    "n_edges": int(batch["edge_index"].shape[1]),
                    "first_call_s": first,
                    "median_s": float(np.median(times)),
                    "repeats": len(times),
                    "energy": float(out["energy"][0]),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    json.dump(
        {"rows": rows, "torch": torch.__version__, "threads": torch.get_num_threads()},
        open(os.path.join(out_dir, "speed.json"), "w"),
    )


if __name__ == "__main__":
    command, spec_path, out_dir = sys.argv[1:4]
    {"check": check, "speed": speed}[command](spec_path, out_dir)
