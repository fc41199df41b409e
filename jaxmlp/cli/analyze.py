"""``jaxmlp analyze``: reaction events and species over time in an MD trajectory."""

from __future__ import annotations

import argparse
import sys


def _pair(text: str) -> tuple[tuple[str, str], tuple[float, float]]:
    """``"C-O:1.1:1.3"`` -> ``(("C", "O"), (1.1, 1.3))``."""
    try:
        elements, f_on, f_off = text.split(":")
        a, b = elements.split("-")
        return (a, b), (float(f_on), float(f_off))
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"expected EL1-EL2:F_ON:F_OFF (e.g. C-O:1.1:1.3), got {text!r}"
        ) from error


def add_parser(subparsers) -> None:
    analyze = subparsers.add_parser(
        "analyze",
        help="find bond breaking/forming events and species in a trajectory",
        description="Reaction-event analysis of any trajectory ASE reads (units: Å, "
        "fs). Bonds by covalent radii with hysteresis: formed below F_ON x (r_i + r_j), "
        "broken above F_OFF x (r_i + r_j), and a change counts only once it has lasted "
        "the minimum lifetime. Writes OUT/events.csv, OUT/species.csv, OUT/species.png "
        "and OUT/summary.json.",
    )
    analyze.add_argument(
        "trajectory", help="any trajectory file ASE reads (all frames)"
    )
    analyze.add_argument("--out", required=True, help="output directory")
    analyze.add_argument(
        "--f-on", type=float, default=1.15, help="bond forms below f_on x radii sum"
    )
    analyze.add_argument(
        "--f-off", type=float, default=1.35, help="bond breaks above f_off x radii sum"
    )
    analyze.add_argument(
        "--pair",
        type=_pair,
        action="append",
        default=[],
        metavar="EL1-EL2:F_ON:F_OFF",
        help="factors for one element pair (repeatable), e.g. C-O:1.1:1.3",
    )
    analyze.add_argument(
        "--min-lifetime",
        type=int,
        default=3,
        help="frames a new bond state must last to count as an event",
    )
    analyze.add_argument(
        "--min-lifetime-fs",
        type=float,
        default=None,
        help="the same in fs (overrides --min-lifetime)",
    )
    analyze.add_argument(
        "--substrate",
        action="append",
        default=[],
        metavar="EL[,EL...]",
        help="substrate element(s), repeatable or comma-separated (e.g. Cu)",
    )
    analyze.add_argument(
        "--timestep-fs",
        type=float,
        default=1.0,
        help="fs between frames when the frames carry no time_fs/time",
    )
    analyze.add_argument(
        "--index", default=":", help="ASE frame selection (default all, ':')"
    )
    analyze.add_argument("--no-plot", action="store_true", help="skip species.png")
    analyze.set_defaults(func=analyze_command)


def analyze_command(args: argparse.Namespace) -> int:
    import ase.io

    from jaxmlp.analysis import analyze_reactions, write_reaction_report

    try:
        frames = ase.io.read(args.trajectory, index=args.index)
    except Exception as error:  # ASE raises many types for unreadable files
        print(
            f"jaxmlp analyze: cannot read {args.trajectory}: {error}", file=sys.stderr
        )
        return 2
    if not isinstance(frames, list):
        frames = [frames]
    substrate = [s for item in args.substrate for s in item.split(",") if s]
    try:
        analysis = analyze_reactions(
            frames,
            f_on=args.f_on,
            f_off=args.f_off,
            pairs=dict(args.pair),
            min_lifetime=args.min_lifetime,
            min_lifetime_fs=args.min_lifetime_fs,
            substrate=substrate,
            timestep_fs=args.timestep_fs,
        )
    except ValueError as error:
        print(f"jaxmlp analyze: {error}", file=sys.stderr)
        return 2
    write_reaction_report(analysis, args.out, plot=not args.no_plot)
    summary = analysis.summary
    print(
        f"{summary['n_frames']} frames of {summary['n_atoms']} atoms: "
        f"{summary['n_events']} bond events, {len(analysis.species)} species "
        f"({summary['atom_frames_per_s']:.3g} atom-frames/s); output in {args.out}"
    )
    return 0
