"""Training configuration: YAML -> dataclasses, with ``--set key=value`` overrides.

Sections: ``model`` (``name``, ``r_max``, optional ``species``, ``atomic_energies`` and
``ensemble`` (a committee of K members trained together) and ``shallow`` (its members
share all but the last layer), plus any hyper-parameter of
the architecture, e.g. ``num_layers``, ``channels``, ``l_max``), ``data``, ``train`` and
``output`` (the run directory). Unknown keys are an
error that names them; values are checked against the field types.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import yaml

from jaxmlp import precision

MODEL_KEYS = ("name", "r_max", "species", "atomic_energies", "ensemble", "shallow")


class ConfigError(ValueError):
    """A configuration key or value is invalid; the message names it."""


@dataclasses.dataclass
class DataConfig:
    """Where the data is and how to read it.

    Attributes:
        train_file: training data (any ASE-readable file).
        valid_file, test_file: optional; missing ones are split off ``train_file``
            (``valid_fraction``/``test_fraction``, seeded by ``split_seed``).
        energy_key, forces_key, stress_key: label keys (fallback: calculator results).
        max_train: use at most this many training structures (after a seeded shuffle).
        min_distance: atoms closer than this (Å) are a data error.
    """

    train_file: str | None = None
    valid_file: str | None = None
    test_file: str | None = None
    energy_key: str = "REF_energy"
    forces_key: str = "REF_forces"
    stress_key: str = "REF_stress"
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 0
    max_train: int | None = None
    min_distance: float = 0.1


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (lengths in epochs unless named ``_steps``).

    Attributes:
        epochs: maximum number of passes over the training set.
        batch_size: structures per step.
        learning_rate: peak learning rate.
        optimizer: ``adam`` or ``amsgrad``.
        schedule: ``cosine`` (warm-up + cosine decay), ``plateau`` (warm-up, then the
            rate is multiplied by ``plateau_factor`` after ``plateau_patience``
            evaluations without improvement) or ``constant``.
        warmup_epochs: linear warm-up length.
        clip_norm: global gradient-norm clip (None: off).
        loss: ``mse`` or ``huber`` (``huber_delta`` in eV/atom, eV/Å, eV/Å³), or, for
            committees, ``nll``: the Gaussian negative log-likelihood of the labels
            under the committee's mean and variance (energies per atom, forces per
            component, stress), which trains the spread to match the error; before
            ``nll_start_epoch`` every member trains on its own MSE.
        nll_start_epoch: epoch at which ``loss: nll`` takes over from MSE.
        energy_weight, forces_weight, stress_weight: loss weights.
        ema_decay: EMA of the weights, used for validation and the saved model.
        seed: seeds initial params and shuffling.
        max_minutes: wall-clock budget of this invocation (None: no limit).
        patience: early stopping after this many evaluations without improvement.
        eval_every: validate every this many epochs.
        num_buckets: padding size buckets (the train step compiles at most this often).
        dtype: ``float32`` or ``float64`` computation.
        progress: show a progress bar.
        calibrate: committees: after training, fit the one-parameter recalibration
            of the spread (:func:`jaxmlp.calibration.calibrate`) on the validation set
            and store it in the saved model (``metrics.json`` gets the report).
        devices: data-parallel training over this many devices (None: every device
            jax sees; 1: today's single-device program). Each padded batch is split
            over them, params replicated, gradients averaged by the compiler.
        bootstrap_fraction: committees only: member k trains on its own random subset
            of this fraction of the training structures (seeded by ``seed`` and k);
            None: every member sees every structure (members differ by their
            initialisation only).
    """

    epochs: int = 100
    batch_size: int = 4
    learning_rate: float = 0.005
    optimizer: str = "adam"
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.01
    plateau_patience: int = 5
    plateau_factor: float = 0.5
    clip_norm: float | None = 10.0
    weight_decay: float = 0.0
    loss: str = "mse"
    huber_delta: float = 0.01
    nll_start_epoch: float = 0.0
    energy_weight: float = 1.0
    forces_weight: float = 100.0
    stress_weight: float = 10.0
    ema_decay: float = 0.99
    seed: int = 0
    max_minutes: float | None = None
    patience: int | None = None
    eval_every: int = 1
    num_buckets: int = 3
    dtype: str = "float32"
    progress: bool = True
    bootstrap_fraction: float | None = None
    devices: int | None = None
    calibrate: bool = False


@dataclasses.dataclass
class Config:
    """A whole training run. ``model`` is a dict (architecture hyper-parameters vary)."""

    model: dict = dataclasses.field(default_factory=lambda: {"name": "nequip"})
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    output: str = "runs/run"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @property
    def hyper(self) -> dict:
        """Architecture hyper-parameters: the model section minus the generic keys."""
        return {k: v for k, v in self.model.items() if k not in MODEL_KEYS}


