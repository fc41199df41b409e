"""jaxmlp MACE vs mace-torch: parameter counts and exact weight transfer (float64).

For several hyper-parameter sets, mace-torch (run as a subprocess in the peer venv made
by ``benchmarks/setup_mace_torch.sh``) builds a ``ScaleShiftMACE`` with random weights,
dumps its state_dict and predicts energy, forces and stress on random structures
(a rattled periodic Cu supercell, a rattled ethanol molecule, a random triclinic
H/C/O/Cu cell). jaxmlp builds the same architecture, the weights are transferred into
jaxmlp's layout (``transfer_weights``), and the predictions are compared.

The only basis differences are (a) a sign of some Clebsch-Gordan coefficients between
e3nn-torch and e3nn-jax, absorbed by mapping each product-basis weight through the
least-squares relation between the two U-matrices (which must be exact), and (b) e3nn
normalises silu with a Monte-Carlo second moment, jaxmlp with quadrature: the ratio of
the constants is absorbed into the next layer's weights.

Usage:  python benchmarks/mace_torch_check.py  [--out benchmarks/results]
Writes ``mace_torch_check.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import jax
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_PYTHON = os.path.join(ROOT, ".peers", "mace-torch", "bin", "python")
PEER_SCRIPT = os.path.join(ROOT, "benchmarks", "mace_torch_peer.py")

CONFIGS = [
    # the mace-torch defaults (128x0e+128x1o, max_ell 3, correlation 3): counts only
    {"name": "default (Cu)", "species": ["Cu"], "hyper": {}, "predict": False},
    {
        "name": "default (H,C,O,Cu)",
        "species": ["H", "C", "O", "Cu"],
        "hyper": {},
        "predict": False,
    },
    {
        "name": "small L1 ell3 nu3",
        "species": ["H", "C", "O", "Cu"],
        "hyper": {
            "channels": 8,
            "max_L": 1,
            "max_ell": 3,
            "correlation": 3,
            "radial_mlp": [16, 16],
        },
    },
    {
        "name": "3 layers L2 ell2 nu2",
        "species": ["H", "C", "O", "Cu"],
        "hyper": {
            "channels": 6,
            "max_L": 2,
            "max_ell": 2,
            "correlation": 2,
            "num_interactions": 3,
            "radial_mlp": [8],
            "num_bessel": 6,
            "num_poly_cutoff": 6,
        },
    },
    {
        "name": "1 layer L0 ell2 nu4",
        "species": ["O", "Cu"],
        "hyper": {
            "channels": 4,
            "max_L": 0,
            "max_ell": 2,
            "correlation": 4,
            "num_interactions": 1,
        },
    },
]


def structures(species):
    from ase import Atoms
    from ase.build import bulk, molecule

    rng = np.random.default_rng(7)
    cu = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    cu.rattle(0.12, seed=1)
    out = [cu]
    if {"H", "C", "O"} <= set(species):
        mol = molecule("CH3CH2OH")
        mol.rattle(0.05, seed=2)
        out.append(mol)
    cell = np.array([[4.2, 0.0, 0.0], [1.1, 3.9, 0.0], [0.7, -0.6, 4.4]])
    symbols = list(rng.choice(species, size=8))
    frac = rng.uniform(0, 1, (8, 3))
    out.append(Atoms(symbols, scaled_positions=frac, cell=cell, pbc=True))
    return out


def _linear_chunks(flat, sizes):
    out, start = [], 0
    for size in sizes:
        out.append(flat[start : start + size])
        start += size
    assert start == flat.size, (start, flat.size)
    return out


def transfer_weights(state, hyper, num_species, silu_cst):
    """jaxmlp MACE params from a mace-torch ScaleShiftMACE state_dict (numpy arrays)."""
    from jaxmlp.nn.blocks import SILU_NORM, conv_paths, coupling_basis
    from jaxmlp.nn.mace import MACE

    defaults = {
        f: getattr(MACE, f)
        for f in (
            "num_interactions",
            "channels",
            "max_L",
            "max_ell",
            "correlation",
            "radial_mlp",
            "readout_mlp",
        )
    }
    h = defaults | hyper
    c, e = h["channels"], num_species
    ratio = silu_cst / SILU_NORM
    ls_hidden = tuple(range(h["max_L"] + 1))
    ls_sh = tuple(range(h["max_ell"] + 1))
    n_layers = h["num_interactions"]
    params = {"embedding": state["node_embedding.linear.weight"].reshape(e, c)}
    worst_u = 0.0
    ls_h = (0,)
    for t in range(n_layers):
        last = t == n_layers - 1
        ls_out = (0,) if last else ls_hidden
        p = f"interactions.{t}."
        inter = {}
        chunks = _linear_chunks(state[p + "linear_up.weight"], [c * c] * len(ls_h))
        inter["linear_up"] = {f"w_{l}": w.reshape(c, c) for l, w in zip(ls_h, chunks)}
        n_mlp = len(h["radial_mlp"]) + 1
        inter["radial_mlp"] = {
            f"layer_{i}": state[p + f"conv_tp_weights.layer{i}.weight"]
            * (ratio if i > 0 else 1.0)
            for i in range(n_mlp)
        }
        paths = conv_paths(ls_h, ls_sh, ls_sh)
        chunks = _linear_chunks(state[p + "linear.weight"], [c * c] * len(paths))
        inter["linear"] = {
            f"w_{l}": np.concatenate(
                [w.reshape(c, c) for w, path in zip(chunks, paths) if path[2] == l],
                axis=0,
            )
            for l in ls_sh
        }
        skip_in, skip_out = (ls_sh, ls_sh) if t == 0 else (ls_h, ls_out)
        pairs = [l for l in skip_in if l in skip_out]
        chunks = _linear_chunks(state[p + "skip_tp.weight"], [c * e * c] * len(pairs))
        inter["skip"] = {
            f"w_{l}": w.reshape(c, e, c).transpose(1, 0, 2)
            for l, w in zip(pairs, chunks)
        }
        params[f"interaction_{t}"] = inter
        prod = {}
        corr = h["correlation"]
        for j, l in enumerate(ls_out):
            q = f"products.{t}.symmetric_contractions.contractions.{j}."
            for nu in range(1, corr + 1):
                w = (
                    state[q + "weights_max"]
                    if nu == corr
                    else state[q + f"weights.{corr - 1 - nu}"]
                )
                u_torch = state[q + f"U_matrix_{nu}"]
                u_mine = coupling_basis(ls_sh, l, nu)
                u_torch = u_torch.reshape(-1, u_torch.shape[-1])
                u_mine = u_mine.reshape(-1, u_mine.shape[-1])
                a, *_ = np.linalg.lstsq(
                    u_mine, u_torch, rcond=None
                )  # [K_mine, K_torch]
                worst_u = max(worst_u, float(np.abs(u_mine @ a - u_torch).max()))
                prod[f"w_{l}_{nu}"] = np.einsum("kj,ejc->ekc", a, w)
        params[f"product_{t}"] = prod
        chunks = _linear_chunks(
            state[f"products.{t}.linear.weight"], [c * c] * len(ls_out)
        )
        params[f"product_linear_{t}"] = {
            f"w_{l}": w.reshape(c, c) for l, w in zip(ls_out, chunks)
        }
        r = f"readouts.{t}."
        if last and n_layers > 1:
            params[f"readout_{t}_1"] = state[r + "linear_1.weight"].reshape(
                c, h["readout_mlp"]
            )
            params[f"readout_{t}_2"] = (
                state[r + "linear_2.weight"].reshape(h["readout_mlp"], 1) * ratio
            )
        else:
            params[f"readout_{t}"] = state[r + "linear.weight"].reshape(c, 1)
        ls_h = ls_out
    return params, worst_u


def run_peer(command, spec, workdir):
    spec_path = os.path.join(workdir, f"{command}_spec.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1")
    subprocess.run(
        [PEER_PYTHON, PEER_SCRIPT, command, spec_path, workdir], check=True, env=env
    )


def check_config(cfg, workdir):
    import ase.io

    import jaxmlp
    from jaxmlp.graph import batch_graphs
    from jaxmlp.structure import Structure, atomic_number
    from jaxmlp.testing import predict_jit

    species = sorted(cfg["species"], key=atomic_number)  # mace orders species by Z
    zs = [atomic_number(s) for s in species]
    rng = np.random.default_rng(0)
    e0 = list(rng.normal(-2.0, 1.0, len(species)))
    spec = {
        "hyper": cfg["hyper"],
        "atomic_numbers": zs,
        "r_max": 5.0,
        "avg_num_neighbors": 11.0,
        "atomic_energies": e0,
        "scale": 1.3,
        "shift": 0.2,
        "seed": 3,
    }
    atoms_list = (
        structures(species) if cfg.get("predict", True) else structures(species)[:1]
    )
    spec["structures"] = os.path.join(workdir, "structures.xyz")
    ase.io.write(spec["structures"], atoms_list)
    atoms_list = ase.io.read(
        spec["structures"], index=":"
    )  # both sides see the same digits
    run_peer("check", spec, workdir)
    peer = json.load(open(os.path.join(workdir, "results.json")))
    state = dict(np.load(os.path.join(workdir, "state.npz")))
    model = jaxmlp.build_model(
        "mace",
        species=species,
        r_max=spec["r_max"],
        atomic_energies=e0,
        scale=1.3,
        shift=0.2,
        avg_num_neighbors=spec["avg_num_neighbors"],
        **cfg["hyper"],
    )
    row = {
        "name": cfg["name"],
        "params_jaxmlp": model.num_params(),
        "params_torch": peer["num_params"],
    }
    if not cfg.get("predict", True):
        return row
    params, worst_u = transfer_weights(
        state, cfg["hyper"], len(species), peer["silu_cst"]
    )
    ref_tree = jax.tree.structure(model.params)
    assert jax.tree.structure(params) == ref_tree, (
        jax.tree.structure(params),
        ref_tree,
    )
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(model.params)):
        assert a.shape == b.shape, (a.shape, b.shape)
    row["u_matrix_fit_error"] = worst_u
    de, df, ds, emag, fmag = [], [], [], [], []
    with jax.enable_x64(True):
        params64 = jax.tree.map(lambda x: np.asarray(x, np.float64), params)
        for atoms, ref in zip(atoms_list, peer["results"]):
            s = Structure.from_ase(atoms)
            g = batch_graphs([s], model.species, model.r_max, dtype=np.float64)
            out = predict_jit(model.apply_fn, params64, g)
            n = len(atoms)
            de.append(abs(float(out.energy[0]) - ref["energy"]))
            df.append(
                float(
                    np.abs(np.asarray(out.forces[:n]) - np.asarray(ref["forces"])).max()
                )
            )
            # mace-torch's stress has the opposite sign to ASE's (virial / volume)
            ds_pos = np.abs(np.asarray(out.stress[0]) - np.asarray(ref["stress"])).max()
            ds_neg = np.abs(np.asarray(out.stress[0]) + np.asarray(ref["stress"])).max()
            ds.append(float(min(ds_pos, ds_neg)) if any(atoms.pbc) else 0.0)
            row.setdefault("stress_sign", "same" if ds_pos <= ds_neg else "opposite")
            row.setdefault("per_structure", []).append(
                {
                    "n_atoms": n,
                    "n_edges_jaxmlp": int(np.asarray(g.edge_mask).sum()),
                    "n_edges_torch": ref["n_edges"],
                    "dE": de[-1],
                    "dF": df[-1],
                }
            )
            emag.append(abs(ref["energy"]))
            fmag.append(float(np.abs(ref["forces"]).max()))
    row |= {
        "max_dE": max(de),
        "max_dF": max(df),
        "max_dstress": max(ds),
        "max_abs_E": max(emag),
        "max_abs_F": max(fmag),
        "n_structures": len(atoms_list),
    }
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    args = parser.parse_args(argv)
    if not os.path.exists(PEER_PYTHON):
        sys.exit("peer venv missing: run benchmarks/setup_mace_torch.sh first")
    rows = []
    for cfg in CONFIGS:
        with tempfile.TemporaryDirectory() as workdir:
            rows.append(check_config(cfg, workdir))
        print(json.dumps(rows[-1]), flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "mace_torch_check.json"), "w") as f:
        json.dump(rows, f, indent=1)
    print(
        "\n| config | params jaxmlp | params mace-torch | max abs dE (eV) | max abs dF (eV/A) | max abs dstress | max abs E | max abs F |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        cells = [r["name"], r["params_jaxmlp"], r["params_torch"]]
        cells += [
            f"{r[k]:.1e}" if k in r else "-"
            for k in ("max_dE", "max_dF", "max_dstress")
        ]
        cells += [f"{r[k]:.3g}" if k in r else "-" for k in ("max_abs_E", "max_abs_F")]
        print("| " + " | ".join(map(str, cells)) + " |")
    ok = all(r["params_jaxmlp"] == r["params_torch"] for r in rows)
    ok &= all(r.get("max_dE", 0) < 1e-9 and r.get("max_dF", 0) < 1e-9 for r in rows)
    print("EXACT MATCH" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
