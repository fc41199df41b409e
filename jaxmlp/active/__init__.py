"""Active learning: committee MD finds where the model is unsure, a reference
calculator labels those structures, the committee is retrained (``jaxmlp learn``).

:mod:`~jaxmlp.active.config` (the campaign YAML), :mod:`~jaxmlp.active.oracle` (any
ASE calculator by import path, run in worker processes), :mod:`~jaxmlp.active.store`
(atomic per-label files), :mod:`~jaxmlp.active.select` (trust levels, diversity) and
:mod:`~jaxmlp.active.campaign` (the resumable loop).
"""

from jaxmlp.active.campaign import LearnResult, learn
from jaxmlp.active.config import LearnConfig, learn_config_from_dict, load_learn_config
from jaxmlp.active.oracle import Oracle, label_one, make_executor

__all__ = [
    "LearnConfig",
    "LearnResult",
    "Oracle",
    "label_one",
    "learn",
    "learn_config_from_dict",
    "load_learn_config",
    "make_executor",
]
