"""``jaxmlp learn CONFIG.yaml [--resume] [--set key=value ...]``: an active-learning
campaign (see :mod:`jaxmlp.active`)."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> None:
    learn = subparsers.add_parser(
        "learn",
        help="active learning: committee MD -> uncertain frames -> reference labels",
        description="Rounds of train -> committee MD -> select frames whose force "
        "spread lies between select.trust_low and trust_high (eV/Å) -> label them with "
        "the oracle (an ASE calculator by import path) -> retrain. Writes labelled.extxyz, "
        "rounds.csv, model.jaxmlp and report.md to the output directory; every label is "
        "stored atomically, so --resume after a kill loses and duplicates nothing.",
    )
    learn.add_argument("config", help="campaign YAML")
    learn.add_argument("--resume", action="store_true", help="continue the campaign")
    learn.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set stop.max_rounds=5",
    )
    learn.set_defaults(func=run_learn)


def run_learn(args: argparse.Namespace) -> int:
    from jaxmlp.active import learn, load_learn_config
    from jaxmlp.train.config import ConfigError

    try:
        config = load_learn_config(args.config, args.set)
        result = learn(config, resume=args.resume, log=lambda m: print(m, flush=True))
    except (ConfigError, ValueError) as error:
        print(f"jaxmlp learn: {error}", file=sys.stderr)
        return 2
    last = result.rows[-1]
    print(
        f"done: {last['labels']} labels; final model {result.model_path}; "
        f"report in {result.output}/report.md"
    )
    return 0