def _check_value(section: str, field: dataclasses.Field, value):
    name = f"{section}.{field.name}"
    kind = (
        field.type
        if isinstance(field.type, str)
        else getattr(field.type, "__name__", "")
    )
    optional = "None" in kind
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{name} may not be null")
    base = kind.split("|")[0].strip()
    if base == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
    elif base == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{name} must be an integer, got {value!r}")
    elif base == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        return float(value)
    elif base == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {value!r}")
    return value


def _section(cls, section: str, values) -> Any:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"section {section!r} must be a mapping, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(f'{section}.{k}' for k in unknown)}; "
            f"known: {sorted(fields)}"
        )
    return cls(**{k: _check_value(section, fields[k], v) for k, v in values.items()})


def _check_model(model) -> dict:
    if not isinstance(model, dict):
        raise ConfigError(f"section 'model' must be a mapping, got {model!r}")
    model = dict(model)
    model.setdefault("name", "nequip")
    model.setdefault("r_max", 5.0)
    if not isinstance(model["r_max"], (int, float)) or model["r_max"] <= 0:
        raise ConfigError(
            f"model.r_max must be a positive number (Å), got {model['r_max']!r}"
        )
    ensemble = model.get("ensemble")
    if ensemble is not None and (
        isinstance(ensemble, bool) or not isinstance(ensemble, int) or ensemble < 1
    ):
        raise ConfigError(
            f"model.ensemble must be a positive integer (committee size), got {ensemble!r}"
        )
    shallow = model.get("shallow", False)
    if not isinstance(shallow, bool):
        raise ConfigError(f"model.shallow must be true or false, got {shallow!r}")
    if shallow and ensemble is None:
        raise ConfigError("model.shallow needs model.ensemble (the number of heads)")
    from jaxmlp.model import ModelConfig, head_paths, network

    hyper = {k: v for k, v in model.items() if k not in MODEL_KEYS}
    try:  # validates the name and every hyper-parameter against the architecture
        probe = ModelConfig(
            model["name"], ("H",), float(model["r_max"]), tuple(hyper.items())
        )
        network(probe)
        if shallow:
            head_paths(probe)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"model: {e}") from None
    return model


def config_from_dict(data: dict) -> Config:
    """Validate a nested dict (e.g. parsed YAML) into a :class:`Config`."""
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown top-level key(s) {unknown}; known: {sorted(known)}")
    output = data.get("output", "runs/run")
    if not isinstance(output, str):
        raise ConfigError(f"output must be a directory path, got {output!r}")
    config = Config(
        model=_check_model(data.get("model", {"name": "nequip"})),
        data=_section(DataConfig, "data", data.get("data")),
        train=_section(TrainConfig, "train", data.get("train")),
        output=output,
    )
    if config.data.train_file is None:
        raise ConfigError("data.train_file is required")
    if config.train.dtype not in precision.DTYPES:
        raise ConfigError(
            f"train.dtype must be one of {precision.DTYPES}, got {config.train.dtype!r}"
        )
    for key in ("epochs", "batch_size", "eval_every", "num_buckets"):
        if getattr(config.train, key) < 1:
            raise ConfigError(f"train.{key} must be >= 1")
    if config.train.loss not in ("mse", "huber", "nll"):
        raise ConfigError(
            f"train.loss must be mse, huber or nll, got {config.train.loss!r}"
        )
    if config.train.loss == "nll" and config.model.get("ensemble") is None:
        raise ConfigError(
            "train.loss: nll needs a committee (model.ensemble: K, e.g. with "
            "model.shallow: true): its spread is the predicted uncertainty"
        )
    fraction = config.train.bootstrap_fraction
    if fraction is not None:
        if not 0.0 < fraction <= 1.0:
            raise ConfigError(
                f"train.bootstrap_fraction must lie in (0, 1], got {fraction}"
            )
        if config.model.get("ensemble") is None:
            raise ConfigError("train.bootstrap_fraction needs model.ensemble (K >= 1)")
    return config


def apply_overrides(data: dict, overrides) -> dict:
    """Apply ``["train.epochs=5", "model.channels=8", "output=runs/x"]`` (YAML values)."""
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for item in overrides or ():
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, text = item.split("=", 1)
        value = yaml.safe_load(text) if text.strip() else None
        parts = key.strip().split(".")
        node = data
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return data


def read_yaml(path: str | os.PathLike) -> dict:
    """The mapping in a YAML config file (empty file: {}); ConfigError names the file
    when it is missing or not valid YAML."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: no such config file")
    with open(path) as f:
        try:
            return yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: invalid YAML: {e}") from None


def load_config(path: str | os.PathLike, overrides=()) -> Config:
    """Read a YAML config, apply ``--set`` overrides and validate.

    Relative data paths are resolved against the config file's folder.
    """
    path = os.fspath(path)
    config = config_from_dict(apply_overrides(read_yaml(path), overrides))
    base = os.path.dirname(os.path.abspath(path))
    for key in ("train_file", "valid_file", "test_file"):
        value = getattr(config.data, key)
        if value is not None and not os.path.isabs(value):
            candidate = os.path.join(base, value)
            if os.path.exists(candidate) or not os.path.exists(value):
                setattr(config.data, key, candidate)
    return config
