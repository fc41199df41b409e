"""Command line: ``jaxmlp train | eval | md | relax | demo | analyze | learn | export``.

Each sub-command lives in its own module exposing ``add_parser(subparsers)``, which
registers the command and sets ``func`` (``args -> exit code``) as its default.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = tuple(
    f"jaxmlp.cli.{n}" for n in ("train", "md", "demo", "analyze", "learn", "export")
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxmlp",
        description="Machine-learning interatomic potentials and MD in JAX "
        "(units: eV, Å, fs, K, GPa for pressure input, eV/Å³ for stress output).",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        module.add_parser(subparsers)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
