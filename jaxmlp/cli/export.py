"""``jaxmlp export``: one file with the model's energy/forces/stress program for MD
engines (see :mod:`jaxmlp.export`; run it with :mod:`jaxmlp.export_loader`)."""

from __future__ import annotations

import sys


def add_parser(subparsers) -> None:
    export = subparsers.add_parser(
        "export",
        help="write a jax.export program (energy, forces, stress) runnable without jaxmlp",
        description="Serialize MODEL's energy (eV), forces (eV/Å) and stress (eV/Å³) "
        "with symbolic atom and edge counts for CPU and CUDA into OUT (a zip with "
        "program.bin and metadata.json: species, r_max, units, versions, sha256). "
        "Load it with jaxmlp/export_loader.py, which needs only jax and numpy.",
    )
    export.add_argument("model", help="a .jaxmlp model file")
    export.add_argument("out", help="output file")
    export.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default="float32",
        help="float type of the exported program (default float32)",
    )
    export.add_argument(
        "--platforms",
        default="cpu,cuda",
        help="comma-separated jax platforms to lower for (default cpu,cuda)",
    )
    export.set_defaults(func=run)


def run(args) -> int:
    from jaxmlp.export import export_model
    from jaxmlp.model_io import load_model

    try:
        model = load_model(args.model)
        platforms = tuple(p.strip() for p in args.platforms.split(",") if p.strip())
        meta = export_model(model, args.out, dtype=args.dtype, platforms=platforms)
    except (OSError, ValueError) as error:
        print(f"jaxmlp export: {error}", file=sys.stderr)
        return 2
    print(
        f"wrote {args.out}: {meta['model_config']['name']} species {meta['species']}, "
        f"r_max {meta['r_max']} Å, {meta['dtype']}, platforms {meta['platforms']}, "
        f"sha256 {meta['sha256'][:12]}"
    )
    return 0
