"""``jaxmlp train CONFIG.yaml [--set key=value ...] [--resume]`` and
``jaxmlp eval MODEL DATA [--json metrics.json]``."""

from __future__ import annotations

import argparse
import json
import sys

from jaxmlp.data.dataset import DatasetError
from jaxmlp.train.checkpoint import CheckpointError
from jaxmlp.train.config import ConfigError


def add_parser(subparsers) -> None:
    train = subparsers.add_parser(
        "train",
        help="train a model from a YAML config",
        description="Train a model. The run directory (config 'output') receives the "
        "config used, log.jsonl/log.csv, checkpoints, parity/learning-curve PNGs, "
        "metrics.json and model.jaxmlp.",
    )
    train.add_argument("config", help="YAML config file")
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.epochs=50 --set model.channels=16",
    )
    train.add_argument(
        "--resume", action="store_true", help="continue from the last checkpoint"
    )
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="start again in an existing run directory",
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=run_train)

    ev = subparsers.add_parser(
        "eval",
        help="errors of a model on labelled data",
        description="Energy (meV/atom), force (meV/Å) and stress (meV/Å³) MAE and RMSE.",
    )
    ev.add_argument("model", help="model file (.jaxmlp)")
    ev.add_argument("data", help="labelled structures (any ASE-readable file)")
    ev.add_argument(
        "--json", dest="json_path", help="also write the metrics to this JSON file"
    )
    ev.add_argument("--energy-key", default="REF_energy")
    ev.add_argument("--forces-key", default="REF_forces")
    ev.add_argument("--stress-key", default="REF_stress")
    ev.add_argument("--batch-size", type=int, default=8)
    ev.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    ev.add_argument(
        "--calibrate",
        metavar="VALID",
        help="committee models: fit the one-parameter spread recalibration on these "
        "labelled structures and report DATA's calibration before and after",
    )
    ev.add_argument(
        "--save-calibrated",
        metavar="OUT",
        help="with --calibrate: write the recalibrated model file",
    )
    ev.add_argument("--plot", metavar="PNG", help="committee models: calibration plot")
    ev.set_defaults(func=run_eval)


def run_train(args) -> int:
    from jaxmlp.evaluate import format_metrics
    from jaxmlp.train.config import load_config
    from jaxmlp.train.loop import fit

    try:
        overrides = list(args.overrides) + (
            ["train.progress=false"] if args.no_progress else []
        )
        config = load_config(args.config, overrides)
        print(f"training {config.model.get('name')} -> {config.output}", flush=True)
        result = fit(config, resume=args.resume, overwrite=args.overwrite)
    except (ConfigError, DatasetError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    m = result.metrics
    print(
        f"stopped: {m['stop_reason']} after {m['epochs_run']} epochs (best epoch {m['best_epoch']}); "
        f"train step compiled {m['compiles_train']}x for {len(m['buckets'])} buckets"
    )
    print("validation:\n" + format_metrics(m["valid"]))
    if m["test"] is not None:
        print("test:\n" + format_metrics(m["test"]))
    print(f"model: {result.run_dir}/model.jaxmlp")
    return 0


def run_eval(args) -> int:
    from jaxmlp.data.dataset import LabelKeys, read_structures
    from jaxmlp.evaluate import evaluate, format_metrics
    from jaxmlp.model_io import ModelFileError, load_model

    try:
        model = load_model(args.model)
        keys = LabelKeys(args.energy_key, args.forces_key, args.stress_key)
        structures = read_structures(
            args.data, keys, required=(), species=model.species
        )
        metrics = evaluate(
            model, structures, batch_size=args.batch_size, dtype=args.dtype
        )
        calibration = None
        if model.members is not None:
            calibration = _calibration(args, model, structures, keys)
        elif args.calibrate or args.plot:
            raise ValueError(
                f"{args.model} is a single model: calibration needs a committee "
                "(train with model.ensemble: K)"
            )
    except (ModelFileError, DatasetError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_metrics(metrics))
    if calibration is not None:
        from jaxmlp.calibration import format_report

        metrics["calibration"] = calibration
        print("committee force spread vs error:")
        print(format_report({k: v for k, v in calibration.items() if k != "fit"}))
    if args.json_path:
        from jaxmlp.model_io import atomic_write_bytes

        atomic_write_bytes(args.json_path, json.dumps(metrics, indent=2).encode())
    return 0


def _calibration(args, model, structures, keys) -> dict:
    """``{"stored": report}`` or, with --calibrate, ``{"before", "after", "fit"}``."""
    from jaxmlp.calibration import calibrate, committee_errors, plot_calibration
    from jaxmlp.data.dataset import read_structures
    from jaxmlp.model_io import save_model

    kwargs = dict(batch_size=args.batch_size, dtype=args.dtype)
    before = committee_errors(model, structures, **kwargs)
    out = {"stored": before.report}
    curves = {"stored": before}
    if args.calibrate:
        valid = read_structures(args.calibrate, keys, species=model.species)
        calibrated, fit = calibrate(model, valid, **kwargs)
        after = committee_errors(calibrated, structures, **kwargs)
        out = {"before": before.report, "after": after.report, "fit": fit}
        curves = {"before": before, "after": after}
        if args.save_calibrated:
            save_model(calibrated, args.save_calibrated)
    elif args.save_calibrated:
        raise ValueError("--save-calibrated needs --calibrate VALID")
    if args.plot:
        plot_calibration(curves, args.plot)
    return out


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser(prog="jaxmlp")
    add_parser(parser.add_subparsers(dest="command", required=True))
    a = parser.parse_args()
    sys.exit(a.func(a))
