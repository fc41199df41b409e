"""``jaxmlp demo [--out DIR] [--quick] [--seed N] [--copper]``: command-line shim over
:func:`jaxmlp.workflows.reactive.run_reactive_demo` (the closed active-learning loop on
O2 + H2 on Cu(111)) and, with ``--copper``, :func:`jaxmlp.workflows.demo.run_demo`
(train -> validate -> MD on embedded copper data)."""

from __future__ import annotations

import sys


def add_parser(subparsers) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="the closed loop: reference data, committee, MD, reactions, active "
        "learning vs random, report",
        description="The closed loop on O2 + H2 on Cu(111) labelled by ASE EMT: seed "
        "data, a committee trained together, committee MD, uncertain frames labelled "
        "and retrained (against random selection at the same label budget), final MD, "
        "reaction events and species, calibration of the spread; report.md with PNG "
        "plots. --copper runs the earlier demo instead (embedded copper data, a small "
        "NequIP, NVT MD checked against EMT).",
    )
    demo.add_argument(
        "--out", default="demo_output", help="output folder (default demo_output)"
    )
    demo.add_argument(
        "--quick", action="store_true", help="tiny run for smoke tests (~1 min)"
    )
    demo.add_argument(
        "--seed", type=int, default=0, help="seed of data, split and training"
    )
    demo.add_argument(
        "--copper",
        action="store_true",
        help="the copper demo: train -> validate -> MD, no active learning",
    )
    demo.set_defaults(func=_run)


def _run(args) -> int:
    if args.copper:
        from jaxmlp.workflows.demo import run_demo

        run_demo(args.out, quick=args.quick, seed=args.seed)
    else:
        from jaxmlp.workflows.reactive import run_reactive_demo

        run_reactive_demo(args.out, quick=args.quick, seed=args.seed)
    return 0


if __name__ == "__main__":  # pragma: no cover
    from jaxmlp.cli import main

    sys.exit(main(["demo", *sys.argv[1:]]))
