"""Configuration of an active-learning campaign (``jaxmlp learn CONFIG.yaml``).

Sections: ``model`` and ``train`` exactly as for ``jaxmlp train`` (a committee needs
``model.ensemble: K``; ``train`` holds the per-round training settings), ``data``
(seed structures, optional held-out test set), ``oracle`` (the reference calculator by
import path), ``explore`` (committee MD), ``select`` (trust levels, how many, how),
``stop`` and ``output``. Unknown keys are errors that name them. Units: eV/Å for the
trust levels, K, fs.
"""

from __future__ import annotations

import dataclasses
import os

from jaxmlp.active.oracle import Oracle, OracleError
from jaxmlp.md.integrators import ENSEMBLES
from jaxmlp.train.config import (
    ConfigError,
    TrainConfig,
    _check_model,
    _section,
    apply_overrides,
    read_yaml,
)


@dataclasses.dataclass(frozen=True)
class LearnData:
    """Attributes:
    initial_file: seed structures; labelled ones (``REF_energy``/``REF_forces`` or
        calculator results) are used as they are, unlabelled ones are labelled by
        the oracle first.
    test_file: optional held-out structures (labelled by the oracle if they are not),
        for the test error of every round.
    valid_fraction: of the labels, for validation and model selection.
    """

    initial_file: str | None = None
    test_file: str | None = None
    valid_fraction: float = 0.15


@dataclasses.dataclass(frozen=True)
class OracleSection:
    """Attributes:
    calculator: ``"module:Class"`` of an ASE calculator.
    kwargs: its keyword arguments.
    executor: ``process`` (default), ``thread`` or ``serial``; from Python any
        ``concurrent.futures``-compatible executor can be passed instead.
    workers: parallel reference calculations.
    """

    calculator: str = "ase.calculators.emt:EMT"
    kwargs: dict = dataclasses.field(default_factory=dict)
    executor: str = "process"
    workers: int = 1

    def oracle(self) -> Oracle:
        return Oracle.from_dict({"calculator": self.calculator, "kwargs": self.kwargs})


@dataclasses.dataclass(frozen=True)
class ExploreConfig:
    """Attributes:
    structures: start structures of the MD (default: ``data.initial_file``).
    max_starts: start structures per round (cycled through the file by round).
    temperatures: K; one replica per temperature, run together (vmapped).
    ensemble: ``nvt-langevin``, ``nvt``, ``nve`` (``npt`` is not explored).
    timestep: fs. steps: MD steps per round and start. stride: steps per frame.
    friction: Langevin friction, 1/fs.
    dtype: MD precision.
    stop_at_trust_high: stop a start's MD after the chunk in which a frame reaches
        ``select.trust_high`` (saves MD time early on; fewer frames to choose from).
        Default: run every step (DP-GEN's practice); failed frames are never chosen.
    """

    structures: str | None = None
    max_starts: int = 2
    temperatures: tuple = (300.0,)
    ensemble: str = "nvt-langevin"
    timestep: float = 1.0
    steps: int = 1000
    stride: int = 10
    friction: float = 0.01
    dtype: str = "float32"
    stop_at_trust_high: bool = False


@dataclasses.dataclass(frozen=True)
class SelectConfig:
    """Attributes:
    method: ``uncertainty`` or ``random`` (see :mod:`jaxmlp.active.select`).
    trust_low, trust_high: eV/Å, DP-GEN's trust levels on the largest per-atom force
        spread (system- and committee-dependent: DP-GEN uses 0.05–0.15 for converged
        metal models; a small committee on few labels needs higher ones).
    per_round: at most this many labels per round.
    min_separation: frames; at most one label per window of a trajectory.
    seed: of the random selection.
    """

    method: str = "uncertainty"
    trust_low: float = 0.05
    trust_high: float = 0.5
    per_round: int = 10
    min_separation: int = 5
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class StopConfig:
    """Attributes:
    max_rounds: rounds of train -> explore -> select -> label.
    max_labels: stop once the training set holds this many labels (seed included).
    accurate_fraction: stop once this fraction of explored frames is accurate.
    """

    max_rounds: int = 3
    max_labels: int | None = None
    accurate_fraction: float | None = None


