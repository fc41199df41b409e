"""Training: configuration, losses, optimizers, pure steps, checkpoints and ``fit``."""

from jaxmlp.train.config import (
    Config,
    ConfigError,
    apply_overrides,
    config_from_dict,
    load_config,
)
from jaxmlp.train.loop import FitResult, fit

__all__ = [
    "Config",
    "ConfigError",
    "FitResult",
    "apply_overrides",
    "config_from_dict",
    "fit",
    "load_config",
]
