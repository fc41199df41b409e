"""``jaxmlp md`` and ``jaxmlp relax``: molecular dynamics and structure optimisation."""

from __future__ import annotations

import argparse
import sys

ENSEMBLE_CHOICES = ("nve", "nvt", "nvt-langevin", "npt")


def add_parser(subparsers) -> None:
    md = subparsers.add_parser(
        "md",
        help="run molecular dynamics",
        description="Molecular dynamics with a jaxmlp model (units: fs, K, GPa, Å). Writes "
        "OUT/trajectory.extxyz, OUT/thermo.csv, OUT/restart.npz, OUT/summary.json and PNG "
        "plots. 'nvt' is a Nosé–Hoover chain, 'nvt-langevin' a Langevin thermostat, 'npt' "
        "an isotropic Nosé–Hoover barostat.",
    )
    md.add_argument("model", help="model file")
    md.add_argument("structure", help="any structure file ASE reads (first frame used)")
    md.add_argument("--ensemble", choices=ENSEMBLE_CHOICES, default="nvt-langevin")
    md.add_argument("--temperature", type=float, default=300.0, help="K")
    md.add_argument("--timestep", type=float, default=1.0, help="fs")
    md.add_argument("--steps", type=int, default=1000)
    md.add_argument("--pressure", type=float, default=0.0, help="GPa (npt)")
    md.add_argument(
        "--friction", type=float, default=0.01, help="Langevin friction, 1/fs"
    )
    md.add_argument("--tau-t", type=float, default=None, help="thermostat time, fs")
    md.add_argument("--tau-p", type=float, default=None, help="barostat time, fs")
    md.add_argument(
        "--replicas", type=int, default=1, help="independent replicas (vmap)"
    )
    md.add_argument("--stride", type=int, default=10, help="steps between frames")
    md.add_argument(
        "--chunk", type=int, default=100, help="steps per compiled chunk (host sync)"
    )
    md.add_argument("--seed", type=int, default=0)
    md.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    md.add_argument("--skin", type=float, default=0.5, help="neighbor skin, Å")
    md.add_argument(
        "--capacity-multiplier",
        type=float,
        default=1.2,
        help="neighbor slots per edge found",
    )
    md.add_argument(
        "--min-distance", type=float, default=0.5, help="Å; closer atoms stop the run"
    )
    md.add_argument(
        "--max-force-std",
        type=float,
        default=None,
        help="eV/Å, committee models: stop after the chunk in which a frame's largest "
        "per-atom force spread exceeds this (the spread is always recorded: thermo "
        "column forces_std_max_eV_per_A, trajectory array forces_std)",
    )
    md.add_argument("--restart", default=None, help="continue from this restart.npz")
    md.add_argument("--no-plots", action="store_true")
    md.add_argument("--out", required=True, help="output directory")
    md.set_defaults(func=run_md_command)

    relax = subparsers.add_parser(
        "relax",
        help="relax a structure with FIRE",
        description="FIRE relaxation of positions (and with --cell the cell) with a "
        "jaxmlp model; writes the relaxed structure with energy/forces/stress.",
    )
    relax.add_argument("model", help="model file")
    relax.add_argument(
        "structure", help="any structure file ASE reads (first frame used)"
    )
    relax.add_argument(
        "--out", required=True, help="output structure file (e.g. .extxyz)"
    )
    relax.add_argument("--fmax", type=float, default=0.05, help="eV/Å")
    relax.add_argument("--max-steps", type=int, default=2000)
    relax.add_argument("--cell", action="store_true", help="relax the cell too")
    relax.add_argument("--hydrostatic", action="store_true", help="isotropic cell only")
    relax.add_argument("--pressure", type=float, default=0.0, help="GPa (with --cell)")
    relax.add_argument(
        "--stress-tol",
        type=float,
        default=0.1,
        help="GPa, stress convergence (with --cell)",
    )
    relax.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    relax.set_defaults(func=relax_command)


def _read_structure(path):
    import ase.io

    try:
        return ase.io.read(path, index=0)
    except Exception as error:  # ASE raises many types for unreadable files
        raise SystemExit(f"jaxmlp: cannot read structure {path}: {error}") from error


def run_md_command(args: argparse.Namespace) -> int:
    from jaxmlp.md.integrators import Ensemble
    from jaxmlp.md.loop import MDBlowUpError
    from jaxmlp.md.run import MDOptions

    atoms = None if args.restart else _read_structure(args.structure)
    if args.chunk % args.stride:
        raise SystemExit(
            f"jaxmlp md: --chunk ({args.chunk}) must be a multiple of --stride"
        )
    try:
        ensemble = Ensemble(
            args.ensemble,
            args.timestep,
            args.temperature,
            args.pressure,
            args.friction,
            args.tau_t,
            args.tau_p,
        )
        options = MDOptions(
            dtype=args.dtype,
            stride=args.stride,
            frames_per_chunk=args.chunk // args.stride,
            skin=args.skin,
            capacity_multiplier=args.capacity_multiplier,
            min_distance=args.min_distance,
            seed=args.seed,
            plots=not args.no_plots,
            max_force_std=args.max_force_std,
        )
        common = dict(
            steps=args.steps,
            out_dir=args.out,
            options=options,
            log=lambda message: print(message, flush=True),
        )
        if args.replicas > 1:
            from jaxmlp.md.replicas import run_replicas

            if args.restart:
                raise SystemExit(
                    "jaxmlp md: --restart is not supported with --replicas"
                )
            result = run_replicas(
                args.model, atoms, ensemble, n_replicas=args.replicas, **common
            )
        else:
            from jaxmlp.md.run import run_md

            result = run_md(args.model, atoms, ensemble, restart=args.restart, **common)
    except MDBlowUpError as error:
        print(f"jaxmlp md: {error}", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"jaxmlp md: {error}", file=sys.stderr)
        return 2
    print(
        f"{result.message}: {result.steps} steps of {result.n_atoms} atoms in "
        f"{result.wall_time_s:.1f} s ({result.compilations} compilations, "
        f"{result.reallocations} neighbor reallocations); output in {args.out}"
    )
    return 0


def relax_command(args: argparse.Namespace) -> int:
    import ase.io

    from jaxmlp.md.loop import MDBlowUpError
    from jaxmlp.md.relax import relax

    atoms = _read_structure(args.structure)
    try:
        result = relax(
            args.model,
            atoms,
            fmax=args.fmax,
            stress_tol=args.stress_tol,
            max_steps=args.max_steps,
            relax_cell=args.cell,
            hydrostatic=args.hydrostatic,
            pressure=args.pressure,
            dtype=args.dtype,
        )
    except MDBlowUpError as error:
        print(f"jaxmlp relax: {error}", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"jaxmlp relax: {error}", file=sys.stderr)
        return 2
    ase.io.write(args.out, result.atoms)
    state = "converged" if result.converged else "NOT converged"
    print(
        f"{state} after {result.steps} FIRE steps: E = {result.energy:.6f} eV, "
        f"max force {result.fmax:.4g} eV/Å, stress error {result.stress_error:.3g} GPa; "
        f"wrote {args.out}"
    )
    return 0 if result.converged else 1