@dataclasses.dataclass
class LearnConfig:
    model: dict
    train: TrainConfig
    data: LearnData
    oracle: OracleSection
    explore: ExploreConfig
    select: SelectConfig
    stop: StopConfig
    output: str = "runs/learn"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


SECTIONS = {
    "train": TrainConfig,
    "data": LearnData,
    "oracle": OracleSection,
    "explore": ExploreConfig,
    "select": SelectConfig,
    "stop": StopConfig,
}


def learn_config_from_dict(data: dict) -> LearnConfig:
    """Validate a nested dict (parsed YAML) into a :class:`LearnConfig`."""
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping, got {type(data).__name__}")
    known = set(SECTIONS) | {"model", "output"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown top-level key(s) {unknown}; known: {sorted(known)}")
    model = _check_model(data.get("model", {"name": "schnet", "ensemble": 4}))
    if model.get("ensemble") is None or model["ensemble"] < 2:
        raise ConfigError(
            "active learning needs a committee: set model.ensemble to K >= 2"
        )
    train = dict(data.get("train") or {})
    train.setdefault("progress", False)  # one campaign log, not a bar per round
    sections = {
        k: _section(cls, k, train if k == "train" else data.get(k))
        for k, cls in SECTIONS.items()
    }
    explore, select = sections["explore"], sections["select"]
    temperatures = explore.temperatures
    if isinstance(temperatures, (int, float)):
        temperatures = (temperatures,)
    if not temperatures or not all(
        isinstance(t, (int, float)) and t > 0 for t in temperatures
    ):
        raise ConfigError(
            f"explore.temperatures must be positive K, got {temperatures}"
        )
    explore = dataclasses.replace(
        explore, temperatures=tuple(float(t) for t in temperatures)
    )
    if explore.ensemble not in ENSEMBLES or explore.ensemble == "npt":
        raise ConfigError(
            f"explore.ensemble must be nvt-langevin, nvt or nve, got {explore.ensemble!r}"
        )
    if explore.steps % explore.stride or explore.steps < explore.stride:
        raise ConfigError("explore.steps must be a positive multiple of explore.stride")
    if select.method not in ("uncertainty", "random"):
        raise ConfigError(
            f"select.method must be uncertainty or random, got {select.method!r}"
        )
    if not 0 <= select.trust_low < select.trust_high:
        raise ConfigError("select needs 0 <= trust_low < trust_high (eV/Å)")
    if select.per_round < 1 or explore.max_starts < 1:
        raise ConfigError("select.per_round and explore.max_starts must be >= 1")
    oracle = sections["oracle"]
    try:
        oracle.oracle()
    except OracleError as e:
        raise ConfigError(str(e)) from None
    if oracle.executor not in ("process", "thread", "serial") or oracle.workers < 1:
        raise ConfigError("oracle.executor must be process/thread/serial, workers >= 1")
    if sections["data"].initial_file is None:
        raise ConfigError("data.initial_file is required (seed structures)")
    output = data.get("output", "runs/learn")
    if not isinstance(output, str):
        raise ConfigError(f"output must be a directory path, got {output!r}")
    return LearnConfig(
        model=model,
        output=output,
        **(sections | {"explore": explore}),
    )


def load_learn_config(path: str | os.PathLike, overrides=()) -> LearnConfig:
    """Read a YAML campaign config, apply ``--set`` overrides, validate; relative file
    paths are resolved against the config file's folder."""
    path = os.fspath(path)
    config = learn_config_from_dict(apply_overrides(read_yaml(path), overrides))
    base = os.path.dirname(os.path.abspath(path))

    def resolve(value):
        if value is None or os.path.isabs(value):
            return value
        candidate = os.path.join(base, value)
        return candidate if os.path.exists(candidate) else value

    config.data = dataclasses.replace(
        config.data,
        initial_file=resolve(config.data.initial_file),
        test_file=resolve(config.data.test_file),
    )
    config.explore = dataclasses.replace(
        config.explore, structures=resolve(config.explore.structures)
    )
    if not os.path.isabs(config.output):
        config.output = os.path.join(base, config.output)
    return config
