"""``jaxmlp demo [--out DIR] [--quick] [--seed N]``: command-line shim over
:func:`jaxmlp.workflows.demo.run_demo` (the whole loop on embedded copper data)."""

from __future__ import annotations

import sys


def add_parser(subparsers) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="generate copper data, train, validate, run MD, write a report",
        description="The whole loop on embedded copper reference data (ASE EMT): "
        "generate data, train a small NequIP, report test errors, run NVT MD with the "
        "trained model and write report.md with PNG plots.",
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
    demo.set_defaults(func=_run)


def _run(args) -> int:
    from jaxmlp.workflows.demo import run_demo

    run_demo(args.out, quick=args.quick, seed=args.seed)
    return 0


if __name__ == "__main__":  # pragma: no cover
    from jaxmlp.cli import main

    sys.exit(main(["demo", *sys.argv[1:]]))
